package logs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// MaxLineLen bounds a line: longer ones are cut into MaxLineLen pieces, each written as a line
// of its own, so that an app printing megabytes without a newline costs the daemon a bounded
// amount of memory, and every piece still lands in the files (nothing is dropped).
const MaxLineLen = 64 << 10

const (
	// minReadBuf is a Stream's starting read buffer; most apps print little, and a daemon
	// runs two streams per process.
	minReadBuf = 16 << 10
	// fastReadBuf is what a busy stream's buffer grows to: a full Linux pipe (64 KiB) per read.
	fastReadBuf = 64 << 10
)

// Stream is one output stream of one process.
type Stream struct {
	ProcID int
	App    string
	Name   string      // "out" or "err"
	Files  []*File     // every line goes to each (the out or error file, and the combined log file)
	Time   *TimeFormat // nil: no prefix; else each file line is prefixed "<time>: " as PM2 does
	// JSON writes each file line as PM2's log_type 'json' does: an object with message,
	// timestamp (Time's format, or RFC 3339), type, process_id and app_name.
	JSON bool
	Hub  *Hub // may be nil

	// OnError, if set, hears about file trouble as it happens: each failed rotation (the line
	// was written anyway; retried after a delay), and the first failed write of a run of
	// failures on a file (later ones in the run are only counted). If nil, Pump returns the
	// first such error when it ends.
	OnError func(error)
	// Loss, if set, counts the lines and bytes a file failed to take (and reports them, rate
	// limited); the process's streams and runs share one.
	Loss *Loss
}

// Pump copies r line by line until EOF or a read error: each line to every file and (raw,
// without prefix or a trailing '\r') to the hub. A final line without '\n' is flushed at EOF
// with a '\n' added. Lines longer than MaxLineLen are cut into MaxLineLen pieces.
//
// The lines of one read are written to each file together (see File.WriteLines), so a busy
// app costs a write per read rather than per line; nothing waits for more input to fill a
// batch, so no line is delayed.
//
// Pump keeps reading whatever happens to the files: if it stopped, the child's pipe would fill
// and the app would block on its next print. Lines a file failed to take are counted, and once
// the file works again a line "corral: N lines could not be written here: <error>" marks the
// gap in it. The time of each line (prefix and hub) is when it was read. A partial line waits
// for its '\n' (or EOF) before it is written or published.
//
// Pump returns nil at EOF and the wrapped read error otherwise; when OnError is nil, the first
// file error is returned too (joined), as the only way it is reported.
//
// Pump must not be called twice at once on one Stream.
func (s *Stream) Pump(r io.Reader) error {
	p := pump{s: s, failed: make([]fileFailure, len(s.Files))}
	buf := make([]byte, minReadBuf)
	start, end := 0, 0 // pending bytes: buf[start:end], holding no '\n' once a read is processed
	grow := false
	for {
		switch {
		case start == end:
			start, end = 0, 0
			if grow && len(buf) < fastReadBuf {
				buf = make([]byte, 2*len(buf))
			}
		case end == len(buf) && start > 0:
			end = copy(buf, buf[start:end])
			start = 0
		case end == len(buf):
			// Pending is a partial line no longer than MaxLineLen (longer ones were cut), so
			// this stops at 128 KiB, enough for a MaxLineLen line and its '\n'.
			nb := make([]byte, 2*len(buf))
			end = copy(nb, buf[start:end])
			start, buf = 0, nb
		}
		n, rerr := r.Read(buf[end:])
		grow = n == len(buf)-end
		now := time.Now()
		from := end // bytes before this read hold no '\n'
		end += n
		for {
			i := bytes.IndexByte(buf[from:end], '\n')
			if i < 0 {
				break
			}
			nl := from + i
			for nl-start > MaxLineLen {
				p.emit(buf[start:start+MaxLineLen], false, now)
				start += MaxLineLen
			}
			p.emit(buf[start:nl+1], true, now)
			start, from = nl+1, nl+1
		}
		// A partial line longer than MaxLineLen cannot become a line of at most MaxLineLen
		// whatever comes next: cut it now, so the buffer stays bounded.
		for end-start > MaxLineLen {
			p.emit(buf[start:start+MaxLineLen], false, now)
			start += MaxLineLen
		}
		if rerr != nil && start < end {
			p.emit(buf[start:end], false, now)
			start = end
		}
		p.flush(now)
		if rerr != nil {
			p.finish()
			if errors.Is(rerr, io.EOF) {
				return p.firstErr
			}
			return errors.Join(fmt.Errorf("logs: read %s of %s (%d): %w", s.Name, s.App, s.ProcID, rerr), p.firstErr)
		}
	}
}

