package nodeipc

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"unicode/utf8"
)

type emitted struct {
	line  string
	start int64
}

func feedAll(f *framer, chunks ...[]byte) []emitted {
	var out []emitted
	for _, c := range chunks {
		f.feed(c, func(line []byte, start int64) { out = append(out, emitted{string(line), start}) })
	}
	return out
}

// Every way of cutting the stream into two reads, and byte-at-a-time reads, yield the same
// lines and offsets: partial lines are kept, multi-byte characters split across reads are
// reassembled, empty lines are lines.
func TestFramerSplits(t *testing.T) {
	stream := "\"ready\"\n\n{\"s\":\"h\u00e9llo \u20ac \U0001F600\"}\r\n[1,2]\npartial"
	want := []emitted{
		{`"ready"`, 0},
		{``, 8},
		{"{\"s\":\"h\u00e9llo \u20ac \U0001F600\"}\r", 9},
		{`[1,2]`, int64(9 + len("{\"s\":\"h\u00e9llo \u20ac \U0001F600\"}\r\n"))},
	}
	check := func(name string, got []emitted, f *framer) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: got %+v, want %+v", name, got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%s: line %d = %+v, want %+v", name, i, got[i], want[i])
			}
		}
		if f.pending() != len("partial") {
			t.Fatalf("%s: %d bytes pending, want %d", name, f.pending(), len("partial"))
		}
	}
	b := []byte(stream)
	for i := 0; i <= len(b); i++ {
		var f framer
		check("split", feedAll(&f, b[:i], b[i:]), &f)
	}
	var f framer
	var chunks [][]byte
	for i := range b {
		chunks = append(chunks, b[i:i+1])
	}
	check("bytewise", feedAll(&f, chunks...), &f)

	// The partial line completes with the next read.
	got := feedAll(&f, []byte(" done\n"))
	if len(got) != 1 || got[0].line != "partial done" {
		t.Fatalf("completed partial = %+v", got)
	}
}

// Lines handed out are not overwritten by later reads.
func TestFramerLinesOwned(t *testing.T) {
	var f framer
	buf := []byte("aaa\nbb")
	var lines [][]byte
	emit := func(line []byte, _ int64) { lines = append(lines, line) }
	f.feed(buf, emit)
	copy(buf, "xxxxxx")
	f.feed([]byte("b\nc"), emit)
	f.feed([]byte("c\n"), emit)
	if len(lines) != 3 || string(lines[0]) != "aaa" || string(lines[1]) != "bbb" || string(lines[2]) != "cc" {
		t.Fatalf("lines = %q", lines)
	}
}

func TestFramerLongLine(t *testing.T) {
	var f framer
	long := strings.Repeat("x", 3<<20)
	var got []string
	for i := 0; i < len(long); i += 1000 {
		f.feed([]byte(long[i:min(i+1000, len(long))]), func(l []byte, _ int64) { got = append(got, string(l)) })
	}
	f.feed([]byte("\n"), func(l []byte, _ int64) { got = append(got, string(l)) })
	if len(got) != 1 || got[0] != long {
		t.Fatalf("long line lost (%d lines)", len(got))
	}
}

