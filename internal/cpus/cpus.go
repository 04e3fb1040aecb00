// Package cpus decides how many workers `instances: 'max'` means.
//
// PM2 uses os.cpus().length, which is the machine's CPU count: in a container limited to 2 CPUs
// on a 48-core host it starts 48 workers that then fight over 2 CPUs' worth of quota (PM2 issue
// #4347). corral instead counts the CPUs this process may actually use: its affinity mask
// (taskset, cpusets) further limited by the cgroup CPU bandwidth quota (docker --cpus,
// Kubernetes limits.cpu, systemd CPUQuota=).
package cpus

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Usable returns the number of CPUs this process may run on: the size of its affinity mask
// (sched_getaffinity), further limited by the cgroup CPU quota (cgroup v2 cpu.max of this
// process's cgroup and its ancestors; cgroup v1 cpu.cfs_quota_us / cpu.cfs_period_us), rounded up;
// at least 1.
//
// It reads the kernel state at every call (unlike runtime.NumCPU, which is fixed at start-up), so
// a limit changed while the daemon runs is seen at the next start of an app. Any file that cannot
// be read or parsed is treated as "no limit from there": a quota we cannot see must not stop apps
// from starting.
func Usable() int {
	n := affinityCount()
	if limit, ok := cgroupLimit("/"); ok && limit < n {
		n = limit
	}
	return max(n, 1)
}

// Resolve turns a declared instance count into a number of workers, as PM2 does but with Usable:
// n > 0 → n; 0 ("max") → usable; n < 0 → usable + n ("-1" = all CPUs but one); any result < 1 → 1.
func Resolve(declared, usable int) int {
	n := declared
	switch {
	case declared == 0:
		n = usable
	case declared < 0:
		n = usable + declared
	}
	return max(n, 1)
}

// affinityCount returns the number of CPUs in this thread's affinity mask. The mask buffer grows
// until the kernel accepts it (EINVAL means "your buffer is smaller than the kernel's cpumask"),
// so machines with more than 1024 CPUs are counted right too.
func affinityCount() int {
	for size := 1024; size <= 1<<20; size *= 2 {
		set := unix.NewCPUSet(size)
		err := unix.SchedGetaffinityDynamic(0, set)
		if err == nil {
			return set.Count()
		}
		if !errors.Is(err, unix.EINVAL) {
			break
		}
	}
	// Only reachable in exotic sandboxes that forbid the syscall: the runtime's own count (also
	// the affinity mask, read at start-up) is the best remaining answer.
	return runtime.NumCPU()
}

// cgroupLimit returns the CPU bandwidth limit that cgroups impose on this process, in whole CPUs
// rounded up, reading /proc/self/cgroup, /proc/self/mountinfo and the cgroup files below root
// (normally "/"; tests point it at testdata). ok is false when no quota applies or none could be
// read.
//
// Both hierarchies are consulted and the smallest limit wins: on hybrid hosts cgroup v2 is
// mounted (at /sys/fs/cgroup/unified) but the cpu controller lives in v1, and whichever
// hierarchy holds a quota enforces it. Within a hierarchy the walk goes from this process's
// cgroup up to the top of the mount, because a parent's quota caps all its descendants.
func cgroupLimit(root string) (limit int, ok bool) {
	data, err := os.ReadFile(filepath.Join(root, "proc/self/cgroup"))
	if err != nil {
		return 0, false
	}
	groups := parseProcCgroup(string(data))
	var mounts []mount
	if mi, err := os.ReadFile(filepath.Join(root, "proc/self/mountinfo")); err == nil {
		mounts = parseMountinfo(string(mi))
	} else {
		mounts = defaultMounts
	}

	if groups.hasV2 {
		if m, rel, found := findMount(mounts, "cgroup2", "", groups.v2); found {
			if l, lok := walkUp(root, m.point, rel, readCPUMax); lok && (!ok || l < limit) {
				limit, ok = l, true
			}
		}
	}
	if groups.hasV1 {
		if m, rel, found := findMount(mounts, "cgroup", "cpu", groups.v1CPU); found {
			if l, lok := walkUp(root, m.point, rel, readCFSQuota); lok && (!ok || l < limit) {
				limit, ok = l, true
			}
		}
	}
	return limit, ok
}

