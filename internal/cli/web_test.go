package cli

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/corral-pm/corral/internal/testutil"
	"golang.org/x/sys/unix"
)

// webURL matches the URL `corral web` prints.
var webURL = regexp.MustCompile(`http://127\.0\.0\.1:([0-9]+)/web/#token=([0-9a-f]{64})`)

// TestWebPrintsTheURL: with the listener on, `corral web` prints the dashboard's URL with the
// token of CORRAL_HOME/web-token in its fragment; --open hands that URL to xdg-open.
func TestWebPrintsTheURL(t *testing.T) {
	e := newHome(t)
	t.Setenv("CORRAL_HTTP_LISTEN", "127.0.0.1:0")
	e.startDaemon()
	r := e.ok("web")
	m := webURL.FindStringSubmatch(r.stdout)
	if m == nil || r.stdout != m[0]+"\n" {
		t.Fatalf("stdout is not the URL alone:\n%s", r)
	}
	tok, err := os.ReadFile(filepath.Join(e.home, "web-token"))
	if err != nil || string(tok) != m[2] {
		t.Errorf("the URL's token %q is not the token file's %q (%v)", m[2], tok, err)
	}
	golden(t, "web.golden", webURL.ReplaceAllString(e.normalize(r.String()), "http://127.0.0.1:<port>/web/#token=<token>"))

	// xdg-open is a script that writes down what it was asked to open.
	bin := t.TempDir()
	opened := filepath.Join(bin, "opened")
	if err := os.WriteFile(filepath.Join(bin, "xdg-open"), []byte("#!/bin/sh\nprintf '%s' \"$1\" > "+opened+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	r = e.ok("web", "--open")
	got, err := os.ReadFile(opened)
	if err != nil || string(got)+"\n" != r.stdout {
		t.Errorf("xdg-open got %q (%v), want the printed URL %q", got, err, r.stdout)
	}
}

// TestWebWhenTheListenerIsOff: without a terminal and without --yes, `corral web` says how to
// turn the listener on and fails, changing nothing; a daemon started with CORRAL_HTTP_LISTEN
// empty is named as the reason.
func TestWebWhenTheListenerIsOff(t *testing.T) {
	e := newHome(t)
	t.Setenv("CORRAL_HTTP_LISTEN", "")
	os.Unsetenv("CORRAL_HTTP_LISTEN")
	e.startDaemon()
	var out strings.Builder
	r := e.fails(1, "web")
	out.WriteString(e.normalize(r.String()) + "\n")
	if _, err := os.Stat(filepath.Join(e.home, "settings.json")); err == nil {
		t.Error("corral web wrote settings without being asked to")
	}
	e.stop()
	if !e.daemonExited(30e9) {
		t.Fatal("the daemon did not stop")
	}
	t.Setenv("CORRAL_HTTP_LISTEN", "")
	e.startDaemon()
	r = e.fails(1, "web", "--yes")
	out.WriteString(e.normalize(r.String()))
	golden(t, "web_off.golden", out.String())
}

// TestWebTurnsTheListenerOn: `corral web --yes` sets http.listen and the daemon binds it at
// once, the apps untouched, and prints a URL that serves the dashboard (stdout is the URL
// alone). A port that is taken is refused with the fix, and the setting is left as it was.
func TestWebTurnsTheListenerOn(t *testing.T) {
	e := newHome(t)
	t.Setenv("CORRAL_HTTP_LISTEN", "")
	os.Unsetenv("CORRAL_HTTP_LISTEN")
	e.startDaemon()
	e.sleeper("script.sh")
	e.ok("start", "script.sh", "--name", "kept")
	before := e.waitOnline("kept", 1)[0]

	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	old := webDefaultListen
	t.Cleanup(func() { webDefaultListen = old })
	webDefaultListen = taken.Addr().String()
	r := e.fails(1, "web", "--yes")
	if !strings.Contains(r.stderr, "cannot turn the HTTP listener on at "+webDefaultListen) || !strings.Contains(r.stderr, "pick a free port") {
		t.Errorf("a taken port:\n%s", r)
	}
	if b, err := os.ReadFile(filepath.Join(e.home, "settings.json")); err == nil && strings.Contains(string(b), webDefaultListen) {
		t.Errorf("the refused address stayed in the settings: %s", b)
	}

	webDefaultListen = "127.0.0.1:" + strconv.Itoa(testutil.FreePort(t))
	r = e.ok("web", "--yes")
	m := webURL.FindStringSubmatch(r.stdout)
	if m == nil || !strings.HasPrefix(r.stdout, "http://"+webDefaultListen+"/web/#token=") || strings.Count(r.stdout, "\n") != 1 {
		t.Fatalf("stdout is not the URL alone on %s:\n%s", webDefaultListen, r)
	}
	if !strings.Contains(r.stderr, "the daemon serves /metrics and the dashboard there now") {
		t.Errorf("stderr does not say what happened:\n%s", r)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+webDefaultListen+"/web/api/state", nil)
	req.Header.Set("Authorization", "Bearer "+m[2])
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("the printed URL does not serve the dashboard: %v %v", resp, err)
	}
	resp.Body.Close()
	if after := e.waitOnline("kept", 1)[0]; after.PID != before.PID || after.Restarts != 0 {
		t.Errorf("the app was touched (pid %d -> %d, %d restarts)", before.PID, after.PID, after.Restarts)
	}
	if r := e.ok("web"); r.stdout != "http://"+webDefaultListen+"/web/#token="+m[2]+"\n" || r.stderr != "" {
		t.Errorf("a second corral web:\n%s", r)
	}
}

// openPTY opens a pseudo-terminal pair; the test writes the user's answers to the master.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetUint32(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	slave, err = os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { slave.Close() })
	return master, slave
}

// TestWebAsksOnATerminal: on a terminal, `corral web` with the listener off asks before
// changing anything: "n" (or just Enter) leaves it off; "y" turns it on and prints the URL.
func TestWebAsksOnATerminal(t *testing.T) {
	e := newHome(t)
	t.Setenv("CORRAL_HTTP_LISTEN", "")
	os.Unsetenv("CORRAL_HTTP_LISTEN")
	old := webDefaultListen
	webDefaultListen = "127.0.0.1:" + strconv.Itoa(testutil.FreePort(t))
	t.Cleanup(func() { webDefaultListen = old })
	e.startDaemon()
	master, slave := openPTY(t)
	stdin := os.Stdin
	os.Stdin = slave
	t.Cleanup(func() { os.Stdin = stdin })

	var out strings.Builder
	settingsFile := filepath.Join(e.home, "settings.json")
	for _, answer := range []string{"n", "", "y"} {
		if _, err := master.WriteString(answer + "\n"); err != nil {
			t.Fatal(err)
		}
		want := 1
		if answer == "y" {
			want = 0
		}
		r := e.fails(want, "web")
		if !strings.Contains(r.stderr, "[y/N] ") {
			t.Errorf("no question on a terminal:\n%s", r)
		}
		_, err := os.Stat(settingsFile)
		if answer != "y" && err == nil {
			t.Errorf("answer %q: settings were written", answer)
		}
		if answer == "y" && err != nil {
			t.Errorf("answer y: no settings written: %v", err)
		}
		out.WriteString(strings.ReplaceAll(e.normalize(r.String()), webDefaultListen, "127.0.0.1:<port>") + "\n")
	}
	got := regexp.MustCompile(`#token=[0-9a-f]{64}`).ReplaceAllString(out.String(), "#token=<token>")
	golden(t, "web_prompt.golden", got)
}
