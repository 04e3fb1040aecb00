package logs

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/testutil"
)

// reports collects a Loss's reports.
type reports struct {
	mu   sync.Mutex
	msgs []string
}

func (r *reports) add(msg string) {
	r.mu.Lock()
	r.msgs = append(r.msgs, msg)
	r.mu.Unlock()
}

func (r *reports) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.msgs...)
}

// TestLossDiskFull: a log file on a full disk (/dev/full answers every write with ENOSPC)
// loses every line; they are counted, in lines and bytes, the first loss is reported at once
// with the error, later ones only in a summary once the interval has passed, and the live
// stream gets every line all the same.
func TestLossDiskFull(t *testing.T) {
	m := NewManager()
	f, err := m.Open("/dev/full", FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	hub := NewHub()
	sub := hub.Subscribe(nil, 100)
	defer sub.Close()
	var rep reports
	loss := &Loss{Report: rep.add, Interval: 200 * time.Millisecond}
	s := &Stream{ProcID: 3, App: "web", Name: StreamOut, Files: []*File{f}, Hub: hub, Loss: loss}

	if err := s.Pump(strings.NewReader("one\ntwo\nthree\n")); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Pump = %v, want the ENOSPC", err)
	}
	if loss.Lines() != 3 || loss.Bytes() != 14 {
		t.Fatalf("counted %d lines, %d bytes; want 3, 14", loss.Lines(), loss.Bytes())
	}
	got := rep.get()
	if len(got) != 1 || !strings.Contains(got[0], "3 lines of output (14 bytes)") || !strings.Contains(got[0], "no space left on device") {
		t.Fatalf("reports %q, want one naming the count and the error", got)
	}
	if msgs := messages(recvN(t, sub, 3)); fmt.Sprint(msgs) != "[one two three]" {
		t.Errorf("hub got %q", msgs)
	}

	// More losses within the interval: counted, not reported line by line; summed up once the
	// interval has passed, though nothing more is lost by then.
	for i := range 50 {
		_ = s.Pump(strings.NewReader(fmt.Sprintf("more %d\n", i)))
	}
	if n := len(rep.get()); n != 1 {
		t.Fatalf("%d reports within the interval, want still 1: %q", n, rep.get())
	}
	testutil.WaitFor(t, "the summary report", waitTimeout, func() bool { return len(rep.get()) == 2 })
	if sum := rep.get()[1]; !strings.Contains(sum, "another 50 lines (390 bytes)") || !strings.Contains(sum, "53 lines (404 bytes) in all") || !strings.Contains(sum, "no space left") {
		t.Errorf("summary %q, want 50 more, 53 in all, and the error", sum)
	}
	if loss.Lines() != 53 || loss.Bytes() != 404 {
		t.Errorf("counted %d lines, %d bytes; want 53, 404", loss.Lines(), loss.Bytes())
	}
	loss.Reset()
	if loss.Lines() != 0 || loss.Bytes() != 0 {
		t.Errorf("after Reset: %d lines, %d bytes", loss.Lines(), loss.Bytes())
	}
}

// TestLossRateLimited: a flood of losses gives one report per interval, not one per line.
func TestLossRateLimited(t *testing.T) {
	var rep reports
	loss := &Loss{Report: rep.add, Interval: time.Hour}
	boom := errors.New("boom")
	for range 100000 {
		loss.Add(1, 10, boom)
	}
	if got := rep.get(); len(got) != 1 {
		t.Fatalf("%d reports for 100000 lost lines within the interval", len(got))
	}
	if loss.Lines() != 100000 || loss.Bytes() != 1000000 {
		t.Errorf("counted %d lines, %d bytes", loss.Lines(), loss.Bytes())
	}
	var nilLoss *Loss
	nilLoss.Add(1, 1, boom) // counts nothing, and does not crash
	if nilLoss.Lines() != 0 {
		t.Error("a nil Loss counted")
	}
}

// TestUnopenedFileCountsLost: a log file that could not be opened (or was refused) stands in
// the stream as Unopened: the lines meant for it are counted, the other files and the live
// stream still get them.
func TestUnopenedFileCountsLost(t *testing.T) {
	path := t.TempDir() + "/ok.log"
	good, err := NewManager().Open(path, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	openErr := errors.New("logs: open /x/" + strings.Repeat("n", 300) + ": file name too long")
	var rep reports
	loss := &Loss{Report: rep.add}
	s := &Stream{Name: StreamOut, Files: []*File{Unopened("/x/long", openErr), good}, Loss: loss}
	if err := s.Pump(strings.NewReader("a\nb\n")); err == nil {
		t.Fatal("Pump did not return the failure")
	}
	if loss.Lines() != 2 {
		t.Errorf("counted %d lines, want 2", loss.Lines())
	}
	if got := readFile(t, path); got != "a\nb\n" {
		t.Errorf("the good file got %q", got)
	}
	if r := rep.get(); len(r) != 1 || !strings.Contains(r[0], "file name too long") {
		t.Errorf("reports %q", r)
	}
}
