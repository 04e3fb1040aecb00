package spec

import "testing"

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		bad  bool
	}{
		{"300M", 300 << 20, false},
		{"300MB", 300 << 20, false},
		{"1G", 1 << 30, false},
		{"512K", 512 << 10, false},
		{"512k", 512 << 10, false},
		{"1048576", 1 << 20, false},
		{"1.5G", 3 << 29, false},
		{"", 0, true},
		{"300X", 0, true},
		{"-1M", 0, true},
	} {
		got, err := ParseSize(tc.in)
		if tc.bad != (err != nil) || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, bad=%v", tc.in, got, err, tc.want, tc.bad)
		}
	}
}

func TestParseMillis(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Millis
		bad  bool
	}{
		{"1600", 1600, false},
		{"10s", 10000, false},
		{"500ms", 500, false},
		{"5ms", 5, false},
		{"2m", 120000, false},
		{"1h", 3600000, false},
		{"1.5s", 1500, false},
		{"soon", 0, true},
		{"", 0, true},
		{"-3s", 0, true},
	} {
		got, err := ParseMillis(tc.in)
		if tc.bad != (err != nil) || got != tc.want {
			t.Errorf("ParseMillis(%q) = %d, %v; want %d, bad=%v", tc.in, got, err, tc.want, tc.bad)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for in, want := range map[int64]string{512: "512b", 2048: "2.0kb", 55 << 20: "55.0mb", 3 << 30: "3.0gb"} {
		if got := FormatSize(in); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", in, got, want)
		}
	}
}
