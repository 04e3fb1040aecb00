package ecosystem

import (
	"fmt"
	"net/url"
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
