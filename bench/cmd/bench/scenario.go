package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"
)

// Scenario is one benchmark. It starts what it needs in homes it gets from the Bench (which
// shuts them all down at the end, even on failure), measures every contender in the same run
// (interleaved, so the machine's noise falls on all of them alike), and returns its figures.
// A scenario that fails part-way returns the figures it has along with the error.
//
// To add one: write a type with these methods in a file of its own and list it in scenarios.
type Scenario interface {
	Name() string
	Describe() string
	Run(ctx context.Context, b *Bench) ([]Metric, error)
}

// scenarios in the order they run.
var scenarios = []Scenario{cliScenario{}, httpScenario{}, requestsScenario{}, sharesScenario{}, stallScenario{}, survivalScenario{}}

// Baseline is the contender the ratios are taken against.
const Baseline = "corral"

// Metric is one figure measured for each contender.
type Metric struct {
	Scenario string             `json:"scenario"`
	Name     string             `json:"name"`
	Unit     string             `json:"unit"`
	Better   string             `json:"better"`           // "lower" or "higher"
	Target   string             `json:"target,omitempty"` // the target, for context only
	Note     string             `json:"note,omitempty"`
	Order    []string           `json:"contenders"`
	Values   map[string]Summary `json:"values"`
	// Ratios say how many times better the baseline is than each contender, on medians:
	// contender/baseline for a lower-is-better figure, baseline/contender for a
	// higher-is-better one, so above 1 always means the baseline (corral) is better.
	Ratios map[string]float64 `json:"ratios,omitempty"`
	// NA lists the contenders this figure does not apply to (printed "n/a", not "-").
	NA []string `json:"not_applicable,omitempty"`
	// Details says more per contender than a number can (errors by kind, totals).
	Details map[string]string `json:"details,omitempty"`
}

// newMetric builds a metric from samples per contender, in the order given.
func newMetric(scenario, name, unit, better, target string, order []string, samples map[string][]float64) Metric {
	m := Metric{Scenario: scenario, Name: name, Unit: unit, Better: better, Target: target,
		Values: map[string]Summary{}, Ratios: map[string]float64{}}
	for _, c := range order {
		s, ok := samples[c]
		if !ok || len(s) == 0 {
			continue
		}
		m.Order = append(m.Order, c)
		m.Values[c] = Summarize(s)
	}
	if base, ok := m.Values[Baseline]; ok && base.Median > 0 {
		for _, c := range m.Order {
			if c == Baseline {
				continue
			}
			v := m.Values[c].Median
			switch {
			case better != "higher":
				m.Ratios[c] = v / base.Median
			case v > 0:
				m.Ratios[c] = base.Median / v
			}
		}
	}
	return m
}

// Options are the knobs every scenario may read.
type Options struct {
	N          int           `json:"n"`           // measured runs of each timed command
	Warmup     int           `json:"warmup"`      // runs before measuring
	Apps       int           `json:"apps"`        // processes started under each manager
	SpawnRuns  int           `json:"spawn_runs"`  // daemon spawns timed per tool
	RSSSamples int           `json:"rss_samples"` // RSS samples per window
	RSSEvery   time.Duration `json:"rss_every_ns"`

	// The http scenario's load: client connections, length of a measured run, runs per
	// figure, warm-up before each measured run, one request's timeout, load kept before the
	// first and after the last reload, and the port (0: a free one).
	HTTPConns    int           `json:"http_conns"`
	HTTPDuration time.Duration `json:"http_duration_ns"`
	HTTPRuns     int           `json:"http_runs"`
	HTTPWarmup   time.Duration `json:"http_warmup_ns"`
	HTTPTimeout  time.Duration `json:"http_timeout_ns"`
	HTTPSettle   time.Duration `json:"http_settle_ns"`
	HTTPPort     int           `json:"http_port"`
	// HTTPApp is the http scenario's app: "bare" (node:http answering "ok"), "stack" (the
	// deployment's Express + sessions in PostgreSQL, stack.go, logged in) or "stack-visitor"
	// (the same app, anonymous); PGURL is the PostgreSQL server the stack's database is
	// created on.
	HTTPApp string `json:"http_app"`
	PGURL   string `json:"pg_url,omitempty"`
	// HTTPCorralShared adds corral's shared-socket policy to the http scenario: the same
	// accept path as Node's SCHED_NONE (one queue, every worker accepting), so that the gap
	// between reuseport and Node's shared socket can be split into what the per-worker queues
	// cost and what corral's workers cost per request.
	HTTPCorralShared bool `json:"http_corral_shared,omitempty"`
}

