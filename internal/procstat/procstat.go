// Package procstat measures the CPU and memory of whole process trees from /proc.
//
// The daemon samples every couple of seconds, forever, for every app: to show cpu/mem in
// `corral ls` and to restart an app whose whole tree exceeds max_memory_restart (PM2 looks at the
// main pid only, so a cluster master or a shell wrapper hides its children's memory). The daemon
// must stay small, so this reads /proc directly instead of pulling in gopsutil, and a Sample in
// steady state allocates nothing but the map it returns.
//
// ReadStat and ClockTicks are for callers that want one process's /proc/<pid>/stat: whether it
// is alive, its parent, its CPU time.
package procstat

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"runtime"
	"strconv"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Usage is the resource use of one process tree.
type Usage struct {
	CPU   float64 // percent of one CPU over the interval since the previous Sample, summed over the tree
	RSS   int64   // resident bytes, summed over the tree
	Procs int     // processes in the tree
}

// Sampler measures process trees. It remembers the previous sample, because CPU usage is a rate:
// the CPU time consumed between two samples divided by the time between them.
//
// A Sampler is safe for use by one goroutine.
type Sampler struct {
	procDir  []byte // NUL-terminated, for openat
	clkTck   uint64 // USER_HZ: the unit of the times in /proc/<pid>/stat
	pageSize int64
	maxCPU   float64                    // sanity cap: a tree cannot use more than every CPU
	clock    func() (time.Time, uint64) // now, and the boot clock in clock ticks

	// Scratch space, reused by every Sample so that steady state allocates nothing.
	dirBuf  []byte
	statBuf []byte
	path    []byte
	recs    []rec
	index   map[int]int32 // pid → index in recs
	stack   []int32
	gen     uint32

	// State of the previous sample: the processes that were in a tree (not every process on the
	// machine) and the roots measured.
	prev, cur           map[int]prevProc
	prevRoots, curRoots map[int]uint64 // root pid → its start time, so a reused pid is a new tree
	prevTime            time.Time
	prevBoot            uint64 // boot clock in ticks when the previous scan began
	sampled             bool
}

// rec is one process seen by the current scan.
type rec struct {
	pid, ppid   int
	start       uint64 // start time, in ticks since boot: with pid, identifies a process
	self, child uint64 // utime+stime, and cutime+cstime (its reaped descendants), in ticks
	rss         int64  // pages
	zombie      bool

	firstChild, nextSibling int32 // the parent→children map, as linked lists into recs; -1 ends

	visited   uint32 // gen of the last tree walk that counted this process
	reapedSub uint64 // ticks already counted for vanished descendants attributed to this process
	counted   bool   // contrib is computed (a process can be in two trees when roots nest)
	contrib   uint64 // ticks consumed since the previous sample
}

// prevProc is what a later sample needs to know about a process counted in a tree.
type prevProc struct {
	ppid        int
	start       uint64
	self, child uint64
}

// NewSampler returns a Sampler reading /proc.
func NewSampler() *Sampler {
	return newSampler("/proc", nil)
}

// newSampler lets tests point at a fake /proc and drive the clock; a nil clock is the real one.
func newSampler(procDir string, clock func() (time.Time, uint64)) *Sampler {
	s := &Sampler{
		procDir:   append([]byte(procDir), 0),
		clkTck:    ClockTicks(),
		pageSize:  int64(unix.Getpagesize()),
		maxCPU:    100 * float64(runtime.NumCPU()),
		dirBuf:    make([]byte, 32<<10),
		statBuf:   make([]byte, 4<<10),
		path:      make([]byte, 0, 64),
		index:     make(map[int]int32),
		prev:      make(map[int]prevProc),
		cur:       make(map[int]prevProc),
		prevRoots: make(map[int]uint64),
		curRoots:  make(map[int]uint64),
	}
	s.clock = clock
	if s.clock == nil {
		s.clock = s.bootClock
	}
	return s
}

// atClkTck is AT_CLKTCK from <elf.h>: the auxiliary vector entry in which the kernel passes
// USER_HZ to every program (it is what sysconf(_SC_CLK_TCK) returns in C).
const atClkTck = 17

