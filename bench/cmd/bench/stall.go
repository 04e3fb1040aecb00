package main

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// stallScenario measures what happens to new connections while one worker's event loop is
// blocked, as a real app's is by a synchronous bcrypt, a big JSON.parse or a long regex. With
// a queue per worker (reuseport) the kernel keeps putting connections in the blocked worker's
// queue, and they wait until it is free; a primary that hands connections round-robin to the
// workers that take them, or one socket every worker accepts on, gives them to the other
// worker. Under each contender in turn (2 workers, the http scenario's new-connection load), 3
// requests on the same port block whichever worker gets them for 1 s each; the figures are the
// load's latency over that window and how many of its requests waited.
type stallScenario struct{}

func (stallScenario) Name() string { return "stall" }

func (stallScenario) Describe() string {
	return "new connections while one of 2 workers is blocked (3 requests that busy-loop 1 s): the load's p99 and max latency and its requests that waited over 250 ms"
}

// stallAppScript is the app: GET /block?ms=N keeps its worker's event loop busy for N ms, then
// answers; every other request is answered at once.
const stallAppScript = `// The bench's stall app: /block?ms=N blocks this worker's event loop for N ms (as a
// synchronous bcrypt, a big JSON.parse or a long regex would), then answers; anything else
// gets 'ok' at once.
require('node:http').createServer((q, s) => {
  if (q.url.startsWith('/block')) {
    const n = Number(new URL(q.url, 'http://x').searchParams.get('ms')) || 0;
    const end = Date.now() + n;
    while (Date.now() < end) {}
  }
  s.end('ok');
}).listen(process.env.PORT);
`

const (
	stallBlocks = 3                       // block requests per run
	stallBlock  = 1000 * time.Millisecond // how long each blocks its worker
	stallEvery  = 2 * time.Second         // between the block requests
	stallAfter  = 1500 * time.Millisecond // the window goes on after the last block is answered
	stallSlow   = 250 * time.Millisecond  // a load request slower than this waited behind a block
)

// stallRun is what one run of one contender saw.
type stallRun struct {
	load   LoadResult      // the load over the window
	blocks []time.Duration // each block request's own time
}

func (s stallScenario) Run(ctx context.Context, b *Bench) ([]Metric, error) {
	o := b.Opts
	dir, port, err := prepareHTTP(b, s.Name(), map[string]string{"app.js": stallAppScript, "primary.js": primaryScript})
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	contenders := httpContenders(b, dir, port, nil, true)
	var order []string
	for _, c := range contenders {
		order = append(order, c.name)
	}
	restoreAutogroup := disableAutogroup(b)
	defer func() {
		if err := restoreAutogroup(); err != nil {
			b.Log.Printf("stall: turning autogroup scheduling back on: %v", err)
		}
	}()
	b.Note("stall: an app whose GET /block?ms=N busy-loops N ms, 2 workers; %d clients with a new connection per request (%s of warm-up first); meanwhile %d requests to /block?ms=%d on the same port, %s apart, each on a new connection of its own and not counted in the load; the load is measured from the first block request to %s after the last one is answered; median of %d runs, the contenders taking turns; the load generator shares the %d CPUs with them",
		o.HTTPConns, o.HTTPWarmup, stallBlocks, stallBlock.Milliseconds(), stallEvery, stallAfter, o.HTTPRuns, runtime.NumCPU())

	p99, maxLat, slow, failed := map[string][]float64{}, map[string][]float64{}, map[string][]float64{}, map[string][]float64{}
	runDetails := map[string][]string{}
	total := map[string]*LoadResult{}
	broken := map[string]bool{}
	var errs []error
	for r := 1; r <= o.HTTPRuns; r++ {
		for _, c := range contenders {
			if broken[c.name] || ctx.Err() != nil {
				continue
			}
			srv := c.make(fmt.Sprintf("stall%d", r))
			b.Log.Printf("stall: run %d/%d, %s: starting 2 workers on port %d", r, o.HTTPRuns, c.name, port)
			run, err := s.measure(ctx, b, srv, addr, port)
			if err != nil {
				broken[c.name] = true
				errs = append(errs, fmt.Errorf("%s: %w", c.name, err))
				b.Log.Printf("stall: run %d/%d, %s: %v", r, o.HTTPRuns, c.name, err)
				continue
			}
			res := run.load
			var took []string
			for _, d := range run.blocks {
				took = append(took, fmt.Sprintf("%.2f", d.Seconds()))
			}
			line := fmt.Sprintf("run %d: %d requests over %.1f s, p99 %.1f ms, max %.0f ms, %d over %s, %d failed; blocks answered in %s s",
				r, res.Requests, res.Elapsed.Seconds(), res.P99MS, res.MaxMS, res.Slow, stallSlow, res.Failed(), strings.Join(took, ", "))
			b.Log.Printf("stall: %s: %s", c.name, line)
			p99[c.name] = append(p99[c.name], res.P99MS)
			maxLat[c.name] = append(maxLat[c.name], res.MaxMS)
			slow[c.name] = append(slow[c.name], float64(res.Slow))
			failed[c.name] = append(failed[c.name], float64(res.Failed()))
			runDetails[c.name] = append(runDetails[c.name], line)
			if total[c.name] == nil {
				total[c.name] = &LoadResult{}
			}
			total[c.name].Add(res)
		}
	}

	details := map[string]string{}
	for c, lines := range runDetails {
		details[c] = strings.Join(lines, "; ")
	}
	failDetails := map[string]string{}
	for c, t := range total {
		failDetails[c] = failSummary(len(runDetails[c]), t)
	}
	var metrics []Metric
	add := func(name, unit, target, note string, samples map[string][]float64, details map[string]string) {
		m := newMetric(s.Name(), name, unit, "lower", target, order, samples)
		m.Note, m.Details = note, details
		if len(m.Order) > 0 {
			metrics = append(metrics, m)
		}
	}
	add("load's p99 latency while a worker is blocked", "ms", "", "", p99, nil)
	add("load's max latency while a worker is blocked", "ms", "", "", maxLat, nil)
	add(fmt.Sprintf("load's requests that took over %d ms, waiting behind the blocked worker", stallSlow.Milliseconds()), "requests", "",
		"counted over every request of the window, not a sample", slow, details)
	add("failed requests while a worker is blocked", "requests", "0", "", failed, failDetails)
	return metrics, errors.Join(errs...)
}

