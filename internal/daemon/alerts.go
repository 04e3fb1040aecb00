package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/corral-pm/corral/internal/alerts"
	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/cluster"
	"github.com/corral-pm/corral/internal/persist"
	"github.com/corral-pm/corral/internal/procstat"
	"github.com/corral-pm/corral/internal/safefs"
	"github.com/corral-pm/corral/internal/secrets"
	"github.com/corral-pm/corral/internal/settings"
	"github.com/corral-pm/corral/internal/spec"
)

// Alerts (docs/alerts.md): process events are counted as they happen (onEvent, which must not
// wait: Record only appends under the engine's lock), the rules are evaluated by the sampler
// after each sample, and notifications go to the notifier's queues, which never make the
// sampler wait either. The daemon-wide sinks are read from the settings file at each
// evaluation that has something to send, so `corral set alerts.webhook` applies at once.

// alerting is the daemon's part of alerts.
type alerting struct {
	engine   *alerts.Engine
	notifier *alerts.Notifier
	host     string
	// statePath keeps the firing alerts for the next daemon (adoption), so that it does not
	// send them again.
	statePath string
	saveMu    sync.Mutex
	// restored: the engine took the previous daemon's state from the keeper (history.go), which
	// has all alerts.json has and more. Set while adopting, before seedAlerts.
	restored bool
}

func newAlerting(d *Daemon) *alerting {
	host, _ := os.Hostname()
	return &alerting{
		engine:    alerts.NewEngine(),
		notifier:  alerts.NewNotifier(alerts.NotifierOptions{}, d.logf),
		host:      host,
		statePath: filepath.Join(d.paths.Home, "alerts.json"),
	}
}

// alertsFile is alerts.json: the alerts firing when the daemon last evaluated.
type alertsFile struct {
	Firing []api.Alert `json:"firing"`
}

