package api

import "time"

// Alert states, as Alertmanager names them.
const (
	AlertFiring   = "firing"
	AlertResolved = "resolved"
)

// Alert is one alert as sinks receive it (the webhook's JSON body) and GET /v1/alerts lists it
// (docs/alerts.md §4).
type Alert struct {
	App  string `json:"app"`
	Rule string `json:"rule"`
	// ID is the process (pm_id) for per-process rules; absent for rules about the whole app.
	ID    *int   `json:"id,omitempty"`
	State string `json:"state"`
	// Value is what was measured (crashes, bytes, ms, or a ratio: Unit says which); Threshold
	// is the rule's limit in the same unit, Window its window ("5m"), Spec the rule as the
	// ecosystem file writes it ("3/5m").
	Value     float64 `json:"value"`
	Threshold float64 `json:"threshold"`
	Unit      string  `json:"unit,omitempty"`
	Window    string  `json:"window,omitempty"`
	Spec      string  `json:"spec,omitempty"`
	// Text says it in a sentence: what Slack and Mattermost incoming webhooks show.
	Text string `json:"text"`
	// Since is when it started firing; Time when this notification was made.
	Since time.Time `json:"since"`
	Time  time.Time `json:"time"`
	// Repeat marks a reminder of an alert still firing; Test one sent by `corral alerts test`.
	Repeat bool   `json:"repeat,omitempty"`
	Test   bool   `json:"test,omitempty"`
	Host   string `json:"host,omitempty"`
}

// SinkStats are one notification sink's counters since the daemon started.
type SinkStats struct {
	Kind      string `json:"kind"`   // "webhook", "command"
	Target    string `json:"target"` // the URL (its secret parts masked) or the command
	App       string `json:"app,omitempty"`
	Sent      uint64 `json:"sent"`
	Failed    uint64 `json:"failed"`  // gave up after its retries
	Dropped   uint64 `json:"dropped"` // its queue was full
	LastError string `json:"last_error,omitempty"`
}

// AlertsResponse answers GET /v1/alerts.
type AlertsResponse struct {
	Firing []Alert     `json:"firing"`
	Recent []Alert     `json:"recent"` // transitions, newest first
	Sinks  []SinkStats `json:"sinks"`
}

// AlertTestResult is one sink's answer to a test notification.
type AlertTestResult struct {
	Kind   string `json:"kind"`
	Target string `json:"target"`
	App    string `json:"app,omitempty"`
	Error  string `json:"error,omitempty"` // "" when delivered
}

// AlertTestResponse answers POST /v1/alerts/test.
type AlertTestResponse struct {
	Results []AlertTestResult `json:"results"`
}
