package spec

import (
	"fmt"
	"math"
	"strings"
)

// Verify is an app's `verify` section: how `corral verify` exercises the app and what it
// accepts. Zero fields take verify's defaults (and its flags override them).
type Verify struct {
	// Path is what the load requests (GET); "" is "/". It should answer 2xx without a session.
	Path        string  `json:"path,omitempty"`
	Duration    Millis  `json:"duration,omitempty"`    // of each load phase
	Concurrency int     `json:"concurrency,omitempty"` // load clients
	Rate        float64 `json:"rate,omitempty"`        // requests per second over all clients; 0 = unpaced
	KeepAlive   *bool   `json:"keep_alive,omitempty"`  // reuse connections (default: a new one per request)
	// MinShare is the least part of its fair share a worker may get (requests, CPU): 0.8 means
	// within ±20 % of an equal split.
	MinShare float64 `json:"min_share,omitempty"`
	// MemorySlope is the most RSS a worker may gain per minute after warm-up, in bytes.
	MemorySlope int64 `json:"memory_slope,omitempty"`
	// The session check: log in, call Check on every worker, log out, call it again.
	Login  *VerifyRequest `json:"login,omitempty"`
	Check  *VerifyRequest `json:"check,omitempty"`
	Logout *VerifyRequest `json:"logout,omitempty"`
}

// VerifyRequest is one request of the session check.
type VerifyRequest struct {
	Method      string `json:"method,omitempty"` // default: POST for login and logout, GET for check
	Path        string `json:"path"`
	Body        string `json:"body,omitempty"`
	ContentType string `json:"content_type,omitempty"` // default application/json when Body is set
	Status      int    `json:"status,omitempty"`       // expected (check: while logged in); default 200
	// LoggedOutStatus is, for check, the status every worker must give once logged out
	// (default 401).
	LoggedOutStatus int `json:"logged_out_status,omitempty"`
}

// Clone returns a deep copy.
func (v *Verify) Clone() *Verify {
	if v == nil {
		return nil
	}
	c := *v
	if v.KeepAlive != nil {
		k := *v.KeepAlive
		c.KeepAlive = &k
	}
	for _, r := range []**VerifyRequest{&c.Login, &c.Check, &c.Logout} {
		if *r != nil {
			x := **r
			*r = &x
		}
	}
	return &c
}

// ParseSlope reads a memory growth rate: a size per minute, hour or second ("1MB/min",
// "512K/m", "10M/h", "4096/s"), in bytes per minute. A size alone is per minute.
func ParseSlope(s string) (int64, error) {
	size, per, found := strings.Cut(strings.TrimSpace(s), "/")
	perMin := 1.0
	if found {
		switch strings.ToLower(strings.TrimSpace(per)) {
		case "s", "sec", "second":
			perMin = 60
		case "m", "min", "minute":
			perMin = 1
		case "h", "hour":
			perMin = 1.0 / 60
		default:
			return 0, fmt.Errorf("%q: the rate is per s, min or h (e.g. \"1MB/min\")", s)
		}
	}
	n, err := ParseSize(size)
	if err != nil {
		return 0, fmt.Errorf("%q is not a memory growth rate: use a size per minute such as \"1MB/min\" or \"10M/h\"", s)
	}
	return int64(math.Round(float64(n) * perMin)), nil
}
