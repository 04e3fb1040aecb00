package cli

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

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

// TestWebTurnsTheListenerOn: under a keeper (the real daemon and keeper, as `corral daemon`
// runs them), `corral web --yes` sets http.listen, restarts the daemon with the apps kept
// running, and prints a URL that serves the dashboard. Stdout is the URL alone.
func TestWebTurnsTheListenerOn(t *testing.T) {
	e := newHome(t)
	t.Setenv("CORRAL_HTTP_LISTEN", "")
	os.Unsetenv("CORRAL_HTTP_LISTEN")
	old := webDefaultListen
	webDefaultListen = "127.0.0.1:" + strconv.Itoa(testutil.FreePort(t))
	t.Cleanup(func() { webDefaultListen = old })

	log := filepath.Join(t.TempDir(), "keeper.log")
	logf, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(os.Args[0], "daemon")
	cmd.Env = append(os.Environ(), keptVar+"=1")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		if t.Failed() {
			testutil.LogTail(t, "keeper and daemon log", log, 40)
		}
	})
	testutil.WaitFor(t, "the kept daemon to answer", 60*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := e.cl.Version(ctx)
		return err == nil
	})
	e.sleeper("script.sh")
	e.ok("start", "script.sh", "--name", "kept")
	before := e.waitOnline("kept", 1)[0]

	r := e.ok("web", "--yes")
	m := webURL.FindStringSubmatch(strings.Replace(r.stdout, webDefaultListen, "127.0.0.1:1", 1))
	if m == nil || !strings.HasPrefix(r.stdout, "http://"+webDefaultListen+"/web/#token=") || strings.Count(r.stdout, "\n") != 1 {
		t.Fatalf("stdout is not the URL alone on %s:\n%s", webDefaultListen, r)
	}
	if !strings.Contains(r.stderr, "restarting the daemon (the apps keep running)") {
		t.Errorf("stderr does not say what happened:\n%s", r)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+webDefaultListen+"/web/api/state", nil)
	req.Header.Set("Authorization", "Bearer "+m[2])
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("the printed URL does not serve the dashboard: %v %v", resp, err)
	}
	resp.Body.Close()
	if after := e.waitOnline("kept", 1)[0]; after.PID != before.PID {
		t.Errorf("the app was restarted (pid %d -> %d): it should have kept running", before.PID, after.PID)
	}
	if r := e.ok("web"); r.stdout != "http://"+webDefaultListen+"/web/#token="+m[2]+"\n" {
		t.Errorf("a second corral web printed another URL:\n%s", r)
	}
	e.ok("kill")
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the keeper did not exit after corral kill")
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
// changing anything: "n" (or just Enter) leaves it off; "y" sets http.listen, and a daemon
// without a keeper is then not restarted (that would stop the apps), which it says.
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
		r := e.fails(1, "web")
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
	got := regexp.MustCompile(`pid [0-9]+`).ReplaceAllString(out.String(), "pid <pid>")
	golden(t, "web_prompt.golden", got)
}
