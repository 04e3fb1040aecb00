package ecosystem

import (
	"strings"
)

// envPair is one KEY=VALUE line of a .env file, kept in file order.
type envPair struct {
	key, value string
}

// parseDotenv reads a .env file the way the dotenv npm package (v16) does, since ecosystem
// files commonly call require('dotenv').config():
//
//   - KEY=VALUE, optionally preceded by "export "; whitespace around both is trimmed;
//   - '#' starts a comment: whole lines, and the rest of an unquoted value;
//   - values in single, double or back quotes are taken as written and may span lines;
//     inside double quotes, \n and \r become a newline and a carriage return;
//   - lines that are not assignments are ignored; a later assignment wins.
func parseDotenv(src string) []envPair {
	src = strings.ReplaceAll(src, "\r\n", "\n")
	var pairs []envPair
	for len(src) > 0 {
		line, rest, _ := strings.Cut(src, "\n")
		src = rest
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		trimmed = strings.TrimPrefix(trimmed, "export ")
		key, value, ok := strings.Cut(trimmed, "=")
		key = strings.TrimSpace(key)
		if !ok || !isDotenvKey(key) {
			continue
		}
		value = strings.TrimLeft(value, " \t")
		if value != "" && strings.ContainsRune("'\"`", rune(value[0])) {
			q := value[0]
			body := value[1:]
			end := strings.IndexByte(body, q)
			afterLine := src
			// A quoted value may continue on the following lines up to its closing quote.
			for end < 0 && src != "" {
				var next string
				next, src, _ = strings.Cut(src, "\n")
				body += "\n" + next
				end = strings.IndexByte(body, q)
			}
			if end < 0 {
				// No closing quote anywhere: dotenv keeps the first line as an unquoted value.
				src = afterLine
				pairs = append(pairs, envPair{key, unquotedValue(value)})
				continue
			}
			body = body[:end]
			if q == '"' {
				body = strings.NewReplacer(`\n`, "\n", `\r`, "\r").Replace(body)
			}
			pairs = append(pairs, envPair{key, body})
			continue
		}
		pairs = append(pairs, envPair{key, unquotedValue(value)})
	}
	return pairs
}

func unquotedValue(v string) string {
	if i := strings.IndexByte(v, '#'); i >= 0 {
		v = v[:i]
	}
	return strings.TrimSpace(v)
}

func isDotenvKey(k string) bool {
	if k == "" {
		return false
	}
	for _, r := range k {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-'
		if !ok {
			return false
		}
	}
	return true
}