func TestParseLine(t *testing.T) {
	tests := []struct {
		line, raw, cmd string
		bad            bool
	}{
		{line: `"ready"`, raw: `"ready"`},
		{line: `42`, raw: `42`},
		{line: `null`, raw: `null`},
		{line: `true`, raw: `true`},
		{line: ` [1,{"cmd":"NODE_X"}] `, raw: `[1,{"cmd":"NODE_X"}]`},
		{line: "{\"cmd\":\"NODE_CLUSTER\",\"act\":\"online\",\"seq\":0}\r", raw: `{"cmd":"NODE_CLUSTER","act":"online","seq":0}`, cmd: "NODE_CLUSTER"},
		{line: `{"cmd":5}`, raw: `{"cmd":5}`},
		{line: `{"CMD":"NODE_X"}`, raw: `{"CMD":"NODE_X"}`}, // keys are case-sensitive, as in JS
		{line: `{"cmd":"A","cmd":"NODE_B"}`, raw: `{"cmd":"A","cmd":"NODE_B"}`, cmd: "NODE_B"},
		{line: `{"cmd":"NODE_"}`, raw: `{"cmd":"NODE_"}`, cmd: "NODE_"},
		{line: `{"cmd":"\u004eODE_X"}`, raw: `{"cmd":"\u004eODE_X"}`, cmd: "NODE_X"},
		{line: "\"\xff\"", raw: "\"\uFFFD\""}, // invalid UTF-8 replaced, like Node's StringDecoder
		{line: ``, bad: true},
		{line: "\r", bad: true},
		{line: `{bad json}`, bad: true},
		{line: `{} {}`, bad: true},
		{line: `"ready`, bad: true},
		{line: `undefined`, bad: true},
	}
	for _, tt := range tests {
		f, err := parseLine([]byte(tt.line))
		if tt.bad {
			if err == nil {
				t.Errorf("parseLine(%q) = %s, want error", tt.line, f.raw)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseLine(%q): %v", tt.line, err)
			continue
		}
		if string(f.raw) != tt.raw || f.cmd != tt.cmd {
			t.Errorf("parseLine(%q) = raw %s cmd %q, want %s %q", tt.line, f.raw, f.cmd, tt.raw, tt.cmd)
		}
		if !utf8.Valid(f.raw) {
			t.Errorf("parseLine(%q): raw not UTF-8", tt.line)
		}
	}
	if _, err := parseLine(nil); !errors.Is(err, errEmptyLine) {
		t.Errorf("empty line error = %v", err)
	}
}

func TestIsInternal(t *testing.T) {
	for cmd, want := range map[string]bool{
		"NODE_CLUSTER": true, "NODE_HANDLE": true, "NODE_X": true,
		"NODE_": false, "NODE": false, "node_cluster": false, "APP_X": false, "": false,
	} {
		if got := isInternal(cmd); got != want {
			t.Errorf("isInternal(%q) = %v, want %v", cmd, got, want)
		}
	}
}

// Whatever the value, Send produces exactly one line of valid JSON.
func TestEncodeLine(t *testing.T) {
	values := []any{
		"shutdown", "line\nbreak\u2028", 0, nil, true,
		map[string]any{"cmd": "APP_X", "v": []int{1, 2}},
		json.RawMessage("{\n  \"a\" : 1\n}"),
		string([]byte{0xff, 'x'}),
	}
	for _, v := range values {
		line, err := encodeLine(v)
		if err != nil {
			t.Fatalf("encodeLine(%#v): %v", v, err)
		}
		body := line[:len(line)-1]
		if line[len(line)-1] != '\n' || strings.ContainsRune(string(body), '\n') || len(body) == 0 || !json.Valid(body) || !utf8.Valid(body) {
			t.Errorf("encodeLine(%#v) = %q", v, line)
		}
	}
	for _, v := range []any{make(chan int), json.RawMessage(""), json.RawMessage("{bad")} {
		if line, err := encodeLine(v); err == nil {
			t.Errorf("encodeLine(%#v) = %q, want error", v, line)
		}
	}
	line, err := encodeHandleLine("net.Native", map[string]any{"cmd": "NODE_CLUSTER", "act": "newconn"})
	if err != nil || string(line) != `{"cmd":"NODE_HANDLE","type":"net.Native","msg":{"act":"newconn","cmd":"NODE_CLUSTER"}}`+"\n" {
		t.Errorf("encodeHandleLine = %q, %v", line, err)
	}
}

func TestCheckReserved(t *testing.T) {
	for _, v := range []any{
		map[string]string{"cmd": "NODE_HANDLE"},
		map[string]string{"cmd": "NODE_HANDLE_ACK"},
		map[string]string{"cmd": "NODE_HANDLE_NACK"},
	} {
		line, _ := encodeLine(v)
		if err := checkReserved(line); !errors.Is(err, errReservedCmd) {
			t.Errorf("checkReserved(%s) = %v", line, err)
		}
	}
	for _, v := range []any{"NODE_HANDLE", map[string]string{"cmd": "NODE_CLUSTER", "x": "NODE_HANDLE"}, map[string]string{"cmd": "NODE_HANDLEX"}} {
		line, _ := encodeLine(v)
		if err := checkReserved(line); err != nil {
			t.Errorf("checkReserved(%s) = %v", line, err)
		}
	}
}

// fdQueue gives a received fd to the next NODE_HANDLE line that started at or after the read
// that carried it, never to a line that started earlier.
func TestFDQueue(t *testing.T) {
	checkLeaks(t)
	newFD := func() int {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		w.Close()
		fd, err := dupFD(int(r.Fd()))
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		return fd
	}
	var q fdQueue
	defer q.closeAll()
	a, b := newFD(), newFD()
	q.push(a, 100)
	q.push(b, 200)
	if fd := q.take(50); fd != -1 {
		t.Fatalf("line at 50 took fd from read at 100")
	}
	if fd := q.take(100); fd != a {
		t.Fatalf("take(100) = %d, want %d", fd, a)
	}
	closeFDs([]int{a})
	if fd := q.take(150); fd != -1 {
		t.Fatalf("line at 150 took fd from read at 200")
	}
	if fd := q.take(5000); fd != b {
		t.Fatalf("take(5000) = %d, want %d", fd, b)
	}
	closeFDs([]int{b})
	if fd := q.take(6000); fd != -1 {
		t.Fatalf("empty queue gave %d", fd)
	}
	// Overflow closes the oldest unclaimed fds (the leak check proves it).
	for i := 0; i < maxPendingFDs+5; i++ {
		q.push(newFD(), int64(i))
	}
	if len(q.q) != maxPendingFDs {
		t.Fatalf("queue holds %d fds", len(q.q))
	}
}
