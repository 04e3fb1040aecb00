package main

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// cliScenario measures what a PM2 user feels at the command line and pays in memory: the first
// command (which spawns the daemon), `start`, `jlist` and `ls` with a few apps running, `kill`,
// and the daemon's (and the apps') resident memory.
type cliScenario struct{}

func (cliScenario) Name() string { return "cli" }

func (cliScenario) Describe() string {
	return "daemon spawn (`ping`), `start`, `jlist`, `ls`, `--version`, `kill` latency; daemon and apps RSS with N idle fork-mode Node apps"
}

const (
	jlistTarget = "< 20 ms (PM2 about 200 ms here)"
	rssTarget   = "< 20 MB (PM2 about 60 MB)"
)

// appScript is the app every manager runs: a Node process that does nothing, forever.
const appScript = "setInterval(() => {}, 1000);\n"

func (s cliScenario) Run(ctx context.Context, b *Bench) ([]Metric, error) {
	o := b.Opts
	var order []string
	for _, t := range b.Tools {
		order = append(order, t.Name)
	}
	var metrics []Metric
	var errs []error
	add := func(name, unit, target, note string, samples map[string][]float64) {
		m := newMetric(s.Name(), name, unit, "lower", target, order, samples)
		m.Note = note
		if len(m.Order) > 0 {
			metrics = append(metrics, m)
		}
	}
	step := func(what string, e []error) {
		for _, err := range e {
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
			b.Log.Printf("%s: %v", what, err)
		}
	}

	var ins []*Instance
	for _, t := range b.Tools {
		in, err := b.NewInstance(t, s.Name())
		if err != nil {
			return nil, err
		}
		ins = append(ins, in)
	}
	all := append([]*Instance(nil), ins...)
	defer func() {
		for _, in := range all {
			if err := b.Shutdown(in); err != nil {
				b.Log.Printf("cli: shutdown: %v", err)
			}
		}
	}()

	// The first command of a session: no daemon yet, so `ping` spawns it and waits for it.
	// Each round ends with `kill` so that the next one spawns again; a last `ping` leaves it up.
	b.Log.Printf("cli: timing the daemon spawn (`ping`, %d× each)", o.SpawnRuns)
	spawn, ins, e := round(ctx, ins, o.SpawnRuns, func(in *Instance) (float64, error) {
		if in.DaemonRunning() {
			return 0, fmt.Errorf("%s: a daemon already runs before `ping`", in.Name)
		}
		d, err := in.Time(ctx, "ping")
		if err != nil {
			return 0, err
		}
		pid, err := in.DaemonPID()
		if err != nil || !alive(pid) {
			return 0, fmt.Errorf("%s: no daemon running after `ping` (%v)", in.Name, err)
		}
		if _, err := in.Time(ctx, "kill"); err != nil {
			return 0, err
		}
		if err := waitGone(ctx, pid, 15*time.Second); err != nil {
			return 0, fmt.Errorf("%s daemon after `kill`: %w", in.Name, err)
		}
		return ms(d), nil
	})
	step("spawn", e)
	add("ping as first command: spawns the daemon", "ms", "", "", spawn)
	_, ins, e = round(ctx, ins, 1, timeCommand(ctx, "ping"))
	step("ping", e)

	// Start the apps, one `start` each, taking turns.
	b.Log.Printf("cli: starting %d apps under each of %v", o.Apps, names(ins))
	next := map[*Instance]int{}
	start, ins, e := round(ctx, ins, o.Apps, func(in *Instance) (float64, error) {
		name := fmt.Sprintf("a%d", next[in])
		next[in]++
		d, err := in.Time(ctx, "start", "app.js", "--name", name)
		return ms(d), err
	})
	step("start", e)
	add("start app.js --name aN, one app", "ms", "", "", start)

	// Wait until every app is online; their pids are what the apps' RSS is read from.
	pids := map[*Instance][]int{}
	var online []*Instance
	for _, in := range ins {
		procs, err := in.WaitOnline(ctx, o.Apps, 60*time.Second)
		if err != nil {
			step("online", []error{err})
			continue
		}
		for _, p := range procs {
			pids[in] = append(pids[in], p.PID)
		}
		online = append(online, in)
	}
	ins = online
	if len(ins) == 0 {
		return metrics, errors.Join(errs...)
	}

	b.Log.Printf("cli: sampling RSS (%d samples, %s apart)", o.RSSSamples, o.RSSEvery)
	daemon, _, ins, e := sampleRSS(ctx, ins, pids, o.RSSSamples, o.RSSEvery)
	step("rss", e)
	add(fmt.Sprintf("daemon RSS with %d idle apps", o.Apps), "MB", rssTarget,
		fmt.Sprintf("VmRSS of the daemon's pid, sampled over ~%s once the apps are online", time.Duration(o.RSSSamples-1)*o.RSSEvery), daemon)

	b.Log.Printf("cli: timing jlist and ls (%d warm-up + %d runs each)", o.Warmup, o.N)
	_, ins, e = round(ctx, ins, o.Warmup, timeCommand(ctx, "jlist"))
	step("jlist warm-up", e)
	jl, ins, e := round(ctx, ins, o.N, timeCommand(ctx, "jlist"))
	step("jlist", e)
	add(fmt.Sprintf("jlist with %d apps", o.Apps), "ms", jlistTarget, "wall time of `<tool> jlist > /dev/null`", jl)

	_, ins, e = round(ctx, ins, o.Warmup, timeCommand(ctx, "ls"))
	step("ls warm-up", e)
	ls, ins, e := round(ctx, ins, o.N, timeCommand(ctx, "ls"))
	step("ls", e)
	add(fmt.Sprintf("ls with %d apps", o.Apps), "ms", "", "wall time of `<tool> ls > /dev/null` (not a terminal: no colours)", ls)

	// What the CLI costs before it talks to the daemon: jlist minus this is the round trip.
	_, ins, e = round(ctx, ins, o.Warmup, timeCommand(ctx, "--version"))
	step("--version warm-up", e)
	ver, ins, e := round(ctx, ins, o.N, timeCommand(ctx, "--version"))
	step("--version", e)
	add("--version: CLI start-up alone, no daemon", "ms", "", "", ver)

	// Second window: the daemon has served the commands above, and the apps (whose RSS grows
	// for a few seconds after they start) have settled.
	daemon, apps, ins, e := sampleRSS(ctx, ins, pids, o.RSSSamples, o.RSSEvery)
	step("rss", e)
	add(fmt.Sprintf("daemon RSS after the %d jlist/ls/--version", 3*(o.Warmup+o.N)), "MB", "", "", daemon)
	add(fmt.Sprintf("apps' RSS, sum of the %d", o.Apps), "MB", "",
		fmt.Sprintf("sum of the %d apps' VmRSS, second window (PM2 runs each fork-mode app inside its ProcessContainerFork wrapper)", o.Apps), apps)

	// The apps must still be the ones started: a figure taken while apps crash-loop means little.
	var still []*Instance
	for _, in := range ins {
		procs, err := in.JList(ctx)
		if err == nil {
			restarts := 0
			for _, p := range procs {
				restarts += p.PMEnv.RestartTime
			}
			if len(procs) != o.Apps || restarts > 0 {
				err = fmt.Errorf("%s: %d processes and %d restarts at the end, want %d and 0", in.Name, len(procs), restarts, o.Apps)
			}
		}
		if err != nil {
			step("check", []error{err})
			continue
		}
		still = append(still, in)
	}
	ins = still

	kill, _, e := round(ctx, ins, 1, func(in *Instance) (float64, error) {
		pid, err := in.DaemonPID()
		if err != nil {
			return 0, err
		}
		d, err := in.Time(ctx, "kill")
		if err != nil {
			return 0, err
		}
		if err := waitGone(ctx, pid, 15*time.Second); err != nil {
			return 0, fmt.Errorf("%s daemon after `kill`: %w", in.Name, err)
		}
		return ms(d), nil
	})
	step("kill", e)
	add(fmt.Sprintf("kill with %d apps (timed once)", o.Apps), "ms", "", "stops every app and the daemon", kill)

	return metrics, errors.Join(errs...)
}

