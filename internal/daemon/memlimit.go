package daemon

import (
	"sync"
	"time"

	"github.com/corral-pm/corral/internal/cpus"
	"github.com/corral-pm/corral/internal/spec"
)

// The container's memory limit (cgroup memory.max), for `describe` and for a
// max_memory_restart given as a share of it ('80%'; docs/containers.md §6). It is read again
// at most once a second: a pod resized in place is seen at the next check.

var memLimitCache struct {
	mu    sync.Mutex
	at    time.Time
	bytes int64
}

// containerMemory is the cgroup memory limit that applies to the daemon and its apps, 0 if none.
func (d *Daemon) containerMemory() int64 {
	memLimitCache.mu.Lock()
	defer memLimitCache.mu.Unlock()
	if time.Since(memLimitCache.at) < time.Second {
		return memLimitCache.bytes
	}
	n, ok := cpus.MemoryLimit()
	if !ok {
		n = 0
	}
	memLimitCache.at, memLimitCache.bytes = time.Now(), n
	return n
}

// memoryRestartLimit is app's max_memory_restart in bytes: as given, or its share of the
// container's limit (0, so off, when no limit is found: the daemon log says so once per app).
func (d *Daemon) memoryRestartLimit(app *spec.App) int64 {
	if app == nil {
		return 0
	}
	if app.MaxMemoryRestartPercent <= 0 {
		return app.MaxMemoryRestart
	}
	limit := d.containerMemory()
	if limit <= 0 {
		d.noteNoMemoryLimit(app.Name)
		return 0
	}
	return int64(float64(limit) * app.MaxMemoryRestartPercent / 100)
}

var noLimitNoted sync.Map // app name -> true

func (d *Daemon) noteNoMemoryLimit(name string) {
	if _, loaded := noLimitNoted.LoadOrStore(name, true); !loaded {
		d.logf("app %s: max_memory_restart is a share of the container's memory limit, and no limit is set (cgroup memory.max): it is off", name)
	}
}
