package verify

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/corral-pm/corral/internal/loadgen"
	"github.com/corral-pm/corral/internal/procstat"
)

// minCPUTicks is the least CPU time (in clock ticks, 10 ms each on Linux) the workers must use
// together during the steady load for their CPU shares to be judged: below it, one tick more or
// less moves a share by more than the tolerance.
const minCPUTicks = 50

// counters is one worker's daemon counters at a moment.
type counters struct {
	pid          int
	requests     uint64
	connections  uint64
	inFlight     int
	reportsReqs  bool // the worker counts requests (corral's Node preload)
	cpuTicks     uint64
	cpuTicksRead bool
}

// snapshot reads every worker's counters (and its CPU time from /proc).
func (x *run) snapshot(ctx context.Context) (map[int]counters, error) {
	procs, err := x.r.procs(ctx, x.o.App)
	if err != nil {
		return nil, err
	}
	out := map[int]counters{}
	for _, p := range procs {
		c := counters{pid: p.PID}
		if p.Cluster != nil {
			c.requests, c.connections, c.inFlight = p.Cluster.Requests, p.Cluster.Connections, p.Cluster.InFlight
			c.reportsReqs = p.Cluster.Requests > 0 || p.Cluster.Runtime != nil
		}
		if st, err := procstat.ReadStat(p.PID); err == nil {
			c.cpuTicks, c.cpuTicksRead = st.CPU, true
		}
		out[p.ID] = c
	}
	return out, nil
}

// steady runs the steady load and judges the load and the distribution.
func (x *run) steady(ctx context.Context) error {
	// A warm-up first, measured by nothing: a runtime's first load grows its heap and compiles
	// its hot paths, which is neither throughput nor a leak.
	w := x.startLoad(ctx)
	sleep(ctx, x.o.warmup())
	x.record(w, w.Stop())
	before, err := x.settleCounters(ctx)
	if err != nil {
		return err
	}
	x.event("steady load")
	l := x.startLoad(ctx)
	sleep(ctx, x.o.Duration)
	res := l.Stop()
	x.record(l, res)
	x.steadyFrom, x.steadyTo = x.since(l.Began()), x.since(l.Began().Add(res.Elapsed))
	cpuAfter, _ := x.snapshot(ctx)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	x.steadyRPS = res.RPS()
	x.rep.Latency = Latency{P50: res.P50MS, P90: res.P90MS, P99: res.P99MS, Max: res.MaxMS}
	x.judgeLoad(res)
	// The preload reports once a second: wait until the workers' reports cover the load.
	after, err := x.settleCounters(ctx)
	if err != nil {
		return err
	}
	for id, c := range after {
		if a, ok := cpuAfter[id]; ok && a.pid == c.pid {
			c.cpuTicks, c.cpuTicksRead = a.cpuTicks, a.cpuTicksRead
			after[id] = c
		}
	}
	x.steadyPIDs = map[int]int{}
	for id, c := range before {
		x.steadyPIDs[id] = c.pid
	}
	x.judgeDistribution(before, after)
	return nil
}

func (x *run) judgeLoad(res loadgen.Result) {
	c := x.rep.check(CheckLoad)
	c.Threshold = "0 failed requests"
	c.Figure = fmt.Sprintf("%s req/s; p50 %s, p99 %s, max %s; %d failed of %s",
		num(res.RPS()), ms(res.P50MS), ms(res.P99MS), ms(res.MaxMS), res.Failed(), count(res.Requests+res.Failed()))
	c.Values = map[string]float64{"rps": res.RPS(), "p50_ms": res.P50MS, "p90_ms": res.P90MS, "p99_ms": res.P99MS,
		"max_ms": res.MaxMS, "requests": float64(res.Requests), "failed": float64(res.Failed())}
	switch {
	case res.Requests == 0 && res.Failed() == 0:
		c.Status, c.Reason = Fail, fmt.Sprintf("no request completed in %s: is GET %s on %s answering?", x.o.Duration, x.o.Path, x.target)
	case res.Failed() > 0:
		c.Status = Fail
		c.Reason = fmt.Sprintf("%d of %s requests failed (%s)", res.Failed(), count(res.Requests+res.Failed()), res.ErrorSummary())
		if res.Errors[loadgen.KindStatus] > 0 {
			c.Reason += fmt.Sprintf("; the load requests GET %s: it must answer 2xx without a session (--path or verify.path)", x.o.Path)
		}
	default:
		c.Status = Pass
	}
}

// settleCounters waits until the workers' counters are final for what has been sent: no
// hand-off unanswered and, for workers that count requests (their preload reports once a
// second, when something changed), no request count changed for 1.5 s. At most 6 s.
func (x *run) settleCounters(ctx context.Context) (map[int]counters, error) {
	deadline := time.Now().Add(6 * time.Second)
	var last uint64
	lastChange := time.Now()
	for first := true; ; first = false {
		now, err := x.snapshot(ctx)
		if err != nil {
			return nil, err
		}
		var reqs uint64
		inFlight, reporting := 0, false
		for _, c := range now {
			reqs += c.requests
			inFlight += c.inFlight
			reporting = reporting || c.reportsReqs
		}
		if first || reqs != last {
			last, lastChange = reqs, time.Now()
		}
		quiet := !reporting || time.Since(lastChange) >= 1500*time.Millisecond
		if inFlight == 0 && quiet || time.Now().After(deadline) || ctx.Err() != nil {
			return now, ctx.Err()
		}
		sleep(ctx, 100*time.Millisecond)
	}
}

