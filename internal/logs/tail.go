package logs

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/corral-pm/corral/internal/safefs"
)

const (
	// tailBlock is how much Tail reads at a time, walking back from the end of the file.
	tailBlock = 64 << 10
	// tailLineBudget bounds how far back Tail reads per line asked for. Lines corral writes are
	// at most MaxLineLen plus a date prefix, so this is never reached for them; it keeps a file
	// written by something else (one endless line) from being read whole.
	tailLineBudget = 2 * MaxLineLen
)

// Tail returns the last n lines of the file at path, without their '\n' (nor a '\r' before
// it), oldest first, for `corral logs --lines`. It reads backwards from the end in blocks, so a
// 1 GB file costs about as much as its last n lines. A last line without '\n' counts as a
// line. A missing file gives (nil, nil). A line longer than 128 KiB, which corral never
// writes, may come back cut to its end.
func Tail(path string, n int) ([]string, error) {
	if n <= 0 {
		return nil, nil
	}
	f, err := safefs.OpenNamed(path, os.O_RDONLY, 0) // as the daemon writes it: not through a planted link
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("logs: tail %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("logs: tail %s: %w", path, err)
	}

	size := st.Size()
	budget := int64(n) * tailLineBudget
	var blocks [][]byte // read blocks, newest first
	newlines := 0       // in what was read, not counting the file's final '\n'
	pos := size
	for pos > 0 && newlines < n && size-pos < budget {
		sz := min(int64(tailBlock), pos)
		pos -= sz
		b := make([]byte, sz)
		if _, err := f.ReadAt(b, pos); err != nil {
			return nil, fmt.Errorf("logs: tail %s: %w", path, err)
		}
		newlines += bytes.Count(b, []byte{'\n'})
		if pos+sz == size && b[len(b)-1] == '\n' {
			newlines--
		}
		blocks = append(blocks, b)
	}

	data := make([]byte, 0, size-pos)
	for i := len(blocks) - 1; i >= 0; i-- {
		data = append(data, blocks[i]...)
	}
	if len(data) == 0 {
		return nil, nil
	}
	data = bytes.TrimSuffix(data, []byte{'\n'})
	parts := bytes.Split(data, []byte{'\n'})
	if len(parts) > n {
		// The first part is what precedes the last n lines (often a piece of a line).
		parts = parts[len(parts)-n:]
	}
	lines := make([]string, len(parts))
	for i, p := range parts {
		lines[i] = string(bytes.TrimSuffix(p, []byte{'\r'}))
	}
	return lines, nil
}
