package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLogFileNames: PM2's names: <name>-out.log and <name>-error.log for one fork process,
// a -<id> suffix per process with -i, one pair of files with --merge-logs.
func TestLogFileNames(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sleeper.sh")
	e.ok("start", "sleeper.sh", "--name", "single")
	e.ok("start", "sleeper.sh", "--name", "multi", "-i", "2")
	e.ok("start", "sleeper.sh", "--name", "merged", "-i", "2", "--merge-logs")
	logDir := filepath.Join(e.home, "logs")
	want := map[int][2]string{
		0: {"single-out.log", "single-error.log"},
		1: {"multi-out-1.log", "multi-error-1.log"},
		2: {"multi-out-2.log", "multi-error-2.log"},
		3: {"merged-out.log", "merged-error.log"},
		4: {"merged-out.log", "merged-error.log"},
	}
	for id, files := range want {
		p := e.waitStatus(id, "online", 20*time.Second)
		out, errf := filepath.Join(logDir, files[0]), filepath.Join(logDir, files[1])
		if p.Pm2Env.OutLog != out || p.Pm2Env.ErrLog != errf {
			t.Errorf("%s[%d] logs to %s and %s, want %s and %s", p.Name, id, p.Pm2Env.OutLog, p.Pm2Env.ErrLog, out, errf)
		}
		line := fmt.Sprintf("started instance=%d pm_id=%d ", p.Pm2Env.Corral.Instance, id)
		e.waitFor(line+"in "+out, 20*time.Second, func() bool {
			return strings.Contains(readFile(out), line) && strings.Contains(readFile(errf), "to stderr")
		})
	}
	entries, err := os.ReadDir(logDir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, ent := range entries {
		names = append(names, ent.Name())
	}
	if got := strings.Join(names, " "); got != "merged-error.log merged-out.log multi-error-1.log multi-error-2.log multi-out-1.log multi-out-2.log single-error.log single-out.log" {
		t.Fatalf("log files: %s", got)
	}
	if m := permOf(t, filepath.Join(logDir, "single-out.log")); m&0o007 != 0 {
		t.Errorf("log files are readable by others (mode %v): apps print secrets", m)
	}
}

// linesApp starts lines.sh and waits until everything it prints is in its log files.
func linesApp(t *testing.T, e *env, name string) jproc {
	t.Helper()
	e.ok("start", "lines.sh", "--name", name)
	p := e.waitStatus(0, "online", 20*time.Second)
	e.waitFor("lines.sh output in the log files", 20*time.Second, func() bool {
		return strings.Contains(readFile(p.Pm2Env.OutLog), "all written") && strings.Contains(readFile(p.Pm2Env.ErrLog), "err line 5")
	})
	return p
}

// TestLogsHistory: `logs --nostream --lines N` prints the last N lines of each file with
// PM2's "<id>|<name> | " prefix; --raw prints bare lines, stderr's to stderr; --json prints
// PM2's objects; --err and --out pick a stream.
func TestLogsHistory(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "lines.sh")
	linesApp(t, e, "lines")

	r := e.ok("logs", "lines", "--nostream", "--lines", "3")
	prefixed := regexp.MustCompile(`^0\|lines\s* \| (.*)$`)
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if m := prefixed.FindStringSubmatch(line); m != nil {
			got = append(got, m[1])
		}
	}
	if strings.Join(got, ";") != "out line 29;out line 30;all written;err line 3;err line 4;err line 5" {
		t.Fatalf("--lines 3: got prefixed lines %q from:\n%s", got, r)
	}
	if strings.Contains(r.stdout, "TAILING") {
		t.Fatalf("--nostream announces it follows:\n%s", r.stdout)
	}

	r = e.ok("logs", "lines", "--nostream", "--lines", "2", "--raw")
	if r.stdout != "out line 30\nall written\n" {
		t.Fatalf("--raw stdout %q, want the two last stdout lines, bare", r.stdout)
	}
	if r.stderr != "err line 4\nerr line 5\n" {
		t.Fatalf("--raw stderr %q, want the two last stderr lines, bare", r.stderr)
	}

	r = e.ok("logs", "lines", "--nostream", "--lines", "2", "--json")
	var types []string
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var obj map[string]any
		if err := json.Unmarshal([]byte(line), &obj); err != nil {
			t.Fatalf("--json printed a line that is not JSON: %q", line)
		}
		for _, k := range []string{"message", "timestamp", "type", "process_id", "app_name"} {
			if _, ok := obj[k]; !ok {
				t.Fatalf("--json object lacks %q: %s", k, line)
			}
		}
		if obj["app_name"] != "lines" || obj["process_id"] != float64(0) {
			t.Fatalf("--json object for the wrong process: %s", line)
		}
		if ts, ok := obj["timestamp"].(string); ok && strings.HasPrefix(ts, "0001-") {
			t.Errorf("--json prints a made-up timestamp for a line whose time is unknown: %s", line)
		}
		types = append(types, fmt.Sprintf("%s:%s", obj["type"], obj["message"]))
	}
	if strings.Join(types, ";") != "out:out line 30;out:all written;err:err line 4;err:err line 5" {
		t.Fatalf("--json lines: %q", types)
	}

	r = e.ok("logs", "lines", "--nostream", "--lines", "2", "--err", "--raw")
	if r.stdout != "" || r.stderr != "err line 4\nerr line 5\n" {
		t.Fatalf("--err: %s", r)
	}
	r = e.ok("logs", "lines", "--nostream", "--lines", "2", "--out", "--raw")
	if r.stdout != "out line 30\nall written\n" || r.stderr != "" {
		t.Fatalf("--out: %s", r)
	}
	e.fails("logs", "lines", "--nostream", "--err", "--out")
	if r := e.fails("logs", "nosuchapp", "--nostream"); !strings.Contains(r.stderr, "nosuchapp") {
		t.Fatalf("logs of an unknown app does not name it:\n%s", r)
	}
	// --lines 0 prints no history at all.
	if r := e.ok("logs", "lines", "--nostream", "--lines", "0", "--raw"); r.stdout != "" || r.stderr != "" {
		t.Fatalf("--lines 0 printed history: %s", r)
	}
}

