// Package session implements express-session's sessions (as stored by connect-pg-simple) in Go:
// the signed connect.sid cookie, the JSON document in the "session" table and the request
// life cycle, so that a Go app and a Node app share one table, one cookie and one set of secrets.
package session

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"
)

// Sign is cookie-signature's sign (1.0.x, as pinned by express-session): the value, a dot, and
// the HMAC-SHA256 of the value keyed with the secret's UTF-8 bytes, in standard base64 without
// padding.
func Sign(val, secret string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(val))
	return val + "." + base64.RawStdEncoding.EncodeToString(mac.Sum(nil))
}

// Unsign is cookie-signature's unsign tried with each secret in order (express-session's
// unsigncookie): it splits at the last dot, re-signs the value and compares the whole strings in
// constant time, so a non-canonical encoding of the signature is rejected as Node rejects it.
func Unsign(input string, secrets []string) (string, bool) {
	i := strings.LastIndexByte(input, '.')
	if i < 0 {
		return "", false
	}
	val := input[:i]
	for _, s := range secrets {
		if hmac.Equal([]byte(Sign(val, s)), []byte(input)) {
			return val, true
		}
	}
	return "", false
}

// NewID returns a new session ID the way express-session's default genid (uid-safe's uid(24))
// does: 24 random bytes in unpadded base64url, 32 characters.
func NewID() string {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("session: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}
