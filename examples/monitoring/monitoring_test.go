// Package monitoring holds the Prometheus rules and the Grafana dashboard of
// examples/monitoring, and the tests that keep them honest: both parse with Prometheus' own
// parsers, and every metric they name is one a running corral exposes. The package is
// test-only, so Prometheus' parsers are never linked into the corral binary
// (TestNotLinkedIntoCorral checks).
package monitoring

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/daemon"
	"github.com/corral-pm/corral/internal/home"
	"github.com/corral-pm/corral/internal/procstat"
	"github.com/corral-pm/corral/internal/spec"
	"github.com/corral-pm/corral/internal/testutil"
)

const (
	rulesFile     = "corral.rules.yml"
	dashboardFile = "corral.dashboard.json"
)

// prometheusSeries are the series Prometheus makes itself for every target (not in any
// exposition): the rules may use them.
var prometheusSeries = map[string]bool{"up": true}

// promQL is the parser Prometheus uses by default.
var promQL = parser.NewParser(parser.Options{})

// loadRules parses the rules file as `promtool check rules` does: YAML, every expression,
// every label and annotation template.
func loadRules(t *testing.T) *rulefmt.RuleGroups {
	t.Helper()
	data, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	// Legacy names (letters, digits, _ and :) are what every Prometheus version accepts.
	groups, errs := rulefmt.Parse(data, false, model.LegacyValidation, promQL, nil)
	for _, err := range errs {
		t.Errorf("%s: %v", rulesFile, err)
	}
	if len(errs) > 0 {
		t.FailNow()
	}
	return groups
}

// TestRules: the rules parse, and the alerts the example promises are there.
func TestRules(t *testing.T) {
	groups := loadRules(t)
	var alerts []string
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts = append(alerts, r.Alert)
			if r.Annotations["summary"] == "" || r.Labels["severity"] == "" {
				t.Errorf("%s: alert %s needs a summary annotation and a severity label", rulesFile, r.Alert)
			}
		}
	}
	for _, want := range []string{"CorralTargetDown", "CorralWorkerCrashLooping", "CorralAppBelowDesiredInstances",
		"CorralWorkerMemoryHighAndGrowing", "CorralEventLoopLagHigh", "CorralHighErrorRatio",
		"CorralUnevenRequestDistribution", "CorralReloadFailed"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("%s has no alert %s", rulesFile, want)
		}
	}
}

// dashboard is the part of a Grafana dashboard the test reads.
type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int             `json:"id"`
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	Datasource json.RawMessage `json:"datasource"`
	GridPos    struct{ H, W, X, Y int }
	Targets    []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(string(data)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s is not valid JSON: %v", dashboardFile, err)
	}
	return d
}

// grafanaVars are the dashboard's variables as Grafana substitutes them, so that an
// expression can go to Prometheus' parser: $app by its "All" value, the range variables by a
// duration.
var grafanaVars = strings.NewReplacer("$__rate_interval", "1m", "$__interval", "1m", "$__range", "1h", "${app}", ".*", "$app", ".*")

// labelValues is a variable's query, label_values(metric, label): Grafana's, not PromQL.
var labelValues = regexp.MustCompile(`^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)$`)

