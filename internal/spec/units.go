package spec

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ParseSize reads a byte count the way PM2 reads max_memory_restart: a plain number of bytes, or
// a number followed by K, M or G (1024-based; "KB"/"MB"/"GB" and lower case are accepted too).
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("empty size")
	}
	upper := strings.ToUpper(t)
	upper = strings.TrimSuffix(upper, "B")
	mult := int64(1)
	switch {
	case strings.HasSuffix(upper, "K"):
		mult, upper = 1<<10, strings.TrimSuffix(upper, "K")
	case strings.HasSuffix(upper, "M"):
		mult, upper = 1<<20, strings.TrimSuffix(upper, "M")
	case strings.HasSuffix(upper, "G"):
		mult, upper = 1<<30, strings.TrimSuffix(upper, "G")
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(upper), 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, fmt.Errorf("%q is not a size: use bytes or a value like \"300M\" or \"1G\"", s)
	}
	return int64(f * float64(mult)), nil
}

// ParseMillis reads a duration the way PM2 does: a plain number is milliseconds; otherwise a
// number followed by ms, s, m or h ("10s", "1.5m").
func ParseMillis(s string) (Millis, error) {
	t := strings.TrimSpace(strings.ToLower(s))
	if t == "" {
		return 0, fmt.Errorf("empty duration")
	}
	mult := 1.0
	for _, u := range []struct {
		suffix string
		ms     float64
	}{{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}} {
		if strings.HasSuffix(t, u.suffix) {
			// "ms" is tried before "s" and "m", so "5ms" is not read as "5m" + "s".
			mult, t = u.ms, strings.TrimSuffix(t, u.suffix)
			break
		}
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, fmt.Errorf("%q is not a duration: use milliseconds or a value like \"500ms\", \"10s\", \"2m\"", s)
	}
	return Millis(math.Round(f * mult)), nil
}

// FormatSize renders bytes as PM2's tables do: 1024-based, lower-case units, one decimal.
func FormatSize(b int64) string {
	switch {
	case b < 1<<10:
		return fmt.Sprintf("%db", b)
	case b < 1<<20:
		return fmt.Sprintf("%.1fkb", float64(b)/(1<<10))
	case b < 1<<30:
		return fmt.Sprintf("%.1fmb", float64(b)/(1<<20))
	default:
		return fmt.Sprintf("%.1fgb", float64(b)/(1<<30))
	}
}