// ClockTicks returns USER_HZ, the clock ticks per second: the unit of utime, stime and starttime
// in /proc/<pid>/stat (Stat's CPU). It is 100 on every Linux architecture
// corral targets; the auxiliary vector is asked anyway so that a kernel built otherwise is not
// misread by a factor.
func ClockTicks() uint64 {
	if auxv, err := unix.Auxv(); err == nil {
		for _, kv := range auxv {
			if kv[0] == atClkTck && kv[1] > 0 {
				return uint64(kv[1])
			}
		}
	}
	return 100
}

// bootClock returns the time for CPU rates and CLOCK_BOOTTIME in ticks, the clock that
// /proc/<pid>/stat start times count from (including inside time namespaces).
func (s *Sampler) bootClock() (time.Time, uint64) {
	now := time.Now()
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		// Without it no process can be proven to have started since the previous sample; they are
		// then only counted from their second sample on (under-reporting, never over-reporting).
		return now, math.MaxUint64
	}
	return now, uint64(ts.Sec)*s.clkTck + uint64(ts.Nsec)*s.clkTck/1e9
}

// Sample scans /proc once, builds the parent→children map, and returns the usage of each root's
// tree (root included). A root that no longer exists (or has exited and is a zombie waiting to be
// reaped) is absent from the result. The first sample of a tree reports CPU 0 (no interval yet).
//
// CPU time is counted per process, as the growth of its own time (utime+stime) plus the growth of
// the time of its reaped descendants (cutime+cstime) since the previous sample. That way:
//   - a child that exits between samples never makes the total drop (summing the tree's current
//     times and subtracting the previous sum would, giving negative percentages);
//   - short-lived children started and reaped between two samples (a worker running `git` or
//     `convert` every second) are counted, through their parent's cutime;
//   - when a child seen before vanishes, its parent's cutime jumps by the child's whole lifetime;
//     the part already counted in earlier samples is subtracted, so there is no spike.
//
// Children reaped by someone outside the tree (orphans re-parented to init, or a parent that sets
// SIGCHLD to SIG_IGN) take their last interval with them: that interval is under-reported, never
// negative. Percentages are capped at 100 × the number of CPUs as a last guard.
//
// RSS is summed over the tree, so pages shared between processes (a cluster's code, copy-on-write
// memory after fork) count once per process, as in top and PM2; it errs towards restarting early.
// Procs does not count zombies, though their CPU time is accounted until they are reaped.
//
// If /proc cannot be read at all, every root is absent.
func (s *Sampler) Sample(roots []int) map[int]Usage {
	now, boot := s.clock()
	s.scan()
	s.link()
	if s.sampled {
		s.attributeVanished()
	}
	elapsed := now.Sub(s.prevTime).Seconds()

	out := make(map[int]Usage, len(roots))
	for _, root := range roots {
		i, ok := s.index[root]
		if !ok || s.recs[i].zombie {
			continue
		}
		if _, dup := out[root]; dup {
			continue
		}
		ticks, pages, procs := s.walk(i)
		u := Usage{RSS: pages * s.pageSize, Procs: procs}
		start := s.recs[i].start
		if prevStart, ok := s.prevRoots[root]; ok && prevStart == start && elapsed > 0 {
			u.CPU = min(float64(ticks)/float64(s.clkTck)/elapsed*100, s.maxCPU)
		}
		s.curRoots[root] = start
		out[root] = u
	}

	s.prev, s.cur = s.cur, s.prev
	clear(s.cur)
	s.prevRoots, s.curRoots = s.curRoots, s.prevRoots
	clear(s.curRoots)
	s.prevTime, s.prevBoot, s.sampled = now, boot, true
	return out
}

// walk sums the tree rooted at recs[root]: CPU ticks since the previous sample, resident pages
// and live processes. It records every process of the tree for the next sample.
func (s *Sampler) walk(root int32) (ticks uint64, pages int64, procs int) {
	s.gen++
	s.stack = append(s.stack[:0], root)
	s.recs[root].visited = s.gen
	for len(s.stack) > 0 {
		i := s.stack[len(s.stack)-1]
		s.stack = s.stack[:len(s.stack)-1]
		r := &s.recs[i]
		ticks += s.contrib(r)
		pages += r.rss
		if !r.zombie {
			procs++
		}
		for c := r.firstChild; c >= 0; c = s.recs[c].nextSibling {
			// The visited mark also guards against a cycle, which a scan racing with exits and
			// pid reuse could in theory produce.
			if s.recs[c].visited != s.gen {
				s.recs[c].visited = s.gen
				s.stack = append(s.stack, c)
			}
		}
	}
	return ticks, pages, procs
}