// TestLogsFollow: `logs <app>` keeps printing what the app writes, live, with the prefix; and
// ends cleanly on Ctrl-C.
func TestLogsFollow(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "tick.sh", "sleeper.sh")
	e.ok("start", "tick.sh")
	e.ok("start", "sleeper.sh", "--name", "other")
	e.waitStatus(0, "online", 20*time.Second)
	e.waitStatus(1, "online", 20*time.Second)

	follow := e.background("logs", "tick", "--lines", "0")
	live := regexp.MustCompile(`^0\|tick\s* \| tick (\d+)$`)
	first := follow.stdout.waitLine(t, "a live tick", 30*time.Second, live.MatchString)
	n, _ := strconv.Atoi(live.FindStringSubmatch(first)[1])
	follow.stdout.waitLine(t, "the next tick", 30*time.Second, func(l string) bool {
		m := live.FindStringSubmatch(l)
		return m != nil && m[1] == strconv.Itoa(n+1)
	})
	// A restart shows up in the stream too: the app's first line after it.
	mark := follow.stdout.count()
	e.ok("restart", "tick")
	follow.stdout.waitLineFrom(t, mark, "tick 0 after the restart", 30*time.Second, func(l string) bool {
		return live.MatchString(l) && strings.HasSuffix(l, "| tick 0")
	})
	// Only the app asked for: another app's output, written before two more ticks, is not
	// in the stream.
	e.ok("restart", "other")
	o := e.proc(1)
	e.waitFor("other's output after its restart", 20*time.Second, func() bool {
		return strings.Count(readFile(o.Pm2Env.OutLog), "started instance") >= 2
	})
	mark = follow.stdout.count()
	for i := 0; i < 2; i++ {
		follow.stdout.waitLineFrom(t, mark, "another tick", 30*time.Second, live.MatchString)
		mark = follow.stdout.count()
	}
	for _, l := range follow.stdout.all() {
		if strings.Contains(l, "other") || strings.Contains(l, "started instance") {
			t.Fatalf("logs tick printed another app's line: %q", l)
		}
	}
	follow.signal(syscall.SIGINT)
	if code := follow.wait(20 * time.Second); code != 0 {
		t.Fatalf("logs exited with %d on Ctrl-C, want 0; stderr:\n%s", code, follow.stderr)
	}

	// --json while following: every line is an object with the time it was read.
	js := e.background("logs", "tick", "--lines", "0", "--json")
	line := js.stdout.waitLine(t, "a JSON line", 30*time.Second, func(l string) bool { return strings.Contains(l, `"tick `) })
	var obj struct {
		Message string    `json:"message"`
		Time    time.Time `json:"timestamp"`
		Type    string    `json:"type"`
		ID      *int      `json:"process_id"`
		App     string    `json:"app_name"`
	}
	if err := json.Unmarshal([]byte(line), &obj); err != nil {
		t.Fatalf("not JSON: %q", line)
	}
	if obj.Type != "out" || obj.App != "tick" || obj.ID == nil || *obj.ID != 0 || obj.Time.Year() < 2000 {
		t.Fatalf("followed JSON line %s", line)
	}
	js.signal(syscall.SIGINT)
	js.wait(20 * time.Second)

	// A follower does not outlive the daemon.
	last := e.background("logs", "--lines", "0")
	last.stdout.waitLine(t, "a tick", 30*time.Second, live.MatchString)
	e.ok("kill")
	last.wait(20 * time.Second)
}

