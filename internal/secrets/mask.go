// Package secrets keeps environment secrets out of everything corral shows or stores.
//
// PM2 prints every environment variable, secrets included, in `pm2 env`, `jlist`, `describe`
// and `report`, and writes them in clear to dump.pm2 (PM2 issues #5190, #5419, #1579;
// pm2-deploy#37). corral masks by default: MaskValue/MaskEnv are for anything displayed, and a
// Sealer encrypts the values the saved process list must keep (so that resurrect can restore
// them) under a key file that lives apart from the list.
//
// Detection is a heuristic on two things: the variable name (IsSecretKey) and credentials
// embedded in values (URL user info, key=value pairs such as "?token=..." or
// "Password=...;"). It errs on the side of masking: a masked non-secret costs a little
// readability, a missed secret leaks.
package secrets

import (
	"strings"
	"unicode"
)

// Mask replaces a secret for display. Its width is fixed so that it reveals nothing about
// the length of the secret.
const Mask = "********"

// matchMode says where in one word part of a variable name a term may appear.
type matchMode int

const (
	// anywhere: the term may be embedded in a longer word (PGPASSWORD, CLIENTSECRET).
	anywhere matchMode = iota
	// atEnd: the word is the term, ends with it, or is its plural (APIKEY, KEYS, ACCESSTOKEN),
	// but the term may not start a longer word (KEYBOARD, TOKENIZERS are not secrets).
	atEnd
	// whole: the word is exactly the term or its plural (DB_PASS, but not BYPASS or
	// PASSENGER).
	whole
)

// secretTerms are matched against the upper-cased word parts of a variable name.
//
// Choices beyond the plain list, and why:
//   - KEY is atEnd: API_KEY, APIKEY, SECRET_KEY_BASE, AWS_ACCESS_KEY_ID and KEY are secret;
//     KEYBOARD_LAYOUT is not. Names like MONKEY or PUBLIC_KEY are masked too, which is
//     harmless.
//   - TOKEN is atEnd so that HuggingFace's TOKENIZERS_PARALLELISM stays visible.
//   - PASS is whole so that BYPASS_CACHE, COMPASS and PASSENGER_* stay visible.
//   - PWD is whole and the name "PWD" alone is excluded (it is the shell's working
//     directory, as OLDPWD is); DB_PWD and MYSQL_PWD are secret.
//   - AUTH is matched anywhere except as AUTHOR/AUTHORITY (GIT_AUTHOR_NAME, XAUTHORITY) and
//     UNAUTH (NODE_TLS_REJECT_UNAUTHORIZED); AUTHORIZATION, OAUTH and SSH_AUTH_SOCK are
//     masked. See isAuthWord.
//   - PASSPHRASE and CREDS are added to the list.
var secretTerms = []struct {
	term string
	mode matchMode
}{
	{"SECRET", anywhere},
	{"PASSWORD", anywhere},
	{"PASSWD", anywhere},
	{"PASSPHRASE", anywhere},
	{"PWD", whole},
	{"PASS", whole},
	{"TOKEN", atEnd},
	{"KEY", atEnd},
	{"CREDENTIAL", anywhere},
	{"CREDS", whole},
	{"PRIVATE", anywhere},
	{"COOKIE", anywhere},
	{"SALT", atEnd},
	{"SIGNATURE", anywhere},
	{"DSN", atEnd},
}

// IsSecretKey reports whether an environment variable name looks secret.
//
// The name is split into word parts at any character that is not a letter or digit (_ - .
// and so on), at lower→upper case changes (apiKey), before the last capital of an acronym
// followed by a lower-case letter (APIKey → API Key), and between letters and digits
// (OAUTH2 → OAUTH 2). Matching is case-insensitive. The terms and how each may appear in a
// word are listed in secretTerms; in short: SECRET, PASSWORD, PASSWD, PASSPHRASE,
// CREDENTIAL(S), PRIVATE, COOKIE, SIGNATURE and AUTH (not AUTHOR) anywhere in a word; TOKEN,
// KEY, SALT, DSN as a word or a word's ending; PASS, PWD, CREDS as a whole word only, and
// never the name "PWD" itself.
func IsSecretKey(key string) bool {
	ws := words(key)
	if len(ws) == 1 && ws[0] == "PWD" {
		return false // the shell's working directory
	}
	for _, w := range ws {
		if isAuthWord(w) {
			return true
		}
		for _, t := range secretTerms {
			switch t.mode {
			case anywhere:
				if strings.Contains(w, t.term) {
					return true
				}
			case atEnd:
				if strings.HasSuffix(w, t.term) || strings.HasSuffix(w, t.term+"S") {
					return true
				}
			case whole:
				if w == t.term || w == t.term+"S" {
					return true
				}
			}
		}
	}
	return false
}

// isAuthWord reports whether w contains AUTH other than as the start of AUTHOR... (author,
// authority), while still accepting AUTHORIZATION/AUTHORIZE, which carry credentials.
// UNAUTH... is a flag, not a credential (NODE_TLS_REJECT_UNAUTHORIZED).
func isAuthWord(w string) bool {
	for i := 0; ; {
		j := strings.Index(w[i:], "AUTH")
		if j < 0 {
			return false
		}
		at := i + j
		rest := w[at+len("AUTH"):]
		if !strings.HasSuffix(w[:at], "UN") && (!strings.HasPrefix(rest, "OR") || strings.HasPrefix(rest, "ORIZ")) {
			return true
		}
		i = at + len("AUTH")
	}
}