// contrib returns the CPU ticks r consumed since the previous sample and remembers r for the next.
func (s *Sampler) contrib(r *rec) uint64 {
	if r.counted {
		return r.contrib
	}
	r.counted = true
	switch p, ok := s.prev[r.pid]; {
	case ok && p.start == r.start:
		r.contrib = sub(r.self, p.self) + sub(sub(r.child, p.child), r.reapedSub)
	case s.sampled && r.start >= s.prevBoot:
		// Started after the previous scan began: everything it used is in the interval.
		r.contrib = r.self + r.child
	default:
		// Not in a tree last time yet older than the previous sample: no baseline, so count from
		// the next sample on rather than charge its whole past to this interval.
		r.contrib = 0
	}
	s.cur[r.pid] = prevProc{ppid: r.ppid, start: r.start, self: r.self, child: r.child}
	return r.contrib
}

// attributeVanished finds the processes counted in the previous sample that are gone now and
// charges what was already counted for them to their nearest surviving ancestor, whose cutime
// absorbs their whole lifetime when it (or a descendant that then exited too) reaps them.
func (s *Sampler) attributeVanished() {
	for pid, p := range s.prev {
		if i, ok := s.index[pid]; ok && s.recs[i].start == p.start {
			continue
		}
		anc := p.ppid
		for range len(s.prev) { // bounded: the previous ppid links cannot be trusted to be acyclic
			ap, ok := s.prev[anc]
			if !ok {
				break
			}
			if i, ok := s.index[anc]; ok && s.recs[i].start == ap.start {
				s.recs[i].reapedSub += p.self + p.child
				break
			}
			anc = ap.ppid
		}
	}
}

func sub(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}

// link builds the parent→children lists over recs.
func (s *Sampler) link() {
	for i := range s.recs {
		r := &s.recs[i]
		if p, ok := s.index[r.ppid]; ok && int(p) != i {
			r.nextSibling = s.recs[p].firstChild
			s.recs[p].firstChild = int32(i)
		}
	}
}

// scan reads /proc/<pid>/stat of every process into recs. Processes that vanish between the
// directory listing and the read are skipped, as are unparsable entries.
func (s *Sampler) scan() {
	s.recs = s.recs[:0]
	clear(s.index)
	dirfd, err := openat(unix.AT_FDCWD, s.procDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
	if err != nil {
		return
	}
	defer unix.Close(dirfd)
	for {
		n, err := unix.Getdents(dirfd, s.dirBuf)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			return
		}
		// struct linux_dirent64 { u64 d_ino; s64 d_off; u16 d_reclen; u8 d_type; char d_name[]; }
		for off := 0; off+19 < n; {
			reclen := int(binary.NativeEndian.Uint16(s.dirBuf[off+16:]))
			if reclen == 0 || off+reclen > n {
				break
			}
			name := s.dirBuf[off+19 : off+reclen]
			off += reclen
			if end := bytes.IndexByte(name, 0); end >= 0 {
				name = name[:end]
			}
			if pid, ok := atoiPid(name); ok {
				s.read(dirfd, pid, name)
			}
		}
	}
}

// read parses <procDir>/<name>/stat into a new rec.
func (s *Sampler) read(dirfd, pid int, name []byte) {
	s.path = append(append(append(s.path[:0], name...), "/stat"...), 0)
	fd, err := openat(dirfd, s.path, unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		return // vanished since the listing
	}
	n := 0
	for n < len(s.statBuf) {
		m, err := unix.Read(fd, s.statBuf[n:])
		if err != nil || m <= 0 {
			break
		}
		n += m
	}
	unix.Close(fd)
	if n == len(s.statBuf) {
		return // not a stat line the kernel would write (they are a few hundred bytes)
	}
	r, ok := parseStat(s.statBuf[:n])
	if !ok {
		return
	}
	r.pid = pid
	r.firstChild, r.nextSibling = -1, -1
	s.index[pid] = int32(len(s.recs))
	s.recs = append(s.recs, r)
}

