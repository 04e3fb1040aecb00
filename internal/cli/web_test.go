package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
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
