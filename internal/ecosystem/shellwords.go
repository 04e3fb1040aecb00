package ecosystem

import (
	"fmt"
	"strings"
)

// SplitShellWords splits a string into words the way a POSIX shell would, without expanding
// anything: whitespace separates words, single quotes keep everything literally, double quotes
// keep everything but let a backslash escape " \ $ and `, and a backslash outside quotes
// escapes the next character. PM2 splits "array" attributes given as strings the same way;
// examples/container splits a Dockerfile's ENV with it too.
func SplitShellWords(s string) ([]string, error) {
	var words []string
	var word strings.Builder
	inWord := false
	const (
		none = iota
		single
		double
	)
	quote := none
	runes := []rune(s)
	for i := 0; i < len(runes); i++ {
		c := runes[i]
		switch quote {
		case single:
			if c == '\'' {
				quote = none
			} else {
				word.WriteRune(c)
			}
		case double:
			switch {
			case c == '"':
				quote = none
			case c == '\\' && i+1 < len(runes) && strings.ContainsRune("\"\\$`", runes[i+1]):
				i++
				word.WriteRune(runes[i])
			default:
				word.WriteRune(c)
			}
		default:
			switch {
			case c == ' ' || c == '\t' || c == '\n' || c == '\r':
				if inWord {
					words = append(words, word.String())
					word.Reset()
					inWord = false
				}
			case c == '\'':
				quote, inWord = single, true
			case c == '"':
				quote, inWord = double, true
			case c == '\\':
				inWord = true
				if i+1 < len(runes) {
					i++
					word.WriteRune(runes[i])
				}
			default:
				inWord = true
				word.WriteRune(c)
			}
		}
	}
	if quote != none {
		return nil, fmt.Errorf("%q has an unterminated quote", s)
	}
	if inWord {
		words = append(words, word.String())
	}
	return words, nil
}

// shellQuote quotes a word for sh when it needs quoting, so arguments appended to a shell
// command line arrive as the same words.
func shellQuote(word string) string {
	if word != "" && !strings.ContainsAny(word, " \t\n\r'\"\\$`!*?[]{}()<>|&;#~") {
		return word
	}
	return "'" + strings.ReplaceAll(word, "'", `'\''`) + "'"
}