// pump is the state of one Pump call.
type pump struct {
	s         *Stream
	batch     []byte    // lines of the current read, prefixed, for the files
	prefixAt  time.Time // the time prefixBuf shows
	prefixBuf []byte
	failed    []fileFailure // by index in s.Files
	firstErr  error         // kept for Pump's result when OnError is nil
}

// fileFailure is a run of lines one file failed to take.
type fileFailure struct {
	lines int
	err   error
}

// emit adds one line to the files' batch and publishes it on the hub. line includes its '\n'
// when hasNL.
func (p *pump) emit(line []byte, hasNL bool, now time.Time) {
	s := p.s
	if len(s.Files) > 0 && s.JSON {
		p.batch = p.appendJSON(p.batch, line, hasNL, now)
	} else if len(s.Files) > 0 {
		if s.Time != nil {
			p.batch = append(p.batch, p.prefix(now)...)
		}
		p.batch = append(p.batch, line...)
		if !hasNL {
			p.batch = append(p.batch, '\n')
		}
	}
	if s.Hub != nil && s.Hub.active() {
		msg := line
		if hasNL {
			msg = msg[:len(msg)-1]
		}
		msg = bytes.TrimSuffix(msg, []byte{'\r'})
		s.Hub.Publish(Line{Time: now, ProcID: s.ProcID, App: s.App, Stream: s.Name, Message: string(msg)})
	}
}

// jsonLine is a log line as PM2 writes it with log_type 'json'.
type jsonLine struct {
	Message   string `json:"message"`
	Timestamp string `json:"timestamp"`
	Type      string `json:"type"`
	ProcessID int    `json:"process_id"`
	AppName   string `json:"app_name"`
}

// appendJSON appends line to dst as one JSON object and a newline.
func (p *pump) appendJSON(dst, line []byte, hasNL bool, now time.Time) []byte {
	if hasNL {
		line = line[:len(line)-1]
	}
	line = bytes.TrimSuffix(line, []byte{'\r'})
	ts := now.Format(time.RFC3339Nano)
	if p.s.Time != nil {
		ts = p.s.Time.Format(now)
	}
	b, err := json.Marshal(jsonLine{Message: string(line), Timestamp: ts, Type: p.s.Name, ProcessID: p.s.ProcID, AppName: p.s.App})
	if err != nil { // cannot happen: strings and numbers only
		return append(append(dst, line...), '\n')
	}
	return append(append(dst, b...), '\n')
}

// prefix returns "<time>: " for now. Every line of one read has the same time, so it is
// formatted once per read, not per line.
func (p *pump) prefix(now time.Time) []byte {
	if p.prefixBuf == nil || !now.Equal(p.prefixAt) {
		p.prefixBuf = append(p.s.Time.AppendFormat(p.prefixBuf[:0], now), ": "...)
		p.prefixAt = now
	}
	return p.prefixBuf
}

// flush writes the lines of one read to every file, in one write per file where rotation
// allows: the lines of one read arrived together, so writing them together adds no delay.
func (p *pump) flush(now time.Time) {
	if len(p.batch) == 0 {
		return
	}
	for i, f := range p.s.Files {
		p.write(i, f, p.batch, now)
	}
	p.batch = p.batch[:0]
}

// write writes lines to file i, keeping count of lines it fails to take.
func (p *pump) write(i int, f *File, lines []byte, now time.Time) {
	fl := &p.failed[i]
	if fl.lines > 0 {
		// Mark the gap where it is, before the first lines that get through again.
		var notice []byte
		if p.s.Time != nil {
			notice = append(notice, p.prefix(now)...)
		}
		notice = fmt.Appendf(notice, "corral: %s could not be written here: %v\n", countOf(fl.lines, "line"), fl.err)
		if _, _, err := f.writeLines(notice); err == nil || isRotateOnly(err) {
			fl.lines, fl.err = 0, nil
		}
	}
	lost, lostBytes, err := f.writeLines(lines)
	switch {
	case err == nil:
	case isRotateOnly(err):
		p.report(err)
	default:
		if fl.lines == 0 {
			p.report(err)
		}
		fl.lines += lost
		fl.err = err
		p.s.Loss.Add(lost, lostBytes, err)
	}
}

// finish reports lines that were never written because the file kept failing to the end.
func (p *pump) finish() {
	for i, fl := range p.failed {
		if fl.lines > 0 {
			p.report(fmt.Errorf("logs: %s of %s (%d) %s not written to %s: %w",
				countOf(fl.lines, "line"), p.s.App, p.s.ProcID, p.s.Name, p.s.Files[i].Path(), fl.err))
		}
	}
}

func (p *pump) report(err error) {
	if p.s.OnError != nil {
		p.s.OnError(err)
	} else if p.firstErr == nil {
		p.firstErr = err
	}
}

// isRotateOnly reports whether a WriteLine error is only a failed rotation (the line was
// written).
func isRotateOnly(err error) bool {
	_, ok := err.(*RotateError)
	return ok
}
