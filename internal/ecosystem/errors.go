package ecosystem

import (
	"fmt"
	"strings"
)

// Error is every problem found in an ecosystem file or a command line, one per line. A file
// with any problem starts nothing, so the user sees the whole list at once instead of fixing
// one error per attempt.
type Error struct {
	Problems []string
	cause    error // the underlying error when there is a single one, e.g. a missing file
}

func (e *Error) Error() string { return strings.Join(e.Problems, "\n") }

// Unwrap lets callers test the cause, e.g. errors.Is(err, fs.ErrNotExist) for a missing file.
func (e *Error) Unwrap() error { return e.cause }

// problems collects messages under a common prefix ("/x/ecosystem.config.js: app "web" (apps[0])").
type problems struct {
	prefix string
	list   []string
}

// addf records a problem with one field ("max_memory_restart: ..."); an empty field records a
// problem with the app as a whole.
func (p *problems) addf(field, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if field != "" {
		msg = field + ": " + msg
	}
	p.list = append(p.list, joinPrefix(p.prefix, msg))
}

// addErr records err against a field, unless err is nil.
func (p *problems) addErr(field string, err error) {
	if err != nil {
		p.addf(field, "%s", err.Error())
	}
}

func (p *problems) empty() bool { return len(p.list) == 0 }

func joinPrefix(prefix, msg string) string {
	if prefix == "" {
		return msg
	}
	return prefix + ": " + msg
}

// asError turns collected messages into an *Error, or nil when there are none.
func asError(list []string) error {
	if len(list) == 0 {
		return nil
	}
	return &Error{Problems: append([]string(nil), list...)}
}
