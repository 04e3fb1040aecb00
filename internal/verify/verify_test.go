package verify

import (
	"bytes"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/spec"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// sampleReport is a run with one check of each status and per-worker details.
func sampleReport() *Report {
	r := &Report{App: "web", Started: time.Date(2026, 12, 5, 15, 0, 0, 0, time.UTC), Elapsed: 31.4, Workers: 2,
		Target: "127.0.0.1:5000", Load: "GET /api/health, 16 clients, a new connection per request, 10s per phase",
		Checks: []Check{
			{ID: CheckLoad, Status: Pass, Figure: "4,210 req/s; p50 2.1 ms, p99 9.0 ms, max 31 ms; 0 failed of 42,100", Threshold: "0 failed requests"},
			{ID: CheckDistribution, Status: Fail, Figure: "requests 8.0 %–92.0 % per worker", Threshold: "each worker 40.0 %–60.0 %",
				Reason:  "worker 0 (pid 11) got 92.0 % of the requests",
				Workers: []Worker{{ID: 0, PID: 11, Figure: "requests 92.0 %", OK: false}, {ID: 1, PID: 12, Figure: "requests 8.0 %", OK: false}}},
			{ID: CheckSessions, Status: Pass, Figure: "2 of 2 workers answered as expected", Threshold: "every worker answers",
				Workers: []Worker{{ID: 0, PID: 11, Figure: "logged in: 200 ×4; logged out: 401 ×4", OK: true}, {ID: 1, PID: 12, Figure: "logged in: 200 ×4; logged out: 401 ×4", OK: true}}},
			{ID: CheckAlerts, Status: Skip, Reason: "this daemon has no alerts engine"},
		},
		Throughput: []Tick{{T: 0, Length: 1, Requests: 4000}, {T: 1, Length: 1, Requests: 4100, Errors: 3}, {T: 5.2, Length: 0.8, Requests: 3000}},
		Events:     []Event{{T: 5, Label: "reload"}},
		Shares:     []Share{{ID: 0, PID: 11, Requests: 0.92, CPU: 0.9}, {ID: 1, PID: 12, Requests: 0.08, CPU: -1}},
		Memory:     []WorkerSeries{{ID: 0, Points: []Point{{T: 0, V: 50 << 20}, {T: 1, V: 51 << 20}}}, {ID: 1, Points: []Point{{T: 0, V: 40 << 20}}}},
		Latency:    Latency{P50: 2.1, P90: 5, P99: 9, Max: 31},
	}
	r.finish()
	return r
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/verify -update to write it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test ./internal/verify -update, then read the diff):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestWriteText(t *testing.T) {
	var b bytes.Buffer
	WriteText(&b, sampleReport(), false)
	golden(t, "checklist.golden", b.String())
	if s := Summary(sampleReport()); s != "web failed distribution" {
		t.Errorf("summary %q", s)
	}
}

// The HTML report stands alone: nothing it refers to is fetched (no src, no href, no URL but
// SVG's namespace), every chart is there with plotted marks, and the data are escaped.
func TestWriteHTML(t *testing.T) {
	r := sampleReport()
	r.App = `<script>alert(1)</script>`
	var b bytes.Buffer
	if err := WriteHTML(&b, r, 0.8); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	if strings.Contains(page, "<script>alert") {
		t.Error("the app name went into the page unescaped")
	}
	for _, bad := range []string{" src=", " href=", "@import", "url("} {
		if strings.Contains(page, bad) {
			t.Errorf("the page refers to something outside itself: %q", bad)
		}
	}
	urls := regexp.MustCompile(`https?://[^"' <]+`).FindAllString(page, -1)
	for _, u := range urls {
		if u != "http://www.w3.org/2000/svg" {
			t.Errorf("the page names %s", u)
		}
	}
	for _, chart := range []string{"throughput", "share", "memory", "latency"} {
		i := strings.Index(page, `data-chart="`+chart+`"`)
		if i < 0 {
			t.Errorf("no %s chart", chart)
			continue
		}
		end := strings.Index(page[i:], "</svg>")
		if !strings.Contains(page[i:i+end], `class="data`) {
			t.Errorf("the %s chart plots nothing", chart)
		}
	}
	// Errors show as bars; the reload is marked; a gap between loads breaks the line.
	if !strings.Contains(page, "3 failed at 1.0 s") || !strings.Contains(page, ">reload<") {
		t.Error("errors or events missing from the throughput chart")
	}
	if n := strings.Count(page, `<title>served requests per second</title></path>`); n != 2 {
		t.Errorf("%d throughput lines, want 2 (one per load)", n)
	}
}

func TestSlope(t *testing.T) {
	var pts []Point
	for i := range 20 {
		pts = append(pts, Point{T: float64(i) * 0.25, V: 1000 + 500*float64(i)*0.25})
	}
	if s := slope(pts); math.Abs(s-500) > 1e-9 {
		t.Errorf("slope %v, want 500/s", s)
	}
	// A step that stops (a heap grown once) is not sustained growth; a steady leak is.
	var step []Point
	for i := range 20 {
		v := 1000.0
		if i >= 5 {
			v = 9000
		}
		step = append(step, Point{T: float64(i), V: v})
	}
	if s := sustained(step); s > 1e-9 {
		t.Errorf("sustained growth of a step: %v", s)
	}
	if s := sustained(pts); math.Abs(s-500) > 1e-9 {
		t.Errorf("sustained growth of a leak: %v", s)
	}
	if s := slope(pts[:1]); s != 0 {
		t.Errorf("slope of one point %v", s)
	}
}

func TestTargets(t *testing.T) {
	procs := []api.Process{{Cluster: &api.WorkerStats{Listening: []string{":::5000", "/tmp/x.sock"}}},
		{Cluster: &api.WorkerStats{Listening: []string{"10.0.0.5:6000", "7000"}}}}
	addrs := listenAddrs(procs)
	want := []string{"[::]:5000", "10.0.0.5:6000", ":7000"}
	if strings.Join(addrs, " ") != strings.Join(want, " ") {
		t.Fatalf("addresses %v, want %v", addrs, want)
	}
	for _, tc := range []struct{ target, want, err string }{
		{"", "127.0.0.1:5000", ""},
		{"10.0.0.5:6000", "10.0.0.5:6000", ""},
		{"[::1]:5000", "[::1]:5000", ""},
		{"192.0.2.1:5000", "", "neither a loopback address nor one the app listens on"},
	} {
		got, err := pickTarget(tc.target, addrs)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err %v, want %q", tc.target, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %q %v, want %q", tc.target, got, err, tc.want)
		}
	}
	if _, err := pickTarget("", nil); err == nil || !strings.Contains(err.Error(), "no TCP port") {
		t.Errorf("no addresses: %v", err)
	}
	if got, _ := pickTarget("", []string{"10.0.0.5:6000"}); got != "10.0.0.5:6000" {
		t.Errorf("an app listening on one address is loaded there: %q", got)
	}
}

