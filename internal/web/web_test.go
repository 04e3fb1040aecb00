package web

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestWebTokenIsMadeOnceAndKeptPrivate: the first load makes a 0600 token of 64 hex bytes;
// later loads read the same one.
func TestWebTokenIsMadeOnceAndKeptPrivate(t *testing.T) {
	home := t.TempDir()
	tok, err := LoadToken(home)
	if err != nil {
		t.Fatal(err)
	}
	if len(tok) != tokenLen {
		t.Fatalf("token %q: want %d hex bytes", tok, tokenLen)
	}
	fi, err := os.Stat(filepath.Join(home, TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %#o, want 0600", fi.Mode().Perm())
	}
	again, err := LoadToken(home)
	if err != nil || again != tok {
		t.Errorf("second load: %q %v, want the same token", again, err)
	}
}

// TestWebTokenFileIsChecked: a token file others can read, of the wrong size, not hex, or a
// symbolic link is refused with the fix, never silently replaced or followed.
func TestWebTokenFileIsChecked(t *testing.T) {
	good := strings.Repeat("ab", tokenLen/2)
	for _, tc := range []struct {
		name  string
		setup func(path string)
		want  string
	}{
		{"readable by others", func(p string) { write(t, p, good, 0o644) }, "group and others must have no access"},
		{"too short", func(p string) { write(t, p, "abc", 0o600) }, "is 3 bytes, want 64"},
		{"too long", func(p string) { write(t, p, good+"\n", 0o600) }, "is 65 bytes, want 64"},
		{"not hex", func(p string) { write(t, p, strings.Repeat("zz", tokenLen/2), 0o600) }, "not hex"},
		{"a directory", func(p string) { os.Mkdir(p, 0o700) }, "not a regular file"},
		{"a symbolic link", func(p string) {
			other := filepath.Join(t.TempDir(), "planted")
			write(t, other, good, 0o600)
			if err := os.Symlink(other, p); err != nil {
				t.Fatal(err)
			}
		}, "symbolic link"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := t.TempDir()
			tc.setup(filepath.Join(home, TokenFile))
			_, err := LoadToken(home)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("LoadToken: %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

func write(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// TestWebGuard: the API needs the bearer token; a foreign Origin, a cross-site fetch, or (on a
// loopback listener) a Host that is not loopback is refused even with it.
func TestWebGuard(t *testing.T) {
	const tok = "0123456789abcdef"
	g := NewGuard(tok)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g.Authorized(w, r) {
			w.WriteHeader(http.StatusNoContent)
		}
	})
	for _, tc := range []struct {
		name    string
		host    string
		headers map[string]string
		want    int
	}{
		{"no token", "127.0.0.1:9615", nil, http.StatusUnauthorized},
		{"wrong token", "127.0.0.1:9615", map[string]string{"Authorization": "Bearer nope"}, http.StatusUnauthorized},
		{"token as basic", "127.0.0.1:9615", map[string]string{"Authorization": "Basic " + tok}, http.StatusUnauthorized},
		{"token", "127.0.0.1:9615", map[string]string{"Authorization": "Bearer " + tok}, http.StatusNoContent},
		{"token, own origin", "127.0.0.1:9615", map[string]string{"Authorization": "Bearer " + tok, "Origin": "http://127.0.0.1:9615"}, http.StatusNoContent},
		{"token, localhost", "localhost:9615", map[string]string{"Authorization": "Bearer " + tok}, http.StatusNoContent},
		{"token, ipv6 loopback", "[::1]:9615", map[string]string{"Authorization": "Bearer " + tok}, http.StatusNoContent},
		{"foreign origin", "127.0.0.1:9615", map[string]string{"Authorization": "Bearer " + tok, "Origin": "http://evil.example"}, http.StatusForbidden},
		{"origin of another port", "127.0.0.1:9615", map[string]string{"Authorization": "Bearer " + tok, "Origin": "http://127.0.0.1:8080"}, http.StatusForbidden},
		{"cross-site fetch", "127.0.0.1:9615", map[string]string{"Authorization": "Bearer " + tok, "Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"rebound host name", "evil.example:9615", map[string]string{"Authorization": "Bearer " + tok}, http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/web/api/state", nil)
			r.Host = tc.host
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.want {
				t.Errorf("status %d, want %d (%s)", w.Code, tc.want, w.Body)
			}
			if w.Header().Get("Content-Security-Policy") == "" {
				t.Error("no Content-Security-Policy")
			}
		})
	}
	// A listener the user put on another address answers other host names (they chose to).
	r := httptest.NewRequest(http.MethodGet, "/web/api/state", nil)
	r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, net.Addr(&net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 9615})))
	r.Host = "192.0.2.1:9615"
	r.Header.Set("Authorization", "Bearer "+tok)
	if w := httptest.NewRecorder(); !g.Authorized(w, r) {
		t.Errorf("a non-loopback listener refused its own host: %d %s", w.Code, w.Body)
	}
	// No token at all (its file could not be read): every request is refused.
	none := NewGuard("")
	r = httptest.NewRequest(http.MethodGet, "/web/api/state", nil)
	r.Host = "127.0.0.1:1"
	r.Header.Set("Authorization", "Bearer ")
	if w := httptest.NewRecorder(); none.Authorized(w, r) {
		t.Error("an empty token was accepted")
	}
}

