package logs

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultLossInterval is the least time between two reports of one process's lost output.
const DefaultLossInterval = time.Minute

// Loss counts the output of one process that did not reach a log file it was meant for: lines
// (and bytes) a write failed to store (a full disk, an I/O error) or that had no file to go to
// (one that could not be opened, or was refused; see Unopened). A line lost from two files
// (the out file and the combined log) counts twice. The live stream (Hub) is not affected.
//
// The first loss is reported at once; later ones are summed up, at most one report per
// Interval for as long as they go on, and once more after they stop: a full disk costs the
// daemon log a line a minute, never a line per lost line. A Loss is shared by the streams and
// runs of one process; it is safe for concurrent use, and a nil *Loss counts nothing.
type Loss struct {
	// Report receives each report, a message that does not name the process. It may be called
	// from any goroutine, a timer's included, and must not block for long. nil: count only.
	Report func(msg string)
	// Interval is the least time between two reports; 0 means DefaultLossInterval.
	Interval time.Duration

	lines, bytes atomic.Uint64

	mu        sync.Mutex
	last      time.Time // when the last report was made
	pendLines uint64    // lost since the last report
	pendBytes uint64
	pendErr   error // the latest error among them
	timer     *time.Timer
}

// Lines is how many lines have been lost since the Loss was made (or Reset).
func (l *Loss) Lines() uint64 {
	if l == nil {
		return 0
	}
	return l.lines.Load()
}

// Bytes is how many bytes have been lost since the Loss was made (or Reset).
func (l *Loss) Bytes() uint64 {
	if l == nil {
		return 0
	}
	return l.bytes.Load()
}

// Reset zeroes the totals (`corral reset`); what is pending a report is still reported.
func (l *Loss) Reset() {
	if l == nil {
		return
	}
	l.lines.Store(0)
	l.bytes.Store(0)
}

func (l *Loss) interval() time.Duration {
	if l.Interval > 0 {
		return l.Interval
	}
	return DefaultLossInterval
}

// Add counts lines (and bytes) that could not be written because of err.
func (l *Loss) Add(lines, bytes int, err error) {
	if l == nil || lines <= 0 && bytes <= 0 {
		return
	}
	l.lines.Add(uint64(max(lines, 0)))
	l.bytes.Add(uint64(max(bytes, 0)))
	l.mu.Lock()
	first := l.pendLines == 0 && l.pendBytes == 0
	l.pendLines += uint64(max(lines, 0))
	l.pendBytes += uint64(max(bytes, 0))
	l.pendErr = err
	now := time.Now()
	var msg string
	switch {
	case l.last.IsZero() || now.Sub(l.last) >= l.interval():
		if first {
			msg = fmt.Sprintf("%s of output (%s) could not be written to its log file: %v; lost output is counted (corral describe) and summed up here at most every %v while it lasts",
				countOf(l.pendLines, "line"), countOf(l.pendBytes, "byte"), err, l.interval())
		} else {
			msg = l.summary(now)
		}
		l.pendLines, l.pendBytes, l.pendErr = 0, 0, nil
		l.last = now
	case l.timer == nil:
		l.timer = time.AfterFunc(l.last.Add(l.interval()).Sub(now), l.flush)
	}
	l.mu.Unlock()
	if msg != "" && l.Report != nil {
		l.Report(msg)
	}
}

// flush reports what was lost since the last report, once Interval has passed.
func (l *Loss) flush() {
	l.mu.Lock()
	l.timer = nil
	var msg string
	if l.pendLines > 0 || l.pendBytes > 0 {
		now := time.Now()
		msg = l.summary(now)
		l.pendLines, l.pendBytes, l.pendErr = 0, 0, nil
		l.last = now
	}
	l.mu.Unlock()
	if msg != "" && l.Report != nil {
		l.Report(msg)
	}
}

// summary describes what is pending; l.mu is held.
func (l *Loss) summary(now time.Time) string {
	since := now.Sub(l.last)
	if since >= time.Second {
		since = since.Round(time.Second)
	} else {
		since = since.Round(time.Millisecond)
	}
	return fmt.Sprintf("another %s (%s) lost in the last %v, %s (%s) in all; last error: %v",
		countOf(l.pendLines, "line"), countOf(l.pendBytes, "byte"), since,
		countOf(l.lines.Load(), "line"), countOf(l.bytes.Load(), "byte"), l.pendErr)
}

// countOf says "1 line", "3 lines".
func countOf[N int | uint64](n N, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}
