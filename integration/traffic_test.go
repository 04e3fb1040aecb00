package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// traffic is HTTP load on one app that keeps the evidence a survival test needs: every failure
// sorted by kind (failureKinds), whether it happened while connecting, and in which phase of the
// experiment, plus which pids answered. load (load_test.go) lumps failures by message; here a
// refused connection, a reset and a timeout mean different things.
type traffic struct {
	app       string
	keepAlive bool
	url       string
	phase     *phase

	ok      atomic.Int64
	mu      sync.Mutex
	failed  int64
	connect int64            // failures while connecting: nothing accepted the connection
	kinds   map[string]int64 // failures by kind
	phases  map[string]int64 // failures by phase
	samples map[string]string
	byPID   map[int]int64

	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// The kinds a failed request is sorted into.
const (
	failRefused = "refused" // ECONNREFUSED: nothing listens on the port
	failReset   = "reset"   // ECONNRESET or EPIPE: the server side went away mid-connection
	failEOF     = "EOF"     // the connection closed before a whole response
	failTimeout = "timeout" // no answer within trafficTimeout
	failStatus  = "status"  // an answer other than 200
	failOther   = "other"
)

var failureKinds = []string{failRefused, failReset, failEOF, failTimeout, failStatus, failOther}

const (
	// trafficTimeout bounds one request, connect included: a server that accepted and then
	// froze shows as a timeout, and stopping the load never waits longer.
	trafficTimeout = 5 * time.Second
	// trafficPause is each client's pause between two requests. The point is to have
	// requests in flight at every moment of the experiment, not to saturate two CPUs shared
	// with the servers and a race-instrumented daemon (which would turn load into timeouts).
	trafficPause = 2 * time.Millisecond
	// failurePause keeps a client from spinning on a port that refuses at once.
	failurePause = 10 * time.Millisecond
)

// phase names the step of an experiment in progress, so that a failure can be charged to it.
type phase struct{ v atomic.Value }

func newPhase(name string) *phase {
	p := &phase{}
	p.set(name)
	return p
}

func (p *phase) set(name string) { p.v.Store(name) }
func (p *phase) get() string     { return p.v.Load().(string) }

// startTraffic sends requests to url from clients goroutines until stop. With keepAlive each
// client reuses its connection and sends POST (Go's client silently retries an idempotent
// request that failed on a reused connection: POST makes every such failure show); without it
// every request is a GET on a new connection with `Connection: close`.
func startTraffic(app, url string, keepAlive bool, clients int, ph *phase) *traffic {
	ctx, cancel := context.WithCancel(context.Background())
	tr := &traffic{app: app, keepAlive: keepAlive, url: url, phase: ph, cancel: cancel,
		kinds: map[string]int64{}, phases: map[string]int64{}, samples: map[string]string{}, byPID: map[int]int64{}}
	transport := &http.Transport{DisableKeepAlives: !keepAlive, MaxIdleConnsPerHost: clients}
	client := &http.Client{Transport: transport, Timeout: trafficTimeout}
	method := "GET"
	if keepAlive {
		method = "POST"
	}
	for range clients {
		tr.wg.Add(1)
		go func() {
			defer tr.wg.Done()
			for ctx.Err() == nil {
				pid, err := answeringPID(ctx, client, method, url)
				if ctx.Err() != nil {
					return // stopping: not a failure of the server
				}
				tr.record(pid, err)
				pause := trafficPause
				if err != nil {
					pause = failurePause
				}
				select {
				case <-ctx.Done():
				case <-time.After(pause):
				}
			}
		}()
	}
	return tr
}

func (tr *traffic) kind() string {
	if tr.keepAlive {
		return "keep-alive POST"
	}
	return "close GET"
}

// stop ends the load and waits for the requests in flight (at most trafficTimeout). It may be
// called more than once.
func (tr *traffic) stop() {
	tr.once.Do(func() {
		tr.cancel()
		tr.wg.Wait()
	})
}

func (tr *traffic) record(pid int, err error) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if err == nil {
		tr.ok.Add(1)
		tr.byPID[pid]++
		return
	}
	tr.failed++
	kind, connecting := classifyFailure(err)
	if connecting {
		tr.connect++
	}
	tr.kinds[kind]++
	tr.phases[tr.phase.get()]++
	if _, ok := tr.samples[kind]; !ok {
		tr.samples[kind] = err.Error()
	}
}

// failures returns the counts: failed requests, of which while connecting.
func (tr *traffic) failures() (failed, connect int64) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.failed, tr.connect
}

// kindSummary is "refused 12, reset 1" in failureKinds' order, or "none".
func (tr *traffic) kindSummary() string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var parts []string
	for _, k := range failureKinds {
		if n := tr.kinds[k]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, n))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// phaseSummary is "kill 1 40, update 3" (phases sorted by name), or "-".
func (tr *traffic) phaseSummary() string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return countsSummary(tr.phases, "-")
}

// sampleSummary gives one error message of each kind seen, for a failure message.
func (tr *traffic) sampleSummary() string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var parts []string
	for _, k := range failureKinds {
		if s, ok := tr.samples[k]; ok {
			parts = append(parts, fmt.Sprintf("%s: %q", k, s))
		}
	}
	return strings.Join(parts, "; ")
}

// pids returns the pids that answered, sorted.
func (tr *traffic) pids() []int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var out []int
	for p := range tr.byPID {
		out = append(out, p)
	}
	sort.Ints(out)
	return out
}

func countsSummary(m map[string]int64, none string) string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	if len(parts) == 0 {
		return none
	}
	return strings.Join(parts, ", ")
}

// badStatus is an answer other than 200.
type badStatus struct{ code int }

func (e badStatus) Error() string { return fmt.Sprintf("status %d", e.code) }

// answeringPID sends one request and returns the pid in the JSON answer ({"pid": ...}, as every
// fixture server answers).
func answeringPID(ctx context.Context, client *http.Client, method, url string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, badStatus{resp.StatusCode}
	}
	var v struct {
		PID int `json:"pid"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return 0, fmt.Errorf("bad body %q", body)
	}
	return v.PID, nil
}

// classifyFailure sorts a failed request into one of failureKinds, and says whether it failed
// while connecting (the dial: nothing accepted the connection).
func classifyFailure(err error) (kind string, connecting bool) {
	var op *net.OpError
	connecting = errors.As(err, &op) && op.Op == "dial"
	var status badStatus
	var ne net.Error
	msg := err.Error()
	switch {
	case errors.As(err, &status):
		return failStatus, false
	case errors.Is(err, syscall.ECONNREFUSED):
		return failRefused, connecting
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return failReset, connecting
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		strings.HasSuffix(msg, "EOF"), strings.Contains(msg, "server closed idle connection"):
		return failEOF, connecting
	case errors.As(err, &ne) && ne.Timeout():
		return failTimeout, connecting
	}
	return failOther, connecting
}