// measure starts srv alone on the port, warms it up with the new-connection load, then keeps
// that load going while block requests come, and stops srv.
func (stallScenario) measure(ctx context.Context, b *Bench, srv httpServer, addr string, port int) (run stallRun, err error) {
	o := b.Opts
	defer func() {
		if serr := stopAlone(ctx, srv, port); serr != nil {
			err = errors.Join(err, serr)
		}
	}()
	if err := startAlone(ctx, srv, port); err != nil {
		return run, err
	}
	before, err := srv.WorkerPIDs(ctx)
	if err != nil {
		return run, err
	}
	cfg := LoadConfig{Addr: addr, Conns: o.HTTPConns, Timeout: o.HTTPTimeout, Slow: stallSlow}
	RunLoad(ctx, cfg, o.HTTPWarmup)

	// The measured load starts with the first block request.
	l := StartLoad(ctx, cfg)
	blocks := sendBlocks(ctx, addr, l.Began(), o.HTTPTimeout)
	var last time.Time
	for _, bl := range blocks {
		if bl.end.After(last) {
			last = bl.end
		}
	}
	sleepCtx(ctx, time.Until(last.Add(stallAfter)))
	run.load = l.Stop()
	if ctx.Err() != nil {
		return run, ctx.Err()
	}
	for i, bl := range blocks {
		if bl.err != nil {
			return run, fmt.Errorf("block request %d of %d: %w", i+1, len(blocks), bl.err)
		}
		run.blocks = append(run.blocks, bl.end.Sub(bl.start))
	}
	return run, sameWorkers(ctx, srv, before)
}

// blockResult is one block request: when it was sent, when it was answered, and how it failed.
type blockResult struct {
	start, end time.Time
	err        error
}

// sendBlocks sends stallBlocks requests to /block, stallEvery apart from from, each on its own
// new connection and in its own goroutine (a slow answer does not delay the next request), and
// returns once every one is answered or failed.
func sendBlocks(ctx context.Context, addr string, from time.Time, timeout time.Duration) []blockResult {
	path := "/block?ms=" + strconv.FormatInt(stallBlock.Milliseconds(), 10)
	out := make([]blockResult, stallBlocks)
	var wg sync.WaitGroup
	for i := range out {
		sleepCtx(ctx, time.Until(from.Add(time.Duration(i)*stallEvery)))
		if ctx.Err() != nil {
			out[i].err = ctx.Err()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i].start = time.Now()
			out[i].err = get(ctx, addr, path, timeout)
			out[i].end = time.Now()
		}()
	}
	wg.Wait()
	return out
}
