// Package quietterm keeps bubbletea's package initialisation from querying the terminal.
//
// Bubble Tea v1 asks, in an init function, whether the terminal's background is dark
// (lipgloss.HasDarkBackground): when stdout is a terminal in the foreground it switches the
// terminal to raw mode, writes an OSC 11 and a cursor-position query, and waits up to five
// seconds for the answers. Linked into corral, that init would run before every command,
// `corral jlist` included: a round trip to the terminal each time, and a five-second hang
// under a pseudo-terminal that never answers (expect, a test harness). termenv skips the query
// when TERM is "dumb", so this package sets TERM to "dumb" while packages initialise, and
// internal/monit, which imports bubbletea, puts it back in its own init, right after
// bubbletea's.
//
// That this init runs before bubbletea's is Go's package initialisation order (the spec,
// "Package initialization"): the uninitialised package first in import-path order whose imports
// are all initialised goes next. This package imports only os, so it is ready before termenv
// and, its path sorting before github.com/muesli/termenv, is initialised before it, and so
// before lipgloss and bubbletea, which import termenv. integration's TestNoTerminalQueryAtStart
// checks the result on the real binary.
package quietterm

import "os"

// The value of TERM before this package changed it, and whether it was set.
var term, termSet = os.LookupEnv("TERM")

func init() {
	_ = os.Setenv("TERM", "dumb")
}

// Restore puts TERM back as it was before this package's init. internal/monit calls it once,
// from its init, which runs after bubbletea's.
func Restore() {
	if termSet {
		_ = os.Setenv("TERM", term)
	} else {
		_ = os.Unsetenv("TERM")
	}
}
