package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/logs"
	"github.com/corral-pm/corral/internal/testutil"
)

// TestGoldenPingReady: `ping --ready` (exec probes) says ready, or exits 1 with the reasons;
// with no daemon it says so and starts none.
func TestGoldenPingReady(t *testing.T) {
	e := newEnv(t)
	e.sleeper("script.sh")
	e.ok("start", "script.sh", "--name", "web", "-i", "2")
	e.waitOnline("web", 2)
	golden(t, "ping_ready.golden", e.normalize(e.ok("ping", "--ready").String()))

	e.write("crash.sh", "#!/bin/sh\nexit 3\n", 0o755)
	e.ok("start", "crash.sh", "--name", "crash", "--max-restarts", "1", "--min-uptime", "10s")
	testutil.WaitFor(t, "crash errored", 30*time.Second, func() bool {
		for _, p := range e.list() {
			if p.Name == "crash" {
				return p.Status == "errored"
			}
		}
		return false
	})
	golden(t, "error_ping_not_ready.golden", e.normalize(e.fails(1, "ping", "--ready").String()))
}

func TestPingReadyStartsNoDaemon(t *testing.T) {
	e := newHome(t)
	r := e.fails(1, "ping", "--ready")
	if !strings.Contains(r.stderr, "not ready: no corral daemon is running for "+e.home) {
		t.Fatalf("ping --ready with no daemon:\n%s", r)
	}
	if _, err := e.cl.Version(t.Context()); err == nil {
		t.Fatal("ping --ready started a daemon")
	}
}

func TestRunFlagsChecked(t *testing.T) {
	e := newHome(t)
	e.sleeper("script.sh")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "script.sh", "--log-format", "yaml"}, `--log-format "yaml": expected text or json`},
		{[]string{"run", "script.sh", "--grace", "-1s"}, `--grace -1s: must not be negative`},
	} {
		r := e.fails(1, c.args...)
		if !strings.Contains(r.stderr, c.want) {
			t.Errorf("corral %s: stderr does not say %q:\n%s", strings.Join(c.args, " "), c.want, r)
		}
	}
}

func TestStopExitCode(t *testing.T) {
	for _, c := range []struct {
		killed  int
		errored []string
		code    int
	}{
		{0, nil, 0},
		{0, []string{"bad"}, exitStoppedErrored},
		{2, nil, exitStopKilled},
		{1, []string{"bad"}, exitStopKilled},
	} {
		r := api.StopReport{Signal: "SIGTERM", Killed: c.killed, Errored: c.errored}
		if code, why := stopExitCode(r); code != c.code || (code != 0) != (why != "") {
			t.Errorf("stopExitCode(%+v) = %d, %q; want %d", r, code, why, c.code)
		}
	}
}

// TestJSONLogLines: app stdout on stdout, app stderr and corral's lines on stderr, one object
// a line, with the instance looked up by process id.
func TestJSONLogLines(t *testing.T) {
	var out, errOut strings.Builder
	calls := 0
	p := &jsonLogPrinter{out: &out, errOut: &errOut, processes: func() []api.Process {
		calls++
		return []api.Process{{ID: 3, Instance: 1}}
	}}
	at := time.Date(2026, 12, 5, 16, 0, 0, 123, time.UTC)
	p.print(logs.Line{Time: at, ProcID: 3, App: "web", Stream: "out", Message: `say "hi"`})
	p.print(logs.Line{Time: at, ProcID: 3, App: "web", Stream: "err", Message: "oops"})
	p.print(logs.Line{Time: at, ProcID: -1, App: "corral", Stream: "corral", Message: "daemon line"})
	if want := `{"time":"2026-12-05T16:00:00.000000123Z","app":"web","id":3,"instance":1,"stream":"stdout","message":"say \"hi\""}` + "\n"; out.String() != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", out.String(), want)
	}
	want := `{"time":"2026-12-05T16:00:00.000000123Z","app":"web","id":3,"instance":1,"stream":"stderr","message":"oops"}` + "\n" +
		`{"time":"2026-12-05T16:00:00.000000123Z","app":"corral","stream":"corral","message":"daemon line"}` + "\n"
	if errOut.String() != want {
		t.Errorf("stderr:\n%s\nwant:\n%s", errOut.String(), want)
	}
	if calls != 1 {
		t.Errorf("the process list was read %d times, want once (cached)", calls)
	}
}
