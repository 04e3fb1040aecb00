package alerts

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/corral-pm/corral/internal/api"
)

// Target is one sink a notification goes to.
type Target struct {
	Kind   string // KindWebhook or KindCommand
	Target string // the URL or the command line
	App    string // the app whose `notify` names it; "" for the daemon-wide sinks
	Dir    string // a command's working directory
}

func (t Target) id() string { return t.Kind + "\x00" + t.App + "\x00" + t.Target }

// NotifierOptions tune delivery; zero values take the defaults.
type NotifierOptions struct {
	Timeout        time.Duration // one webhook request (5 s)
	CommandTimeout time.Duration // one command run (30 s)
	Tries          int           // attempts per notification (3)
	Backoff        time.Duration // the wait before the second attempt, doubled after (1 s)
	QueueSize      int           // notifications waiting per sink (64)
}

// Notifier delivers notifications. Send never waits: each sink has its own bounded queue and
// a goroutine that exists while the queue is not empty, so a slow or dead sink delays only
// itself, and when its queue is full further notifications for it are dropped and counted.
type Notifier struct {
	opt    NotifierOptions
	client *http.Client
	logf   func(format string, args ...any)
	ctx    context.Context
	cancel context.CancelFunc

	mu    sync.Mutex
	sinks map[string]*sinkQueue
	wg    sync.WaitGroup
}

type sinkQueue struct {
	target  Target
	queue   []job
	running bool
	sent    uint64
	failed  uint64
	dropped uint64
	lastErr string
}

type job struct {
	alert api.Alert
	done  func(error) // nil, or told the outcome (alerts test)
}

// NewNotifier returns a notifier that logs through logf (the daemon log).
func NewNotifier(opt NotifierOptions, logf func(format string, args ...any)) *Notifier {
	if opt.Timeout <= 0 {
		opt.Timeout = 5 * time.Second
	}
	if opt.CommandTimeout <= 0 {
		opt.CommandTimeout = 30 * time.Second
	}
	if opt.Tries <= 0 {
		opt.Tries = 3
	}
	if opt.Backoff <= 0 {
		opt.Backoff = time.Second
	}
	if opt.QueueSize <= 0 {
		opt.QueueSize = 64
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Notifier{opt: opt, client: newHTTPClient(), logf: logf, ctx: ctx, cancel: cancel, sinks: map[string]*sinkQueue{}}
}

// Send queues a for t and returns at once. done, if not nil, is called with the outcome
// (nil when delivered), from another goroutine, also when a is dropped.
func (n *Notifier) Send(t Target, a api.Alert, done func(error)) {
	n.mu.Lock()
	q, ok := n.sinks[t.id()]
	if !ok {
		q = &sinkQueue{target: t}
		n.sinks[t.id()] = q
	}
	if n.ctx.Err() != nil || len(q.queue) >= n.opt.QueueSize {
		q.dropped++
		n.mu.Unlock()
		n.logf("alert notification to %s %s dropped: its queue is full (%d waiting); it is slow or failing", t.Kind, MaskTarget(t.Kind, t.Target), n.opt.QueueSize)
		if done != nil {
			go done(fmt.Errorf("dropped: the sink's queue is full"))
		}
		return
	}
	q.queue = append(q.queue, job{alert: a, done: done})
	start := !q.running
	q.running = true
	if start {
		n.wg.Add(1)
	}
	n.mu.Unlock()
	if start {
		go n.drain(q)
	}
}

// drain delivers q's notifications in order until the queue is empty.
func (n *Notifier) drain(q *sinkQueue) {
	defer n.wg.Done()
	for {
		n.mu.Lock()
		if len(q.queue) == 0 {
			q.running = false
			n.mu.Unlock()
			return
		}
		j := q.queue[0]
		q.queue = q.queue[1:]
		n.mu.Unlock()

		err := n.deliver(q.target, j.alert)
		n.mu.Lock()
		if err == nil {
			q.sent++
		} else {
			q.failed++
			q.lastErr = err.Error()
		}
		n.mu.Unlock()
		if err != nil {
			n.logf("alert notification to %s %s failed: %v", q.target.Kind, MaskTarget(q.target.Kind, q.target.Target), err)
		}
		if j.done != nil {
			j.done(err)
		}
	}
}

// deliver tries a notification up to Tries times, waiting Backoff, then twice that, between
// attempts.
func (n *Notifier) deliver(t Target, a api.Alert) error {
	wait := n.opt.Backoff
	var err error
	for try := 1; ; try++ {
		var permanent bool
		switch t.Kind {
		case KindWebhook:
			ctx, cancel := context.WithTimeout(n.ctx, n.opt.Timeout)
			permanent, err = postWebhook(ctx, n.client, t.Target, a)
			cancel()
		case KindCommand:
			ctx, cancel := context.WithTimeout(n.ctx, n.opt.CommandTimeout)
			var out string
			out, err = runCommand(ctx, t.Target, t.Dir, a)
			cancel()
			if out != "" {
				n.logf("alert command %s: %s", MaskTarget(t.Kind, t.Target), out)
			}
		default:
			return fmt.Errorf("unknown sink kind %q", t.Kind)
		}
		if err == nil || permanent || try >= n.opt.Tries {
			if err != nil && try > 1 {
				err = fmt.Errorf("%w (after %d attempts)", err, try)
			}
			return err
		}
		select {
		case <-n.ctx.Done():
			return fmt.Errorf("%w (the daemon is stopping)", err)
		case <-time.After(wait):
		}
		wait *= 2
	}
}

// Stats lists every sink's counters, daemon-wide sinks first.
func (n *Notifier) Stats() []api.SinkStats {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]api.SinkStats, 0, len(n.sinks))
	for _, q := range n.sinks {
		out = append(out, api.SinkStats{Kind: q.target.Kind, Target: MaskTarget(q.target.Kind, q.target.Target),
			App: q.target.App, Sent: q.sent, Failed: q.failed, Dropped: q.dropped, LastError: q.lastErr})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.App != b.App {
			return a.App < b.App
		}
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		return a.Target < b.Target
	})
	return out
}

// Close stops retries and backoffs, drops what is queued and waits for the deliveries under
// way to end (each within its timeout).
func (n *Notifier) Close() {
	n.cancel()
	n.wg.Wait()
}
