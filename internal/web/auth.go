package web

import (
	"crypto/subtle"
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Guard holds the token every dashboard request is checked against.
type Guard struct {
	token string
}

// NewGuard guards the dashboard with token ("" refuses every request).
func NewGuard(token string) *Guard {
	return &Guard{token: token}
}

// Headers every dashboard answer carries: the page runs only its own scripts, is never framed,
// and never sends a Referer (the token is in the fragment, which browsers do not send, but the
// rule costs nothing).
func setSecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", csp("'self'"))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
}

// csp is the Content-Security-Policy, with styleSrc as its style-src.
func csp(styleSrc string) string {
	return "default-src 'none'; script-src 'self'; style-src " + styleSrc + "; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
}

// SameSite refuses a request whose Host is not one this listener should answer to, or whose
// Origin (when present) is not the listener's own. On a loopback listener a Host that is not a
// loopback name is a page elsewhere reaching it through DNS rebinding; a foreign Origin is a
// page elsewhere posting to it. It answers 403 and returns false when refused.
func (g *Guard) SameSite(w http.ResponseWriter, r *http.Request) bool {
	setSecurityHeaders(w.Header())
	if OnLoopback(r) && !loopbackHost(r.Host) {
		deny(w, http.StatusForbidden, "this dashboard answers only to 127.0.0.1, [::1] or localhost (the listener is on a loopback address); use the URL `corral web` prints")
		return false
	}
	if o := r.Header.Get("Origin"); o != "" && o != "http://"+r.Host {
		deny(w, http.StatusForbidden, "cross-origin request refused: the dashboard's API answers only its own page")
		return false
	}
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		deny(w, http.StatusForbidden, "cross-site request refused: the dashboard's API answers only its own page")
		return false
	}
	return true
}

// Authorized checks SameSite and the token (Authorization: Bearer, compared in constant time).
// It answers 401 or 403 and returns false when refused.
func (g *Guard) Authorized(w http.ResponseWriter, r *http.Request) bool {
	if !g.SameSite(w, r) {
		return false
	}
	w.Header().Set("Cache-Control", "no-store")
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || g.token == "" || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(g.token)) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="corral"`)
		deny(w, http.StatusUnauthorized, "missing or wrong token: open the URL `corral web` prints (the token is in CORRAL_HOME/"+TokenFile+")")
		return false
	}
	return true
}

// OnLoopback reports whether the request came in on a loopback address: the listener's
// own address, read per request (not from the setting), so it stays right when the listener
// moves. Without one (a request made in a test) it is taken as loopback: the stricter case.
func OnLoopback(r *http.Request) bool {
	la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return true
	}
	ap, err := netip.ParseAddrPort(la.String())
	return err != nil || ap.Addr().Unmap().IsLoopback()
}

// loopbackHost reports whether a Host header names this machine: localhost or a loopback IP,
// with or without a port.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// deny answers a refused request in the daemon's error shape ({"error", "code"}).
func deny(w http.ResponseWriter, status int, msg string) {
	code := "forbidden"
	if status == http.StatusUnauthorized {
		code = "unauthorized"
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg, "code": code})
}