// judgeDistribution compares each worker's share of requests (or connections, when the
// workers do not count requests) and of CPU time with the fair share.
func (x *run) judgeDistribution(before, after map[int]counters) {
	c := x.rep.check(CheckDistribution)
	n := len(before)
	fair := 1 / float64(n)
	lo, hi := x.o.MinShare*fair, (2-x.o.MinShare)*fair
	c.Threshold = fmt.Sprintf("each worker %s–%s of the requests and of the CPU (±%s of a fair %s)",
		pct(lo), pct(hi), pct(1-x.o.MinShare), pct(fair))
	ids := sortedIDs(before)
	var restarted []string
	reqs, conns, ticks := map[int]float64{}, map[int]float64{}, map[int]float64{}
	var sumReq, sumConn, sumTicks float64
	reporting, cpuKnown := false, true
	for _, id := range ids {
		b, a := before[id], after[id]
		if a.pid != b.pid {
			restarted = append(restarted, fmt.Sprintf("worker %d (pid %d → %d)", id, b.pid, a.pid))
			continue
		}
		reporting = reporting || a.reportsReqs
		reqs[id] = float64(a.requests - b.requests)
		conns[id] = float64(a.connections - b.connections)
		sumReq += reqs[id]
		sumConn += conns[id]
		if a.cpuTicksRead && b.cpuTicksRead {
			ticks[id] = float64(a.cpuTicks - b.cpuTicks)
			sumTicks += ticks[id]
		} else {
			cpuKnown = false
		}
	}
	if len(restarted) > 0 {
		c.Status = Fail
		c.Reason = fmt.Sprintf("%s restarted during the load: see corral logs %s", strings.Join(restarted, ", "), x.o.App)
		return
	}
	what, work, sum := "requests", reqs, sumReq
	if !reporting || sumReq == 0 {
		what, work, sum = "connections", conns, sumConn
	}
	if sum == 0 {
		c.Status, c.Reason = Fail, "no worker served anything during the load"
		return
	}
	judgeCPU := cpuKnown && sumTicks >= minCPUTicks
	var bad []string
	minShare, maxShare, minCPU, maxCPU := 2.0, -1.0, 2.0, -1.0
	for _, id := range ids {
		share := work[id] / sum
		cpu := -1.0
		if cpuKnown && sumTicks > 0 {
			cpu = ticks[id] / sumTicks
			minCPU, maxCPU = min(minCPU, cpu), max(maxCPU, cpu)
		}
		minShare, maxShare = min(minShare, share), max(maxShare, share)
		x.rep.Shares = append(x.rep.Shares, Share{ID: id, PID: before[id].pid, Requests: share, CPU: cpu})
		ok := share >= lo && share <= hi
		if !ok {
			bad = append(bad, fmt.Sprintf("worker %d (pid %d) got %s of the %s", id, before[id].pid, pct(share), what))
		}
		fig := fmt.Sprintf("%s %s (%s)", what, pct(share), count(int64(work[id])))
		if cpu >= 0 {
			fig += fmt.Sprintf(", CPU %s", pct(cpu))
			if judgeCPU && (cpu < lo || cpu > hi) {
				ok = false
				bad = append(bad, fmt.Sprintf("worker %d (pid %d) used %s of the CPU", id, before[id].pid, pct(cpu)))
			}
		}
		c.Workers = append(c.Workers, Worker{ID: id, PID: before[id].pid, Figure: fig, OK: ok})
	}
	c.Figure = fmt.Sprintf("%s %s–%s per worker", what, pct(minShare), pct(maxShare))
	if maxCPU >= 0 {
		c.Figure += fmt.Sprintf(", CPU %s–%s", pct(minCPU), pct(maxCPU))
		if !judgeCPU {
			c.Figure += fmt.Sprintf(" (too little CPU time to judge: %.2f s)", sumTicks/float64(procstat.ClockTicks()))
		}
	}
	if what == "connections" {
		c.Figure += " (the workers do not count requests: connections are judged)"
	}
	c.Values = map[string]float64{"min_share": minShare, "max_share": maxShare, "fair_share": fair}
	if len(bad) > 0 {
		c.Status = Fail
		c.Reason = strings.Join(bad, "; ") + fmt.Sprintf(": outside %s–%s, so the work is not spread over the workers", pct(lo), pct(hi))
		if x.o.KeepAlive {
			c.Reason += " (with keep-alive each client stays on one worker: a slow worker keeps its clients waiting while a fast one serves the rest)"
		}
		return
	}
	c.Status = Pass
}

// sortedIDs are m's keys (pm_ids) in order.
func sortedIDs[V any](m map[int]V) []int { return slices.Sorted(maps.Keys(m)) }
