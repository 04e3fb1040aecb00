package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// The alerts check asks the daemon's alerts engine (GET /v1/alerts, POST /v1/alerts/test).
// That engine is being added to corral separately: until a daemon has it, the check shows "–".
// Everything verify needs of it is AlertsSource, so wiring the engine's own client in is one
// function (NewAlertsSource).

// AlertsState is what the check judges: the app's alert rules and the notification sinks.
type AlertsState struct {
	// Rules are the kinds of rules active for the app ("crash_rate", "memory", ...).
	Rules []string
	Sinks []AlertSink
}

// AlertSink is one place notifications go.
type AlertSink struct {
	Kind, Target string
	Sent, Failed uint64
	LastError    string
}

// AlertsSource reads the alerts engine. ok is false when the daemon has none.
type AlertsSource interface {
	State(ctx context.Context, app string) (st AlertsState, ok bool, err error)
	// SendTest fires a test notification through every sink of the app and returns each
	// sink's error ("" when delivered).
	SendTest(ctx context.Context, app string) (map[string]string, error)
}

// NewAlertsSource is the alerts engine of the daemon listening on socket.
func NewAlertsSource(socket string) AlertsSource {
	return &httpAlerts{hc: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}}}}
}

type httpAlerts struct{ hc *http.Client }

// The wire shapes, as far as this check reads them: GET /v1/alerts lists the sinks (daemon-wide
// ones without an app); the rules are the app's `alerts` attribute, in its spec.
type alertsWire struct {
	Sinks []struct {
		Kind      string `json:"kind"`
		Target    string `json:"target"`
		App       string `json:"app"`
		Sent      uint64 `json:"sent"`
		Failed    uint64 `json:"failed"`
		LastError string `json:"last_error"`
	} `json:"sinks"`
}

func (h *httpAlerts) State(ctx context.Context, app string) (AlertsState, bool, error) {
	var st AlertsState
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://corral/v1/alerts", nil)
	if err != nil {
		return st, false, err
	}
	res, err := h.hc.Do(req)
	if err != nil {
		return st, false, fmt.Errorf("ask the daemon for its alerts: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode == http.StatusNotFound {
		return st, false, nil
	}
	raw, err := io.ReadAll(io.LimitReader(res.Body, 4<<20))
	if err != nil {
		return st, true, err
	}
	if res.StatusCode/100 != 2 {
		return st, true, fmt.Errorf("GET /v1/alerts: %s: %s", res.Status, bytes.TrimSpace(raw))
	}
	var w alertsWire
	if err := json.Unmarshal(raw, &w); err != nil {
		return st, true, fmt.Errorf("GET /v1/alerts: %w", err)
	}
	rules, err := h.rules(ctx, app)
	if err != nil {
		return st, true, err
	}
	st.Rules = rules
	for _, s := range w.Sinks {
		if s.App == "" || s.App == app {
			st.Sinks = append(st.Sinks, AlertSink{Kind: s.Kind, Target: s.Target, Sent: s.Sent, Failed: s.Failed, LastError: s.LastError})
		}
	}
	return st, true, nil
}

// rules reads the app's alert rules from its spec: `alerts.rules` by name; `alerts: false`
// (off) has none; without the attribute the engine's defaults apply, of which crash_rate is
// always one and memory one when max_memory_restart is set.
func (h *httpAlerts) rules(ctx context.Context, app string) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://corral/v1/processes?target="+url.QueryEscape(app), nil)
	if err != nil {
		return nil, err
	}
	res, err := h.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("ask the daemon for %s: %w", app, err)
	}
	defer res.Body.Close()
	var procs []struct {
		Name string `json:"name"`
		App  struct {
			MaxMemoryRestart int64 `json:"max_memory_restart"`
			Alerts           *struct {
				Off   bool                       `json:"off"`
				Rules map[string]json.RawMessage `json:"rules"`
			} `json:"alerts"`
		} `json:"app"`
	}
	if err := json.NewDecoder(io.LimitReader(res.Body, 16<<20)).Decode(&procs); err != nil {
		return nil, fmt.Errorf("GET /v1/processes: %w", err)
	}
	for _, p := range procs {
		if p.Name != app {
			continue
		}
		a := p.App.Alerts
		switch {
		case a == nil:
			rules := []string{"crash_rate"}
			if p.App.MaxMemoryRestart > 0 {
				rules = append(rules, "memory")
			}
			return rules, nil
		case a.Off:
			return nil, nil
		}
		var rules []string
		for name := range a.Rules {
			rules = append(rules, name)
		}
		sort.Strings(rules)
		return rules, nil
	}
	return nil, nil
}

