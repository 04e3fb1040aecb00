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
	var mu sync.Mutex
	open := 0                       // builds begun and not ended, under mu
	ended := make(chan struct{}, 1) // a build ended
	wg.Add(1)
	go func() {
		defer wg.Done()
		building := map[string]bool{}
		_ = c.run(ctx, func(cl *api.Client) error {
			q := api.LogsQuery{Targets: []string{"all"}, Follow: true}
			return cl.FollowLogs(ctx, q, func() { once.Do(func() { close(ready) }) }, func(l api.LogLine) error {
				if !names[l.App] || l.ProcID < 0 {
					return nil
				}
				first, last := buildBoundary(l.App, l.Message)
				if first && !building[l.App] {
					building[l.App] = true
					mu.Lock()
					open++
					mu.Unlock()
				}
				if building[l.App] {
					fmt.Fprintf(c.stderr, "%s | %s\n", l.App, l.Message)
				}
				if last && building[l.App] {
					building[l.App] = false
					mu.Lock()
					open--
					mu.Unlock()
					select {
					case ended <- struct{}{}:
					default:
					}
				}
				return nil
			})
		})
		once.Do(func() { close(ready) })
	}()
	// Wait until the subscription is live, so the build's first lines are not missed.
	<-ready
	return func() {
		// The request has returned: the last lines of a build may still be on their way.
		deadline := time.After(time.Second)
	drain:
		for {
			mu.Lock()
			n := open
			mu.Unlock()
			if n == 0 {
				break
			}
			select {
			case <-ended:
			case <-deadline:
				break drain
			}
		}
		cancel()
		wg.Wait()
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
