package logs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// chunkReader returns its chunks one Read at a time (split further if the caller's buffer is
// smaller), so tests control where reads end. before[i], if set, runs before chunk i is
// returned. After the chunks it returns err (io.EOF if nil).
type chunkReader struct {
	chunks []string
	before map[int]func()
	err    error
	i      int
	rest   string
	calls  int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	r.calls++
	if r.rest == "" {
		if r.i >= len(r.chunks) {
			if r.err != nil {
				return 0, r.err
			}
			return 0, io.EOF
		}
		if f := r.before[r.i]; f != nil {
			f()
		}
		r.rest = r.chunks[r.i]
		r.i++
	}
	n := copy(p, r.rest)
	r.rest = r.rest[n:]
	return n, nil
}

// pumpResult is what one Pump produced: the file's content and the hub's messages.
type pumpResult struct {
	file string
	hub  []string
	err  error
}

// runPump pumps chunks through a Stream writing one real file and a hub with one subscriber.
func runPump(t *testing.T, s *Stream, r io.Reader) pumpResult {
	t.Helper()
	path := filepath.Join(t.TempDir(), "out.log")
	f, err := NewManager().Open(path, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := NewHub()
	sub := h.Subscribe(nil, 1<<16)
	defer sub.Close()
	s.Files = append(s.Files, f)
	s.Hub = h
	perr := s.Pump(r)
	// Everything published is queued (the buffer is large); take it all.
	s.Hub.Publish(Line{Message: "\x00end"})
	var msgs []string
	for {
		l := recv(t, sub)
		if l.Message == "\x00end" {
			break
		}
		if l.ProcID != s.ProcID || l.App != s.App || l.Stream != s.Name || l.Time.IsZero() {
			t.Errorf("hub line %+v does not carry the stream's identity and a time", l)
		}
		msgs = append(msgs, l.Message)
	}
	return pumpResult{file: readFile(t, path), hub: msgs, err: perr}
}

func TestPump(t *testing.T) {
	long := func(n int, c string) string { return strings.Repeat(c, n) }
	tests := []struct {
		name   string
		chunks []string
		file   string
		hub    []string
	}{
		{"nothing", nil, "", nil},
		{"lines", []string{"a\nb\n"}, "a\nb\n", []string{"a", "b"}},
		{"partial lines across reads", []string{"hel", "lo\nwor", "ld\n", "!"}, "hello\nworld\n!\n", []string{"hello", "world", "!"}},
		{"no trailing newline", []string{"a\nb"}, "a\nb\n", []string{"a", "b"}},
		{"empty lines", []string{"\n\n", "x\n\n"}, "\n\nx\n\n", []string{"", "", "x", ""}},
		{"crlf kept in files, stripped for the hub", []string{"a\r\nb\r", "\n\r\n"}, "a\r\nb\r\n\r\n", []string{"a", "b", ""}},
		{"lone cr is not a line end", []string{"progress 10%\rprogress 20%\n"}, "progress 10%\rprogress 20%\n", []string{"progress 10%\rprogress 20%"}},
		{"exactly MaxLineLen", []string{long(MaxLineLen, "x") + "\n"}, long(MaxLineLen, "x") + "\n", []string{long(MaxLineLen, "x")}},
		{"exactly MaxLineLen at EOF", []string{long(MaxLineLen, "x")}, long(MaxLineLen, "x") + "\n", []string{long(MaxLineLen, "x")}},
		{
			"long line cut into pieces",
			[]string{long(2*MaxLineLen+10, "y") + "\nz\n"},
			long(MaxLineLen, "y") + "\n" + long(MaxLineLen, "y") + "\n" + long(10, "y") + "\nz\n",
			[]string{long(MaxLineLen, "y"), long(MaxLineLen, "y"), long(10, "y"), "z"},
		},
		{
			"long line in small reads",
			slices.Repeat([]string{long(1000, "q")}, 70),
			long(MaxLineLen, "q") + "\n" + long(70000-MaxLineLen, "q") + "\n",
			[]string{long(MaxLineLen, "q"), long(70000-MaxLineLen, "q")},
		},
		{
			"MaxLineLen plus one",
			[]string{long(MaxLineLen+1, "w") + "\n"},
			long(MaxLineLen, "w") + "\nw\n",
			[]string{long(MaxLineLen, "w"), "w"},
		},
		{
			"newline right after a cut",
			[]string{long(MaxLineLen, "v"), "v", "\n"},
			long(MaxLineLen, "v") + "\nv\n",
			[]string{long(MaxLineLen, "v"), "v"},
		},
		{"utf-8 and nul bytes pass through", []string{"é\x00ü\n"}, "é\x00ü\n", []string{"é\x00ü"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Stream{ProcID: 3, App: "web", Name: StreamErr}
			got := runPump(t, s, &chunkReader{chunks: tt.chunks})
			if got.err != nil {
				t.Fatal(got.err)
			}
			if got.file != tt.file {
				t.Errorf("file = %s, want %s", abbrev(got.file), abbrev(tt.file))
			}
			if !slices.Equal(got.hub, tt.hub) {
				t.Errorf("hub = %s, want %s", abbrevAll(got.hub), abbrevAll(tt.hub))
			}
		})
	}
}

// TestPumpBigInput pumps more data than any buffer, with lines of every length around the
// buffer sizes, and checks nothing is lost or changed.
func TestPumpBigInput(t *testing.T) {
	var in strings.Builder
	var want []string
	for i := 0; in.Len() < 3<<20; i++ {
		l := fmt.Sprintf("%d:%s", i, strings.Repeat("z", (i*7919)%40000))
		in.WriteString(l + "\n")
		want = append(want, l)
	}
	s := &Stream{ProcID: 1, App: "big", Name: StreamOut}
	got := runPump(t, s, strings.NewReader(in.String()))
	if got.err != nil {
		t.Fatal(got.err)
	}
	if got.file != in.String() {
		t.Fatal("file content differs from the input")
	}
	if !slices.Equal(got.hub, want) {
		t.Fatalf("hub got %d lines, want %d", len(got.hub), len(want))
	}
}

func TestPumpTimePrefix(t *testing.T) {
	s := &Stream{ProcID: 0, App: "web", Name: StreamOut, Time: MustTimeFormat("YYYY-MM-DD HH:mm:ss.SSS")}
	got := runPump(t, s, &chunkReader{chunks: []string{"a\nb", "\r\n", "tail"}})
	if got.err != nil {
		t.Fatal(got.err)
	}
	re := regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}: (.*)$`)
	var bodies []string
	for _, l := range fileLines(got.file) {
		m := re.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("line %q has no date prefix", l)
		}
		bodies = append(bodies, m[1])
	}
	if want := []string{"a", "b\r", "tail"}; !slices.Equal(bodies, want) {
		t.Errorf("file bodies %q, want %q", bodies, want)
	}
	if want := []string{"a", "b", "tail"}; !slices.Equal(got.hub, want) {
		t.Errorf("hub %q, want %q (no prefix)", got.hub, want)
	}
}

// TestPumpSeveralFiles: every line goes to each file (out file and combined file), and a
// discarding file is harmless among them.
func TestPumpSeveralFiles(t *testing.T) {
	dir := t.TempDir()
	m := NewManager()
	var files []*File
	for _, p := range []string{filepath.Join(dir, "out.log"), NullPath, filepath.Join(dir, "combined.log")} {
		f, err := m.Open(p, FileOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		files = append(files, f)
	}
	s := &Stream{Name: StreamOut, Files: files}
	if err := s.Pump(strings.NewReader("one\ntwo")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"out.log", "combined.log"} {
		if got := readFile(t, filepath.Join(dir, name)); got != "one\ntwo\n" {
			t.Errorf("%s = %q", name, got)
		}
	}
}

// TestPumpRotatesBetweenLines: lines that arrive in one read are written together, yet
// rotation still happens between lines at MaxSize.
func TestPumpRotatesBetweenLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.log")
	f, err := NewManager().Open(path, FileOptions{MaxSize: 8, Retain: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := &Stream{Name: StreamOut, Files: []*File{f}}
	if err := s.Pump(strings.NewReader("abc\ndef\nghi\njk")); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, path+".1"); got != "abc\ndef\n" {
		t.Errorf(".1 = %q", got)
	}
	if got := readFile(t, path); got != "ghi\njk\n" {
		t.Errorf("live = %q", got)
	}
}

func TestPumpReadError(t *testing.T) {
	boom := errors.New("boom")
	s := &Stream{ProcID: 2, App: "web", Name: StreamOut}
	got := runPump(t, s, &chunkReader{chunks: []string{"a\npart"}, err: boom})
	if !errors.Is(got.err, boom) || !strings.Contains(got.err.Error(), "web") {
		t.Fatalf("err = %v, want boom wrapped with the stream's identity", got.err)
	}
	if got.file != "a\npart\n" {
		t.Errorf("file = %q: the partial line must be flushed", got.file)
	}
}

// TestPumpWriteFailures: lines a file cannot take are counted, reported once, and the gap is
// marked in the file when writing works again. The child's output keeps being read throughout.
func TestPumpWriteFailures(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.log")
	f, err := NewManager().Open(path, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	var good *os.File
	breakFile := func() {
		// Swap in a read-only descriptor: every write now fails.
		ro, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		f.lf.mu.Lock()
		good, f.lf.fd = f.lf.fd, ro
		f.lf.mu.Unlock()
	}
	fixFile := func() {
		f.lf.mu.Lock()
		f.lf.fd.Close()
		f.lf.fd = good
		f.lf.mu.Unlock()
	}
	var reported []error
	s := &Stream{Name: StreamOut, Files: []*File{f}, OnError: func(err error) { reported = append(reported, err) }}
	r := &chunkReader{
		chunks: []string{"ok1\n", "lost1\nlost2\n", "lost3\n", "ok2\n"},
		before: map[int]func(){1: breakFile, 3: fixFile},
	}
	if err := s.Pump(r); err != nil {
		t.Fatal(err)
	}
	lines := fileLines(readFile(t, path))
	if len(lines) != 3 || lines[0] != "ok1" || !strings.HasPrefix(lines[1], "corral: 3 lines could not be written here: ") || lines[2] != "ok2" {
		t.Fatalf("file lines %q", lines)
	}
	if len(reported) != 1 || !strings.Contains(reported[0].Error(), path) {
		t.Fatalf("reported %v, want one error naming the file", reported)
	}

	// A file that never recovers: reported at the first failure and summed up at EOF; with no
	// OnError, Pump returns the first.
	f.Close()
	s = &Stream{ProcID: 4, App: "web", Name: StreamOut, Files: []*File{f}}
	err = s.Pump(strings.NewReader("x\ny\n"))
	if !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Pump = %v, want the write error", err)
	}
	reported = nil
	s.OnError = func(err error) { reported = append(reported, err) }
	if err := s.Pump(strings.NewReader("x\ny\n")); err != nil {
		t.Fatal(err)
	}
	if len(reported) != 2 || !strings.Contains(reported[1].Error(), "2 lines of web (4) out not written") {
		t.Fatalf("reported %v", reported)
	}
}

// TestPumpRotationErrorNotLost: a failed rotation is reported but the line is not counted as
// lost.
func TestPumpRotationErrorNotLost(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.log")
	if err := os.MkdirAll(filepath.Join(path+".1", "blocker"), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := NewManager().Open(path, FileOptions{MaxSize: 4, Retain: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var reported []error
	s := &Stream{Name: StreamOut, Files: []*File{f}, OnError: func(err error) { reported = append(reported, err) }}
	if err := s.Pump(strings.NewReader("abc\ndef\nghi\n")); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, path); got != "abc\ndef\nghi\n" {
		t.Errorf("file = %q", got)
	}
	if len(reported) != 1 || !isRotateOnly(reported[0]) {
		t.Errorf("reported %v, want one rotation error (then the retry delay)", reported)
	}
}

// TestPumpHubIdle: with nobody subscribed, Pump does not build hub lines at all.
func TestPumpHubIdle(t *testing.T) {
	s := &Stream{Name: StreamOut, Hub: NewHub()}
	in := strings.Repeat("line\n", 1000)
	allocs := testing.AllocsPerRun(5, func() {
		if err := s.Pump(strings.NewReader(in)); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 10 {
		t.Errorf("%v allocations for 1000 lines with an idle hub", allocs)
	}
}

func abbrev(s string) string {
	if len(s) > 40 {
		return fmt.Sprintf("%q…(%d bytes)", s[:40], len(s))
	}
	return fmt.Sprintf("%q", s)
}

func abbrevAll(ss []string) string {
	var b bytes.Buffer
	b.WriteString("[")
	for i, s := range ss {
		if i > 0 {
			b.WriteString(" ")
		}
		b.WriteString(abbrev(s))
	}
	b.WriteString("]")
	return b.String()
}

// BenchmarkPump measures Stream.Pump throughput for 100-byte lines into a real file.
func BenchmarkPump(b *testing.B) {
	line := strings.Repeat("x", 99) + "\n"
	input := []byte(strings.Repeat(line, 10000)) // 1 MB
	for _, bc := range []struct {
		name string
		time bool
		hub  bool
		file bool
	}{
		{"discard", false, false, false},
		{"file", false, false, true},
		{"file+time", true, false, true},
		{"file+time+hub", true, true, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := &Stream{ProcID: 0, App: "bench", Name: StreamOut}
			if bc.file {
				f, err := NewManager().Open(filepath.Join(b.TempDir(), "out.log"), FileOptions{MaxSize: 64 << 20, Retain: 1})
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				s.Files = []*File{f}
			}
			if bc.time {
				s.Time = MustTimeFormat("YYYY-MM-DDTHH:mm:ss")
			}
			if bc.hub {
				s.Hub = NewHub()
				sub := s.Hub.Subscribe(nil, 1024)
				defer sub.Close()
				go func() {
					for range sub.C {
					}
				}()
			}
			b.SetBytes(int64(len(input)))
			b.ReportAllocs()
			for b.Loop() {
				if err := s.Pump(bytes.NewReader(input)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestPumpSlowReaderDoesNotAffectFiles: a subscriber that never reads neither blocks Pump nor
// costs the file a line.
func TestPumpSlowReaderDoesNotAffectFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.log")
	f, err := NewManager().Open(path, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := NewHub()
	stuck := h.Subscribe(nil, 1)
	defer stuck.Close()
	var in strings.Builder
	for i := range 10000 {
		fmt.Fprintf(&in, "%d\n", i)
	}
	s := &Stream{Name: StreamOut, Files: []*File{f}, Hub: h}
	if err := s.Pump(strings.NewReader(in.String())); err != nil {
		t.Fatal(err)
	}
	if readFile(t, path) != in.String() {
		t.Fatal("file lost lines to a slow reader")
	}
	if l := recv(t, stuck); l.Message != "0" {
		t.Fatalf("first line %q", l.Message)
	}
	if l := recv(t, stuck); l.Message != "corral: 9999 lines skipped: this reader fell behind" {
		t.Fatalf("notice %q", l.Message)
	}
}
