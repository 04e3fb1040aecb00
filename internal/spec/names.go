package spec

import "strings"

// SnakeCase turns an attribute's camelCase spelling into the snake_case one the specs use
// (keepAlive -> keep_alive, crashRate -> crash_rate): PM2 accepts both in ecosystem files, and
// so do the nested sections corral reads (alerts, verify).
func SnakeCase(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}