// defaultMounts is assumed when /proc/self/mountinfo cannot be read: the conventional places
// systemd and container runtimes mount the hierarchies.
var defaultMounts = []mount{
	{root: "/", point: "/sys/fs/cgroup", fstype: "cgroup2"},
	{root: "/", point: "/sys/fs/cgroup/cpu", fstype: "cgroup", superOpts: "rw,cpu,cpuacct"},
}

// walkUp reads the limit of the cgroup directory mountPoint/rel and of each ancestor up to and
// including mountPoint, and returns the smallest. A level without a limit file (the root cgroup
// has no cpu.max) or with an unreadable one imposes nothing.
func walkUp(root, mountPoint, rel string, read func(dir string) (int, bool, error)) (limit int, ok bool) {
	top := filepath.Join(root, mountPoint)
	dir := filepath.Join(top, rel)
	for {
		if l, limited, err := read(dir); err == nil && limited && (!ok || l < limit) {
			limit, ok = l, true
		}
		if dir == top || len(dir) <= len(top) {
			return limit, ok
		}
		dir = filepath.Dir(dir)
	}
}

func readCPUMax(dir string) (int, bool, error) {
	data, err := os.ReadFile(filepath.Join(dir, "cpu.max"))
	if err != nil {
		return 0, false, err
	}
	return parseCPUMax(string(data))
}

func readCFSQuota(dir string) (int, bool, error) {
	quota, err := os.ReadFile(filepath.Join(dir, "cpu.cfs_quota_us"))
	if err != nil {
		return 0, false, err
	}
	period, err := os.ReadFile(filepath.Join(dir, "cpu.cfs_period_us"))
	if err != nil {
		return 0, false, err
	}
	return parseCFSQuota(string(quota), string(period))
}

// parseCPUMax reads a cgroup v2 cpu.max file: "$MAX $PERIOD", where $MAX is "max" for no limit.
// The kernel always prints both fields; a lone $MAX (the form accepted on write) is read with the
// kernel's default period of 100000 µs.
func parseCPUMax(s string) (cpus int, limited bool, err error) {
	f := strings.Fields(s)
	if len(f) == 0 || len(f) > 2 {
		return 0, false, fmt.Errorf("cpu.max %q: want \"$MAX $PERIOD\"", strings.TrimSpace(s))
	}
	if f[0] == "max" {
		return 0, false, nil
	}
	period := "100000"
	if len(f) == 2 {
		period = f[1]
	}
	cpus, err = quotaCPUs(f[0], period)
	if err != nil {
		return 0, false, fmt.Errorf("cpu.max %q: %w", strings.TrimSpace(s), err)
	}
	return cpus, true, nil
}

// parseCFSQuota reads the cgroup v1 pair cpu.cfs_quota_us / cpu.cfs_period_us; a quota of -1
// means no limit.
func parseCFSQuota(quota, period string) (cpus int, limited bool, err error) {
	q := strings.TrimSpace(quota)
	if n, err := strconv.ParseInt(q, 10, 64); err == nil && n < 0 {
		return 0, false, nil
	}
	cpus, err = quotaCPUs(q, strings.TrimSpace(period))
	if err != nil {
		return 0, false, fmt.Errorf("cpu.cfs_quota_us %q / cpu.cfs_period_us %q: %w", q, strings.TrimSpace(period), err)
	}
	return cpus, true, nil
}

// quotaCPUs converts a bandwidth quota into whole CPUs, rounding up: 150000/100000 (1.5 CPUs)
// gives 2 workers, since one worker would leave half a CPU of quota unused, while a 0.5 CPU quota
// still gives 1.
func quotaCPUs(quota, period string) (int, error) {
	q, err := strconv.ParseInt(quota, 10, 64)
	if err != nil || q <= 0 {
		return 0, fmt.Errorf("quota %q is not a positive number of microseconds", quota)
	}
	p, err := strconv.ParseInt(period, 10, 64)
	if err != nil || p <= 0 {
		return 0, fmt.Errorf("period %q is not a positive number of microseconds", period)
	}
	n := q / p
	if q%p != 0 {
		n++
	}
	return int(min(n, int64(1<<30))), nil
}

