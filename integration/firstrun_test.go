package integration

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/testutil"
)

// TestRunReadmeFirstRun is the README's first command, `corral run
// examples/refapp/ecosystem.config.js`, with the repository's own file and its port moved by
// PORT (as the README says): the app is built once, on the terminal, before any worker starts,
// and then answers /api/health on that port. With a warm Go cache the build takes seconds;
// the cold figure is the README's, measured by hand.
func TestRunReadmeFirstRun(t *testing.T) {
	t.Parallel()
	file, err := filepath.Abs(filepath.Join("..", "examples", "refapp", "ecosystem.config.js"))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	port := testutil.FreePort(t)
	e.vars["PORT"] = strconv.Itoa(port)
	// The demo's database in this test's directory, not the repository's; SQLite whatever the
	// machine's environment says.
	e.vars["SQLITE_PATH"] = filepath.Join(e.dir, "refapp.db")
	e.vars["DATABASE_URL"] = ""

	run := e.background("run", file)
	health := "http://127.0.0.1:" + strconv.Itoa(port) + "/api/health"
	run.stdout.waitLine(t, "the build's end", 10*time.Minute, regexp.MustCompile(`^0\|refapp\s+\| corral: refapp built in `).MatchString)
	var body string
	e.waitFor("the app to answer "+health, 60*time.Second, func() bool {
		resp, err := http.Get(health)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return resp.StatusCode == http.StatusOK
	})
	if !strings.Contains(body, `"status":"ok"`) || !strings.Contains(body, `"db":"sqlite"`) {
		t.Errorf("health: %s", body)
	}

	out := run.stdout.all()
	building := indexes(out, regexp.MustCompile(`^0\|refapp\s+\| corral: building refapp: \./build\.sh \(in `))
	built := indexes(out, regexp.MustCompile(`^0\|refapp\s+\| corral: refapp built in `))
	started := indexes(out, regexp.MustCompile(`^\d+\|refapp\s+\| refapp\[\d+\] started \(pid \d+\)`))
	if len(building) != 1 || len(built) != 1 || len(started) == 0 {
		t.Fatalf("want one build start line, one build end line, then the workers' starts; got %d, %d, %d:\n%s", len(building), len(built), len(started), run.stdout)
	}
	if !(building[0] < built[0] && built[0] < started[0]) {
		t.Fatalf("a worker started before the build ended (lines %d, %d, %d):\n%s", building[0], built[0], started[0], run.stdout)
	}
	// The port: the one PORT gave, not the file's default.
	if !slices.ContainsFunc(out, func(l string) bool {
		return strings.Contains(l, "msg=listening") && strings.Contains(l, ":"+strconv.Itoa(port))
	}) {
		t.Errorf("no worker says it listens on %d:\n%s", port, run.stdout)
	}

	run.signal(syscall.SIGINT)
	if code := run.wait(60 * time.Second); code != 0 {
		t.Fatalf("run exited with %d on Ctrl-C\nstdout:\n%s\nstderr:\n%s", code, run.stdout, run.stderr)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(file), "bin", "refapp")); err != nil {
		t.Errorf("the build's binary: %v", err)
	}
}

// indexes returns the positions of the lines that match re.
func indexes(lines []string, re *regexp.Regexp) []int {
	var out []int
	for i, l := range lines {
		if re.MatchString(l) {
			out = append(out, i)
		}
	}
	return out
}
