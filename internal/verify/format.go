package verify

import (
	"fmt"
	"math"
	"strconv"
)

// num formats a rate: 4,210 or 12.5.
func num(f float64) string {
	if f >= 100 {
		return count(int64(math.Round(f)))
	}
	return strconv.FormatFloat(f, 'f', 1, 64)
}

// count formats an integer with thousands separators: 42,100.
func count(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

// ms formats milliseconds: 0.42 ms, 2.1 ms, 31 ms.
func ms(v float64) string {
	switch {
	case v < 1:
		return strconv.FormatFloat(v, 'f', 2, 64) + " ms"
	case v < 10:
		return strconv.FormatFloat(v, 'f', 1, 64) + " ms"
	}
	return strconv.FormatFloat(v, 'f', 0, 64) + " ms"
}

// pct formats a fraction as a percentage: 25.3 %.
func pct(f float64) string { return strconv.FormatFloat(f*100, 'f', 1, 64) + " %" }

// mib formats bytes in MB (2^20).
func mib(b float64) string { return strconv.FormatFloat(b/(1<<20), 'f', 1, 64) + " MB" }

// secs formats seconds: 2.4 s.
func secs(s float64) string { return fmt.Sprintf("%.1f s", s) }
