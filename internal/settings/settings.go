// Package settings holds corral's own settings: the few knobs of the daemon itself that PM2
// keeps with `pm2 set key value`. They live in one small JSON file in CORRAL_HOME (0600,
// written atomically), which `corral set`, `get` and `unset` edit and the daemon reads: when
// it starts, when `set` or `unset` asks a running daemon to apply http.listen, and each time
// it uses the alerts sinks. Only known keys are accepted, each checked by its own rule, so that a typo is
// refused when it is typed, not discovered when the daemon ignores it.
package settings

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/corral-pm/corral/internal/alerts"
	"github.com/corral-pm/corral/internal/persist"
	"github.com/corral-pm/corral/internal/safefs"
)

// HTTPListen is the address of the daemon's HTTP listener (/metrics), host:port; empty or
// unset turns it off. The environment variable EnvHTTPListen, when set, overrides it.
const HTTPListen = "http.listen"

// EnvHTTPListen overrides HTTPListen for one daemon start (an empty value turns it off).
const EnvHTTPListen = "CORRAL_HTTP_LISTEN"

// AlertsWebhook and AlertsCommand are the daemon-wide alert sinks (docs/alerts.md §3): every
// app's alerts go to them, besides the app's own `alerts.notify`. The daemon reads them each
// time it sends, so a change takes effect at once.
const (
	AlertsWebhook = "alerts.webhook"
	AlertsCommand = "alerts.command"
)

// known are the settings and how each value is checked.
var known = map[string]func(string) error{
	HTTPListen:    checkListen,
	AlertsWebhook: alerts.CheckWebhook,
	AlertsCommand: func(string) error { return nil },
}

// Live reports whether the daemon rereads key whenever it uses it (no restart needed).
func Live(key string) bool { return key == AlertsWebhook || key == AlertsCommand }

// Display renders a setting's value for the screen: a webhook URL's secret parts masked.
func Display(key, value string) string {
	switch {
	case value == "":
		return ""
	case key == AlertsWebhook:
		return alerts.MaskTarget(alerts.KindWebhook, value)
	case key == AlertsCommand:
		return alerts.MaskTarget(alerts.KindCommand, value)
	}
	return value
}

// Keys lists the known settings, sorted.
func Keys() []string {
	out := make([]string, 0, len(known))
	for k := range known {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Check reports whether value is acceptable for key. The error names the setting and what to
// do about it.
func Check(key, value string) error {
	check, ok := known[key]
	if !ok {
		return fmt.Errorf("unknown setting %q: the settings are %s", key, strings.Join(Keys(), ", "))
	}
	if value == "" {
		return nil // empty is always "off"
	}
	if err := check(value); err != nil {
		return fmt.Errorf("%s %q: %w", key, value, err)
	}
	return nil
}

// checkListen accepts host:port with a numeric port (0 picks a free one) and an IP address or
// a host name.
func checkListen(value string) error {
	host, port, err := net.SplitHostPort(value)
	if err != nil {
		return errors.New("not host:port; use an address like 127.0.0.1:9615")
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (port != "0" && n == 0) {
		return fmt.Errorf("port %q is not a number from 0 to 65535; use an address like 127.0.0.1:9615", port)
	}
	if host == "" {
		return errors.New("no host: that would listen on every interface; name one, like 127.0.0.1:9615 (or 0.0.0.0:9615 to really mean every interface)")
	}
	return nil
}

// IsLoopback reports whether the listen address only accepts connections from this machine:
// a loopback IP or "localhost". Anything else is reachable from the network.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// Load reads the settings file; a missing file is no settings.
func Load(path string) (map[string]string, error) {
	f, err := safefs.Open(path, os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read settings %s: %w", path, err)
	}
	defer f.Close()
	out := map[string]string{}
	if err := json.NewDecoder(f).Decode(&out); err != nil {
		return nil, fmt.Errorf("read settings %s: %w (fix or remove the file)", path, err)
	}
	return out, nil
}

// Save writes the settings file atomically, readable by its owner only.
func Save(path string, values map[string]string) error {
	data, err := json.MarshalIndent(values, "", "  ")
	if err != nil {
		return fmt.Errorf("encode settings: %w", err)
	}
	return persist.WriteFileAtomic(path, append(data, '\n'), 0o600)
}

// Listen is the address the daemon's HTTP listener should use at start: the environment
// variable when it is set (even empty), else the setting. It is checked like `set` checks it.
func Listen(settingsPath string) (addr, source string, err error) {
	if v, ok := os.LookupEnv(EnvHTTPListen); ok {
		if err := Check(HTTPListen, v); err != nil {
			return "", EnvHTTPListen, fmt.Errorf("%s: %w", EnvHTTPListen, err)
		}
		return v, EnvHTTPListen, nil
	}
	values, err := Load(settingsPath)
	if err != nil {
		return "", settingsPath, err
	}
	v := values[HTTPListen]
	if err := Check(HTTPListen, v); err != nil {
		return "", settingsPath, fmt.Errorf("%w (fix it with `corral set %s ADDRESS` or `corral unset %s`)", err, HTTPListen, HTTPListen)
	}
	return v, "setting " + HTTPListen, nil
}
