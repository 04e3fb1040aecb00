package cli

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/spec"
)

// followBuilds prints, while a start or restart of apps runs, the output of their builds (the
// apps' `build`, run by the daemon before their processes start): the daemon writes it into the
// apps' logs, and without this the command would wait in silence for as long as a compile
// takes. Only the lines from a build's first line ("corral: building <app>: ...") to its last
// are printed, not the apps' own output. It does nothing when no app has a build.
func (c *cli) followBuilds(ctx context.Context, apps []spec.App) (stop func()) {
	names := map[string]bool{}
	for _, a := range apps {
		if a.Build != "" {
			names[a.Name] = true
		}
	}
	if len(names) == 0 || c.silent {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	ready := make(chan struct{})
	var once sync.Once
	var open openBuilds
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = c.run(ctx, func(cl *api.Client) error {
			q := api.LogsQuery{Targets: []string{"all"}, Follow: true}
			return cl.FollowLogs(ctx, q, func() { once.Do(func() { close(ready) }) }, func(l api.LogLine) error {
				if !names[l.App] || l.ProcID < 0 {
					return nil
				}
				first, last := buildBoundary(l.App, l.Message)
				if first {
					open.begin(l.App)
				}
				if open.running(l.App) {
					fmt.Fprintf(c.stderr, "%s | %s\n", l.App, l.Message)
				}
				if last {
					open.end(l.App)
				}
				return nil
			})
		})
		once.Do(func() { close(ready) })
	}()
	// Wait until the subscription is live, so the build's first lines are not missed.
	<-ready
	return func() {
		open.wait(time.Second)
		cancel()
		wg.Wait()
	}
}

// openBuilds are the builds whose first line (or event) a command has printed and not yet
// their last. When the request returns, the last lines may still be on their way on the
// stream: the command waits a little for them rather than cut a build's story short.
type openBuilds struct {
	mu    sync.Mutex
	apps  map[string]bool
	ended chan struct{} // capacity 1: a build ended
}

func (o *openBuilds) init() {
	if o.apps == nil {
		o.apps = map[string]bool{}
		o.ended = make(chan struct{}, 1)
	}
}

func (o *openBuilds) begin(app string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.init()
	o.apps[app] = true
}

func (o *openBuilds) running(app string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.apps[app]
}

func (o *openBuilds) end(app string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.init()
	if o.apps[app] {
		delete(o.apps, app)
		select {
		case o.ended <- struct{}{}:
		default:
		}
	}
}

// wait waits, at most timeout, until every build begun has ended.
func (o *openBuilds) wait(timeout time.Duration) {
	deadline := time.After(timeout)
	for {
		o.mu.Lock()
		o.init()
		n, ended := len(o.apps), o.ended
		o.mu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-ended:
		case <-deadline:
			return
		}
	}
}

// buildBoundary says whether a log line of app is the first or the last line of one of its
// builds (the lines the daemon writes around the build's output, internal/daemon/build.go).
func buildBoundary(app, msg string) (first, last bool) {
	first = strings.HasPrefix(msg, "corral: building "+app+": ")
	last = strings.HasPrefix(msg, "corral: "+app+" built in ") ||
		strings.HasPrefix(msg, "corral: build of "+app+" failed ") ||
		strings.HasPrefix(msg, "corral: "+app+": built, but ")
	return first, last
}