// words splits a variable name into upper-cased word parts; see IsSecretKey.
func words(key string) []string {
	rs := []rune(key)
	var out []string
	start := 0
	flush := func(end int) {
		if end > start {
			out = append(out, strings.ToUpper(string(rs[start:end])))
		}
		start = end
	}
	for i, r := range rs {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			flush(i)
			start = i + 1
			continue
		}
		if i == start {
			continue
		}
		p := rs[i-1]
		switch {
		case unicode.IsLower(p) && unicode.IsUpper(r):
			flush(i)
		case unicode.IsUpper(p) && unicode.IsUpper(r) && i+1 < len(rs) && unicode.IsLower(rs[i+1]):
			flush(i)
		case unicode.IsDigit(p) != unicode.IsDigit(r):
			flush(i)
		}
	}
	flush(len(rs))
	return out
}

// MaskValue masks a value for display.
//
// The value of a secret key (IsSecretKey) becomes Mask whatever it is; an empty value stays
// empty (showing that a secret is unset gives nothing away and helps debugging). In any other
// value, credentials are masked where they can be recognised:
//
//   - URL user info, in any number of URLs in the value: "postgres://app:s3cret@db/x" →
//     "postgres://app:********@db/x", "redis://:pw@h" → "redis://:********@h". A user name
//     alone is kept ("postgres://app@db"), unless it is 16 characters or longer: that is
//     the form of https://<token>@github.com, and such a user name is masked whole.
//   - key=value pairs whose key IsSecretKey, when they start the value or follow one of
//     ? & ; # , or white space: "?password=x&sslmode=require", "...;AccountKey=abc;...",
//     "--db-password=x". The value runs to the next ; & or white space (a quoted value to its
//     closing quote).
//
// User info follows RFC 3986: a password containing an unescaped / ? # or white space ends
// the authority early and is not recognised; such URLs are invalid and rejected by most
// clients anyway.
func MaskValue(key, value string) string {
	if value == "" {
		return ""
	}
	if IsSecretKey(key) {
		return Mask
	}
	return maskPairs(maskUserinfo(value))
}

// MaskEnv returns a new map with every value passed through MaskValue. A nil env gives nil.
func MaskEnv(env map[string]string) map[string]string {
	if env == nil {
		return nil
	}
	out := make(map[string]string, len(env))
	for k, v := range env {
		out[k] = MaskValue(k, v)
	}
	return out
}

// minTokenUser is the length from which a URL user name without a password is taken for a
// token (GitHub tokens are 40+ characters; ordinary user names are short).
const minTokenUser = 16

// maskUserinfo masks the password (or a token-like lone user name) of every URL in v.
func maskUserinfo(v string) string {
	var b strings.Builder
	last := 0 // v[:last] has been written to b
	for i := 0; ; {
		j := strings.Index(v[i:], "://")
		if j < 0 {
			break
		}
		start := i + j + len("://")
		end := len(v)
		if k := strings.IndexFunc(v[start:], endsAuthority); k >= 0 {
			end = start + k
		}
		// The next search starts right after this "://": the authority ends at the latest
		// at the first slash of the next URL's "://", so authorities never overlap.
		i = start
		auth := v[start:end]
		at := strings.LastIndexByte(auth, '@')
		if at < 0 {
			continue
		}
		userinfo := auth[:at]
		maskFrom := -1
		if c := strings.IndexByte(userinfo, ':'); c >= 0 {
			if c+1 < len(userinfo) {
				maskFrom = start + c + 1
			}
		} else if len(userinfo) >= minTokenUser {
			maskFrom = start
		}
		if maskFrom >= 0 {
			b.WriteString(v[last:maskFrom])
			b.WriteString(Mask)
			last = start + at
		}
	}
	if last == 0 {
		return v
	}
	b.WriteString(v[last:])
	return b.String()
}

// endsAuthority reports whether r ends a URL authority: the RFC 3986 delimiters / ? #, white
// space, and characters that may not appear in a URL at all (so that a URL quoted in JSON
// or in angle brackets ends at its quote).
func endsAuthority(r rune) bool {
	return strings.ContainsRune("/?#\"<>\\^`{|}", r) || unicode.IsSpace(r)
}

// maskPairs masks the values of key=value pairs whose key is secret; see MaskValue.
func maskPairs(v string) string {
	var b strings.Builder
	last := 0
	for i := 0; i < len(v); i++ {
		if i > 0 && !startsPair(v[i-1]) {
			continue
		}
		n := 0
		for i+n < len(v) && isPairKeyByte(v[i+n]) {
			n++
		}
		if n == 0 || i+n >= len(v) || v[i+n] != '=' {
			continue
		}
		name := v[i : i+n]
		vs := i + n + 1 // value start
		ve := vs        // value end
		if ve < len(v) && (v[ve] == '"' || v[ve] == '\'') {
			if k := strings.IndexByte(v[ve+1:], v[ve]); k >= 0 {
				vs, ve = ve+1, ve+1+k // mask between the quotes
			} else {
				vs, ve = ve+1, len(v)
			}
		} else {
			for ve < len(v) && !endsPairValue(v[ve]) {
				ve++
			}
		}
		if ve > vs && IsSecretKey(name) {
			b.WriteString(v[last:vs])
			b.WriteString(Mask)
			last = ve
		}
		i = ve - 1 // the loop's i++ lands on the value's terminator
		if i < vs {
			i = vs
		}
	}
	if last == 0 {
		return v
	}
	b.WriteString(v[last:])
	return b.String()
}

func startsPair(c byte) bool {
	switch c {
	case '?', '&', ';', '#', ',', ' ', '\t', '\n', '\r':
		return true
	}
	return false
}

func isPairKeyByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '_' || c == '-' || c == '.'
}

func endsPairValue(c byte) bool {
	switch c {
	case ';', '&', ' ', '\t', '\n', '\r':
		return true
	}
	return false
}