func TestOptions(t *testing.T) {
	ka := true
	o := Options{App: "web", Duration: 3 * time.Second}
	o.Configure(&spec.Verify{Path: "/health", Duration: 20000, Concurrency: 4, KeepAlive: &ka, MinShare: 0.7,
		Login: &spec.VerifyRequest{Path: "/login", Body: "{}"}, Check: &spec.VerifyRequest{Path: "/me"}})
	if o.Path != "/health" || o.Duration != 3*time.Second || o.Concurrency != 4 || !o.KeepAlive || o.MinShare != 0.7 || o.MemorySlope != DefaultMemorySlope {
		t.Errorf("flags over the file over the defaults: %+v", o)
	}
	if o.Login.Method != "POST" || o.Login.Status != 200 || o.Login.ContentType != "application/json" ||
		o.CheckReq.Method != "GET" || o.CheckReq.LoggedOutStatus != 401 || !o.sessionsConfigured() {
		t.Errorf("request defaults: login %+v check %+v", o.Login, o.CheckReq)
	}
	if err := o.Validate(); err != nil {
		t.Error(err)
	}
	for _, tc := range []struct {
		change func(*Options)
		want   string
	}{
		{func(o *Options) { o.MinShare = 1.5 }, "--min-share 1.5"},
		{func(o *Options) { o.Duration = time.Millisecond }, "--duration 1ms is too short"},
		{func(o *Options) { o.Skip = map[string]bool{"relaod": true} }, "--skip relaod: no such check"},
		{func(o *Options) { o.CheckReq = nil }, "needs a check path"},
	} {
		c := o
		tc.change(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err %v, want %q", err, tc.want)
		}
	}
	d := Options{App: "web"}
	d.Configure(nil)
	if d.Duration != DefaultDuration || d.Concurrency != DefaultConcurrency || d.Path != "/" || d.MinShare != DefaultMinShare || d.sessionsConfigured() {
		t.Errorf("defaults: %+v", d)
	}
	if p := Plan(d, 4); !strings.Contains(p, "a rolling reload and live scaling 4 → 1 → 4") || !strings.Contains(p, "left with its 4 workers") {
		t.Errorf("plan: %s", p)
	}
	d.Skip = map[string]bool{CheckReload: true, CheckRollback: true}
	if p := Plan(d, 4); !strings.Contains(p, "changes nothing") {
		t.Errorf("plan without operations: %s", p)
	}
}