// seedAlerts takes over the previous daemon's firing alerts (adoption, hot upgrade).
func (d *Daemon) seedAlerts() {
	if d.alerting.restored {
		return
	}
	f, err := safefs.Open(d.alerting.statePath, os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err != nil {
		d.logf("alerts: cannot read %s: %v", d.alerting.statePath, err)
		return
	}
	defer f.Close()
	var st alertsFile
	if err := json.NewDecoder(f).Decode(&st); err != nil {
		d.logf("alerts: %s is not readable (%v); firing alerts will be sent again", d.alerting.statePath, err)
		return
	}
	d.alerting.engine.Seed(st.Firing, time.Now())
	if len(st.Firing) > 0 {
		d.logf("alerts: %d firing alerts taken over from the previous daemon", len(st.Firing))
	}
}

// saveAlerts writes the firing alerts for the next daemon.
func (d *Daemon) saveAlerts() {
	d.alerting.saveMu.Lock()
	defer d.alerting.saveMu.Unlock()
	data, err := json.Marshal(alertsFile{Firing: d.alerting.engine.Firing()})
	if err == nil {
		err = persist.WriteFileAtomic(d.alerting.statePath, append(data, '\n'), 0o600)
	}
	if err != nil {
		d.logf("alerts: cannot save the firing alerts: %v", err)
	}
}

// recordAlertEvent counts the events the rules need. Called by onEvent: it must not wait.
func (d *Daemon) recordAlertEvent(ev api.Event) {
	var kind alerts.EventKind
	switch {
	case ev.Kind == api.EventExit && ev.Crash && !ev.Replaced:
		kind = alerts.EventCrash
	case ev.Kind == api.EventReloadFailed:
		kind = alerts.EventReloadFailed
	case ev.Kind == api.EventOnline && ev.OldPID != 0:
		kind = alerts.EventReloaded
	default:
		return
	}
	d.alerting.engine.Record(alerts.Event{Time: ev.Time, App: ev.Name, ID: ev.ID, Kind: kind, Message: ev.Message})
}

// evaluateAlerts runs the rules over the sample just taken (usage by process id, the cluster
// groups' statistics) and sends what changed. Called by the sampler.
func (d *Daemon) evaluateAlerts(usage map[int]procstat.Usage, groups groupStats, now time.Time) {
	snap := alerts.Snapshot{Time: now}
	specs := map[string]*spec.App{}
	for _, a := range d.tbl.appsSorted() {
		v := a.snapshot()
		if v == nil || v.spec == nil {
			continue
		}
		specs[v.spec.Name] = v.spec
		as := alerts.AppSample{Name: v.spec.Name, Rules: alerts.Effective(v.spec)}
		var stats map[int]cluster.Stats
		if v.group != nil {
			stats = groups.of(v.group)
		}
		for _, p := range v.procs {
			info := p.Info()
			ps := alerts.ProcSample{ID: info.ID, PID: info.PID, Status: string(info.Status)}
			if info.PID > 0 {
				ps.RSS = usage[info.ID].RSS
			}
			if st, ok := stats[info.ID]; ok {
				rs := st.Requests
				ps.Requests, ps.Errors5xx = rs.Requests, rs.ByClass[4]
				ps.LoopP99MS, ps.LoopKnown = rs.Runtime.LoopP99MS, rs.Runtime.Known
			}
			as.Procs = append(as.Procs, ps)
		}
		snap.Apps = append(snap.Apps, as)
	}
	notes := d.alerting.engine.Evaluate(snap)
	if len(notes) == 0 {
		return
	}
	global := d.globalSinks()
	for _, n := range notes {
		n.Host = d.alerting.host
		d.logf("alert %s: %s", n.State, n.Text) // the corral.log sink
		for _, t := range d.alertTargets(specs[n.App], global) {
			d.alerting.notifier.Send(t, n, nil)
		}
	}
	d.saveAlerts()
	d.historyChanged() // the notification clocks, for a daemon that takes over
}

// globalSinks are the daemon-wide sinks, read now from the settings file.
func (d *Daemon) globalSinks() []alerts.Target {
	values, err := settings.Load(d.paths.Settings)
	if err != nil {
		d.logf("alerts: %v; the daemon-wide sinks are skipped", err)
		return nil
	}
	var out []alerts.Target
	if u := values[settings.AlertsWebhook]; u != "" {
		if err := alerts.CheckWebhook(u); err != nil {
			d.logf("alerts: setting %s: %v", settings.AlertsWebhook, err)
		} else {
			out = append(out, alerts.Target{Kind: alerts.KindWebhook, Target: u})
		}
	}
	if c := values[settings.AlertsCommand]; c != "" {
		out = append(out, alerts.Target{Kind: alerts.KindCommand, Target: c, Dir: d.paths.Home})
	}
	return out
}

// alertTargets are where an alert of app s goes: the daemon-wide sinks and the app's own.
func (d *Daemon) alertTargets(s *spec.App, global []alerts.Target) []alerts.Target {
	out := append([]alerts.Target(nil), global...)
	if s == nil {
		return out
	}
	for _, sink := range alerts.Effective(s).Notify {
		switch {
		case sink.Webhook != "":
			out = append(out, alerts.Target{Kind: alerts.KindWebhook, Target: sink.Webhook, App: s.Name})
		case sink.Command != "":
			out = append(out, alerts.Target{Kind: alerts.KindCommand, Target: sink.Command, App: s.Name, Dir: s.Cwd})
		}
	}
	return out
}

// Alerts answers GET /v1/alerts.
func (d *Daemon) Alerts() api.AlertsResponse {
	return api.AlertsResponse{Firing: d.alerting.engine.Firing(), Recent: d.alerting.engine.Recent(),
		Sinks: d.alerting.notifier.Stats()}
}

// TestAlerts sends a test notification to every sink (daemon-wide, every app's, the log) and
// waits for each outcome until ctx ends.
func (d *Daemon) TestAlerts(ctx context.Context) api.AlertTestResponse {
	now := time.Now()
	base := api.Alert{Rule: alerts.Test, State: api.AlertFiring, Since: now, Time: now, Test: true, Host: d.alerting.host}
	type pending struct {
		res  api.AlertTestResult
		done chan error
	}
	var all []*pending
	send := func(t alerts.Target, app string) {
		a := base
		a.App = app
		a.Text = fmt.Sprintf("test notification from corral on %s (%s)", d.alerting.host, app)
		p := &pending{res: api.AlertTestResult{Kind: t.Kind, Target: alerts.MaskTarget(t.Kind, t.Target), App: t.App}, done: make(chan error, 1)}
		all = append(all, p)
		d.alerting.notifier.Send(t, a, func(err error) { p.done <- err })
	}
	d.logf("alert test: a test notification from corral on %s", d.alerting.host)
	for _, t := range d.globalSinks() {
		send(t, "corral")
	}
	seen := map[string]bool{}
	for _, a := range d.tbl.appsSorted() {
		v := a.snapshot()
		if v == nil || v.spec == nil {
			continue
		}
		for _, t := range d.alertTargets(v.spec, nil) {
			k := t.Kind + "\x00" + t.Target + "\x00" + t.App
			if !seen[k] {
				seen[k] = true
				send(t, v.spec.Name)
			}
		}
	}
	out := api.AlertTestResponse{Results: []api.AlertTestResult{{Kind: "log", Target: d.paths.DaemonLog}}}
	for _, p := range all {
		select {
		case err := <-p.done:
			if err != nil {
				p.res.Error = err.Error()
			}
		case <-ctx.Done():
			p.res.Error = "no answer yet: still trying (see corral.log)"
		}
		out.Results = append(out.Results, p.res)
	}
	return out
}

func (d *Daemon) handleAlerts(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, d.Alerts())
}

