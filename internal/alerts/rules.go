// Package alerts watches every app for the trouble an operator wants to hear about (crash
// loops, errored processes, memory over a limit or growing, a blocked event loop, 5xx
// answers, connections spread unevenly, failed reloads) and tells them: a webhook, a command,
// and the daemon log. It needs no other service (docs/alerts.md).
//
// The package has three parts, one file each: the rules and their parsing from an ecosystem
// file's `alerts` attribute (this file), the evaluation (engine.go: pure, fed with samples and
// events by the daemon, so tests drive it with their own clock), and the notifier (notify.go:
// bounded queues, timeouts, retries, counters), which is the only part that waits for anything
// and never on the daemon's behalf.
package alerts

import (
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/corral-pm/corral/internal/spec"
)

// Rule names, as the `alerts` attribute, notifications and /metrics spell them.
const (
	CrashRate    = "crash_rate"    // crashes of the app's processes: threshold count, window
	Errored      = "errored"       // a process gave up restarting (per process)
	ReloadFailed = "reload_failed" // the app's last reload stopped at a replacement that failed
	Memory       = "memory"        // resident memory of a process tree above threshold bytes (per process)
	MemoryGrowth = "memory_growth" // a process tree's memory rose steadily by threshold bytes over window (per process)
	EventLoop    = "event_loop"    // event-loop delay p99 above threshold ms throughout window (per Node cluster worker)
	ErrorRate    = "error_rate"    // share of 5xx answers above threshold (a ratio) over window
	Uneven       = "uneven"        // a worker's share of requests off its fair share by more than threshold (a ratio) over window
	Test         = "test"          // `corral alerts test`
)

// RuleNames lists every rule, in the order listings show them.
var RuleNames = []string{CrashRate, Errored, ReloadFailed, Memory, MemoryGrowth, EventLoop, ErrorRate, Uneven}

// PerProcess reports whether rule fires for one process (its alerts carry an id) rather than
// for the app as a whole.
func PerProcess(rule string) bool {
	switch rule {
	case Errored, Memory, MemoryGrowth, EventLoop:
		return true
	}
	return false
}

// Defaults. Each is meant to stay quiet on a healthy app: an operator who has never written an
// `alerts` attribute must not learn to ignore corral's notifications.
const (
	// DefaultRepeat is Alertmanager's default repeat_interval.
	DefaultRepeat = 4 * time.Hour
	// MinRequests is how many requests a window must hold before error_rate judges the share
	// of 5xx answers: two failures among the first ten requests are not an outage.
	MinRequests = 100
	// MinRequestsPerWorker is, for uneven, how many requests per worker a window must hold on
	// average: with fewer, chance alone makes shares unequal.
	MinRequestsPerWorker = 100
	// memoryFromMaxRestart: with max_memory_restart and no memory rule, the memory rule
	// fires at this fraction of the limit, before the restart it would cause.
	memoryFromMaxRestart = 0.9
)

// defaultRules are the rules every app gets unless its `alerts` attribute says otherwise.
//   - crash_rate 3/5m: one crash is an incident the restart handles; three in five minutes is
//     a loop (PM2's errored state comes only after 16).
//   - memory_growth 50M/10m: a leak of 300 MB an hour; a warming cache stops rising within
//     minutes and the rule wants the rise in every quarter of the window.
//   - event_loop 200ms/30s: p99 over 200 ms for half a minute means every request waits.
//   - error_rate 5%/5m, uneven 50%/5m: with MinRequests and MinRequestsPerWorker.
var defaultRules = map[string]spec.AlertRule{
	CrashRate:    {Threshold: 3, Window: spec.Millis(5 * time.Minute / time.Millisecond)},
	Errored:      {},
	ReloadFailed: {},
	MemoryGrowth: {Threshold: 50 << 20, Window: spec.Millis(10 * time.Minute / time.Millisecond)},
	EventLoop:    {Threshold: 200, Window: spec.Millis(30 * time.Second / time.Millisecond)},
	ErrorRate:    {Threshold: 0.05, Window: spec.Millis(5 * time.Minute / time.Millisecond)},
	Uneven:       {Threshold: 0.5, Window: spec.Millis(5 * time.Minute / time.Millisecond)},
}

