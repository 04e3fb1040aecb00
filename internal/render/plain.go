package render

import "strings"

// PlainText is an app's output line made safe to print inside corral's own output: its escape
// sequences (colours, cursor moves, titles) and control characters removed, tabs made spaces.
// A live view would be repainted or moved by them, and a snapshot piped to a file must hold
// no escape code at all.
func PlainText(s string) string {
	if !strings.ContainsFunc(s, isControl) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == 0x1b:
			i = skipEscape(s, i)
		case c == '\t':
			b.WriteString("    ")
		case c < 0x20 || c == 0x7f:
		default:
			b.WriteByte(c)
		}
	}
	// C1 controls (U+0080 to U+009F) are two bytes in UTF-8: dropped as runes.
	return strings.Map(func(r rune) rune {
		if r >= 0x80 && r < 0xa0 {
			return -1
		}
		return r
	}, b.String())
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }

// skipEscape returns the index of the last byte of the escape sequence starting at s[i] (an
// ESC): a CSI sequence up to its final byte, an OSC, DCS, SOS, PM or APC string up to its BEL
// or ST, or ESC and the one byte after it.
func skipEscape(s string, i int) int {
	if i+1 >= len(s) {
		return i
	}
	switch s[i+1] {
	case '[':
		for j := i + 2; j < len(s); j++ {
			if s[j] >= 0x40 && s[j] <= 0x7e {
				return j
			}
		}
		return len(s) - 1
	case ']', 'P', 'X', '^', '_':
		for j := i + 2; j < len(s); j++ {
			if s[j] == 0x07 {
				return j
			}
			if s[j] == 0x1b && j+1 < len(s) && s[j+1] == '\\' {
				return j + 1
			}
		}
		return len(s) - 1
	}
	return i + 1
}