func (h *httpAlerts) SendTest(ctx context.Context, app string) (map[string]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://corral/v1/alerts/test", nil)
	if err != nil {
		return nil, err
	}
	res, err := h.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("send a test notification: %w", err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(res.Body, 4<<20))
	if res.StatusCode/100 != 2 {
		return nil, fmt.Errorf("POST /v1/alerts/test: %s: %s", res.Status, bytes.TrimSpace(raw))
	}
	var w struct {
		Results []struct {
			Kind   string `json:"kind"`
			Target string `json:"target"`
			App    string `json:"app"`
			Error  string `json:"error"`
		} `json:"results"`
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		return nil, fmt.Errorf("POST /v1/alerts/test: %w", err)
	}
	out := map[string]string{}
	for _, r := range w.Results {
		if r.App == "" || r.App == app {
			out[r.Kind+" "+r.Target] = r.Error
		}
	}
	return out, nil
}

// checkAlerts: a crash-rate and a memory rule are active for the app, and at least one sink
// works (delivered the test notification with --send-test; else has not failed its last).
func (x *run) checkAlerts(ctx context.Context) {
	c := x.rep.check(CheckAlerts)
	c.Threshold = "crash-rate and memory alerts active, at least one working sink"
	if x.r.Alerts == nil {
		c.Status, c.Reason = Skip, "this daemon has no alerts engine"
		return
	}
	st, ok, err := x.r.Alerts.State(ctx, x.o.App)
	if err != nil {
		c.Status, c.Reason = Fail, err.Error()
		return
	}
	if !ok {
		c.Status, c.Reason = Skip, "this daemon has no alerts engine"
		return
	}
	has := func(words ...string) bool {
		for _, r := range st.Rules {
			for _, w := range words {
				if strings.Contains(strings.ToLower(r), w) {
					return true
				}
			}
		}
		return false
	}
	var missing []string
	if !has("crash", "restart") {
		missing = append(missing, "a crash-rate alert")
	}
	if !has("memory", "rss") {
		missing = append(missing, "a memory alert")
	}
	working := 0
	var sinkErrs []string
	if x.o.SendTest {
		res, err := x.r.Alerts.SendTest(ctx, x.o.App)
		if err != nil {
			c.Status, c.Reason = Fail, err.Error()
			return
		}
		for sink, e := range res {
			if e == "" {
				working++
			} else {
				sinkErrs = append(sinkErrs, sink+": "+e)
			}
		}
	} else {
		for _, s := range st.Sinks {
			if s.LastError == "" {
				working++
			} else {
				sinkErrs = append(sinkErrs, s.Kind+" "+s.Target+": "+s.LastError)
			}
		}
	}
	c.Figure = fmt.Sprintf("rules: %s; %d of %d sinks working", strings.Join(st.Rules, ", "), working, len(st.Sinks))
	if working == 0 {
		missing = append(missing, "a working sink")
	}
	if len(missing) > 0 {
		c.Status = Fail
		c.Reason = "missing " + joinAnd(missing) + ": add them to the app's alerts in the ecosystem file"
		if len(sinkErrs) > 0 {
			c.Reason += " (" + strings.Join(sinkErrs, "; ") + ")"
		}
		return
	}
	c.Status = Pass
}
