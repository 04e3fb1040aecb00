package monit

import (
	"io"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"
)

// styles are the view's colours, from a renderer made for monit's own output when monit
// starts: lipgloss's default renderer is bound to stdout when its package initialises, and
// nothing else in corral should pay for (or be changed by) a terminal's colour profile. Only
// fixed ANSI colours are used, never adaptive ones, which would query the terminal for its
// background.
type styles struct {
	title, dim, bold, selected      lipgloss.Style
	online, warn, bad, info, accent lipgloss.Style
	confirm, help                   lipgloss.Style
}

// newStyles makes the styles for out; without color, every style draws plain text (the
// selection is then shown by its marker alone).
func newStyles(out io.Writer, color bool) styles {
	r := lipgloss.NewRenderer(out)
	if !color {
		r.SetColorProfile(termenv.Ascii)
	}
	s := r.NewStyle
	return styles{
		title:    s().Bold(true),
		dim:      s().Foreground(lipgloss.Color("8")),
		bold:     s().Bold(true),
		selected: s().Reverse(true),
		online:   s().Foreground(lipgloss.Color("2")),
		warn:     s().Foreground(lipgloss.Color("3")),
		bad:      s().Foreground(lipgloss.Color("1")),
		info:     s().Foreground(lipgloss.Color("4")),
		accent:   s().Foreground(lipgloss.Color("6")).Bold(true),
		confirm:  s().Foreground(lipgloss.Color("3")).Bold(true),
		help:     s().Foreground(lipgloss.Color("8")),
	}
}

// status colours a process status as `ls` does.
func (st styles) status(s string) lipgloss.Style {
	switch s {
	case "online":
		return st.online
	case "launching", "waiting restart", "stopping":
		return st.warn
	case "stopped":
		return st.dim
	}
	return st.bad
}
