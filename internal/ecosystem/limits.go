package ecosystem

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// Limits on loading an ecosystem file. A JavaScript or JSON file is code, and loading it must
// end, promptly and within bounded memory, whatever the code does (a YAML file is not code,
// but its parser can be slow too): on a limit, Load fails with a message naming the file and
// the limit, and nothing is started. See sandbox.go for how time and memory are bounded.
const (
	// DefaultTimeout bounds the evaluation of an ecosystem file.
	DefaultTimeout = 3 * time.Second
	// MaxEvalMemory bounds the memory evaluating an ecosystem file may use (on Linux): the
	// evaluation's resident size stays under it, as it is stopped when the memory it has
	// reserved would exceed it. A real file needs a few MB; one of MaxFileSize, about 35 MB.
	MaxEvalMemory = 256 << 20
	// MaxCallDepth bounds how deeply JavaScript calls may nest, about as deep as Node allows,
	// so an endless recursion fails at once rather than at the time limit.
	MaxCallDepth = 10_000
)

// MaxFileSize is the largest ecosystem file corral loads, and the largest file an ecosystem
// file may read (require(), fs.readFileSync(), a .env file). Real ecosystem files are a few
// KB. A 1 MiB one declares some 3,000 apps, and evaluating it takes about 0.2 s and 35 MB,
// well within DefaultTimeout and MaxEvalMemory: a file that hits those limits does so by what
// it computes, not by its size. The size is checked before the file is read, so a wrong file
// (a log, a dump, a bundle) is refused at once with its size instead of being evaluated.
const MaxFileSize = 1 << 20

// errFileTooLarge is the error of readLimited for a file over MaxFileSize.
type errFileTooLarge struct {
	path string
	size int64 // its size, or -1 when it could only be read to the limit (a pipe, /proc)
}

func (e *errFileTooLarge) Error() string { return e.path + " " + e.excess() + " allowed" }

// excess says how large the file is: "is 16.7 MiB, more than the 1 MiB".
func (e *errFileTooLarge) excess() string {
	if e.size < 0 {
		return "holds more than the " + formatSize(MaxFileSize)
	}
	return fmt.Sprintf("is %s, more than the %s", formatSize(e.size), formatSize(MaxFileSize))
}

// tooLargeToRead is the message for a file an ecosystem file reads that is over MaxFileSize.
func tooLargeToRead(err error) (string, bool) {
	var big *errFileTooLarge
	if !errors.As(err, &big) {
		return "", false
	}
	return fmt.Sprintf("%s %s allowed for a file read by an ecosystem file: read large data in the app itself, at run time", big.path, big.excess()), true
}

// readLimited reads a file of at most MaxFileSize bytes. The size is checked on the open file
// first, and the read is limited anyway, for files whose size stat does not tell (or that grow).
func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && st.Size() > MaxFileSize {
		return nil, &errFileTooLarge{path: path, size: st.Size()}
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxFileSize {
		return nil, &errFileTooLarge{path: path, size: -1}
	}
	return b, nil
}

// formatSize renders a byte count in binary units: "1 MiB", "16.7 MiB", "900 KiB", "12 bytes".
func formatSize(n int64) string {
	units := []string{"KiB", "MiB", "GiB", "TiB"}
	if n < 1<<10 {
		return strconv.FormatInt(n, 10) + " bytes"
	}
	v, unit := float64(n)/(1<<10), units[0]
	for _, u := range units[1:] {
		if v < 1<<10 {
			break
		}
		v, unit = v/(1<<10), u
	}
	s := strconv.FormatFloat(v, 'f', 1, 64)
	return strings.TrimSuffix(s, ".0") + " " + unit
}