// dashboardExprs checks the dashboard's shape and returns every expression in it (panels'
// queries, with the variables substituted, and the metric of each label_values variable as
// an expression of its own), keyed by where it is.
func dashboardExprs(t *testing.T) map[string]string {
	t.Helper()
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" || d.SchemaVersion == 0 || len(d.Panels) == 0 {
		t.Fatalf("%s: uid, title, schemaVersion and panels are required", dashboardFile)
	}
	exprs := map[string]string{}
	hasApp := false
	for _, v := range d.Templating.List {
		if v.Name == "app" {
			hasApp = true
		}
		if v.Type == "query" {
			m := labelValues.FindStringSubmatch(v.Definition)
			if m == nil {
				t.Errorf("%s: variable %s: query %q is not label_values(metric, label)", dashboardFile, v.Name, v.Definition)
				continue
			}
			exprs["variable "+v.Name] = m[1]
		}
	}
	if !hasApp {
		t.Errorf("%s has no app variable", dashboardFile)
	}
	ids := map[int]bool{}
	var walk func(ps []panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("%s: panel id %d used twice", dashboardFile, p.ID)
			}
			ids[p.ID] = true
			if p.Type == "" || p.Title == "" || p.GridPos.W == 0 || p.GridPos.H == 0 {
				t.Errorf("%s: panel %d (%q) needs a type, a title and a size", dashboardFile, p.ID, p.Title)
			}
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: panel %q has no query", dashboardFile, p.Title)
			}
			if !strings.Contains(string(p.Datasource), "${datasource}") {
				t.Errorf("%s: panel %q does not use the datasource variable", dashboardFile, p.Title)
			}
			for _, tg := range p.Targets {
				if !strings.Contains(tg.Expr, `app=~"$app"`) {
					t.Errorf("%s: panel %q query %s ignores the app variable", dashboardFile, p.Title, tg.RefID)
				}
				exprs[fmt.Sprintf("panel %q query %s", p.Title, tg.RefID)] = grafanaVars.Replace(tg.Expr)
			}
		}
	}
	walk(d.Panels)
	return exprs
}

// TestDashboard: the dashboard is valid JSON of the expected shape, and every query parses.
func TestDashboard(t *testing.T) {
	for where, expr := range dashboardExprs(t) {
		if _, err := promQL.ParseExpr(expr); err != nil {
			t.Errorf("%s: %s: %v\n%s", dashboardFile, where, err, expr)
		}
	}
}

// metricNames is every metric name the rules and the dashboard use, and where.
func metricNames(t *testing.T) map[string][]string {
	t.Helper()
	exprs := dashboardExprs(t)
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			exprs[fmt.Sprintf("%s: rule %s%s", rulesFile, r.Alert, r.Record)] = r.Expr
		}
	}
	names := map[string][]string{}
	for where, expr := range exprs {
		e, err := promQL.ParseExpr(expr)
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
			vs, ok := n.(*parser.VectorSelector)
			if !ok {
				return nil
			}
			name := vs.Name
			for _, m := range vs.LabelMatchers {
				if m.Name == model.MetricNameLabel {
					name = m.Value
				}
			}
			if name == "" {
				t.Errorf("%s: a selector without a metric name: %s", where, vs)
			}
			names[name] = append(names[name], where)
			return nil
		})
	}
	return names
}

// TestMetricNamesExist: every metric the rules and the dashboard name is in the /metrics of a
// real daemon running a Node cluster app that has answered requests (2xx and 5xx) and been
// reloaded; histograms count by their _bucket, _sum and _count series. A renamed or dropped
// metric fails here instead of leaving a silent alert or an empty panel.
func TestMetricNamesExist(t *testing.T) {
	used := metricNames(t)
	addr := runDaemonWithTraffic(t)
	// Some series appear with the workers' first reports (about a second): scrape until all
	// are there, or the deadline, then name each one missing and where it is used.
	var missing []string
	testutil.Eventually(30*time.Second, 100*time.Millisecond, func() bool {
		exposed := exposedNames(t, addr)
		missing = missing[:0]
		for name := range used {
			if !exposed[name] && !prometheusSeries[name] {
				missing = append(missing, name)
			}
		}
		return len(missing) == 0
	})
	sort.Strings(missing)
	for _, name := range missing {
		slices.Sort(used[name])
		t.Errorf("%s is not in corral's /metrics (after 30 s); used by %s", name, strings.Join(used[name], "; "))
	}
}

// exposedNames scrapes /metrics and returns the names of its series.
func exposedNames(t *testing.T, addr string) map[string]bool {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	names := map[string]bool{}
	for name, f := range fams {
		if len(f.GetMetric()) == 0 {
			continue
		}
		if f.GetType().String() == "HISTOGRAM" {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[name+s] = true
			}
			continue
		}
		names[name] = true
	}
	return names
}

