package verify

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/corral-pm/corral/internal/spec"
)

// Defaults of the thresholds and the load, which the app's `verify` section and the flags
// override.
const (
	DefaultDuration    = 10 * time.Second
	DefaultConcurrency = 16
	DefaultMinShare    = 0.8     // each worker within ±20 % of its fair share
	DefaultMemorySlope = 1 << 20 // bytes per minute
	DefaultCheckPerW   = 4       // session checks per worker, at least
)

// Options is one run of verify.
type Options struct {
	App         string
	Target      string // host:port to load; "" is loopback on the app's port
	Path        string // what the load requests
	Duration    time.Duration
	Concurrency int
	Rate        float64
	KeepAlive   bool
	MinShare    float64
	MemorySlope int64 // bytes per minute
	Scaling     bool  // also measure one worker against all
	SendTest    bool  // fire a test notification through the alert sinks
	Login       *spec.VerifyRequest
	CheckReq    *spec.VerifyRequest
	Logout      *spec.VerifyRequest
	// Skip names checks not to run (reload and rollback change the app).
	Skip map[string]bool
}

// Configure fills o from the app's `verify` section where o has no value of its own.
func (o *Options) Configure(v *spec.Verify) {
	if v == nil {
		v = &spec.Verify{}
	}
	if o.Path == "" {
		o.Path = v.Path
	}
	if o.Duration == 0 {
		o.Duration = v.Duration.D()
	}
	if o.Concurrency == 0 {
		o.Concurrency = v.Concurrency
	}
	if o.Rate == 0 {
		o.Rate = v.Rate
	}
	if v.KeepAlive != nil && *v.KeepAlive {
		o.KeepAlive = true
	}
	if o.MinShare == 0 {
		o.MinShare = v.MinShare
	}
	if o.MemorySlope == 0 {
		o.MemorySlope = v.MemorySlope
	}
	if o.Login == nil {
		o.Login = v.Login
	}
	if o.CheckReq == nil {
		o.CheckReq = v.Check
	}
	if o.Logout == nil {
		o.Logout = v.Logout
	}
	if o.Path == "" {
		o.Path = "/"
	}
	if o.Duration == 0 {
		o.Duration = DefaultDuration
	}
	if o.Concurrency == 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.MinShare == 0 {
		o.MinShare = DefaultMinShare
	}
	if o.MemorySlope == 0 {
		o.MemorySlope = DefaultMemorySlope
	}
	o.Login = withDefaults(o.Login, http.MethodPost, 200, 0)
	o.CheckReq = withDefaults(o.CheckReq, http.MethodGet, 200, 401)
	o.Logout = withDefaults(o.Logout, http.MethodPost, 200, 0)
}

func withDefaults(r *spec.VerifyRequest, method string, status, loggedOut int) *spec.VerifyRequest {
	if r == nil {
		return nil
	}
	c := *r
	if c.Method == "" {
		c.Method = method
	}
	if c.Status == 0 {
		c.Status = status
	}
	if c.LoggedOutStatus == 0 {
		c.LoggedOutStatus = loggedOut
	}
	if c.Body != "" && c.ContentType == "" {
		c.ContentType = "application/json"
	}
	return &c
}

// Validate checks the options a user may get wrong, naming the flag and the fix.
func (o *Options) Validate() error {
	switch {
	case o.Duration < time.Second:
		return fmt.Errorf("--duration %s is too short to measure anything: use at least 1s", o.Duration)
	case o.Concurrency < 1 || o.Concurrency > 1024:
		return fmt.Errorf("--concurrency %d: use 1 to 1024 clients", o.Concurrency)
	case o.Rate < 0:
		return fmt.Errorf("--rate %g: use requests per second from 0 up (0: as fast as the app answers)", o.Rate)
	case !(o.MinShare > 0 && o.MinShare <= 1):
		return fmt.Errorf("--min-share %g: use the least part of a fair share a worker may get, above 0 and at most 1 (0.8: within ±20 %%)", o.MinShare)
	case o.MemorySlope <= 0:
		return fmt.Errorf("--memory-slope must be above 0, e.g. 1MB/min")
	}
	for id := range o.Skip {
		known := false
		for _, k := range CheckIDs {
			known = known || k == id
		}
		if !known {
			return fmt.Errorf("--skip %s: no such check; the checks are %s", id, strings.Join(CheckIDs, ", "))
		}
	}
	if (o.Login != nil || o.Logout != nil) && o.CheckReq == nil {
		return fmt.Errorf("the session check needs a check path too (--check-path /api/me, or verify.check in the ecosystem file)")
	}
	return nil
}

// sessionsConfigured reports whether the session check has what it needs.
func (o *Options) sessionsConfigured() bool { return o.Login != nil && o.CheckReq != nil }
