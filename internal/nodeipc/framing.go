package nodeipc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Commands of the handle layer (docs/node-cluster-protocol.md §4). They are consumed by the
// channel itself and never reach a Handler.
const (
	cmdHandle     = "NODE_HANDLE"
	cmdHandleAck  = "NODE_HANDLE_ACK"
	cmdHandleNack = "NODE_HANDLE_NACK"
)

// The exact lines Node writes for handle acknowledgements (JSON.stringify output + '\n').
var (
	lineHandleAck  = []byte(`{"cmd":"NODE_HANDLE_ACK"}` + "\n")
	lineHandleNack = []byte(`{"cmd":"NODE_HANDLE_NACK"}` + "\n")
)

// errEmptyLine is what HandleBadLine receives for a blank line. Node's JSON.parse("") throws,
// so a blank line is as much a protocol error as any other non-JSON line
// (docs/node-cluster-protocol.md §3.2).
var errEmptyLine = errors.New("nodeipc: empty line")

// framer splits the byte stream of the channel into lines, the json-mode framing of
// docs/node-cluster-protocol.md §3: every '\n' ends a message, and the trailing partial line is
// kept for the next read. It has no length limit (user messages can be megabytes,
// docs/node-cluster-protocol.md §3.3), unlike bufio.Scanner.
//
// Splitting on the byte '\n' is safe for UTF-8: the byte 0x0A never occurs inside a
// multi-byte sequence, so a character split across two reads is simply reassembled in buf.
//
// framer also tracks stream offsets so that the reader can tell which read a line started in;
// that is how a received fd is matched to its NODE_HANDLE line (see fdQueue and
// docs/node-cluster-protocol.md §4.2).
type framer struct {
	buf []byte // the pending partial line; never contains '\n'
	off int64  // stream offset of buf[0] (or of the next byte when buf is empty)
}

// feed appends p to the stream and calls emit for every line it completes, in order, without
// its '\n'. start is the stream offset of the line's first byte. The line slice is owned by
// the callee: it is never reused by the framer.
func (f *framer) feed(p []byte, emit func(line []byte, start int64)) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			f.buf = append(f.buf, p...)
			return
		}
		var line []byte
		if len(f.buf) == 0 {
			line = bytes.Clone(p[:i])
			if line == nil {
				line = []byte{}
			}
		} else {
			line = append(f.buf, p[:i]...)
			f.buf = nil // handed out; the next partial line gets a fresh buffer
		}
		start := f.off
		f.off += int64(len(line)) + 1
		p = p[i+1:]
		emit(line, start)
	}
}

// pending reports how many bytes of an incomplete line are buffered.
func (f *framer) pending() int { return len(f.buf) }

// frame is one received line, decoded just far enough for the channel to route it.
type frame struct {
	raw json.RawMessage            // the whole value, JSON whitespace trimmed
	cmd string                     // top-level "cmd" when the value is an object with a string cmd
	obj map[string]json.RawMessage // top-level fields when the value is an object, else nil
}

