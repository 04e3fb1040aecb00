package integration

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// load is HTTP traffic in the background, for checks like "zero failed requests during a
// reload". It counts successes, failures (with their errors) and which pid answered.
type load struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	errors     map[string]int
	byPID      map[int]int
	cancel     context.CancelFunc
	wg         sync.WaitGroup
}

// startLoad sends requests to url from conc goroutines until stop. keepAlive reuses
// connections; without it every request opens a new connection (the hard case for a
// primary that hands off connections).
func startLoad(url string, conc int, keepAlive bool) *load {
	return startLoadMethod(url, conc, keepAlive, "GET")
}

// startLoadMethod is startLoad with another HTTP method. POST matters with keep-alive: Go's
// client silently retries a GET that failed on a reused connection, so only a non-replayable
// request shows a server closing keep-alive connections under its clients.
func startLoadMethod(url string, conc int, keepAlive bool, method string) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{errors: map[string]int{}, byPID: map[int]int{}, cancel: cancel}
	tr := &http.Transport{DisableKeepAlives: !keepAlive, MaxIdleConnsPerHost: conc}
	client := &http.Client{Transport: tr, Timeout: 20 * time.Second}
	for range conc {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				pid, err := answeringPID(ctx, client, method, url)
				if ctx.Err() != nil {
					return // stopping: not a failure of the server
				}
				l.record(pid, err)
			}
		}()
	}
	return l
}

func get(ctx context.Context, client *http.Client, url string) (int, error) {
	return answeringPID(ctx, client, "GET", url)
}

func (l *load) record(pid int, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.failed.Add(1)
		msg := err.Error()
		if i := strings.LastIndex(msg, ": "); i >= 0 {
			msg = msg[i+2:]
		}
		l.errors[msg]++
		return
	}
	l.ok.Add(1)
	l.byPID[pid]++
}

// waitOK waits until at least n more requests have succeeded (the load is flowing).
func (l *load) waitOK(e *env, n int64) {
	e.t.Helper()
	target := l.ok.Load() + n
	e.waitFor(fmt.Sprintf("%d successful requests", n), 60*time.Second, func() bool { return l.ok.Load() >= target })
}

// stop ends the load and waits for in-flight requests.
func (l *load) stop() {
	l.cancel()
	l.wg.Wait()
}

func (l *load) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []string
	for k, v := range l.errors {
		errs = append(errs, fmt.Sprintf("%d× %s", v, k))
	}
	sort.Strings(errs)
	return fmt.Sprintf("%d ok, %d failed %v, by pid %v", l.ok.Load(), l.failed.Load(), errs, l.byPID)
}
