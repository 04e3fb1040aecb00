// Command bench measures corral against what its users would pick instead (PM2, and Node's
// own cluster primary), in one run on one machine, and reports the figures and their
// ratios. It reports; it does not judge: it exits 0 unless something broke.
//
//	go run ./bench/cmd/bench [-n 30] [-cache /tmp/corral-bench-cache] [-json out.json]
//
// See bench/README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	os.Exit(run())
}

func run() int {
	var (
		opts       Options
		cache      = flag.String("cache", "", "keep PM2's npm install in `dir` (outside the repository) and reuse it on later runs")
		jsonOut    = flag.String("json", "", "also write the results as JSON to `file`")
		keep       = flag.Bool("keep", false, "keep the temporary directory (homes, daemon logs) for inspection")
		corralBin  = flag.String("corral", "", "use this corral `binary` instead of building ./cmd/corral")
		contenders = flag.String("contenders", "corral,pm2,"+nodeClusterName, "comma-separated `list` of contenders: corral, pm2, "+nodeClusterName+" (Node's own cluster primary: http and stall scenarios)")
		only       = flag.String("scenarios", "", "comma-separated `list` of scenarios to run (default all: "+scenarioNames()+")")
	)
	flag.IntVar(&opts.N, "n", 30, "measured runs of each timed command")
	flag.IntVar(&opts.Warmup, "warmup", 3, "warm-up runs before measuring")
	flag.IntVar(&opts.Apps, "apps", 10, "apps started under each process manager")
	flag.IntVar(&opts.SpawnRuns, "spawn", 3, "daemon spawns (first command) timed per tool")
	flag.IntVar(&opts.RSSSamples, "rss-samples", 7, "RSS samples per window")
	flag.DurationVar(&opts.RSSEvery, "rss-every", 500*time.Millisecond, "time between RSS samples")
	flag.IntVar(&opts.HTTPConns, "http-conns", 16, "http: concurrent client connections")
	flag.DurationVar(&opts.HTTPDuration, "http-duration", 10*time.Second, "http: length of each measured run")
	flag.IntVar(&opts.HTTPRuns, "http-runs", 3, "http: measured runs of each load per contender (the median is reported)")
	flag.DurationVar(&opts.HTTPWarmup, "http-warmup", 3*time.Second, "http: load before each measured run, not measured")
	flag.DurationVar(&opts.HTTPTimeout, "http-timeout", 5*time.Second, "http: a request (connect included) taking longer fails as a timeout")
	flag.DurationVar(&opts.HTTPSettle, "http-settle", 3*time.Second, "http: load kept before the first reload and after the last")
	flag.IntVar(&opts.HTTPPort, "http-port", 0, "http: the app's port (0: a free one)")
	flag.StringVar(&opts.HTTPApp, "http-app", "bare", "http: the `app`: bare (node:http answering ok), stack (Express 5 + express-session + connect-pg-simple, sessions in PostgreSQL; every request logged in, so a database round trip each; needs npm and -pg) or stack-visitor (the same app, anonymous visitors: no cookie, no database round trip)")
	flag.StringVar(&opts.PGURL, "pg", "postgres:///postgres?host=/var/run/postgresql", "http -http-app stack or stack-visitor: a PostgreSQL `URL` allowed to create the bench's database (corral_bench)")
	flag.BoolVar(&opts.HTTPCorralShared, "http-corral-shared", false, "http: also measure corral with sched_policy shared (one socket every worker accepts on, as Node's SCHED_NONE)")
	flag.Parse()
	if flag.NArg() > 0 || opts.N < 1 || opts.Warmup < 0 || opts.Apps < 1 || opts.SpawnRuns < 1 || opts.RSSSamples < 1 ||
		opts.HTTPConns < 1 || opts.HTTPDuration <= 0 || opts.HTTPRuns < 1 || opts.HTTPWarmup < 0 || opts.HTTPTimeout <= 0 || opts.HTTPSettle < 0 || opts.HTTPPort < 0 || opts.HTTPPort > 65535 ||
		(opts.HTTPApp != "bare" && opts.HTTPApp != httpAppStack && opts.HTTPApp != httpAppStackVisitor) {
		flag.Usage()
		return 2
	}
	logger := log.New(os.Stderr, "bench: ", 0)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { <-ctx.Done(); stop() }() // a second ^C ends the bench at once

	root, err := moduleRoot(ctx)
	if err != nil {
		logger.Print(err)
		return 1
	}
	var run []Scenario
	for _, s := range scenarios {
		if *only == "" || inList(*only, s.Name()) {
			run = append(run, s)
		}
	}
	if len(run) == 0 {
		logger.Printf("no scenario named %q (have %s)", *only, scenarioNames())
		return 2
	}

	work, err := os.MkdirTemp("", "cb-") // short: the homes hold unix sockets
	if err != nil {
		logger.Print(err)
		return 1
	}
	if *keep {
		defer logger.Printf("kept %s", work)
	} else {
		defer os.RemoveAll(work)
	}
	b := &Bench{Opts: opts, Work: work, AppDir: filepath.Join(work, "app"), Log: logger}
	if *cache != "" {
		if b.Cache, err = cacheDir(root, *cache); err != nil {
			logger.Print(err)
			return 2
		}
	}
	defer b.Cleanup() // runs before the removal above
	if err := os.Mkdir(b.AppDir, 0o755); err != nil {
		logger.Print(err)
		return 1
	}
	if err := os.WriteFile(filepath.Join(b.AppDir, "app.js"), []byte(appScript), 0o644); err != nil {
		logger.Print(err)
		return 1
	}

	var errs []string
	fail := func(err error) {
		logger.Print(err)
		errs = append(errs, err.Error())
	}
	for _, name := range strings.Split(*contenders, ",") {
		switch strings.TrimSpace(name) {
		case "corral":
			t, err := setupCorral(ctx, root, work, *corralBin)
			if err != nil {
				fail(fmt.Errorf("corral: %w", err))
				continue
			}
			b.Tools = append(b.Tools, t)
		case "pm2":
			t, err := setupPM2(ctx, work, b.Cache, logger.Printf)
			if err != nil {
				fail(fmt.Errorf("pm2: %w", err))
				continue
			}
			b.Tools = append(b.Tools, t)
		case nodeClusterName:
			b.NodeCluster = true
		default:
			logger.Printf("unknown contender %q (have corral, pm2, %s)", name, nodeClusterName)
			return 2
		}
	}
	if len(b.Tools) == 0 {
		return 1
	}
	logger.Print("reading host facts")
	host := hostFacts(ctx, root)
	var order []string
	for _, t := range b.Tools {
		order = append(order, t.Name)
		switch t.Name {
		case "corral":
			host.Corral = t.Version
			if host.CorralCommit != "" {
				host.CorralCommit = t.Version + ", commit " + host.CorralCommit
			}
		case "pm2":
			host.PM2 = t.Version
		}
	}
	if b.NodeCluster {
		order = append(order, nodeClusterName)
	}

	var metrics []Metric
	for _, s := range run {
		logger.Printf("scenario %s: %s", s.Name(), s.Describe())
		ms, err := s.Run(ctx, b)
		metrics = append(metrics, ms...)
		if err != nil {
			for _, e := range unjoin(err) {
				errs = append(errs, s.Name()+": "+e.Error())
			}
		}
		b.Cleanup()
		if ctx.Err() != nil {
			errs = append(errs, "interrupted")
			break
		}
	}
	host.LoadEnd = loadavg()

	// A scenario may measure a variant of a tool as a contender of its own (the requests
	// scenario: corral with its counting off): it gets a column after the tools.
	for _, m := range metrics {
		for _, c := range m.Order {
			if !slices.Contains(order, c) {
				order = append(order, c)
			}
		}
	}
	r := Report{Host: host, Options: map[string]any{"bench": opts, "contenders": order, "scenarios": scenarioNamesOf(run)},
		Notes: b.Notes, Metrics: metrics, Errors: errs, Complete: len(errs) == 0}
	printTable(os.Stdout, r, order)
	if *jsonOut != "" {
		if err := writeJSON(*jsonOut, r); err != nil {
			logger.Print(err)
			return 1
		}
	}
	if len(errs) > 0 {
		return 1
	}
	return 0
}