// TestLogTimePrefix: --time and --log-date-format put the date before every line in the file.
func TestLogTimePrefix(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sleeper.sh")
	e.ok("start", "sleeper.sh", "--name", "timed", "--time")
	e.ok("start", "sleeper.sh", "--name", "formatted", "--log-date-format", "YYYY-MM-DD HH:mm Z")
	for id, re := range map[int]*regexp.Regexp{
		0: regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d: started instance=0`),
		1: regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d [+-]\d\d:\d\d: started instance=0`),
	} {
		p := e.waitStatus(id, "online", 20*time.Second)
		e.waitFor(p.Name+" output", 20*time.Second, func() bool { return strings.Contains(readFile(p.Pm2Env.ErrLog), "to stderr") })
		out := readFile(p.Pm2Env.OutLog)
		if !re.MatchString(out) {
			t.Errorf("%s: first line of %s does not match %s:\n%s", p.Name, p.Pm2Env.OutLog, re, out)
		}
		if !regexp.MustCompile(`^\d{4}-\d\d-\d\d.*: to stderr`).MatchString(readFile(p.Pm2Env.ErrLog)) {
			t.Errorf("%s: the error log has no date prefix:\n%s", p.Name, readFile(p.Pm2Env.ErrLog))
		}
	}
}

