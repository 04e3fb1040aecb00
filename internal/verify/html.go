package verify

import (
	_ "embed"
	"encoding/json"
	"html/template"
	"io"
	"sync"
	"time"
)

//go:embed report.html.tmpl
var reportTemplate string

// reportTmpl is parsed on first use, not when the binary starts: every corral command links
// this package, and `corral jlist` must start fast.
var reportTmpl = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("report").Funcs(template.FuncMap{
		"mark": mark,
		"time": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
		"secs": secs,
	}).Parse(reportTemplate))
})

// WriteHTML writes the report as one self-contained HTML page: styles inline, charts as inline
// SVG, the JSON embedded; nothing is fetched when it is opened.
func WriteHTML(w io.Writer, r *Report, minShare float64) error {
	raw, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	pass, fail, skip := r.Counts()
	return reportTmpl().Execute(w, map[string]any{
		"R": r, "Pass": pass, "Fail": fail, "Skip": skip,
		"Throughput": throughputChart(r),
		"Share":      shareChart(r, minShare),
		"Memory":     memoryChart(r),
		"Latency":    latencyChart(r),
		"JSON":       string(raw),
	})
}

// WriteJSON writes the report as JSON.
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
