package alerts

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/api"
)

func testAlert() api.Alert {
	id := 2
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return api.Alert{App: "web", Rule: CrashRate, ID: &id, State: api.AlertFiring, Value: 3, Threshold: 3,
		Spec: "3/5m", Text: "web crashed 3 times within 5m", Since: now, Time: now}
}

// result waits for a done callback's outcome.
func result(t *testing.T) (func(error), func() error) {
	c := make(chan error, 1)
	return func(err error) { c <- err }, func() error {
		t.Helper()
		select {
		case err := <-c:
			return err
		case <-time.After(30 * time.Second):
			t.Fatal("no outcome within 30s")
			return nil
		}
	}
}

func quietLog(t *testing.T) func(string, ...any) {
	return func(format string, args ...any) { t.Logf(format, args...) }
}

func TestWebhookDelivers(t *testing.T) {
	got := make(chan map[string]any, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		got <- body
	}))
	defer srv.Close()
	n := NewNotifier(NotifierOptions{}, quietLog(t))
	defer n.Close()
	done, wait := result(t)
	n.Send(Target{Kind: KindWebhook, Target: srv.URL + "/hook"}, testAlert(), done)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	body := <-got
	for k, want := range map[string]any{"app": "web", "rule": "crash_rate", "id": 2.0, "state": "firing", "value": 3.0,
		"threshold": 3.0, "text": "web crashed 3 times within 5m", "time": "2026-01-02T03:04:05Z"} {
		if body[k] != want {
			t.Errorf("%s = %v, want %v (body %v)", k, body[k], want, body)
		}
	}
	if st := n.Stats(); len(st) != 1 || st[0].Sent != 1 || st[0].Failed != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestWebhookRetriesThenFails(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	n := NewNotifier(NotifierOptions{Backoff: 10 * time.Millisecond}, quietLog(t))
	defer n.Close()
	done, wait := result(t)
	n.Send(Target{Kind: KindWebhook, Target: srv.URL}, testAlert(), done)
	if err := wait(); err != nil || calls.Load() != 3 {
		t.Fatalf("err %v after %d calls, want success at the third", err, calls.Load())
	}

	// A 404 is not tried again; a redirect to another host is not followed.
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("the redirect to another host was followed")
	}))
	defer other.Close()
	for path, want := range map[string]string{"/missing": "404", "/moved": "redirect to another host"} {
		calls.Store(0)
		srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			if r.URL.Path == "/moved" {
				http.Redirect(w, r, strings.Replace(other.URL, "127.0.0.1", "localhost", 1)+"/x", http.StatusTemporaryRedirect)
				return
			}
			w.WriteHeader(http.StatusNotFound)
		})
		done, wait := result(t)
		n.Send(Target{Kind: KindWebhook, Target: srv.URL + path}, testAlert(), done)
		if err := wait(); err == nil || !strings.Contains(err.Error(), want) || calls.Load() != 1 {
			t.Errorf("%s: err %v after %d calls", path, err, calls.Load())
		}
	}
}

// TestSlowSinkDropsAndNeverBlocks: a sink that does not answer fills its queue; Send keeps
// returning at once, the drops are counted, and another sink is served meanwhile.
func TestSlowSinkDropsAndNeverBlocks(t *testing.T) {
	arrived := make(chan struct{}, 16)
	stop := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	defer slow.Close()
	defer close(stop)
	fast := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer fast.Close()
	n := NewNotifier(NotifierOptions{QueueSize: 4, Timeout: 20 * time.Second, Tries: 1}, quietLog(t))
	defer n.Close()
	var wg sync.WaitGroup
	var dropped atomic.Int32
	for i := range 10 {
		if i == 1 {
			<-arrived // the first is being delivered: the queue holds the next four
		}
		wg.Add(1)
		n.Send(Target{Kind: KindWebhook, Target: slow.URL}, testAlert(), func(err error) {
			defer wg.Done()
			if err != nil && strings.Contains(err.Error(), "dropped") {
				dropped.Add(1)
			}
		})
	}
	done, wait := result(t)
	n.Send(Target{Kind: KindWebhook, Target: fast.URL}, testAlert(), done)
	if err := wait(); err != nil {
		t.Fatalf("the fast sink waited for the slow one: %v", err)
	}
	// One is being delivered, four wait: five dropped.
	deadline := time.Now().Add(30 * time.Second)
	for dropped.Load() < 5 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	var st api.SinkStats
	for _, s := range n.Stats() {
		if s.Target == slow.URL {
			st = s
		}
	}
	if dropped.Load() != 5 || st.Dropped != 5 {
		t.Errorf("dropped %d, stats %+v; want 5", dropped.Load(), st)
	}
	n.Close()
	wg.Wait()
}

func TestCommandGetsTheAlertInItsEnvironment(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "env.txt")
	n := NewNotifier(NotifierOptions{}, quietLog(t))
	defer n.Close()
	done, wait := result(t)
	n.Send(Target{Kind: KindCommand, Target: "env > env.txt; echo paged", Dir: dir}, testAlert(), done)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	env := string(data)
	for _, want := range []string{"CORRAL_ALERT_APP=web\n", "CORRAL_ALERT_RULE=crash_rate\n", "CORRAL_ALERT_STATE=firing\n",
		"CORRAL_ALERT_WORKER=2\n", "CORRAL_ALERT_VALUE=3\n", "CORRAL_ALERT_THRESHOLD=3\n", "CORRAL_ALERT_TIME=2026-01-02T03:04:05Z\n",
		"CORRAL_ALERT_TEXT=web crashed 3 times within 5m\n", "CORRAL_ALERT_JSON={"} {
		if !strings.Contains(env, want) {
			t.Errorf("environment lacks %q:\n%s", want, env)
		}
	}
}

func TestCommandFailureAndTimeout(t *testing.T) {
	n := NewNotifier(NotifierOptions{Tries: 2, Backoff: 10 * time.Millisecond, CommandTimeout: 200 * time.Millisecond}, quietLog(t))
	defer n.Close()
	for line, want := range map[string]string{"exit 3": "exit status 3", "sleep 30": "killed"} {
		done, wait := result(t)
		n.Send(Target{Kind: KindCommand, Target: line, Dir: t.TempDir()}, testAlert(), done)
		err := wait()
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "after 2 attempts") {
			t.Errorf("%s: %v", line, err)
		}
	}
	for _, s := range n.Stats() {
		if s.Failed != 1 || s.LastError == "" {
			t.Errorf("stats %+v", s)
		}
	}
}