// TestFlush: flush empties the files of the app named (not the others'); the app keeps
// writing to them from their start (no hole of NUL bytes where the old content was).
func TestFlush(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "lines.sh", "sleeper.sh")
	p := linesApp(t, e, "lines")
	e.ok("start", "sleeper.sh", "--name", "keep")
	k := e.waitStatus(1, "online", 20*time.Second)
	e.waitFor("keep output", 20*time.Second, func() bool { return strings.Contains(readFile(k.Pm2Env.OutLog), "started") })

	r := e.ok("flush", "lines")
	if !strings.Contains(r.stdout, p.Pm2Env.OutLog) || !strings.Contains(r.stdout, p.Pm2Env.ErrLog) {
		t.Fatalf("flush does not say which files it emptied:\n%s", r)
	}
	for _, f := range []string{p.Pm2Env.OutLog, p.Pm2Env.ErrLog} {
		if c := readFile(f); c != "" {
			t.Fatalf("%s after flush: %q", f, c)
		}
	}
	if !strings.Contains(readFile(k.Pm2Env.OutLog), "started") {
		t.Fatal("flush lines emptied another app's log")
	}
	// The app writes again (a restart prints everything once more).
	e.ok("restart", "lines")
	e.waitFor("output after flush", 20*time.Second, func() bool { return strings.Contains(readFile(p.Pm2Env.OutLog), "all written") })
	out := readFile(p.Pm2Env.OutLog)
	if strings.ContainsRune(out, 0) || !strings.HasPrefix(out, "out line 1\n") {
		t.Fatalf("after flush the file does not start with the new output (%d bytes, NUL bytes: %v): %.80q",
			len(out), strings.ContainsRune(out, 0), out)
	}
	// flush with no target empties every file, the daemon's log too.
	e.ok("flush")
	for _, f := range []string{k.Pm2Env.OutLog, filepath.Join(e.home, "corral.log")} {
		if st, err := os.Stat(f); err != nil || st.Size() > 200 {
			t.Fatalf("%s not emptied by flush (%v)", f, err)
		}
	}
}

// TestLogRotation: with --log-max-size and --log-retain the file rotates to .1, .2 and never
// more; no line is lost or reordered at a rotation; no file grows past the size. With
// --merge-logs two processes share the files and each one's lines stay whole and in order.
func TestLogRotation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		instances int
		lines     int
	}{
		{"one process", 1, 20000}, // ~50 bytes each: about 1 MB, five files of 200K
		{"two processes, merged", 2, 12000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, "flood.sh")
			flood := t.TempDir()
			e.vars["FLOOD_LINES"] = strconv.Itoa(tc.lines)
			e.vars["FLOOD_DIR"] = flood
			args := []string{"start", "flood.sh", "--name", "x", "--log-max-size", "200K", "--log-retain", "2"}
			if tc.instances > 1 {
				args = append(args, "-i", strconv.Itoa(tc.instances), "--merge-logs")
			}
			e.ok(args...)
			out := filepath.Join(e.home, "logs", "x-out.log")
			for id := 0; id < tc.instances; id++ {
				if p := e.waitStatus(id, "online", 20*time.Second); p.Pm2Env.OutLog != out {
					t.Fatalf("process %d logs to %s, want %s", id, p.Pm2Env.OutLog, out)
				}
			}
			if err := os.WriteFile(filepath.Join(flood, "go"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			e.waitFor("every instance to have written its flood", 60*time.Second, func() bool {
				m, _ := filepath.Glob(filepath.Join(flood, "done-*"))
				return len(m) == tc.instances
			})
			// Everything is in the pipes; one more line from each instance comes after it, so
			// once those are in the files, so is everything else.
			e.ok("sendSignal", "SIGUSR1", "x")
			e.waitFor("the final lines", 60*time.Second, func() bool {
				kept := readFile(out+".1") + readFile(out)
				for i := 0; i < tc.instances; i++ {
					if !strings.Contains(kept, fmt.Sprintf("flood %d final\n", i)) {
						return false
					}
				}
				return true
			})
			checkRotated(t, out, tc.instances, tc.lines)
		})
	}
}

