package verify

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/corral-pm/corral/internal/alerts"
	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/spec"
)

// The alerts check asks the daemon's alerts engine (GET /v1/alerts, POST /v1/alerts/test) for
// the sinks, and takes the app's rules as the engine evaluates them (alerts.Effective on its
// spec: its own, or the defaults). A daemon of an older corral answers 404: the check shows "–".
// Everything verify needs of it is AlertsSource, which tests can replace.

// AlertsState is what the check judges: the app's alert rules and the notification sinks.
type AlertsState struct {
	// Rules are the rules active for the app ("crash_rate", "memory_growth", ...).
	Rules []string
	Sinks []AlertSink
}

// AlertSink is one place notifications go.
type AlertSink struct {
	Kind, Target string
	Sent, Failed uint64
	LastError    string
}

// AlertsSource reads the alerts engine. ok is false when the daemon has none.
type AlertsSource interface {
	// State takes the app's spec as the runner read it (any of its processes' App).
	State(ctx context.Context, app string, appSpec *spec.App) (st AlertsState, ok bool, err error)
	// SendTest fires a test notification through every sink of the app and returns each
	// sink's error ("" when delivered).
	SendTest(ctx context.Context, app string) (map[string]string, error)
}

// NewAlertsSource is the alerts engine of the daemon c talks to.
func NewAlertsSource(c *api.Client) AlertsSource { return clientAlerts{c} }

type clientAlerts struct{ c *api.Client }

// notFound reports whether err is the daemon's 404: it has no such route (an older corral).
func notFound(err error) bool {
	var se *api.StatusError
	return errors.As(err, &se) && se.Status == http.StatusNotFound
}

func (a clientAlerts) State(ctx context.Context, app string, appSpec *spec.App) (AlertsState, bool, error) {
	var st AlertsState
	resp, err := a.c.Alerts(ctx)
	if notFound(err) {
		return st, false, nil
	}
	if err != nil {
		return st, true, fmt.Errorf("ask the daemon for its alerts: %w", err)
	}
	seen := map[string]bool{}
	for _, s := range resp.Sinks {
		if (s.App == "" || s.App == app) && notifies(s.Kind) {
			seen[s.Kind+" "+s.Target] = true
			st.Sinks = append(st.Sinks, AlertSink{Kind: s.Kind, Target: s.Target, Sent: s.Sent, Failed: s.Failed, LastError: s.LastError})
		}
	}
	eff := alerts.Effective(appSpec)
	if !eff.Off {
		st.Rules = slices.Sorted(maps.Keys(eff.Rules))
	}
	// The app's own sinks, even before the engine has used them.
	for _, n := range eff.Notify {
		kind, target := alerts.KindWebhook, n.Webhook
		if n.Command != "" {
			kind, target = alerts.KindCommand, n.Command
		}
		target = alerts.MaskTarget(kind, target)
		if !seen[kind+" "+target] {
			seen[kind+" "+target] = true
			st.Sinks = append(st.Sinks, AlertSink{Kind: kind, Target: target})
		}
	}
	return st, true, nil
}

// notifies reports whether a sink of kind reaches someone: a webhook or a command, not
// corral.log (which every alert goes to anyway).
func notifies(kind string) bool { return kind == alerts.KindWebhook || kind == alerts.KindCommand }

func (a clientAlerts) SendTest(ctx context.Context, app string) (map[string]string, error) {
	resp, err := a.c.TestAlerts(ctx)
	if err != nil {
		return nil, fmt.Errorf("send a test notification: %w", err)
	}
	out := map[string]string{}
	for _, r := range resp.Results {
		if (r.App == "" || r.App == app) && notifies(r.Kind) {
			out[r.Kind+" "+r.Target] = r.Error
		}
	}
	return out, nil
}

// checkAlerts: a crash-rate and a memory rule are active for the app, and at least one sink
// works (delivered the test notification with --send-test; else has not failed its last).
func (x *run) checkAlerts(ctx context.Context) {
	c := x.rep.check(CheckAlerts)
	c.Threshold = "crash-rate and memory alerts active, at least one working sink"
	if x.r.Alerts == nil {
		c.Status, c.Reason = Skip, "this daemon has no alerts engine"
		return
	}
	st, ok, err := x.r.Alerts.State(ctx, x.o.App, &x.app)
	if err != nil {
		c.Status, c.Reason = Fail, err.Error()
		return
	}
	if !ok {
		c.Status, c.Reason = Skip, "this daemon has no alerts engine"
		return
	}
	has := func(words ...string) bool {
		for _, r := range st.Rules {
			for _, w := range words {
				if strings.Contains(strings.ToLower(r), w) {
					return true
				}
			}
		}
		return false
	}
	var missing []string
	if !has("crash", "restart") {
		missing = append(missing, "a crash-rate alert")
	}
	if !has("memory", "rss") {
		missing = append(missing, "a memory alert")
	}
	working, total := 0, len(st.Sinks)
	var sinkErrs []string
	if x.o.SendTest {
		res, err := x.r.Alerts.SendTest(ctx, x.o.App)
		if err != nil {
			c.Status, c.Reason = Fail, err.Error()
			return
		}
		total = len(res)
		for sink, e := range res {
			if e == "" {
				working++
			} else {
				sinkErrs = append(sinkErrs, sink+": "+e)
			}
		}
	} else {
		for _, s := range st.Sinks {
			if s.LastError == "" {
				working++
			} else {
				sinkErrs = append(sinkErrs, s.Kind+" "+s.Target+": "+s.LastError)
			}
		}
	}
	c.Figure = fmt.Sprintf("rules: %s; %d of %d sinks working", strings.Join(st.Rules, ", "), working, total)
	if working == 0 {
		missing = append(missing, "a working sink")
	}
	if len(missing) > 0 {
		c.Status = Fail
		c.Reason = "missing " + joinAnd(missing) + ": add them to the app's alerts in the ecosystem file"
		if len(sinkErrs) > 0 {
			c.Reason += " (" + strings.Join(sinkErrs, "; ") + ")"
		}
		return
	}
	c.Status = Pass
}
