package main

import (
	"os"
	"testing"
)

// readCost reads this process as both primary and worker: the figures it adds up must be there
// and consistent, or every ratio in the http table would be silently wrong.
func TestReadCost(t *testing.T) {
	pid := os.Getpid()
	c, err := readCost(pid, []int{pid, pid})
	if err != nil {
		t.Fatal(err)
	}
	if c.switches == 0 {
		t.Errorf("no context switches read for a running test process: %+v", c)
	}
	if c.ticks == 0 || c.idle > c.ticks {
		t.Errorf("machine CPU ticks: idle %d of %d", c.idle, c.ticks)
	}
	if c.workers < 2*c.primary-0.02 || c.primary < 0 {
		t.Errorf("the same process twice as workers costs %.2f s, once as primary %.2f s", c.workers, c.primary)
	}
	if _, err := readCost(pid, []int{1 << 30}); err == nil {
		t.Error("a worker that does not exist was read without an error")
	}
}

// since is what a run spent: every figure of the later reading less the earlier one's.
func TestCostSince(t *testing.T) {
	earlier := cost{primary: 1, workers: 2, switches: 30, idle: 40, ticks: 100}
	later := cost{primary: 1.5, workers: 4, switches: 45, idle: 50, ticks: 140}
	want := cost{primary: 0.5, workers: 2, switches: 15, idle: 10, ticks: 40}
	if got := later.since(earlier); got != want {
		t.Errorf("since: %+v, want %+v", got, want)
	}
}