// Bench is one run: the tools, the temporary directory, the homes to clean up.
type Bench struct {
	Opts   Options
	Work   string  // temporary directory of this run
	AppDir string  // the apps' scripts
	Cache  string  // -cache: npm installs kept across runs ("" for none)
	Tools  []*Tool // process managers under test; the baseline first
	Log    *log.Logger
	// NodeCluster adds Node's own cluster primary (a script, no manager) as a contender
	// where a scenario can have one.
	NodeCluster bool
	// Notes are printed above the table: what the reader must know to read the figures.
	Notes []string

	instances []*Instance
	cleanups  []func() error
}

// Note adds a line printed above the table (and to the JSON), logged now too.
func (b *Bench) Note(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	b.Notes = append(b.Notes, s)
	b.Log.Print("note: " + s)
}

// AtCleanup registers f to run at Cleanup, after the instances are shut down, for what a
// scenario starts outside any tool's home. f must be safe to call when already done.
func (b *Bench) AtCleanup(f func() error) {
	b.cleanups = append(b.cleanups, f)
}

// NewInstance gives tool a fresh home named after label, registered for cleanup.
func (b *Bench) NewInstance(t *Tool, label string) (*Instance, error) {
	h := filepath.Join(b.Work, t.Name+"-"+label)
	if err := os.Mkdir(h, 0o700); err != nil {
		return nil, err
	}
	in := &Instance{Tool: t, Home: h, Dir: b.AppDir}
	b.instances = append(b.instances, in)
	return in, nil
}

// Shutdown stops one instance now (the scenario is done with it); Cleanup will not again.
func (b *Bench) Shutdown(in *Instance) error {
	for i, x := range b.instances {
		if x == in {
			b.instances = append(b.instances[:i], b.instances[i+1:]...)
			break
		}
	}
	return in.Shutdown()
}

// Cleanup shuts down every instance still registered, newest first.
func (b *Bench) Cleanup() {
	for i := len(b.instances) - 1; i >= 0; i-- {
		if err := b.instances[i].Shutdown(); err != nil {
			b.Log.Printf("cleanup: %v", err)
		}
	}
	b.instances = nil
	for i := len(b.cleanups) - 1; i >= 0; i-- {
		if err := b.cleanups[i](); err != nil {
			b.Log.Printf("cleanup: %v", err)
		}
	}
	b.cleanups = nil
}

// round runs f once per instance per round, the instances taking turns within each round, and
// collects the samples by tool name. An instance whose f fails is dropped from the remaining
// rounds; the errors are returned along with the survivors.
func round(ctx context.Context, ins []*Instance, rounds int, f func(*Instance) (float64, error)) (map[string][]float64, []*Instance, []error) {
	samples := map[string][]float64{}
	var errs []error
	active := append([]*Instance(nil), ins...)
	for r := 0; r < rounds && len(active) > 0; r++ {
		var keep []*Instance
		for _, in := range active {
			if ctx.Err() != nil {
				return samples, nil, append(errs, ctx.Err())
			}
			v, err := f(in)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			samples[in.Name] = append(samples[in.Name], v)
			keep = append(keep, in)
		}
		active = keep
	}
	return samples, active, errs
}

// timeCommand is a round body: the wall time of `<tool> args... > /dev/null`, in ms.
func timeCommand(ctx context.Context, args ...string) func(*Instance) (float64, error) {
	return func(in *Instance) (float64, error) {
		d, err := in.Time(ctx, args...)
		return ms(d), err
	}
}

func names(ins []*Instance) []string {
	var out []string
	for _, in := range ins {
		out = append(out, in.Name)
	}
	return out
}
