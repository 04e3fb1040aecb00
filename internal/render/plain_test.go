package render

import "testing"

// TestPlainText: escape sequences and control characters never reach corral's output; the text
// around them does.
func TestPlainText(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "GET / 200 3ms", "GET / 200 3ms"},
		{"colours", "\x1b[32mok\x1b[0m done", "ok done"},
		{"cursor moves", "a\x1b[2J\x1b[Hb\x1b[10;20Hc", "abc"},
		{"window title (OSC, BEL)", "\x1b]0;pwned\x07text", "text"},
		{"hyperlink (OSC, ST)", "\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "link"},
		{"two-byte escape", "a\x1bMb", "ab"},
		{"escape at the end", "a\x1b", "a"},
		{"unfinished CSI", "a\x1b[12", "a"},
		{"tab", "a\tb", "a    b"},
		{"carriage return and bell", "50%\r100%\x07", "50%100%"},
		{"C1 control", "a\u009bb", "ab"},
		{"unicode kept", "héllo ▁▂ 世界", "héllo ▁▂ 世界"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := PlainText(tc.in); got != tc.want {
				t.Errorf("PlainText(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