func (d *Daemon) handleAlertsTest(w http.ResponseWriter, r *http.Request) {
	// A webhook gets 3 tries of 5 s with 1 s and 2 s between: 18 s at most, a command more;
	// the answer says which are still being tried.
	ctx, cancel := context.WithTimeout(r.Context(), 25*time.Second)
	defer cancel()
	writeJSON(w, http.StatusOK, d.TestAlerts(ctx))
}

// alertFamilies are /metrics' alert series (docs/metrics.md §3.4).
func (d *Daemon) alertFamilies() []*family {
	firing := &family{name: "corral_alerts_firing", typ: gauge,
		help: "Alerts firing now: 1 per alert, labelled app and rule, and id for rules about one process."}
	for _, a := range d.alerting.engine.Firing() {
		labels := []string{"app", a.App, "rule", a.Rule}
		if a.ID != nil {
			labels = append(labels, "id", strconv.Itoa(*a.ID))
		}
		firing.add(1, labels...)
	}
	notes := &family{name: "corral_alert_notifications_total", typ: counter,
		help: "Notifications to the webhook and command sinks, by sink kind and result: sent, failed (after retries), dropped (the sink's queue was full)."}
	totals := map[string][3]uint64{alerts.KindWebhook: {}, alerts.KindCommand: {}}
	for _, s := range d.alerting.notifier.Stats() {
		t := totals[s.Kind]
		t[0] += s.Sent
		t[1] += s.Failed
		t[2] += s.Dropped
		totals[s.Kind] = t
	}
	for _, kind := range []string{alerts.KindCommand, alerts.KindWebhook} {
		t := totals[kind]
		for i, result := range []string{"sent", "failed", "dropped"} {
			notes.add(float64(t[i]), "sink", kind, "result", result)
		}
	}
	return []*family{firing, notes}
}

// alertSealName is the name webhook URLs are sealed under in the saved list: a URL is often
// the credential itself (Slack's), so it is kept like a secret variable.
const alertSealName = "CORRAL_ALERT_WEBHOOK_SECRET"

// sealAlerts returns a copy of a with its webhook URLs sealed (dump.json).
func sealAlerts(s *secrets.Sealer, a *spec.Alerts) *spec.Alerts {
	out := a.Clone()
	if out == nil {
		return nil
	}
	for i, n := range out.Notify {
		if n.Webhook != "" {
			out.Notify[i].Webhook = s.SealEnv(map[string]string{alertSealName: n.Webhook})[alertSealName]
		}
	}
	return out
}

// openAlerts reverses sealAlerts.
func openAlerts(s *secrets.Sealer, a *spec.Alerts) (*spec.Alerts, error) {
	out := a.Clone()
	if out == nil {
		return nil, nil
	}
	for i, n := range out.Notify {
		if n.Webhook != "" {
			m, err := s.OpenEnv(map[string]string{alertSealName: n.Webhook})
			if err != nil {
				return nil, fmt.Errorf("alerts.notify[%d].webhook: %w", i, err)
			}
			out.Notify[i].Webhook = m[alertSealName]
		}
	}
	return out, nil
}

// maskAlerts returns a copy of a with its sinks masked for display (jlist, describe).
func maskAlerts(a *spec.Alerts) *spec.Alerts {
	out := a.Clone()
	if out == nil {
		return nil
	}
	for i, n := range out.Notify {
		if n.Webhook != "" {
			out.Notify[i].Webhook = alerts.MaskTarget(alerts.KindWebhook, n.Webhook)
		}
		if n.Command != "" {
			out.Notify[i].Command = alerts.MaskTarget(alerts.KindCommand, n.Command)
		}
	}
	return out
}
