package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/corral-pm/corral/internal/loadgen"
	"github.com/corral-pm/corral/internal/procstat"
)

// The HTTP load generator is internal/loadgen, shared with `corral verify`; these names keep
// the bench's code as it reads.
type (
	LoadConfig = loadgen.Config
	LoadResult = loadgen.Result
	Load       = loadgen.Load
)

// StartLoad starts a load that runs until Stop, or until ctx ends.
func StartLoad(ctx context.Context, cfg LoadConfig) *loadgen.Load { return loadgen.Start(ctx, cfg) }

// RunLoad runs a load for d (less if ctx ends first) and returns what it saw.
func RunLoad(ctx context.Context, cfg LoadConfig, d time.Duration) LoadResult {
	return loadgen.Run(ctx, cfg, d)
}

// probe sends one request on a new connection and reports whether a 200 came back.
func probe(ctx context.Context, addr string, timeout time.Duration) error {
	return get(ctx, addr, "/", timeout)
}

// get sends one GET for path on a new connection (`Connection: close`) and reports whether a
// 2xx came back within timeout, connect included.
func get(ctx context.Context, addr, path string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	d := net.Dialer{Deadline: deadline}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(deadline)
	if _, err := conn.Write(loadgen.BuildRequest(addr, path, false)); err != nil {
		return err
	}
	_, err = loadgen.ReadResponse(bufio.NewReader(conn))
	return err
}

// waitServing waits until n requests in a row get a 200.
func waitServing(ctx context.Context, addr string, n int, timeout time.Duration) error {
	return poll(ctx, timeout, 100*time.Millisecond, func() error {
		for ok := 0; ok < n; ok++ {
			if err := probe(ctx, addr, time.Second); err != nil {
				return fmt.Errorf("nothing serves %s after %s: %v", addr, timeout, err)
			}
		}
		return nil
	})
}

// portFree reports whether nothing listens on the port: connecting is refused and listening
// on it works.
func portFree(port int) error {
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("something still accepts connections on %s", addr)
	}
	ln, err := net.Listen("tcp", ":"+strconv.Itoa(port))
	if err != nil {
		return fmt.Errorf("port %d is not free: %v", port, err)
	}
	return ln.Close()
}

// waitPortFree waits until portFree holds.
func waitPortFree(ctx context.Context, port int, timeout time.Duration) error {
	return poll(ctx, timeout, 100*time.Millisecond, func() error { return portFree(port) })
}

// freePort asks the kernel for a port nobody uses.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// cpuSeconds is the CPU time (user + system) pid has used, from /proc/<pid>/stat. Its
// children's time is not included.
func cpuSeconds(pid int) (float64, error) {
	st, err := procstat.ReadStat(pid)
	if err != nil {
		return 0, err
	}
	return float64(st.CPU) / float64(procstat.ClockTicks()), nil
}

// cost is what serving costs: the CPU time of the primary and of the workers, the workers'
// context switches, and the machine's idle and total CPU ticks; the totals so far (readCost),
// or what a run spent (since).
type cost struct {
	primary, workers float64 // CPU seconds
	switches         uint64
	idle, ticks      uint64
}

// servers is the CPU time of the primary and the workers together.
func (c cost) servers() float64 { return c.primary + c.workers }

// since is what was spent between an earlier reading and c.
func (c cost) since(earlier cost) cost {
	return cost{
		primary:  c.primary - earlier.primary,
		workers:  c.workers - earlier.workers,
		switches: c.switches - earlier.switches,
		idle:     c.idle - earlier.idle,
		ticks:    c.ticks - earlier.ticks,
	}
}

// readCost reads the cost so far of a primary and its workers.
func readCost(primary int, workers []int) (cost, error) {
	var c cost
	var err error
	if c.primary, err = cpuSeconds(primary); err != nil {
		return c, fmt.Errorf("primary's CPU: %w", err)
	}
	for _, pid := range workers {
		w, err := cpuSeconds(pid)
		if err != nil {
			return c, fmt.Errorf("worker %d's CPU: %w", pid, err)
		}
		c.workers += w
	}
	if c.switches, err = contextSwitches(workers); err != nil {
		return c, fmt.Errorf("workers' context switches: %w", err)
	}
	if c.idle, c.ticks, err = cpuTimes(); err != nil {
		return c, err
	}
	return c, nil
}

// cpuTimes reads the machine's CPU time from /proc/stat's first line: the idle part (idle and
// iowait) and the whole, in clock ticks.
func cpuTimes() (idle, total uint64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	// user nice system idle iowait irq softirq steal; guest and guest_nice, after them, are
	// already counted in user and nice.
	for i, v := range f[1:min(len(f), 9)] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: %q: %w", line, err)
		}
		total += n
		if i == 3 || i == 4 {
			idle += n
		}
	}
	return idle, total, nil
}

// contextSwitches is how many times the processes in pids left a CPU, summed: voluntary (to
// wait, such as for the next connection) and not (preempted), from /proc/<pid>/status, which
// counts the main thread only (a Node worker's event loop), not the process's other threads.
func contextSwitches(pids []int) (uint64, error) {
	var sum uint64
	for _, pid := range pids {
		st, err := procStatus(pid, "voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")
		if err != nil {
			return 0, err
		}
		for k, v := range st {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/%d/status: %s: %w", pid, k, err)
			}
			sum += n
		}
	}
	return sum, nil
}