// procCgroup is what /proc/self/cgroup says about the hierarchies that matter here.
type procCgroup struct {
	v2    string // path in the unified hierarchy ("0::/path")
	hasV2 bool
	v1CPU string // path in the v1 hierarchy that has the cpu controller ("4:cpu,cpuacct:/path")
	hasV1 bool
}

// parseProcCgroup reads /proc/<pid>/cgroup lines "hierarchy-ID:controller-list:cgroup-path".
// Malformed lines are ignored: the file is produced by the kernel, and an odd line must not hide
// the others.
func parseProcCgroup(s string) procCgroup {
	var g procCgroup
	for line := range strings.Lines(s) {
		parts := strings.SplitN(strings.TrimRight(line, "\n"), ":", 3)
		if len(parts) != 3 {
			continue
		}
		id, controllers, path := parts[0], parts[1], parts[2]
		if id == "0" && controllers == "" {
			g.v2, g.hasV2 = path, true
			continue
		}
		for c := range strings.SplitSeq(controllers, ",") {
			if c == "cpu" {
				g.v1CPU, g.hasV1 = path, true
			}
		}
	}
	return g
}

// mount is one cgroup filesystem from /proc/self/mountinfo.
type mount struct {
	root      string // the cgroup mounted there, as seen in /proc/self/cgroup ("/" usually)
	point     string // where it is mounted
	fstype    string // "cgroup2" or "cgroup"
	superOpts string // for v1, includes the controllers ("rw,cpu,cpuacct")
}

// parseMountinfo extracts the cgroup mounts from /proc/self/mountinfo lines:
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - cgroup cgroup rw,cpu,cpuacct
//	(1)(2)(3)   (4)   (5)      (6)      (7)   (8) (9)    (10)        (11)
//
// The optional fields (7) vary in number, so the filesystem type is found after the " - "
// separator.
func parseMountinfo(s string) []mount {
	var ms []mount
	for line := range strings.Lines(s) {
		pre, post, found := strings.Cut(strings.TrimRight(line, "\n"), " - ")
		if !found {
			continue
		}
		a, b := strings.Fields(pre), strings.Fields(post)
		if len(a) < 6 || len(b) < 3 || (b[0] != "cgroup" && b[0] != "cgroup2") {
			continue
		}
		ms = append(ms, mount{root: unescapeMountinfo(a[3]), point: unescapeMountinfo(a[4]), fstype: b[0], superOpts: b[2]})
	}
	return ms
}

// unescapeMountinfo undoes the octal escapes (\040 for space, \011, \012, \134) the kernel
// uses for paths in mountinfo.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// findMount picks the mount of the given type (and, for v1, carrying controller) whose root
// contains cgroupPath, and returns cgroupPath relative to that mount. Without a cgroup namespace
// a container sees its own cgroup ("/docker/<id>") mounted as the root of /sys/fs/cgroup/cpu,
// so the mount root must be stripped rather than the path appended to the mount point. A path
// outside every mount's root (e.g. "/../x" from a foreign cgroup namespace) finds nothing: better
// no limit than someone else's.
func findMount(ms []mount, fstype, controller, cgroupPath string) (m mount, rel string, ok bool) {
	for _, m := range ms {
		if m.fstype != fstype || (controller != "" && !hasOpt(m.superOpts, controller)) {
			continue
		}
		if rel, ok := relativeTo(cgroupPath, m.root); ok {
			return m, rel, true
		}
	}
	return mount{}, "", false
}

func hasOpt(opts, want string) bool {
	for o := range strings.SplitSeq(opts, ",") {
		if o == want {
			return true
		}
	}
	return false
}

// relativeTo returns path relative to root when path is root or below it.
func relativeTo(path, root string) (string, bool) {
	for seg := range strings.SplitSeq(path, "/") {
		if seg == ".." {
			return "", false
		}
	}
	if root == "/" {
		return strings.TrimPrefix(path, "/"), true
	}
	if path == root {
		return "", true
	}
	if rest, ok := strings.CutPrefix(path, root+"/"); ok {
		return rest, true
	}
	return "", false
}
