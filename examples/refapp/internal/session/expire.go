package session

import (
	"math"
	"time"
)

// DefaultTTL is connect-pg-simple's ttl default (ONE_DAY), used for the row's expire when the
// cookie has no maxAge.
const DefaultTTL = 24 * time.Hour

// NowSecs is connect-pg-simple's currentTimestamp(): Math.ceil(Date.now() / 1000), from the
// app's clock (never the database's).
func NowSecs(now time.Time) int64 { return ceilDiv(now.UnixMilli(), 1000) }

// ExpireSecs is the value connect-pg-simple stores in the expire column for a session whose
// cookie was just touched at now (express-session touches before every set/touch):
// ceil((now_ms + originalMaxAge) / 1000), or ceil(now_ms/1000 + ttl) when originalMaxAge is null.
func ExpireSecs(c *Cookie, now time.Time, ttl time.Duration) int64 {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	nowMs := now.UnixMilli()
	if c != nil && c.OriginalMaxAge != nil {
		return ceilDiv(nowMs+int64(*c.OriginalMaxAge), 1000)
	}
	return int64(math.Ceil(float64(nowMs)/1000 + ttl.Seconds()))
}

// ceilDiv is Math.ceil(a/b) for b > 0.
func ceilDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a > 0) == (b > 0) {
		q++
	}
	return q
}