func TestParseSlope(t *testing.T) {
	for in, want := range map[string]int64{"1MB/min": 1 << 20, "512K/m": 512 << 10, "60M/h": 1 << 20, "1K/s": 60 << 10, "2M": 2 << 20} {
		if got, err := spec.ParseSlope(in); err != nil || got != want {
			t.Errorf("%s: %d %v, want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"1MB/week", "fast", ""} {
		if _, err := spec.ParseSlope(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestFormat(t *testing.T) {
	for got, want := range map[string]string{count(42100): "42,100", count(999): "999", count(-1234567): "-1,234,567",
		num(4210.4): "4,210", num(12.25): "12.2", ms(0.421): "0.42 ms", ms(2.14): "2.1 ms", ms(31.4): "31 ms", pct(0.253): "25.3 %"} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

func TestSavedCheck(t *testing.T) {
	dir := t.TempDir()
	procs := []api.Process{{ID: 0, Name: "web", App: spec.App{Name: "web", Script: "/srv/app.js", ExecMode: spec.ModeCluster}},
		{ID: 1, Name: "web", App: spec.App{Name: "web", Script: "/srv/app.js", ExecMode: spec.ModeCluster}}}
	check := func(dump string) Check {
		t.Helper()
		path := filepath.Join(dir, "dump.json")
		os.Remove(path)
		if dump != "" {
			if err := os.WriteFile(path, []byte(dump), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		x := &run{r: &Runner{DumpPath: path}, o: Options{App: "web"}, rep: &Report{}}
		x.checkSaved(t.Context(), procs)
		return *x.rep.check(CheckSaved)
	}
	saved := func(n int, script string) string {
		var ps []string
		for i := range n {
			ps = append(ps, fmt.Sprintf(`{"pm_id":%d}`, i))
		}
		return fmt.Sprintf(`{"format":1,"apps":[{"app":{"name":"web","script":%q,"exec_mode":"cluster"},"processes":[%s]}]}`, script, strings.Join(ps, ","))
	}
	if c := check(saved(2, "/srv/app.js")); c.Status != Pass {
		t.Errorf("as it runs: %+v", c)
	}
	for _, tc := range []struct{ dump, want string }{
		{"", "nothing is saved: run corral save"},
		{saved(4, "/srv/app.js"), "4 processes saved, 2 running"},
		{saved(2, "/srv/old.js"), `saved script "/srv/old.js", running "/srv/app.js"`},
		{`{"format":1,"apps":[]}`, "web is not in the saved list: run corral save"},
	} {
		if c := check(tc.dump); c.Status != Fail || !strings.Contains(c.Reason, tc.want) {
			t.Errorf("%s: %s %q, want %q", tc.dump, c.Status, c.Reason, tc.want)
		}
	}
}

// A check named by --skip is shown as not run, even when the load it is judged on ran.
func TestSkipped(t *testing.T) {
	x := &run{o: Options{App: "web", Skip: map[string]bool{CheckMemory: true}}, rep: &Report{}, mem: &memSampler{}}
	c := x.rep.check(CheckMemory)
	c.Status, c.Figure = Fail, "largest growth 9 MB/min"
	r := x.done()
	if len(r.Checks) != len(CheckIDs) || !r.Passed {
		t.Fatalf("%d checks, passed %v", len(r.Checks), r.Passed)
	}
	for _, c := range r.Checks {
		if c.ID == CheckMemory && (c.Status != Skip || c.Reason != "skipped (--skip)" || c.Figure != "") {
			t.Errorf("memory: %+v", c)
		}
	}
}
