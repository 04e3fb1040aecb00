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

// memLimit is the daemon's last reading of the limit, and the apps it told it found none.
type memLimit struct {
	mu    sync.Mutex
	at    time.Time
	bytes int64
	noted map[string]bool // app names: "no limit" logged once per app
}

// containerMemory is the cgroup memory limit that applies to the daemon and its apps, 0 if none.
func (d *Daemon) containerMemory() int64 {
	c := &d.memLimit
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.at) < time.Second {
		return c.bytes
	}
	n, ok := cpus.MemoryLimit()
	if !ok {
		n = 0
	}
	c.at, c.bytes = time.Now(), n
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

func (d *Daemon) noteNoMemoryLimit(name string) {
	c := &d.memLimit
	c.mu.Lock()
	first := !c.noted[name]
	if first {
		if c.noted == nil {
			c.noted = map[string]bool{}
		}
		c.noted[name] = true
	}
	c.mu.Unlock()
	if first {
		d.logf("app %s: max_memory_restart is a share of the container's memory limit, and no limit is set (cgroup memory.max): it is off", name)
	}
}