func setupCorral(ctx context.Context, root, work, bin string) (*Tool, error) {
	if bin == "" {
		var err error
		if bin, err = buildCorral(ctx, root, work); err != nil {
			return nil, err
		}
	} else if abs, err := filepath.Abs(bin); err == nil {
		bin = abs
	}
	v := commandLine(ctx, work, bin, "--version")
	if v == "" {
		return nil, fmt.Errorf("%s --version failed", bin)
	}
	return &Tool{Name: "corral", Bin: bin, HomeVar: "CORRAL_HOME", PidFile: "corral.pid", Socket: "corral.sock", Version: v}, nil
}

// cacheDir is -cache as an absolute path, refused inside the repository (npm's node_modules
// must never land in it).
func cacheDir(root, cache string) (string, error) {
	abs, err := filepath.Abs(cache)
	if err != nil {
		return "", err
	}
	if rel, err := filepath.Rel(root, abs); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("-cache %s is inside the repository: npm's node_modules must not land in it; pick a folder elsewhere", cache)
	}
	return abs, nil
}

// setupPM2 installs PM2 under work, or under cache (b.Cache: already checked by cacheDir).
func setupPM2(ctx context.Context, work, cache string, logf func(string, ...any)) (*Tool, error) {
	dir := filepath.Join(work, "pm2")
	if cache != "" {
		dir = filepath.Join(cache, "pm2")
	}
	bin, v, err := installPM2(ctx, dir, logf)
	if err != nil {
		return nil, err
	}
	return &Tool{Name: "pm2", Bin: bin, HomeVar: "PM2_HOME", PidFile: "pm2.pid", Socket: "rpc.sock", Version: v}, nil
}

func inList(list, name string) bool {
	for _, x := range strings.Split(list, ",") {
		if strings.TrimSpace(x) == name {
			return true
		}
	}
	return false
}

func scenarioNames() string { return strings.Join(scenarioNamesOf(scenarios), ",") }

func scenarioNamesOf(ss []Scenario) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.Name())
	}
	return out
}

// unjoin splits an errors.Join result back into its errors.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
