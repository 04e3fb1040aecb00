package logs

import (
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

func line(proc int, msg string) Line {
	return Line{ProcID: proc, App: "web", Stream: StreamOut, Message: msg}
}

func TestHubFanOut(t *testing.T) {
	h := NewHub()
	all := h.Subscribe(nil, 16)
	defer all.Close()
	only1 := h.Subscribe(func(l Line) bool { return l.ProcID == 1 }, 16)
	defer only1.Close()

	h.Publish(line(0, "a"))
	h.Publish(line(1, "b"))
	h.Publish(line(0, "c"))
	h.Publish(line(1, "d"))

	if got, want := messages(recvN(t, all, 4)), []string{"a", "b", "c", "d"}; !slices.Equal(got, want) {
		t.Errorf("all: got %q, want %q", got, want)
	}
	if got, want := messages(recvN(t, only1, 2)), []string{"b", "d"}; !slices.Equal(got, want) {
		t.Errorf("filtered: got %q, want %q", got, want)
	}
}

// waitDrained waits until everything queued for s has been taken by its reader. Until then
// the line being handed over still counts against the buffer.
func waitDrained(t *testing.T, s *Subscription) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		s.mu.Lock()
		drained := s.n == 0
		s.mu.Unlock()
		if drained {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for the subscription to drain")
		}
		runtime.Gosched()
	}
}

func TestHubPublishWithoutSubscribers(t *testing.T) {
	h := NewHub()
	h.Publish(line(0, "nobody listens")) // must not block or panic
	s := h.Subscribe(nil, 1)
	defer s.Close()
	h.Publish(line(0, "x"))
	if l := recv(t, s); l.Message != "x" {
		t.Fatalf("got %q, want x", l.Message)
	}
}

// TestHubSlowSubscriber fills a subscriber's buffer without reading, then drains it: the lines
// that fit arrive in order, then exactly one notice with the number missed, then live lines.
func TestHubSlowSubscriber(t *testing.T) {
	tests := []struct {
		name      string
		buffer    int
		published int
		want      []string
	}{
		{"fits", 4, 4, []string{"0", "1", "2", "3"}},
		{"one over", 4, 5, []string{"0", "1", "2", "3", "corral: 1 line skipped: this reader fell behind"}},
		{"many over", 4, 41, []string{"0", "1", "2", "3", "corral: 37 lines skipped: this reader fell behind"}},
		{"buffer of one", 1, 3, []string{"0", "corral: 2 lines skipped: this reader fell behind"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := NewHub()
			s := h.Subscribe(nil, tt.buffer)
			defer s.Close()
			for i := range tt.published {
				h.Publish(line(0, fmt.Sprint(i)))
			}
			got := recvN(t, s, len(tt.want))
			if !slices.Equal(messages(got), tt.want) {
				t.Fatalf("got %q, want %q", messages(got), tt.want)
			}
			if last := got[len(got)-1]; len(tt.want) > tt.published {
				if last.Stream != StreamCorral || last.ProcID != DaemonProcID || last.Time.IsZero() {
					t.Errorf("notice = %+v, want a timed corral line of process -1", last)
				}
			}
			// The reader has caught up: once the subscription has seen the last line taken,
			// it gets live lines again.
			waitDrained(t, s)
			h.Publish(line(0, "live"))
			if l := recv(t, s); l.Message != "live" {
				t.Fatalf("after draining got %q, want live", l.Message)
			}
		})
	}
}

// TestHubSkipsCoalesce: lines missed while a notice is still waiting are added to it rather
// than producing a second notice, and the counts always add up.
func TestHubSkipsCoalesce(t *testing.T) {
	h := NewHub()
	s := h.Subscribe(nil, 2)
	defer s.Close()
	for i := range 5 { // 0 and 1 fit, 2..4 missed
		h.Publish(line(0, fmt.Sprint(i)))
	}
	if l := recv(t, s); l.Message != "0" {
		t.Fatalf("got %q, want 0", l.Message)
	}
	// Whether or not the notice for 2..4 is queued yet, this line is missed too and must be
	// counted in the same notice.
	h.Publish(line(0, "5"))
	got := messages(recvN(t, s, 2))
	want := []string{"1", "corral: 4 lines skipped: this reader fell behind"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// TestHubNoticeWithoutFurtherLines: the notice comes as soon as there is room, even if nothing
// is published afterwards.
func TestHubNoticeWithoutFurtherLines(t *testing.T) {
	h := NewHub()
	s := h.Subscribe(nil, 1)
	defer s.Close()
	h.Publish(line(0, "a"))
	h.Publish(line(0, "b"))
	recv(t, s)
	if l := recv(t, s); l.Message != "corral: 1 line skipped: this reader fell behind" {
		t.Fatalf("got %q, want the notice", l.Message)
	}
}

func TestSubscriptionClose(t *testing.T) {
	h := NewHub()
	s := h.Subscribe(nil, 8)
	h.Publish(line(0, "queued"))
	s.Close()
	s.Close() // idempotent
	waitClosed(t, s)
	h.Publish(line(0, "after close")) // must not block or panic
	if n := h.n.Load(); n != 0 {
		t.Fatalf("hub still counts %d subscribers", n)
	}
}

// TestSubscriptionCloseConcurrent closes subscriptions while several goroutines publish, for
// the race detector.
func TestSubscriptionCloseConcurrent(t *testing.T) {
	h := NewHub()
	subs := make([]*Subscription, 8)
	for i := range subs {
		subs[i] = h.Subscribe(nil, 4)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for p := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				h.Publish(line(p, fmt.Sprint(i)))
			}
		}()
	}
	// A reader on half the subscriptions, so both full and draining rings are exercised.
	for _, s := range subs[:4] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range s.C {
			}
		}()
	}
	var closers sync.WaitGroup
	for _, s := range subs {
		closers.Add(2)
		go func() { defer closers.Done(); s.Close() }()
		go func() { defer closers.Done(); s.Close() }()
	}
	closers.Wait()
	close(stop)
	wg.Wait()
	for _, s := range subs[4:] {
		waitClosed(t, s)
	}
}

func TestHubClose(t *testing.T) {
	h := NewHub()
	s := h.Subscribe(nil, 4)
	h.Close()
	waitClosed(t, s)
	late := h.Subscribe(nil, 4)
	waitClosed(t, late)
	h.Publish(line(0, "x"))
	s.Close() // still harmless
}