// checkRotated checks the files of a flood written with --log-max-size 200K --log-retain 2.
func checkRotated(t *testing.T, out string, instances, total int) {
	t.Helper()
	if !pathExists(out+".1") || !pathExists(out+".2") {
		t.Fatalf("no rotated files %s.1 and .2", out)
	}
	if pathExists(out + ".3") {
		t.Fatalf("%s.3 exists although --log-retain is 2", out)
	}
	var all []byte
	for _, f := range []string{out + ".2", out + ".1", out} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > 200<<10 {
			t.Errorf("%s has %d bytes, more than --log-max-size 200K", f, len(b))
		}
		if len(b) > 0 && b[len(b)-1] != '\n' {
			t.Errorf("%s ends in the middle of a line", f)
		}
		all = append(all, b...)
	}
	next := map[int]int{} // instance -> the number its next line must have (0: none seen yet)
	done, final := map[int]bool{}, map[int]bool{}
	rotatedAway := false
	for i, l := range strings.Split(strings.TrimSuffix(string(all), "\n"), "\n") {
		var inst, n int
		var word string
		if _, err := fmt.Sscanf(l, "flood %d %s", &inst, &word); err == nil && (word == "done" || word == "final") && strings.HasSuffix(l, " "+word) {
			switch {
			case word == "done" && next[inst] != 0 && next[inst] != total+1:
				t.Fatalf("instance %d says done after line %d, want %d", inst, next[inst]-1, total)
			case word == "final" && !done[inst] && next[inst] != 0:
				t.Fatalf("instance %d's final line comes before its done line", inst)
			}
			map[string]map[int]bool{"done": done, "final": final}[word][inst] = true
			continue
		}
		if _, err := fmt.Sscanf(l, "flood %d %d ", &inst, &n); err != nil || !strings.HasSuffix(l, " 0123456789abcdefghijklmnopqrstuvwxyz") {
			t.Fatalf("line %d of the kept files is damaged: %q", i, l)
		}
		if done[inst] || (next[inst] != 0 && n != next[inst]) {
			t.Fatalf("line %d is flood %d %d, want flood %d %d: a line was lost or reordered at a rotation", i, inst, n, inst, next[inst])
		}
		if next[inst] == 0 && n > 1 {
			rotatedAway = true
		}
		next[inst] = n + 1
	}
	for inst := range next {
		if !done[inst] {
			t.Fatalf("instance %d's lines end at %d without its done line", inst, next[inst]-1)
		}
	}
	if len(final) != instances {
		t.Fatalf("final lines of %d instances, want %d", len(final), instances)
	}
	if !rotatedAway {
		t.Fatal("every instance's first line is still kept: nothing rotated away")
	}
}

// TestReloadLogs: after an external logrotate moved a log file, reloadLogs makes the app write
// to a new file at the original path, and no line is lost in between.
func TestReloadLogs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "tick.sh")
	e.ok("start", "tick.sh")
	p := e.waitStatus(0, "online", 20*time.Second)
	e.waitFor("a few ticks", 20*time.Second, func() bool { return strings.Contains(readFile(p.Pm2Env.OutLog), "tick 3\n") })
	moved := p.Pm2Env.OutLog + ".moved"
	if err := os.Rename(p.Pm2Env.OutLog, moved); err != nil {
		t.Fatal(err)
	}
	// Until reloadLogs the daemon still writes to the moved file.
	before := len(readFile(moved))
	e.waitFor("a tick in the moved file", 20*time.Second, func() bool { return len(readFile(moved)) > before })
	e.ok("reloadLogs")
	e.waitFor("ticks in a new file at the original path", 20*time.Second, func() bool {
		return strings.Count(readFile(p.Pm2Env.OutLog), "\n") >= 2
	})
	tickNumbers := func(s string) []int {
		var out []int
		for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
			n, err := strconv.Atoi(strings.TrimPrefix(l, "tick "))
			if err != nil {
				t.Fatalf("unexpected line %q", l)
			}
			out = append(out, n)
		}
		return out
	}
	old, cur := tickNumbers(readFile(moved)), tickNumbers(readFile(p.Pm2Env.OutLog))
	if cur[0] != old[len(old)-1]+1 {
		t.Fatalf("the moved file ends with tick %d and the new one starts with tick %d: lines lost or duplicated", old[len(old)-1], cur[0])
	}
}