// sampleRSS reads, samples times, every apart, the VmRSS of each instance's daemon and the sum
// over its apps' pids, in MB. An instance whose daemon cannot be read is dropped.
func sampleRSS(ctx context.Context, ins []*Instance, pids map[*Instance][]int, samples int, every time.Duration) (daemon, apps map[string][]float64, kept []*Instance, errs []error) {
	daemon, apps = map[string][]float64{}, map[string][]float64{}
	active := append([]*Instance(nil), ins...)
	for i := 0; i < samples && len(active) > 0; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return daemon, apps, nil, append(errs, ctx.Err())
			case <-time.After(every):
			}
		}
		var keep []*Instance
		for _, in := range active {
			pid, err := in.DaemonPID()
			var kb int
			if err == nil {
				kb, err = rssKB(pid)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("%s daemon RSS: %w", in.Name, err))
				continue
			}
			daemon[in.Name] = append(daemon[in.Name], float64(kb)/1024)
			sum, missing := 0, 0
			for _, p := range pids[in] {
				if kb, err := rssKB(p); err == nil {
					sum += kb
				} else {
					missing++
				}
			}
			if missing == 0 {
				apps[in.Name] = append(apps[in.Name], float64(sum)/1024)
			} else {
				errs = append(errs, fmt.Errorf("%s: %d of its apps' pids are gone", in.Name, missing))
			}
			keep = append(keep, in)
		}
		active = keep
	}
	return daemon, apps, active, errs
}
