package procstat

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	// Fields after comm, as Linux 6.x prints them, with the values parseStat reads marked by the
	// format verbs: state, ppid, utime, stime, cutime, cstime, starttime, rss.
	const tail = "%s %d 4242 4242 0 -1 4194560 1234 0 0 0 %d %d %d %d 20 0 3 0 %d 1234567 %d 18446744073709551615 1 1 0 0 0 0 0 0 2 0 0 0 17 1 0 0 0 0 0"
	line := func(comm, state string, ppid, ut, st, cut, cst, start, rss int) string {
		return fmt.Sprintf("4242 (%s) "+tail+"\n", comm, state, ppid, ut, st, cut, cst, start, rss)
	}
	tests := []struct {
		name string
		in   string
		want rec
		ok   bool
	}{
		{"plain", line("node", "S", 1, 10, 5, 7, 3, 9000, 2560),
			rec{ppid: 1, self: 15, child: 10, start: 9000, rss: 2560}, true},
		{"comm with spaces", line("my app", "R", 77, 1, 2, 0, 0, 5, 6),
			rec{ppid: 77, self: 3, start: 5, rss: 6}, true},
		{"comm with parentheses", line("a) S 999 (b", "S", 77, 1, 2, 0, 0, 5, 6),
			rec{ppid: 77, self: 3, start: 5, rss: 6}, true},
		{"comm is a lone paren", line(")", "S", 12, 0, 0, 0, 0, 1, 1),
			rec{ppid: 12, start: 1, rss: 1}, true},
		{"zombie", line("sh", "Z", 12, 4, 4, 0, 0, 1, 0),
			rec{ppid: 12, self: 8, start: 1, zombie: true}, true},
		{"dead", line("sh", "X", 12, 4, 4, 0, 0, 1, 0),
			rec{ppid: 12, self: 8, start: 1, zombie: true}, true},
		{"kernel thread", line("kworker/0:1-events", "I", 2, 0, 30, 0, 0, 100, 0),
			rec{ppid: 2, self: 30, start: 100}, true},
		{"no closing paren", "4242 (node S 1 2 3", rec{}, false},
		{"truncated", "4242 (node) S 1 4242 4242 0 -1 4194560 1234 0 0 0 10 5", rec{}, false},
		{"garbage number", "4242 (node) S 1 4242 4242 0 -1 4194560 1234 0 0 0 1x0 5 7 3 20 0 3 0 9000 1 2560", rec{}, false},
		{"empty", "", rec{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseStat([]byte(tt.in))
			if ok != tt.ok || got != tt.want {
				t.Errorf("parseStat(%q) = %+v, %v; want %+v, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestAtoiPid(t *testing.T) {
	tests := []struct {
		in   string
		want int
		ok   bool
	}{
		{"1", 1, true},
		{"4194304", 4194304, true},
		{"self", 0, false},
		{"thread-self", 0, false},
		{"0", 0, false},
		{"-1", 0, false},
		{"", 0, false},
		{"12a", 0, false},
		{"9999999999999999999999", 0, false},
	}
	for _, tt := range tests {
		if got, ok := atoiPid([]byte(tt.in)); got != tt.want || ok != tt.ok {
			t.Errorf("atoiPid(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// fake is one process of a fake /proc.
type fake struct {
	pid, ppid   int
	state       string // "S" unless set
	self, child int    // utime and cutime; stime and cstime are left 0
	start       int
	rss         int // pages
}

// step is one Sample over a fake /proc.
type step struct {
	at    time.Duration // since the first sample
	boot  int           // boot clock in ticks
	procs []fake
	roots []int
	want  map[int]Usage
}

// writeFakeProc replaces the contents of dir with a /proc holding procs (stat files only).
func writeFakeProc(t *testing.T, dir string, procs []fake) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	// Entries that are not processes must be ignored.
	for _, name := range []string{"self", "sys", "1x"} {
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range procs {
		state := p.state
		if state == "" {
			state = "S"
		}
		line := fmt.Sprintf("%d (w (%d)) %s %d 1 1 0 -1 0 0 0 0 0 %d 0 %d 0 20 0 1 0 %d 1000 %d 0\n",
			p.pid, p.pid, state, p.ppid, p.self, p.child, p.start, p.rss)
		d := filepath.Join(dir, strconv.Itoa(p.pid))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "stat"), []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSampleAccounting drives a Sampler over fake /proc snapshots one second apart, with 100
// ticks a second: one tick in an interval is 1 %.
func TestSampleAccounting(t *testing.T) {
	const page = 4096
	tests := []struct {
		name  string
		steps []step
	}{
		{"tree sums descendants, first sample has no CPU", []step{
			{at: 0, boot: 1000, roots: []int{10}, procs: []fake{
				{pid: 1, ppid: 0, self: 5000, start: 1},
				{pid: 10, ppid: 1, self: 100, start: 500, rss: 100},
				{pid: 11, ppid: 10, self: 50, start: 600, rss: 20},
				{pid: 12, ppid: 11, self: 0, start: 700, rss: 3},
				{pid: 99, ppid: 1, self: 1000, start: 800, rss: 1000}, // not in the tree
			}, want: map[int]Usage{10: {CPU: 0, RSS: 123 * page, Procs: 3}}},
			{at: time.Second, boot: 1100, roots: []int{10}, procs: []fake{
				{pid: 1, ppid: 0, self: 5100, start: 1},
				{pid: 10, ppid: 1, self: 110, start: 500, rss: 100},
				{pid: 11, ppid: 10, self: 90, start: 600, rss: 20},
				{pid: 12, ppid: 11, self: 10, start: 700, rss: 3},
				{pid: 99, ppid: 1, self: 2000, start: 800, rss: 1000},
			}, want: map[int]Usage{10: {CPU: 60, RSS: 123 * page, Procs: 3}}},
		}},
		{"child exits and is reaped by the root: no drop, no spike", []step{
			{at: 0, boot: 1000, roots: []int{10}, procs: []fake{
				{pid: 10, ppid: 1, self: 100, start: 500},
				{pid: 11, ppid: 10, self: 50, start: 600},
			}, want: map[int]Usage{10: {Procs: 2}}},
			{at: time.Second, boot: 1100, roots: []int{10}, procs: []fake{
				{pid: 10, ppid: 1, self: 100, start: 500},
				{pid: 11, ppid: 10, self: 80, start: 600},
			}, want: map[int]Usage{10: {CPU: 30, Procs: 2}}},
			// 11 ran 40 more ticks, exited and was reaped: 10's cutime holds its 120.
			{at: 2 * time.Second, boot: 1200, roots: []int{10}, procs: []fake{
				{pid: 10, ppid: 1, self: 100, child: 120, start: 500},
			}, want: map[int]Usage{10: {CPU: 40, Procs: 1}}},
			{at: 3 * time.Second, boot: 1300, roots: []int{10}, procs: []fake{
				{pid: 10, ppid: 1, self: 105, child: 120, start: 500},
			}, want: map[int]Usage{10: {CPU: 5, Procs: 1}}},
		}},
		{"child reaped outside the tree: under-reported, not negative", []step{
			{at: 0, boot: 1000, roots: []int{10}, procs: []fake{
				{pid: 10, ppid: 1, self: 100, start: 500},
				{pid: 11, ppid: 10, self: 5000, start: 600},
			}, want: map[int]Usage{10: {Procs: 2}}},
			{at: time.Second, boot: 1100, roots: []int{10}, procs: []fake{
				{pid: 10, ppid: 1, self: 110, start: 500},
			}, want: map[int]Usage{10: {CPU: 10, Procs: 1}}},
		}},
		{"short-lived children between samples count through cutime", []step{
			{at: 0, boot: 1000, roots: []int{10}, procs: []fake{
				{pid: 10, ppid: 1, self: 0, start: 500},
			}, want: map[int]Usage{10: {Procs: 1}}},
			{at: time.Second, boot: 1100, roots: []int{10}, procs: []fake{
				{pid: 10, ppid: 1, self: 1, child: 75, start: 500},
			}, want: map[int]Usage{10: {CPU: 76, Procs: 1}}},
		}},
		{"new child counts from its start; an older newcomer from its second sample", []step{
			{at: 0, boot: 1000, roots: []int{10}, procs: []fake{
				{pid: 10, ppid: 1, self: 0, start: 500},
			}, want: map[int]Usage{10: {Procs: 1}}},
			{at: time.Second, boot: 1100, roots: []int{10}, procs: []fake{
				{pid: 10, ppid: 1, self: 0, start: 500},
				{pid: 13, ppid: 10, self: 30, start: 1050},
				{pid: 14, ppid: 10, self: 5000, start: 200}, // adopted, not born here
			}, want: map[int]Usage{10: {CPU: 30, Procs: 3}}},
			{at: 2 * time.Second, boot: 1200, roots: []int{10}, procs: []fake{
				{pid: 10, ppid: 1, self: 0, start: 500},
				{pid: 13, ppid: 10, self: 40, start: 1050},
				{pid: 14, ppid: 10, self: 5020, start: 200},
			}, want: map[int]Usage{10: {CPU: 30, Procs: 3}}},
		}},
		{"a chain of descendants vanishes, each reaped by its parent", []step{
			{at: 0, boot: 1000, roots: []int{10}, procs: []fake{
				{pid: 10, ppid: 1, self: 0, start: 500},
				{pid: 11, ppid: 10, self: 100, start: 600},
				{pid: 12, ppid: 11, self: 200, start: 700},
			}, want: map[int]Usage{10: {Procs: 3}}},
			// 12 ran to 230 and was reaped by 11, which ran to 120 and was reaped by 10.
			{at: time.Second, boot: 1100, roots: []int{10}, procs: []fake{
				{pid: 10, ppid: 1, self: 0, child: 350, start: 500},
			}, want: map[int]Usage{10: {CPU: 50, Procs: 1}}},
		}},
		{"a child's pid is reused by a new child", []step{
			{at: 0, boot: 1000, roots: []int{10}, procs: []fake{
				{pid: 10, ppid: 1, self: 0, start: 500},
				{pid: 11, ppid: 10, self: 300, start: 600},
			}, want: map[int]Usage{10: {Procs: 2}}},
			{at: time.Second, boot: 1100, roots: []int{10}, procs: []fake{
				{pid: 10, ppid: 1, self: 0, child: 310, start: 500},
				{pid: 11, ppid: 10, self: 20, start: 1050},
			}, want: map[int]Usage{10: {CPU: 30, Procs: 2}}},
		}},
		{"a root's pid reused is a new tree", []step{
			{at: 0, boot: 1000, roots: []int{10}, procs: []fake{
				{pid: 10, ppid: 1, self: 0, start: 500},
			}, want: map[int]Usage{10: {Procs: 1}}},
			{at: time.Second, boot: 1100, roots: []int{10}, procs: []fake{
				{pid: 10, ppid: 1, self: 50, start: 1050},
			}, want: map[int]Usage{10: {Procs: 1}}},
			{at: 2 * time.Second, boot: 1200, roots: []int{10}, procs: []fake{
				{pid: 10, ppid: 1, self: 60, start: 1050},
			}, want: map[int]Usage{10: {CPU: 10, Procs: 1}}},
		}},
		{"a root measured for the first time has no CPU yet", []step{
			{at: 0, boot: 1000, roots: []int{10}, procs: []fake{
				{pid: 10, ppid: 1, self: 0, start: 500},
				{pid: 20, ppid: 1, self: 0, start: 999},
			}, want: map[int]Usage{10: {Procs: 1}}},
			{at: time.Second, boot: 1100, roots: []int{10, 20}, procs: []fake{
				{pid: 10, ppid: 1, self: 10, start: 500},
				{pid: 20, ppid: 1, self: 70, start: 999},
			}, want: map[int]Usage{10: {CPU: 10, Procs: 1}, 20: {Procs: 1}}},
		}},
		{"dead, zombie and unknown roots are absent; zombies are not processes", []step{
			{at: 0, boot: 1000, roots: []int{10, 20, 30, 40}, procs: []fake{
				{pid: 10, ppid: 1, start: 500},
				{pid: 11, ppid: 10, state: "Z", start: 600},
				{pid: 20, ppid: 1, state: "Z", start: 500},
				{pid: 30, ppid: 1, start: 500},
			}, want: map[int]Usage{10: {Procs: 1}, 30: {Procs: 1}}},
			{at: time.Second, boot: 1100, roots: []int{10, 20, 30, 40}, procs: []fake{
				{pid: 10, ppid: 1, start: 500},
			}, want: map[int]Usage{10: {Procs: 1}}},
		}},
		{"nested roots each see their own tree", []step{
			{at: 0, boot: 1000, roots: []int{10, 11, 10}, procs: []fake{
				{pid: 10, ppid: 1, start: 500, rss: 1},
				{pid: 11, ppid: 10, start: 600, rss: 2},
				{pid: 12, ppid: 11, start: 700, rss: 4},
			}, want: map[int]Usage{10: {Procs: 3, RSS: 7 * page}, 11: {Procs: 2, RSS: 6 * page}}},
			{at: time.Second, boot: 1100, roots: []int{11, 10}, procs: []fake{
				{pid: 10, ppid: 1, self: 1, start: 500, rss: 1},
				{pid: 11, ppid: 10, self: 10, start: 600, rss: 2},
				{pid: 12, ppid: 11, self: 100, start: 700, rss: 4},
			}, want: map[int]Usage{10: {CPU: 111, Procs: 3, RSS: 7 * page}, 11: {CPU: 110, Procs: 2, RSS: 6 * page}}},
		}},
		{"an accounting glitch is capped at every CPU busy", []step{
			{at: 0, boot: 1000, roots: []int{10}, procs: []fake{
				{pid: 10, ppid: 1, start: 500},
			}, want: map[int]Usage{10: {Procs: 1}}},
			// A child the scan never saw, with a long life, reaped by the root.
			{at: time.Second, boot: 1100, roots: []int{10}, procs: []fake{
				{pid: 10, ppid: 1, child: 1_000_000, start: 500},
			}, want: map[int]Usage{10: {CPU: 400, Procs: 1}}},
		}},
		{"half-second interval", []step{
			{at: 0, boot: 1000, roots: []int{10}, procs: []fake{
				{pid: 10, ppid: 1, start: 500},
			}, want: map[int]Usage{10: {Procs: 1}}},
			{at: 500 * time.Millisecond, boot: 1050, roots: []int{10}, procs: []fake{
				{pid: 10, ppid: 1, self: 25, start: 500},
			}, want: map[int]Usage{10: {CPU: 50, Procs: 1}}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			t0 := time.Now()
			var cur step
			s := newSampler(dir, func() (time.Time, uint64) { return t0.Add(cur.at), uint64(cur.boot) })
			s.clkTck, s.pageSize, s.maxCPU = 100, page, 400
			for i, st := range tt.steps {
				cur = st
				writeFakeProc(t, dir, st.procs)
				got := s.Sample(st.roots)
				if !equalUsage(got, st.want) {
					t.Errorf("step %d: Sample(%v) = %v, want %v", i, st.roots, got, st.want)
				}
			}
		})
	}
}

func equalUsage(a, b map[int]Usage) bool {
	if len(a) != len(b) {
		return false
	}
	for k, u := range a {
		w, ok := b[k]
		if !ok || u.RSS != w.RSS || u.Procs != w.Procs || u.CPU < w.CPU-1e-9 || u.CPU > w.CPU+1e-9 {
			return false
		}
	}
	return true
}

func TestSampleWithoutProc(t *testing.T) {
	s := newSampler(filepath.Join(t.TempDir(), "missing"), nil)
	if got := s.Sample([]int{os.Getpid()}); len(got) != 0 {
		t.Errorf("Sample without /proc = %v, want empty", got)
	}
}
