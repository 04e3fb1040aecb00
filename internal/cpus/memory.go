package cpus

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// MemoryLimit returns the cgroup memory limit that applies to this process, in bytes: cgroup
// v2 memory.max, cgroup v1 memory.limit_in_bytes, the smallest of this process's cgroup and
// its ancestors (a parent's limit caps its descendants), as in a container (docker --memory,
// Kubernetes limits.memory). ok is false when no limit applies or none could be read, as for
// the CPU quota: a limit corral cannot see must not stop anything.
//
// `max_memory_restart: '80%'` is a share of it (docs/containers.md §6), and `describe` shows it.
func MemoryLimit() (bytes int64, ok bool) { return memoryLimit("/") }

// noMemoryLimit: cgroup v1 writes "no limit" as the largest page-aligned int64
// (9223372036854771712); anything from here up is no limit.
const noMemoryLimit = 1 << 62

func memoryLimit(root string) (int64, bool) {
	data, err := os.ReadFile(filepath.Join(root, "proc/self/cgroup"))
	if err != nil {
		return 0, false
	}
	var v2, v1 string
	var hasV2, hasV1 bool
	for line := range strings.Lines(string(data)) {
		parts := strings.SplitN(strings.TrimRight(line, "\n"), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			v2, hasV2 = parts[2], true
			continue
		}
		for c := range strings.SplitSeq(parts[1], ",") {
			if c == "memory" {
				v1, hasV1 = parts[2], true
			}
		}
	}
	mounts := []mount{
		{root: "/", point: "/sys/fs/cgroup", fstype: "cgroup2"},
		{root: "/", point: "/sys/fs/cgroup/memory", fstype: "cgroup", superOpts: "rw,memory"},
	}
	if mi, err := os.ReadFile(filepath.Join(root, "proc/self/mountinfo")); err == nil {
		mounts = parseMountinfo(string(mi))
	}
	limit, ok := 0, false
	if hasV2 {
		if m, rel, found := findMount(mounts, "cgroup2", "", v2); found {
			if l, lok := walkUp(root, m.point, rel, readMemoryFile("memory.max")); lok {
				limit, ok = l, true
			}
		}
	}
	if hasV1 {
		if m, rel, found := findMount(mounts, "cgroup", "memory", v1); found {
			if l, lok := walkUp(root, m.point, rel, readMemoryFile("memory.limit_in_bytes")); lok && (!ok || l < limit) {
				limit, ok = l, true
			}
		}
	}
	return int64(limit), ok
}

// readMemoryFile reads a limit file: a byte count, or "max" (v2) / a huge number (v1) for none.
func readMemoryFile(name string) func(dir string) (int, bool, error) {
	return func(dir string) (int, bool, error) {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return 0, false, err
		}
		s := strings.TrimSpace(string(data))
		if s == "max" {
			return 0, false, nil
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 || n >= noMemoryLimit {
			return 0, false, err
		}
		return int(n), true, nil
	}
}
