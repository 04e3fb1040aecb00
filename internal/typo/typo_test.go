package typo

import "testing"

func TestDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"web", "web", 0},
		{"", "web", 3},
		{"wbe", "web", 1},               // a swap is one edit
		{"instances", "instance", 1},    // a deletion
		{"exec_mdoe", "exec_mode", 1},   // a swap inside
		{"max_memory", "max_memroy", 1}, // and at the end
		{"kitten", "sitting", 3},
		{"né", "ne", 1}, // runes, not bytes
	} {
		if got := Distance(c.a, c.b); got != c.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
		if got := Distance(c.b, c.a); got != c.want {
			t.Errorf("Distance(%q, %q) = %d, want %d (symmetric)", c.b, c.a, got, c.want)
		}
	}
}
