package spec

import "maps"

// Alerts are an app's alert rules as corral evaluates them (the `alerts` attribute, resolved by
// package alerts: units parsed, defaults filled in, relative commands made absolute). A nil
// *Alerts in an App means "the defaults": apps started from the command line, and apps saved
// before alerts existed, get the same rules as an ecosystem file without `alerts`.
type Alerts struct {
	// Off is `alerts: false`: no rule is evaluated for the app.
	Off bool `json:"off,omitempty"`
	// Rules are the rules that are on, by name (crash_rate, errored, memory...); a rule turned
	// off with `rule: false` is absent.
	Rules map[string]AlertRule `json:"rules,omitempty"`
	// Repeat is how often a notification is sent again while an alert keeps firing.
	Repeat Millis `json:"repeat,omitempty"`
	// Notify are the app's own sinks, besides the daemon-wide ones and corral.log.
	Notify []AlertSink `json:"notify,omitempty"`
}

// AlertRule is one rule's threshold and, for rules over time, its window. The threshold's unit
// depends on the rule: a count, bytes, milliseconds or a ratio (0.05 for 5%).
type AlertRule struct {
	Threshold float64 `json:"threshold,omitempty"`
	Window    Millis  `json:"window,omitempty"`
}

// AlertSink is one notification target: exactly one of Webhook (an http or https URL) and
// Command (a shell command line).
type AlertSink struct {
	Webhook string `json:"webhook,omitempty"`
	Command string `json:"command,omitempty"`
}

// Clone returns a deep copy.
func (a *Alerts) Clone() *Alerts {
	if a == nil {
		return nil
	}
	out := *a
	out.Rules = maps.Clone(a.Rules) // nil stays nil
	out.Notify = cloneSlice(a.Notify)
	return &out
}