// openat opens a NUL-terminated path. unix.Openat takes a string and copies it to add the NUL,
// which would be two allocations per process per sample; this reuses the caller's buffer.
func openat(dirfd int, path []byte, flags int) (int, error) {
	fd, _, errno := unix.Syscall6(unix.SYS_OPENAT, uintptr(dirfd), uintptr(unsafe.Pointer(&path[0])), uintptr(flags), 0, 0, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}

// Stat is what /proc/<pid>/stat says of one process, as far as callers outside the sampler
// need it.
type Stat struct {
	PPid   int    // the parent's pid
	Exited bool   // state Z (a zombie: exited, not reaped yet) or X (dead)
	CPU    uint64 // utime+stime: the process's own CPU time, in clock ticks (see ClockTicks)
	// StartTicks is when the process started, in clock ticks since boot: with the pid, it
	// identifies a process (a pid alone can be reused by another).
	StartTicks uint64
}

// ReadStat reads and parses /proc/<pid>/stat. The error is the read's (fs.ErrNotExist when there
// is no such process) or says that the line does not parse.
func ReadStat(pid int) (Stat, error) {
	path := "/proc/" + strconv.Itoa(pid) + "/stat"
	raw, err := os.ReadFile(path)
	if err != nil {
		return Stat{}, err
	}
	r, ok := parseStat(raw)
	if !ok {
		return Stat{}, fmt.Errorf("%s: cannot parse %q", path, raw)
	}
	return Stat{PPid: r.ppid, Exited: r.zombie, CPU: r.self, StartTicks: r.start}, nil
}

// parseStat reads the fields of a /proc/<pid>/stat line that Sample needs:
//
//	pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
//	utime stime cutime cstime priority nice threads itrealvalue starttime vsize rss ...
//
// comm is the executable name, chosen by the process (prctl, or simply naming a script
// "a) b (c"): it may contain spaces and parentheses, so the fields start after the last ')'.
func parseStat(b []byte) (r rec, ok bool) {
	end := bytes.LastIndexByte(b, ')')
	if end < 0 {
		return rec{}, false
	}
	b = b[end+1:]
	const (
		fState     = 3
		fPPid      = 4
		fUTime     = 14
		fSTime     = 15
		fCUTime    = 16
		fCSTime    = 17
		fStartTime = 22
		fRSS       = 24
	)
	field := 2 // comm
	for field < fRSS {
		for len(b) > 0 && b[0] == ' ' {
			b = b[1:]
		}
		if len(b) == 0 {
			return rec{}, false
		}
		tok := b
		if sp := bytes.IndexByte(b, ' '); sp >= 0 {
			tok, b = b[:sp], b[sp:]
		} else {
			b = nil
		}
		field++
		var v int64
		switch field {
		case fState:
			r.zombie = tok[0] == 'Z' || tok[0] == 'X'
			continue
		case fPPid, fUTime, fSTime, fCUTime, fCSTime, fStartTime, fRSS:
			if v, ok = atoi(tok); !ok {
				return rec{}, false
			}
			v = max(v, 0)
		default:
			continue
		}
		switch field {
		case fPPid:
			r.ppid = int(v)
		case fUTime, fSTime:
			r.self += uint64(v)
		case fCUTime, fCSTime:
			r.child += uint64(v)
		case fStartTime:
			r.start = uint64(v)
		case fRSS:
			r.rss = v
		}
	}
	return r, true
}

// atoi parses a decimal integer, possibly negative, without converting to a string.
func atoi(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 18 { // 18 digits cannot overflow int64; no /proc value needs more
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	return v, true
}

// atoiPid parses a /proc entry name that is a pid; other entries (self, sys, ...) are not.
func atoiPid(b []byte) (int, bool) {
	if len(b) == 0 || b[0] == '-' {
		return 0, false
	}
	v, ok := atoi(b)
	return int(v), ok && v > 0
}

// PIDsWithEnv lists the live processes whose environment sets name to value exactly (not a
// variable whose name ends in name): how tests and the bench find every process a corral
// home started, since apps inherit the CLI's environment. Zombies have no environment left,
// so they are not listed; nor is this process.
func PIDsWithEnv(name, value string) []int {
	needle := []byte("\x00" + name + "=" + value + "\x00")
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		raw, err := os.ReadFile("/proc/" + ent.Name() + "/environ")
		if err != nil {
			continue
		}
		if bytes.Contains(append(append([]byte{0}, raw...), 0), needle) {
			out = append(out, pid)
		}
	}
	return out
}