// defaultWindow is the window of a rule given only a threshold ('300ms' for event_loop).
func defaultWindow(rule string) spec.Millis { return defaultRules[rule].Window }

// Defaults are the rules of an app that says nothing about alerts. maxMemoryRestart (bytes, 0
// when unset) turns the memory rule on at 90% of it.
func Defaults(maxMemoryRestart int64) spec.Alerts {
	out := spec.Alerts{Rules: make(map[string]spec.AlertRule, len(defaultRules)+1),
		Repeat: spec.Millis(DefaultRepeat / time.Millisecond)}
	for k, v := range defaultRules {
		out.Rules[k] = v
	}
	if maxMemoryRestart > 0 {
		out.Rules[Memory] = spec.AlertRule{Threshold: math.Floor(float64(maxMemoryRestart) * memoryFromMaxRestart)}
	}
	return out
}

// Effective is the rules corral evaluates for app: its own, or the defaults.
func Effective(app *spec.App) spec.Alerts {
	if app.Alerts != nil {
		return *app.Alerts
	}
	return Defaults(app.MaxMemoryRestart)
}

// ParseOptions are what Parse needs from the rest of the app.
type ParseOptions struct {
	// BaseDir is what a relative command (./page-me.sh) is resolved against: the ecosystem
	// file's directory.
	BaseDir string
	// MaxMemoryRestart derives the memory rule's default.
	MaxMemoryRestart int64
}

// Parse reads an `alerts` attribute: false (every rule off), true (the defaults), or an object
// of rules and `notify`. Values are the ecosystem loader's plain values (string, bool, int64,
// float64, []any, map[string]any). Errors say which key is wrong and what a good value looks
// like; they do not repeat the attribute's name (the caller prefixes it).
func Parse(v any, opt ParseOptions) (spec.Alerts, error) {
	out := Defaults(opt.MaxMemoryRestart)
	switch x := v.(type) {
	case bool:
		if !x {
			return spec.Alerts{Off: true}, nil
		}
		return out, nil
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var problems []string
		for _, raw := range keys {
			key := spec.SnakeCase(raw)
			val := x[raw]
			if val == nil {
				continue
			}
			var err error
			switch {
			case key == "notify":
				out.Notify, err = parseNotify(val, opt.BaseDir)
			case key == "repeat":
				var d time.Duration
				if d, err = parseDuration(val); err == nil && d < time.Minute {
					err = fmt.Errorf("%s is shorter than a minute: a firing alert would flood its sinks; use a value like \"1h\"", d)
				}
				out.Repeat = spec.Millis(d / time.Millisecond)
			case slices.Contains(RuleNames, key):
				var rule spec.AlertRule
				var on bool
				rule, on, err = parseRule(key, val)
				if err == nil {
					if on {
						out.Rules[key] = rule
					} else {
						delete(out.Rules, key)
					}
				}
			default:
				err = fmt.Errorf("unknown rule (the rules are %s, and notify, repeat)", strings.Join(RuleNames, ", "))
			}
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", raw, err))
			}
		}
		if len(problems) > 0 {
			return spec.Alerts{}, fmt.Errorf("%s", strings.Join(problems, "; "))
		}
		return out, nil
	}
	return spec.Alerts{}, fmt.Errorf("is %s: use false, true, or an object like { crash_rate: '3/5m', notify: [{ webhook: 'https://...' }] }", describe(v))
}