// TestWebHistoryRing: each slot keeps its last samples, oldest first, up to the ring's
// capacity; slots no longer sampled are forgotten; samples older than Window are not shown.
func TestWebHistoryRing(t *testing.T) {
	h := NewHistory(Window / 4) // 5 points
	now := time.Now()
	for i := range 8 {
		h.Record(map[int]Point{0: {T: now.UnixMilli() + int64(i), CPU: float64(i)}, 1: {T: now.UnixMilli(), Mem: int64(i)}})
	}
	got := h.Snapshot(now)
	if len(got[0]) != 5 || got[0][0].CPU != 3 || got[0][4].CPU != 7 {
		t.Errorf("slot 0: %+v, want CPU 3..7", got[0])
	}
	h.Record(map[int]Point{0: {T: now.UnixMilli(), CPU: 8}})
	if got := h.Snapshot(now); len(got) != 1 || got[1] != nil {
		t.Errorf("slot 1 is still kept after it was not sampled: %v", got)
	}
	if got := h.Snapshot(now.Add(Window + time.Minute)); len(got[0]) != 0 {
		t.Errorf("samples older than the window are shown: %v", got[0])
	}
	if h := NewHistory(time.Millisecond); h.cap != maxPoints {
		t.Errorf("capacity at 1 ms: %d, want the bound %d", h.cap, maxPoints)
	}
}

// TestWebHistoryRestore: a previous daemon's series seed the rings (the newest the ring holds),
// a series out of time order is dropped, and sampling goes on after the restored points.
func TestWebHistoryRestore(t *testing.T) {
	now := time.Now()
	pts := func(from, n int) []Point {
		var out []Point
		for i := range n {
			out = append(out, Point{T: now.UnixMilli() - 1000 + int64(from+i), CPU: float64(from + i)})
		}
		return out
	}
	h := NewHistory(Window / 4) // 5 points
	h.Restore(map[int][]Point{
		0: pts(0, 3),
		1: pts(0, 9),
		2: append(pts(5, 2), pts(0, 2)...),
		3: nil,
	})
	got := h.Snapshot(now)
	cases := []struct {
		id   int
		want []float64 // CPU of each point
	}{
		{0, []float64{0, 1, 2}},
		{1, []float64{4, 5, 6, 7, 8}},
	}
	for _, c := range cases {
		var cpu []float64
		for _, p := range got[c.id] {
			cpu = append(cpu, p.CPU)
		}
		if !slices.Equal(cpu, c.want) {
			t.Errorf("slot %d: CPU %v, want %v", c.id, cpu, c.want)
		}
	}
	if _, ok := got[2]; ok {
		t.Errorf("a series out of order was restored: %+v", got[2])
	}
	if _, ok := got[3]; ok {
		t.Errorf("an empty series was restored")
	}
	h.Record(map[int]Point{0: {T: now.UnixMilli(), CPU: 9}})
	if got := h.Snapshot(now)[0]; len(got) != 4 || got[3].CPU != 9 || got[0].CPU != 0 {
		t.Errorf("after a sample: %+v", got)
	}
}

// TestWebAssetsAreSmallAndLocal: the page is under 200 KB and loads nothing from elsewhere (no
// CDN: it works offline), and the embedded files are what the handler serves.
func TestWebAssetsAreSmallAndLocal(t *testing.T) {
	total := 0
	for _, name := range []string{"index.html", "app.js", "app.css"} {
		b, err := assets.ReadFile("assets/" + name)
		if err != nil {
			t.Fatal(err)
		}
		total += len(b)
		if strings.Contains(string(b), "http://") || strings.Contains(string(b), "https://") || strings.Contains(string(b), "//cdn") {
			t.Errorf("%s refers to another site", name)
		}
	}
	if total > 200<<10 {
		t.Errorf("the page is %d bytes, over 200 KB", total)
	}
	h := http.StripPrefix("/web", Assets(NewGuard("t")))
	if page, _ := indexPage(); !bytes.Contains(page, []byte("<style>")) || bytes.Contains(page, []byte(stylesheetLink)) {
		t.Errorf("index.html is served without its style sheet inline:\n%.300s", page)
	}
	for path, ctype := range map[string]string{"/web/": "text/html", "/web/app.js": "text/javascript", "/web/app.css": "text/css"} {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		r.Host = "127.0.0.1:1"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), ctype) {
			t.Errorf("GET %s: %d %s, want 200 %s", path, w.Code, w.Header().Get("Content-Type"), ctype)
		}
	}
}

// TestWebChromedpIsNotLinked: the browser tests' chromedp is a test dependency only; the
// corral binary (whose every command pays for what it links) must not carry it.
func TestWebChromedpIsNotLinked(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH")
	}
	out, err := exec.Command(goTool, "list", "-deps", "github.com/corral-pm/corral/cmd/corral").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.Contains(pkg, "chromedp") || strings.Contains(pkg, "net/http/httptest") {
			t.Errorf("cmd/corral links %s", pkg)
		}
	}
}
