package monit

import (
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/corral-pm/corral/internal/api"
)

// recorder is a Source that answers with fixed processes and records the actions asked of it.
// The daemon itself is tested through monit in integration's TestMonitInTerminal; here the
// model's decisions are: which key does what to which target.
type recorder struct {
	procs []api.Process
	mu    sync.Mutex
	calls []string
}

func (r *recorder) Processes(context.Context) ([]api.Process, error) { return r.procs, nil }
func (r *recorder) Alerts(context.Context) (api.AlertsResponse, error) {
	return api.AlertsResponse{}, nil
}
func (r *recorder) Logs(ctx context.Context, q api.LogsQuery, fn func(api.LogLine) error) error {
	<-ctx.Done()
	return nil
}
func (r *recorder) Act(_ context.Context, a api.Action, req api.ActionRequest) (api.ActionResponse, error) {
	r.record(string(a) + " " + strings.Join(req.Targets, ","))
	return api.ActionResponse{}, nil
}
func (r *recorder) Scale(_ context.Context, req api.ScaleRequest) (api.ActionResponse, error) {
	r.record("scale " + req.App + " " + req.Count)
	return api.ActionResponse{}, nil
}
func (r *recorder) record(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, s)
}

// keyMsg is the message a typed key makes.
func keyMsg(k string) tea.KeyMsg {
	switch k {
	case "down":
		return tea.KeyMsg{Type: tea.KeyDown}
	case "ctrl+c":
		return tea.KeyMsg{Type: tea.KeyCtrlC}
	}
	return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(k)}
}

// TestKeys: the keys move the selection over apps and processes and ask for actions on it,
// which run only after y, on the selected target.
func TestKeys(t *testing.T) {
	procs := []api.Process{{ID: 0, Name: "web", Status: "online"}, {ID: 1, Name: "web", Status: "online"}, {ID: 2, Name: "cron", Status: "online"}}
	for _, tc := range []struct {
		name   string
		keys   []string
		calls  []string
		footer string // what the footer says at the end
	}{
		{"restart an app", []string{"r", "y"}, []string{"restart web"}, "restart web: done"},
		{"restart a process", []string{"j", "j", "r", "y"}, []string{"restart 1"}, "restart web[1]: done"},
		{"keys typed at once", []string{"jjr", "y"}, []string{"restart 1"}, "restart web[1]: done"},
		{"reload with the arrow", []string{"down", "l", "y"}, []string{"reload 0"}, "reload web[0]: done"},
		{"stop, and no", []string{"G", "s", "n"}, nil, "cancelled"},
		{"scale up from a process row", []string{"j", "+", "y"}, []string{"scale web +1"}, "web now runs"},
		{"scale down asks with the counts", []string{"-"}, nil, "Scale web from 2 to 1 processes? y/n"},
		{"up stops at the top", []string{"k", "k", "s", "y"}, []string{"stop web"}, "stop web: done"},
		{"down stops at the bottom", []string{"G", "j", "j", "r", "y"}, []string{"restart 2"}, "restart cron[2]: done"},
		{"help, then any key closes it", []string{"?", "r", "r", "y"}, []string{"restart web"}, "restart web: done"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := &recorder{procs: procs}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			m := &model{ctx: ctx, src: src, interval: time.Hour, logLines: 5, st: newStyles(io.Discard, false),
				now: time.Now, hist: history{}}
			m.apply(pollMsg{at: time.Now(), procs: procs})
			m.follow()
			for _, k := range tc.keys {
				_, cmd := m.Update(keyMsg(k))
				// Run what the key asked for, as the program would, and hand the model the
				// action's result (polls and log batches are left out).
				for _, msg := range run(cmd) {
					if done, ok := msg.(actionDoneMsg); ok {
						m.Update(done)
					}
				}
			}
			if strings.Join(src.calls, "; ") != strings.Join(tc.calls, "; ") {
				t.Errorf("calls %q, want %q", src.calls, tc.calls)
			}
			if f := m.footer(); !strings.Contains(f, tc.footer) {
				t.Errorf("footer %q, want it to say %q", f, tc.footer)
			}
		})
	}
}

// run runs a command and those it batches, except ticks and log waits (which
// block), and returns their messages.
func run(cmd tea.Cmd) []tea.Msg {
	if cmd == nil {
		return nil
	}
	done := make(chan tea.Msg, 1)
	go func() { done <- cmd() }()
	var msg tea.Msg
	select {
	case msg = <-done:
	case <-time.After(200 * time.Millisecond):
		return nil // a tick or a log stream's wait
	}
	var out []tea.Msg
	switch msg := msg.(type) {
	case tea.BatchMsg:
		for _, c := range msg {
			out = append(out, run(c)...)
		}
	default:
		out = append(out, msg)
	}
	return out
}

// TestQuitKeys: q and Ctrl-C quit.
func TestQuitKeys(t *testing.T) {
	for _, k := range []string{"q", "ctrl+c"} {
		m := &model{ctx: context.Background(), src: &recorder{}, st: newStyles(io.Discard, false), hist: history{}}
		_, cmd := m.Update(keyMsg(k))
		if cmd == nil {
			t.Fatalf("%s: no command", k)
		}
		if _, ok := cmd().(tea.QuitMsg); !ok {
			t.Errorf("%s does not quit", k)
		}
	}
}

// TestTermRestored: TERM is the user's again once this package has initialised
// (internal/monit/quietterm changed it while bubbletea initialised); the process's initial
// environment says what it was.
func TestTermRestored(t *testing.T) {
	raw, err := os.ReadFile("/proc/self/environ")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	want, set := "", false
	for _, kv := range bytes.Split(raw, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("TERM=")); ok {
			want, set = string(v), true
		}
	}
	got, gotSet := os.LookupEnv("TERM")
	if got != want || gotSet != set {
		t.Errorf("TERM is %q (set: %v), want the initial %q (set: %v)", got, gotSet, want, set)
	}
}

// TestOnePollChain: the polls an action asks for do not add a second chain of ticks: one tick
// is pending at a time.
func TestOnePollChain(t *testing.T) {
	procs := []api.Process{{ID: 0, Name: "web", Status: "online"}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := &model{ctx: ctx, src: &recorder{procs: procs}, interval: time.Millisecond, st: newStyles(io.Discard, false),
		now: time.Now, hist: history{}}
	ticks := func(cmd tea.Cmd) (n int) {
		for _, msg := range run(cmd) {
			if _, ok := msg.(tickMsg); ok {
				n++
			}
		}
		return n
	}
	_, cmd := m.Update(pollMsg{at: time.Now(), procs: procs})
	if n := ticks(cmd); n != 1 {
		t.Fatalf("the first poll schedules %d ticks, want 1", n)
	}
	// An action's poll answers before the tick fires.
	_, cmd = m.Update(pollMsg{at: time.Now(), procs: procs})
	if n := ticks(cmd); n != 0 {
		t.Errorf("a poll while a tick is pending schedules %d more", n)
	}
	m.Update(tickMsg{})
	_, cmd = m.Update(pollMsg{at: time.Now(), procs: procs})
	if n := ticks(cmd); n != 1 {
		t.Errorf("the poll after the tick schedules %d ticks, want 1", n)
	}
}
