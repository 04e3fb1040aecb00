package ecosystem

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// asHealthURL reads health_url: a path on the app's own port ("/healthz") or a full http://
// URL ("http://127.0.0.1:5000/healthz"), which /readyz asks (docs/containers.md §5).
func asHealthURL(v any) (string, error) {
	s, err := asString(v)
	if err != nil {
		return "", err
	}
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "/") {
		if _, err := url.ParseRequestURI(s); err != nil {
			return "", fmt.Errorf("%q is not a valid path: %v", s, err)
		}
		return s, nil
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "http" || u.Host == "" || u.Port() == "" {
		return "", fmt.Errorf("%q is neither a path such as '/healthz' (asked on the app's port) nor an http:// URL with a port such as 'http://127.0.0.1:5000/healthz'", s)
	}
	return s, nil
}

// memoryRestart is max_memory_restart: bytes, or a share of the container's memory limit.
type memoryRestart struct {
	bytes   int64
	percent float64
}

// asMemoryRestart reads max_memory_restart: a size as PM2 takes it ('300M', bytes), or a
// percentage of the memory limit of the container corral runs in ('80%').
func asMemoryRestart(v any) (memoryRestart, error) {
	if s, ok := v.(string); ok {
		if p, ok := strings.CutSuffix(strings.TrimSpace(s), "%"); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
			if err != nil || !(f > 0 && f <= 100) {
				return memoryRestart{}, fmt.Errorf("%q: a share of the container's memory limit must be above 0%% and at most 100%%, such as '80%%'", s)
			}
			return memoryRestart{percent: f}, nil
		}
	}
	n, err := asSize(v)
	return memoryRestart{bytes: n}, err
}
