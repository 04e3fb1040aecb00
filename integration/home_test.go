package integration

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/testutil"
)

// TestHomeNoOneElseControls runs, as root, what another local user could do to root's
// CORRAL_HOME and its files, and what a full disk does to an app's logs:
//   - a home that user created first is refused by the CLI, which starts no daemon in it;
//   - a tampered Node cluster preload (new content, or a link to their script) is never loaded
//     by a cluster worker: it is checked and written again before each spawn;
//   - a link planted at logs/<app>-out.log is not followed, by writing nor by flush, and the
//     refusal is in corral.log and `describe`;
//   - output a log file does not take (ENOSPC, /dev/full) is counted in `describe` and
//     reported in corral.log, rate limited.
func TestHomeNoOneElseControls(t *testing.T) {
	testutil.RequireRoot(t)

	t.Run("home owned by another user", func(t *testing.T) {
		e := newEnv(t)
		if err := os.Chown(e.home, testutil.Nobody, testutil.Nobody); err != nil {
			t.Fatal(err)
		}
		r := e.fails("ls")
		for _, want := range []string{"CORRAL_HOME " + e.home, "owned by nobody (uid 65534)", "chown -R root " + e.home, "another CORRAL_HOME"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("the refusal does not say %q:\n%s", want, r)
			}
		}
		if ents, _ := os.ReadDir(e.home); len(ents) != 0 {
			t.Errorf("corral created files in a home owned by nobody: %v", ents)
		}
	})

	t.Run("tampered preload", func(t *testing.T) {
		e := newEnv(t, "cluster_http.js")
		e.ok("ls") // starts the daemon, which writes the preload
		preload := filepath.Join(e.home, "node", "cluster-worker-preload.js")
		orig := readFile(preload)
		if orig == "" {
			t.Fatalf("the daemon wrote no preload at %s", preload)
		}
		marker := filepath.Join(e.dir, "pwned")
		evil := fmt.Sprintf("require('fs').appendFileSync(%q, 'the tampered preload ran in ' + process.pid + '\\n');\n", marker)
		if err := os.WriteFile(preload, []byte(evil), 0o600); err != nil {
			t.Fatal(err)
		}
		_, url := startCluster(t, e, "cluster_http.js", 1)
		checkPreload(t, e, preload, orig, marker)

		// Replaced by a link to a script of nobody's, then the worker restarted.
		evilJS := filepath.Join(e.dir, "evil.js")
		if err := os.WriteFile(evilJS, []byte(evil), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(preload); err != nil {
			t.Fatal(err)
		}
		testutil.PlantLink(t, evilJS, preload)
		e.ok("restart", "cluster_http")
		waitServing(t, e, url, 1)
		checkPreload(t, e, preload, orig, marker)
		if got := readFile(evilJS); got != evil {
			t.Errorf("the planted link's target was changed: %q", got)
		}
	})

	t.Run("planted log link and lost output", func(t *testing.T) {
		e := newEnv(t, "lines.sh")
		e.ok("ls")
		shadow := filepath.Join(t.TempDir(), "shadow")
		if err := os.WriteFile(shadow, []byte("root:secret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(e.home, "logs", "victim-out.log")
		testutil.PlantLink(t, shadow, link)
		e.ok("start", "lines.sh", "--name", "victim")
		e.ok("start", "lines.sh", "--name", "lossy", "-o", "/dev/full")
		daemonLog := filepath.Join(e.home, "corral.log")
		e.waitFor("corral.log to report the refusal and the lost output", 30*time.Second, func() bool {
			l := readFile(daemonLog)
			return strings.Contains(l, "victim[0] log error: logs: open "+link+": refusing to follow the symbolic link") &&
				strings.Contains(l, "lossy[1] output lost: ") && strings.Contains(l, "no space left on device")
		})
		// lines.sh prints 31 lines on stdout (30 and "all written"): all lost, all counted.
		for _, name := range []string{"victim", "lossy"} {
			e.waitFor(name+"'s 31 lost lines in describe", 30*time.Second, func() bool {
				return strings.Contains(e.ok("describe", name).stdout, "│ lost log lines     │ 31 (")
			})
		}
		if d := e.ok("describe", "victim").stdout; !strings.Contains(d, "│ log error          │ logs: open "+link+": refusing to follow") {
			t.Errorf("describe does not show the refusal:\n%s", d)
		}
		if n := strings.Count(readFile(daemonLog), "lossy[1] output lost"); n != 1 {
			t.Errorf("corral.log has %d lost-output lines for 31 lost lines, want 1 (then a summary a minute later)", n)
		}
		e.run("flush", "victim")
		e.run("flush")
		if got := readFile(shadow); got != "root:secret\n" {
			t.Errorf("the planted link's target was written or truncated: %q", got)
		}
	})
}

// checkPreload checks that the cluster's worker runs with the preload corral wrote, as it
// wrote it, that the tampered one never ran, and that corral.log says it was replaced.
func checkPreload(t *testing.T, e *env, preload, orig, marker string) {
	t.Helper()
	if got, err := os.ReadFile(marker); err == nil {
		t.Fatalf("a worker loaded the tampered preload: %s", got)
	}
	fi, err := os.Lstat(preload)
	if err != nil || !fi.Mode().IsRegular() || readFile(preload) != orig {
		t.Fatalf("the preload was not written again (%v, %v)", fi, err)
	}
	pid := e.proc(0).PID
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(cmdline, []byte("--require\x00"+preload+"\x00")) {
		t.Errorf("the worker (pid %d) runs without the preload: %q", pid, cmdline)
	}
	if log := readFile(filepath.Join(e.home, "corral.log")); !strings.Contains(log, preload+" failed its check") {
		t.Errorf("corral.log does not say the preload failed its check:\n%s", log)
	}
}
