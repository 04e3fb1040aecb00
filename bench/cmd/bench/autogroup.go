package main

import (
	"errors"
	"io/fs"
	"os"
	"strings"
	"sync"
)

// autogroupFile switches Linux's autogroup scheduling (CONFIG_SCHED_AUTOGROUP), on by default
// on most distributions' kernels.
const autogroupFile = "/proc/sys/kernel/sched_autogroup_enabled"

// autogroupNote says why the http scenario cares: with autogroup, the scheduler shares the CPU
// between sessions first and among a session's processes second. The load generator runs in
// this process's session; corral's workers each have a session of their own, PM2's share their
// daemon's, and Node's primary and its workers share one. Under load on one machine, a
// contender's throughput would then follow how many sessions its processes span (each one
// weighs as much as the load generator), not how much work it does per request.
const autogroupNote = "Linux's autogroup scheduling shares the CPU between sessions before processes, which would rank the contenders by how many sessions their processes span (corral's workers have one each, PM2's and Node's share one) rather than by their work per request"

// disableAutogroup turns autogroup scheduling off for the http scenario when it is on and this
// process may (root), and returns what restores it, also registered for the bench's cleanup
// (^C included). It notes what it did, or that the figures are skewed when it could not.
func disableAutogroup(b *Bench) (restore func() error) {
	noop := func() error { return nil }
	cur, err := os.ReadFile(autogroupFile)
	if errors.Is(err, fs.ErrNotExist) {
		return noop // a kernel without autogroup: nothing skews the figures
	}
	if err != nil || strings.TrimSpace(string(cur)) != "1" {
		return noop
	}
	if err := os.WriteFile(autogroupFile, []byte("0"), 0); err != nil {
		b.Note("http: %s; it is on here and could not be turned off for the run (%v; as root the bench turns it off and back on): expect the ratios to favour corral", autogroupNote, err)
		return noop
	}
	b.Note("http: %s; it was turned off for this scenario (%s = 0) and back on after", autogroupNote, autogroupFile)
	var once sync.Once
	var werr error
	restore = func() error {
		once.Do(func() { werr = os.WriteFile(autogroupFile, []byte("1"), 0) })
		return werr
	}
	b.AtCleanup(restore)
	return restore
}
