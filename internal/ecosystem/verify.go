package ecosystem

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/corral-pm/corral/internal/spec"
)

// verifyKeys and verifyRequestKeys are what the `verify` section accepts (camelCase too).
var (
	verifyKeys        = []string{"path", "duration", "concurrency", "rate", "keep_alive", "min_share", "memory_slope", "login", "check", "logout"}
	verifyRequestKeys = []string{"method", "path", "body", "content_type", "status", "logged_out_status"}
)

// asVerify reads corral's `verify` section (see spec.Verify):
//
//	verify: { path: '/api/health', duration: '10s', concurrency: 16, min_share: 0.8,
//	          memory_slope: '1MB/min',
//	          login: { method: 'POST', path: '/api/auth/login', body: { email, password }, status: 200 },
//	          check: { path: '/api/me', status: 200, logged_out_status: 401 },
//	          logout: { method: 'POST', path: '/api/auth/logout', status: 200 } }
//
// Every problem is reported at once, each naming its key (verify.login.status) and the fix.
func asVerify(v any) (*spec.Verify, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, typeErr("an object such as { path: '/health', duration: '10s' }", v)
	}
	var out spec.Verify
	var errs []string
	bad := func(key string, err error) { errs = append(errs, fmt.Sprintf("%s: %v", key, err)) }
	for _, raw := range sortedKeys(m) {
		val := plain(m[raw])
		if val == nil {
			continue
		}
		key := spec.SnakeCase(raw)
		switch key {
		case "path":
			p, err := asURLPath(val)
			if err != nil {
				bad(raw, err)
			}
			out.Path = p
		case "duration":
			d, err := asMillis(val)
			if err == nil && d < 1000 {
				err = fmt.Errorf("%s is too short to measure anything: use at least \"1s\"", formatNumber(int64(d))+"ms")
			}
			if err != nil {
				bad(raw, err)
			}
			out.Duration = d
		case "concurrency":
			n, err := asNonNegativeInt(val)
			if err == nil && (n < 1 || n > 1024) {
				err = fmt.Errorf("%d clients: use 1 to 1024", n)
			}
			if err != nil {
				bad(raw, err)
			}
			out.Concurrency = n
		case "rate":
			f, ok := numberAsFloat(val)
			if !ok || f < 0 || math.IsNaN(f) || math.IsInf(f, 0) {
				bad(raw, fmt.Errorf("expected requests per second from 0 up (0: as fast as the app answers), got %s", typeName(val)))
			}
			out.Rate = f
		case "keep_alive":
			b, err := asBool(val)
			if err != nil {
				bad(raw, err)
			}
			out.KeepAlive = &b
		case "min_share":
			f, ok := numberAsFloat(val)
			if !ok || !(f > 0 && f <= 1) {
				bad(raw, fmt.Errorf("expected the least part of a fair share a worker may get, above 0 and at most 1 (0.8: within ±20 %%), got %s", typeName(val)))
			}
			out.MinShare = f
		case "memory_slope":
			var n int64
			var err error
			if s, ok := val.(string); ok {
				n, err = spec.ParseSlope(s)
			} else {
				n, err = asSize(val)
			}
			if err == nil && n <= 0 {
				err = errors.New("must be above 0, e.g. \"1MB/min\"")
			}
			if err != nil {
				bad(raw, err)
			}
			out.MemorySlope = n
		case "login", "check", "logout":
			r, rerrs := asVerifyRequest(raw, val)
			errs = append(errs, rerrs...)
			switch key {
			case "login":
				out.Login = r
			case "check":
				out.Check = r
			default:
				out.Logout = r
			}
		default:
			bad(raw, fmt.Errorf("unknown key: verify takes %s", strings.Join(verifyKeys, ", ")))
		}
	}
	if len(errs) == 0 && (out.Login != nil || out.Logout != nil) && out.Check == nil {
		errs = append(errs, "login and logout need check too: the path every worker is asked after each (e.g. check: { path: '/api/me' })")
	}
	if len(errs) > 0 {
		return nil, errors.New(strings.Join(errs, "; "))
	}
	return &out, nil
}

func asVerifyRequest(name string, v any) (*spec.VerifyRequest, []string) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, []string{fmt.Sprintf("%s: %v", name, typeErr("an object such as { method: 'POST', path: '/login', status: 200 }", v))}
	}
	var r spec.VerifyRequest
	var errs []string
	bad := func(key string, err error) { errs = append(errs, fmt.Sprintf("%s.%s: %v", name, key, err)) }
	for _, raw := range sortedKeys(m) {
		val := plain(m[raw])
		if val == nil {
			continue
		}
		switch spec.SnakeCase(raw) {
		case "method":
			s, err := asString(val)
			if err == nil && (s == "" || strings.ContainsAny(s, " \t\r\n")) {
				err = fmt.Errorf("%q is not an HTTP method: use GET, POST, DELETE...", s)
			}
			if err != nil {
				bad(raw, err)
			}
			r.Method = strings.ToUpper(s)
		case "path":
			p, err := asURLPath(val)
			if err != nil {
				bad(raw, err)
			}
			r.Path = p
		case "body":
			switch b := val.(type) {
			case string:
				r.Body = b
			case map[string]any, []any:
				js, err := json.Marshal(b)
				if err != nil {
					bad(raw, err)
				}
				r.Body = string(js)
			default:
				bad(raw, typeErr("a string or an object (sent as JSON)", val))
			}
		case "content_type":
			s, err := asString(val)
			if err != nil {
				bad(raw, err)
			}
			r.ContentType = s
		case "status", "logged_out_status":
			n, err := asInt(val)
			if err == nil && (n < 100 || n > 599) {
				err = fmt.Errorf("%d is not an HTTP status: use 100 to 599", n)
			}
			if err != nil {
				bad(raw, err)
			}
			if spec.SnakeCase(raw) == "status" {
				r.Status = int(n)
			} else {
				r.LoggedOutStatus = int(n)
			}
		default:
			bad(raw, fmt.Errorf("unknown key: a request takes %s", strings.Join(verifyRequestKeys, ", ")))
		}
	}
	if r.Path == "" && len(errs) == 0 {
		errs = append(errs, fmt.Sprintf("%s.path is missing: e.g. path: '/api/me'", name))
	}
	return &r, errs
}

// asURLPath reads a request path: it starts with "/" and has no spaces.
func asURLPath(v any) (string, error) {
	s, err := asString(v)
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(s, "/") || strings.ContainsAny(s, " \t\r\n") {
		return "", fmt.Errorf("%q is not a request path: start it with / (e.g. \"/api/health\")", s)
	}
	return s, nil
}