// parseRule reads one rule: false (off), true (its default), or its threshold and window.
func parseRule(rule string, v any) (spec.AlertRule, bool, error) {
	if b, ok := v.(bool); ok {
		if !b {
			return spec.AlertRule{}, false, nil
		}
		if rule == Memory {
			return spec.AlertRule{}, false, fmt.Errorf("has no default: give the limit per process, like '400M'")
		}
		return defaultRules[rule], true, nil
	}
	switch rule {
	case Errored, ReloadFailed:
		return spec.AlertRule{}, false, fmt.Errorf("is %s: use true or false", describe(v))
	case Memory:
		n, err := parseSize(v)
		if err != nil || n == 0 {
			return spec.AlertRule{}, false, fmt.Errorf("is %s: use a size per process like '400M', or false", describe(v))
		}
		return spec.AlertRule{Threshold: float64(n)}, true, nil
	}
	s, ok := v.(string)
	if !ok {
		return spec.AlertRule{}, false, fmt.Errorf("is %s: use a string like %s, true or false", describe(v), example(rule))
	}
	thr, win, hasWindow := strings.Cut(strings.TrimSpace(s), "/")
	out := spec.AlertRule{Window: defaultWindow(rule)}
	if hasWindow {
		d, err := parseDuration(strings.TrimSpace(win))
		if err != nil || d <= 0 {
			return out, false, fmt.Errorf("%q: the window after '/' is not a duration; use a value like %s", s, example(rule))
		}
		out.Window = spec.Millis(d / time.Millisecond)
	} else if rule == CrashRate || rule == MemoryGrowth {
		return out, false, fmt.Errorf("%q has no window; use a value like %s", s, example(rule))
	}
	thr = strings.TrimSpace(thr)
	bad := fmt.Errorf("%q: the threshold before '/' is not understood; use a value like %s", s, example(rule))
	switch rule {
	case CrashRate:
		n, err := strconv.Atoi(thr)
		if err != nil || n < 1 {
			return out, false, bad
		}
		out.Threshold = float64(n)
	case MemoryGrowth:
		n, err := spec.ParseSize(thr)
		if err != nil || n <= 0 {
			return out, false, bad
		}
		out.Threshold = float64(n)
	case EventLoop:
		ms, err := spec.ParseMillis(thr)
		if err != nil || ms <= 0 {
			return out, false, bad
		}
		out.Threshold = float64(ms)
	case ErrorRate, Uneven:
		p, ok := strings.CutSuffix(thr, "%")
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if !ok || err != nil || f <= 0 || f > 100 || math.IsNaN(f) {
			return out, false, fmt.Errorf("%q: the threshold is not a percentage from 0 to 100; use a value like %s", s, example(rule))
		}
		out.Threshold = f / 100
	}
	return out, true, nil
}

// example is a good value of rule, for error messages.
func example(rule string) string {
	switch rule {
	case CrashRate:
		return "'3/5m' (3 crashes within 5 minutes)"
	case MemoryGrowth:
		return "'50M/10m' (a steady rise of 50 MB over 10 minutes)"
	case EventLoop:
		return "'200ms/30s' (p99 delay over 200 ms for 30 seconds)"
	case ErrorRate:
		return "'5%/5m' (over 5% of answers are 5xx within 5 minutes)"
	case Uneven:
		return "'50%/5m' (a worker's share of requests is 50% off its fair share over 5 minutes)"
	}
	return "'400M'"
}

// parseNotify reads `notify`: an array of { webhook: URL } and { command: 'line' }.
func parseNotify(v any, baseDir string) ([]spec.AlertSink, error) {
	list, ok := v.([]any)
	if !ok {
		if m, isMap := v.(map[string]any); isMap {
			list = []any{m} // one sink without the array: what was meant is plain
		} else {
			return nil, fmt.Errorf("is %s: use a list like [{ webhook: 'https://...' }, { command: './page-me.sh' }]", describe(v))
		}
	}
	var out []spec.AlertSink
	for i, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("[%d] is %s: use { webhook: 'https://...' } or { command: './page-me.sh' }", i, describe(e))
		}
		var sink spec.AlertSink
		for k, val := range m {
			s, isString := val.(string)
			switch {
			case k == "webhook" && isString:
				if err := CheckWebhook(s); err != nil {
					return nil, fmt.Errorf("[%d].webhook: %v", i, err)
				}
				sink.Webhook = s
			case k == "command" && isString && strings.TrimSpace(s) != "":
				sink.Command = resolveCommand(strings.TrimSpace(s), baseDir)
			case k == "webhook" || k == "command":
				return nil, fmt.Errorf("[%d].%s is %s: use a non-empty string", i, k, describe(val))
			default:
				return nil, fmt.Errorf("[%d]: unknown key %q: a sink is { webhook: 'https://...' } or { command: './page-me.sh' }", i, k)
			}
		}
		if (sink.Webhook == "") == (sink.Command == "") {
			return nil, fmt.Errorf("[%d] must have exactly one of webhook and command", i)
		}
		out = append(out, sink)
	}
	return out, nil
}

