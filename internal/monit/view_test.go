package monit

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"
	"github.com/corral-pm/corral/internal/api"
)

// clusterProcs is a cluster app of three workers with traffic, and a fork-mode app.
func clusterProcs() []api.Process {
	var procs []api.Process
	for i, reqs := range []uint64{500, 300, 200} {
		procs = append(procs, api.Process{ID: i, Name: "api", Instance: i, PID: 100 + i, Status: "online", CPU: 12.5, Memory: 40 << 20,
			Cluster: &api.WorkerStats{Connections: reqs / 10, Requests: reqs, ReqPerSec: float64(reqs) / 100, LatencyP99MS: 3.2}})
	}
	return append(procs, api.Process{ID: 3, Name: "a-very-long-application-name-indeed", PID: 200, Status: "errored"})
}

// viewModel is a model after two polls of procs, with a line of each kind in its log pane and
// an alert firing.
func viewModel(procs []api.Process, sel int) *model {
	m := &model{ctx: context.Background(), src: &recorder{procs: procs}, interval: time.Second, logLines: 15,
		st: newStyles(io.Discard, false), now: time.Now, hist: history{}}
	now := time.Now()
	m.apply(pollMsg{at: now.Add(-time.Second), procs: procs})
	m.apply(pollMsg{at: now, procs: procs, firing: []api.Alert{{App: "api", Rule: "crash_rate", Value: 3, Unit: "crashes", Spec: "2/1m", Since: now.Add(-time.Minute)}}})
	m.sel = sel
	m.selKey = m.rows[sel].key()
	m.logs = []logEvent{
		{line: api.LogLine{ProcID: 1, App: "api", Stream: "out", Message: "history line", History: true}},
		{line: api.LogLine{ProcID: 1, App: "api", Stream: "err", Message: "live \x1b[31mred\x1b[0m line\twith a tab", Time: now}},
		{line: api.LogLine{ProcID: -1, App: "corral", Stream: "corral", Message: strings.Repeat("long ", 60), Time: now}},
	}
	return m
}

// TestViewFits: at every size, the screen is exactly the terminal's height, every line its
// width, and an app's escape codes do not reach it.
func TestViewFits(t *testing.T) {
	for _, size := range [][2]int{{120, 40}, {80, 24}, {40, 12}, {20, 5}, {250, 70}} {
		for sel := range 6 {
			t.Run(fmt.Sprintf("%dx%d row %d", size[0], size[1], sel), func(t *testing.T) {
				m := viewModel(clusterProcs(), sel)
				m.width, m.height = size[0], size[1]
				w, h := max(size[0], minWidth), max(size[1], minHeight)
				lines := strings.Split(m.View(), "\n")
				if len(lines) != h {
					t.Errorf("%d lines, want %d", len(lines), h)
				}
				for i, l := range lines {
					if got := ansi.StringWidth(l); got != w {
						t.Errorf("line %d is %d cells wide, want %d: %q", i, got, w, l)
					}
				}
				if v := m.View(); strings.Contains(ansi.Strip(v), "\x1b") || strings.Contains(v, "\t") {
					t.Errorf("an app's escape code or tab reached the screen:\n%q", v)
				}
			})
		}
	}
}

// TestViewPanel: the panel of a worker names it and shows its figures, the distribution over
// its app's workers with their shares, its log lines; the alerts show under the panes.
func TestViewPanel(t *testing.T) {
	m := viewModel(clusterProcs(), 2) // api[1]
	m.width, m.height = 140, 40
	v := m.View()
	for _, want := range []string{
		"api[1] · online · pid 101",
		"Distribution",
		"1             30   30.0%        300   30.0%     3.0   3.2ms", // its connections and requests, and their shares
		"0             50   50.0%        500   50.0%",
		"1|api | history line",
		"1|api | live red line    with a tab",
		"Alerts firing: 1",
		"crash_rate api · 3 crashes (threshold 2/1m) · for 60s",
		marker + "  1   online",
	} {
		if !strings.Contains(v, want) {
			t.Errorf("the screen lacks %q:\n%s", want, v)
		}
	}
	fork := viewModel(clusterProcs(), 4) // the fork-mode app: no distribution
	fork.width, fork.height = 140, 40
	if v := fork.View(); strings.Contains(v, "Distribution") {
		t.Errorf("a fork-mode app shows a distribution:\n%s", v)
	}
}
