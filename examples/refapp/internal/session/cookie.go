package session

import (
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"
)

// ParseCookie returns the value of the first cookie called name in a Cookie header, as
// jshttp/cookie 0.7.2 (express-session's parser) reads it: pairs split at ';', name and value
// trimmed of spaces and tabs, the first occurrence wins, one pair of surrounding double quotes
// is stripped, and the value is percent-decoded only if it contains '%' (kept raw when that
// decoding fails, as decodeURIComponent throwing is caught there).
func ParseCookie(header, name string) (string, bool) {
	for len(header) > 0 {
		var pair string
		if i := strings.IndexByte(header, ';'); i >= 0 {
			pair, header = header[:i], header[i+1:]
		} else {
			pair, header = header, ""
		}
		k, v, ok := strings.Cut(pair, "=")
		if !ok || strings.Trim(k, " \t") != name {
			continue
		}
		v = strings.Trim(v, " \t")
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		return decodeURIComponent(v), true
	}
	return "", false
}

// requestCookie reads name from all of r's Cookie headers (Node joins repeated headers with "; ").
func requestCookie(r *http.Request, name string) (string, bool) {
	return ParseCookie(strings.Join(r.Header.Values("Cookie"), "; "), name)
}

func decodeURIComponent(v string) string {
	if !strings.Contains(v, "%") {
		return v
	}
	// PathUnescape, unlike QueryUnescape, leaves '+' alone, as decodeURIComponent does.
	d, err := url.PathUnescape(v)
	if err != nil || !utf8.ValidString(d) {
		return v
	}
	return d
}

// EncodeURIComponent is JavaScript's encodeURIComponent, which jshttp/cookie applies to cookie
// values: everything but A-Z a-z 0-9 - _ . ! ~ * ' ( ) is percent-encoded as UTF-8 bytes.
// (url.QueryEscape differs on space and on !*'(); url.PathEscape leaves ':' and '+' alone.)
func EncodeURIComponent(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			strings.IndexByte("-_.!~*'()", c) >= 0:
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}

// SignedValue is the decoded cookie value express-session sets: "s:" + the signed session ID.
func SignedValue(sid, secret string) string { return "s:" + Sign(sid, secret) }

// SetCookieHeader renders a Set-Cookie header as express-session does through
// jshttp/cookie's serialize: the encoded value, then Domain, Path, Expires, HttpOnly, Secure,
// Partitioned, Priority, SameSite, from the session's cookie attributes and expiry. No Max-Age
// (express-session sends none). A cookie without Expires gives a browser-session cookie.
func SetCookieHeader(name, value string, c *Cookie) string {
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte('=')
	b.WriteString(EncodeURIComponent(value))
	if d, ok := c.str("domain"); ok && d != "" {
		b.WriteString("; Domain=" + d)
	}
	if p, ok := c.str("path"); ok && p != "" {
		b.WriteString("; Path=" + p)
	}
	if c.Expires != nil {
		b.WriteString("; Expires=" + c.Expires.UTC().Format(http.TimeFormat))
	}
	if c.truthy("httpOnly") {
		b.WriteString("; HttpOnly")
	}
	if c.truthy("secure") {
		b.WriteString("; Secure")
	}
	if c.truthy("partitioned") {
		b.WriteString("; Partitioned")
	}
	if p, ok := c.str("priority"); ok {
		switch strings.ToLower(p) {
		case "low":
			b.WriteString("; Priority=Low")
		case "medium":
			b.WriteString("; Priority=Medium")
		case "high":
			b.WriteString("; Priority=High")
		}
	}
	if s, ok := c.str("sameSite"); ok {
		switch strings.ToLower(s) {
		case "lax":
			b.WriteString("; SameSite=Lax")
		case "strict":
			b.WriteString("; SameSite=Strict")
		case "none":
			b.WriteString("; SameSite=None")
		}
	} else if c.isTrue("sameSite") {
		b.WriteString("; SameSite=Strict")
	}
	return b.String()
}

// ClearCookieHeader is Express's res.clearCookie(name, {path, domain}): an empty value that
// expired at the epoch.
func ClearCookieHeader(name, path, domain string) string {
	var b strings.Builder
	b.WriteString(name + "=")
	if domain != "" {
		b.WriteString("; Domain=" + domain)
	}
	if path == "" {
		path = "/"
	}
	b.WriteString("; Path=" + path)
	b.WriteString("; Expires=Thu, 01 Jan 1970 00:00:00 GMT")
	return b.String()
}
