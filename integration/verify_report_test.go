package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath is Debian's Chromium, which CI installs (apt-get install -y chromium).
const chromiumPath = "/usr/bin/chromium"

// artifactDir is where tests keep what a person may want to look at after a run (CI uploads
// it): CORRAL_TEST_ARTIFACTS, or integration/artifacts.
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("CORRAL_TEST_ARTIFACTS")
	if dir == "" {
		abs, err := filepath.Abs("artifacts")
		if err != nil {
			t.Fatal(err)
		}
		dir = abs
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// openReport opens verify's HTML report in headless Chromium, checks that each of its charts
// rendered (every chart has plotted marks with a size on the page, and nothing was fetched
// from the network), and keeps a screenshot as a test artifact.
func openReport(t *testing.T, path string) {
	if _, err := exec.LookPath(chromiumPath); err != nil {
		t.Skipf("Chromium is not installed at %s (apt-get install -y chromium): the HTML report is not opened in a browser", chromiumPath)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	actx, acancel := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1000, 1400),
	)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	type chart struct {
		Name  string  `json:"name"`
		Marks int     `json:"marks"`
		Sized int     `json:"sized"`
		W     float64 `json:"w"`
		H     float64 `json:"h"`
	}
	if err := chromedp.Do(bctx, chromedp.Navigate("file://"+path), chromedp.WaitVisible(`svg.chart[data-chart="latency"]`)); err != nil {
		t.Fatalf("open %s in Chromium: %v", path, err)
	}
	charts, err := chromedp.Run(bctx, chromedp.Evaluate[[]chart](`[...document.querySelectorAll('svg.chart')].map(s => {
		const r = s.getBoundingClientRect();
		const marks = [...s.querySelectorAll('.data')];
		return {name: s.dataset.chart, marks: marks.length, w: r.width, h: r.height,
			sized: marks.filter(m => { const b = m.getBoundingClientRect(); return b.width > 0 || b.height > 0; }).length};
	})`))
	if err != nil {
		t.Fatalf("read the charts of %s: %v", path, err)
	}
	external, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](`performance.getEntriesByType('resource').map(e => e.name)`))
	if err != nil {
		t.Fatal(err)
	}
	png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot of %s: %v", path, err)
	}
	shot := filepath.Join(artifactDir(t), "verify-report.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the report: %s", shot)
	want := map[string]bool{"throughput": true, "share": true, "memory": true, "latency": true}
	for _, c := range charts {
		if !want[c.Name] {
			continue
		}
		delete(want, c.Name)
		if c.Marks == 0 || c.Sized == 0 || c.W < 200 || c.H < 50 {
			t.Errorf("chart %s did not render: %d plotted marks, %d with a size, %.0f×%.0f px", c.Name, c.Marks, c.Sized, c.W, c.H)
		}
	}
	for name := range want {
		t.Errorf("the report has no %s chart: %+v", name, charts)
	}
	if len(external) > 0 {
		t.Errorf("the report fetched %v: it must be self-contained", external)
	}
}