// markerVar is set in the test app's environment to the daemon's home, so that whatever the
// test leaves running is found and killed.
const markerVar = "CORRAL_MONITORING_TEST_HOME"

// server answers 200, or 500 on /fail.
const server = `require('http').createServer((q, s) => { s.statusCode = q.url === '/fail' ? 500 : 200; s.end(String(process.pid)); }).listen(Number(process.env.PORT))`

// runDaemonWithTraffic starts a daemon in this process with its HTTP listener on a free
// loopback port, runs a Node cluster app of two workers on it, sends requests (one 5xx),
// reloads the app, and returns the listener's address. Everything stops at the test's end.
func runDaemonWithTraffic(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	h, err := os.MkdirTemp("", "cm") // short: the control socket's path must fit a sockaddr_un
	if err != nil {
		t.Fatal(err)
	}
	// New takes the process down to one P (the daemon's choice for its hot path); the test's
	// client and the daemon share this process, so give the Ps back.
	procs := runtime.GOMAXPROCS(0)
	d, err := daemon.New(daemon.Options{Paths: home.At(h), SampleInterval: 200 * time.Millisecond, HTTPListen: "127.0.0.1:0"})
	runtime.GOMAXPROCS(procs)
	if err != nil {
		os.RemoveAll(h)
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("daemon: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Errorf("the daemon did not stop within 60s")
		}
		for _, pid := range procstat.PIDsWithEnv(markerVar, h) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Errorf("process %d left running after the daemon stopped", pid)
		}
		if t.Failed() {
			testutil.LogTail(t, "daemon log", filepath.Join(h, "corral.log"), 60)
		}
		os.RemoveAll(h)
	})
	select {
	case <-d.Ready():
	case err := <-done:
		t.Fatalf("daemon did not start: %v", err)
	}

	dir := t.TempDir()
	script := filepath.Join(dir, "server.js")
	if err := os.WriteFile(script, []byte(server), 0o644); err != nil {
		t.Fatal(err)
	}
	port := testutil.FreePort(t)
	s := spec.Defaults()
	s.Name, s.Script, s.Interpreter, s.Cwd = "web", script, node, dir
	s.ExecMode, s.Instances, s.KillTimeout = spec.ModeCluster, 2, 3000
	s.Env = map[string]string{"PORT": strconv.Itoa(port)}
	s.BaseEnv = map[string]string{"PATH": os.Getenv("PATH"), markerVar: h}
	cl := api.NewClient(home.At(h).Socket)
	actx, acancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer acancel()
	if resp, err := cl.Start(actx, api.StartRequest{Apps: []spec.App{s}, Mode: api.ModeFile}); err != nil || len(resp.Errors) > 0 {
		t.Fatalf("start: %v %v", err, resp.Errors)
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	get := func(path string) {
		resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, path))
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	testutil.WaitFor(t, "the app to answer", 30*time.Second, func() bool {
		resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
	for range 6 {
		get("/")
	}
	get("/fail")
	if resp, err := cl.Act(actx, api.ActionReload, api.ActionRequest{Targets: []string{"web"}}); err != nil || len(resp.Errors) > 0 {
		t.Fatalf("reload: %v %v", err, resp.Errors)
	}
	for range 4 {
		get("/")
	}
	return d.HTTPAddr()
}

// TestNotLinkedIntoCorral: the parsers this package's tests use stay out of the binary, whose
// commands must start in milliseconds (docs/metrics.md §4).
func TestNotLinkedIntoCorral(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH")
	}
	out, err := exec.Command(gobin, "list", "-deps", "github.com/corral-pm/corral/cmd/corral").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "github.com/prometheus/") {
			t.Errorf("the corral binary links %s", pkg)
		}
	}
}
