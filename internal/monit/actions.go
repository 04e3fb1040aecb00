package monit

import (
	"context"
	"fmt"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/corral-pm/corral/internal/api"
)

// action is a lifecycle action or a scaling on the selected row, waiting for its y/n.
type action struct {
	verb   string     // "restart", "reload", "stop", "scale"
	act    api.Action // the lifecycle action; "" for a scaling
	delta  string     // a scaling's "+1" or "-1"
	target string     // the row's target: an app's name, or a process's id
	label  string     // the row's name for people: web or web[3]
	app    string
	count  int // the app's processes now, for a scaling's prompt
}

// newAction is the action a key asks for on r: r restart, l reload, s stop, + and - scale
// its app (on a worker's row too: the app is what scales), which runs count processes now.
func newAction(key string, r row, count int) *action {
	a := &action{target: r.target(), label: r.label(), app: r.app}
	switch key {
	case "r":
		a.verb, a.act = "restart", api.ActionRestart
	case "l":
		a.verb, a.act = "reload", api.ActionReload
	case "s":
		a.verb, a.act = "stop", api.ActionStop
	case "+", "=":
		a.verb, a.delta = "scale", "+1"
	case "-":
		a.verb, a.delta = "scale", "-1"
	}
	if a.verb == "scale" {
		a.label, a.count = r.app, count
	}
	return a
}

// prompt is the question of the confirmation line.
func (a *action) prompt() string {
	if a.verb == "scale" {
		if a.count > 0 {
			n := a.count + 1
			if a.delta == "-1" {
				n = a.count - 1
			}
			return fmt.Sprintf("scale %s from %d to %d processes", a.label, a.count, n)
		}
		return fmt.Sprintf("scale %s by %s process", a.label, a.delta)
	}
	return a.verb + " " + a.label
}

// actionDoneMsg is how an action went, for the status line.
type actionDoneMsg struct {
	text   string
	failed bool
}

// actionTimeout bounds an action: a rolling reload of many workers takes a while.
const actionTimeout = 5 * time.Minute

// run performs the action through the daemon's API, as `corral restart` and the other verbs
// do.
func (a *action) run(ctx context.Context, src Source) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, actionTimeout)
		defer cancel()
		var resp api.ActionResponse
		var err error
		if a.act != "" {
			resp, err = src.Act(ctx, a.act, api.ActionRequest{Targets: []string{a.target}})
		} else {
			resp, err = src.Scale(ctx, api.ScaleRequest{App: a.app, Count: a.delta})
		}
		if err != nil {
			return actionDoneMsg{text: fmt.Sprintf("%s failed: %v", a.prompt(), err), failed: true}
		}
		if len(resp.Errors) > 0 {
			return actionDoneMsg{text: fmt.Sprintf("%s: %s", a.prompt(), strings.Join(resp.Errors, "; ")), failed: true}
		}
		if a.act == "" {
			return actionDoneMsg{text: fmt.Sprintf("%s now runs %d process(es)", a.app, len(resp.Processes))}
		}
		return actionDoneMsg{text: fmt.Sprintf("%s: done (%d process(es))", a.prompt(), len(resp.Processes))}
	}
}