// ResolveCommand is resolveCommand for `corral set alerts.command`, against the shell's cwd.
func ResolveCommand(cmd, dir string) string { return resolveCommand(strings.TrimSpace(cmd), dir) }

// resolveCommand makes a command whose program is a relative path (./page-me.sh,
// scripts/page.sh) absolute against dir, so it runs whatever the app's cwd. The rest of the
// line is left to the shell.
func resolveCommand(cmd, dir string) string {
	prog, rest, _ := strings.Cut(cmd, " ")
	if dir == "" || filepath.IsAbs(prog) || !strings.Contains(prog, "/") || strings.ContainsAny(prog, "'\"$`\\") {
		return cmd
	}
	abs := filepath.Join(dir, prog)
	if rest != "" {
		return abs + " " + rest
	}
	return abs
}

func parseSize(v any) (int64, error) {
	switch x := v.(type) {
	case int64:
		if x > 0 {
			return x, nil
		}
	case float64:
		if x > 0 && !math.IsInf(x, 0) {
			return int64(x), nil
		}
	case string:
		return spec.ParseSize(x)
	}
	return 0, fmt.Errorf("not a size")
}

func parseDuration(v any) (time.Duration, error) {
	switch x := v.(type) {
	case int64:
		if x >= 0 {
			return time.Duration(x) * time.Millisecond, nil
		}
	case float64:
		if x >= 0 && !math.IsInf(x, 0) {
			return time.Duration(x * float64(time.Millisecond)), nil
		}
	case string:
		ms, err := spec.ParseMillis(x)
		return ms.D(), err
	}
	return 0, fmt.Errorf("is %s: use a duration like \"1h\"", describe(v))
}

// describe names a value's type for a message.
func describe(v any) string {
	switch x := v.(type) {
	case string:
		return strconv.Quote(x)
	case bool:
		return strconv.FormatBool(x)
	case int64, float64:
		return fmt.Sprintf("the number %v", x)
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("a %T", v)
}

// FormatThreshold renders a rule's threshold and window as the attribute writes them.
func FormatThreshold(rule string, r spec.AlertRule) string {
	win := formatDuration(r.Window.D())
	switch rule {
	case CrashRate:
		return fmt.Sprintf("%d/%s", int(r.Threshold), win)
	case Memory:
		return spec.FormatSize(int64(r.Threshold))
	case MemoryGrowth:
		return spec.FormatSize(int64(r.Threshold)) + "/" + win
	case EventLoop:
		return fmt.Sprintf("%gms/%s", r.Threshold, win)
	case ErrorRate, Uneven:
		return fmt.Sprintf("%g%%/%s", r.Threshold*100, win)
	}
	return "on"
}

// formatDuration writes 5m0s as 5m and 1h30m0s as 1h30m.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// Validate checks resolved rules that reach the daemon by another way than Parse (the API, a
// saved list edited by hand): known rules, thresholds and windows in range, sinks with one
// valid target each. It is the daemon's last line of defence; Parse's errors are friendlier.
func Validate(a *spec.Alerts) error {
	if a == nil || a.Off {
		return nil
	}
	for name, r := range a.Rules {
		if !slices.Contains(RuleNames, name) {
			return fmt.Errorf("alerts: unknown rule %q (the rules are %s)", name, strings.Join(RuleNames, ", "))
		}
		if r.Threshold < 0 || math.IsNaN(r.Threshold) || math.IsInf(r.Threshold, 0) || r.Window < 0 {
			return fmt.Errorf("alerts: %s: threshold %v and window %v must be finite and not negative", name, r.Threshold, r.Window)
		}
	}
	if a.Repeat < 0 {
		return fmt.Errorf("alerts: repeat is negative")
	}
	for i, s := range a.Notify {
		if (s.Webhook == "") == (s.Command == "") {
			return fmt.Errorf("alerts: notify[%d] must have exactly one of webhook and command", i)
		}
		if s.Webhook != "" {
			if err := CheckWebhook(s.Webhook); err != nil {
				return fmt.Errorf("alerts: notify[%d].webhook: %w", i, err)
			}
		}
	}
	return nil
}