// parseLine checks that line is one JSON value and extracts its top-level "cmd".
//
// Like Node's StringDecoder, invalid UTF-8 is replaced by U+FFFD rather than rejected, so Raw
// is always valid UTF-8. Only JSON whitespace may surround the value, so "\r\n" line ends are
// tolerated exactly as JSON.parse tolerates them (docs/node-cluster-protocol.md §3.2).
//
// Keys are matched exactly (Node reads message.cmd; encoding/json's struct decoding would also
// accept "CMD"), and for duplicate keys the last one wins, as with JSON.parse.
func parseLine(line []byte) (frame, error) {
	if !utf8.Valid(line) {
		line = bytes.ToValidUTF8(line, []byte("\uFFFD"))
	}
	v := bytes.Trim(line, " \t\r\n")
	if len(v) == 0 {
		return frame{}, errEmptyLine
	}
	if v[0] != '{' {
		if !json.Valid(v) {
			return frame{}, fmt.Errorf("nodeipc: invalid JSON line: %w", syntaxError(v))
		}
		return frame{raw: v}, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(v, &obj); err != nil {
		return frame{}, fmt.Errorf("nodeipc: invalid JSON line: %w", err)
	}
	return frame{raw: v, cmd: stringField(obj, "cmd"), obj: obj}, nil
}

// syntaxError returns the decoder's error for an invalid value (json.Valid only says no).
func syntaxError(v []byte) error {
	var x any
	if err := json.Unmarshal(v, &x); err != nil {
		return err
	}
	return errors.New("invalid JSON")
}

// stringField returns obj[key] when it is a JSON string, else "".
func stringField(obj map[string]json.RawMessage, key string) string {
	r, ok := obj[key]
	if !ok || len(r) == 0 || r[0] != '"' {
		return ""
	}
	var s string
	if json.Unmarshal(r, &s) != nil {
		return ""
	}
	return s
}

// isInternal is Node's rule for internal messages (docs/node-cluster-protocol.md §1.2): the cmd
// starts with "NODE_" and is longer than 5 characters. Internal messages never reach user
// 'message' listeners.
func isInternal(cmd string) bool {
	return len(cmd) > 5 && strings.HasPrefix(cmd, "NODE_")
}

// classify returns the top-level string cmd of a raw JSON value ("" when it is not an object
// with a string cmd). raw must be valid JSON.
func classify(raw json.RawMessage) string {
	if len(raw) == 0 || raw[0] != '{' {
		return ""
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil {
		return ""
	}
	return stringField(obj, "cmd")
}

// encodeLine marshals v as one JSON line. json.Marshal output is compact (no raw newline can
// appear, even for json.RawMessage or Marshaler values, which it compacts) and is never empty,
// so the peer can never receive a blank or non-JSON line, both of which kill a Node child
// (docs/node-cluster-protocol.md §3.2 and §8.7).
func encodeLine(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("nodeipc: encode message: %w", err)
	}
	return append(b, '\n'), nil
}

// errReservedCmd rejects handle-layer messages sent through Send: a NODE_HANDLE without an fd
// would be NACKed and that NACK taken for the answer to a real SendHandle, and an ACK or NACK
// the child did not ask for kills it (v20's handler asserts that it has a handle queue,
// `assert(ArrayIsArray(target._handleQueue))` in internal/child_process).
var errReservedCmd = errors.New("nodeipc: NODE_HANDLE, NODE_HANDLE_ACK and NODE_HANDLE_NACK are reserved to the channel; use SendHandle")

// checkReserved returns errReservedCmd when line is a handle-layer message. The substring test
// keeps the full decode off the path of ordinary (possibly huge) messages.
func checkReserved(line []byte) error {
	if len(line) == 0 || line[0] != '{' || !bytes.Contains(line, []byte(cmdHandle)) {
		return nil
	}
	switch classify(bytes.TrimRight(line, "\n")) {
	case cmdHandle, cmdHandleAck, cmdHandleNack:
		return errReservedCmd
	}
	return nil
}

// handleEnvelope is the wire form of a handle message (docs/node-cluster-protocol.md §4.1).
// Field order follows Node's JSON.stringify output: cmd, type, msg.
type handleEnvelope struct {
	Cmd  string          `json:"cmd"`
	Type string          `json:"type"`
	Msg  json.RawMessage `json:"msg"`
}

// encodeHandleLine builds the NODE_HANDLE line that carries v with a handle of kind typ, which
// must not be empty.
func encodeHandleLine(typ string, v any) ([]byte, error) {
	if typ == "" {
		return nil, errors.New("nodeipc: send handle: empty handle type")
	}
	inner, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("nodeipc: encode handle message: %w", err)
	}
	return encodeLine(handleEnvelope{Cmd: cmdHandle, Type: typ, Msg: inner})
}
