package verify

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"strings"
)

// Hand-written SVG charts for the HTML report: no script, no CDN, nothing fetched. Each chart is
// an <svg class="chart"> whose plotted marks have class "data".

// palette colours the workers' series.
var palette = []string{"#2563eb", "#16a34a", "#d97706", "#9333ea", "#0891b2", "#db2777", "#65a30d", "#dc2626"}

func colour(i int) string { return palette[i%len(palette)] }

// frame maps data to a chart's plotting area.
type frame struct {
	w, h                   float64 // whole chart
	l, r, t, b             float64 // margins
	xmin, xmax, ymin, ymax float64
}

func newFrame(xmin, xmax, ymin, ymax float64) frame {
	if xmax <= xmin {
		xmax = xmin + 1
	}
	if ymax <= ymin {
		ymax = ymin + 1
	}
	return frame{w: 760, h: 280, l: 64, r: 16, t: 28, b: 40, xmin: xmin, xmax: xmax, ymin: ymin, ymax: ymax}
}

func (f frame) x(v float64) float64 { return f.l + (v-f.xmin)/(f.xmax-f.xmin)*(f.w-f.l-f.r) }
func (f frame) y(v float64) float64 { return f.h - f.b - (v-f.ymin)/(f.ymax-f.ymin)*(f.h-f.t-f.b) }

// niceStep is a round step that cuts span into about n parts.
func niceStep(span float64, n int) float64 {
	if span <= 0 {
		return 1
	}
	raw := span / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			return m * mag
		}
	}
	return 10 * mag
}

// niceMax rounds a maximum up to a step.
func niceMax(v float64) float64 {
	if v <= 0 {
		return 1
	}
	s := niceStep(v, 5)
	return math.Ceil(v/s) * s
}

// open starts a chart: the svg element, its title, the axes with grid lines.
func (f frame) open(b *strings.Builder, name, title, xlabel, ylabel string, yfmt func(float64) string) {
	fmt.Fprintf(b, `<svg class="chart" data-chart="%s" viewBox="0 0 %g %g" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg">`,
		name, f.w, f.h, html.EscapeString(title))
	fmt.Fprintf(b, `<text x="%g" y="16" class="title">%s</text>`, f.l, html.EscapeString(title))
	step := niceStep(f.ymax-f.ymin, 5)
	for v := f.ymin; v <= f.ymax+step/1000; v += step {
		y := f.y(v)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" class="grid"/>`, f.l, y, f.w-f.r, y)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" class="tick" text-anchor="end">%s</text>`, f.l-6, y+4, html.EscapeString(yfmt(v)))
	}
	if xlabel != "" {
		xs := niceStep(f.xmax-f.xmin, 8)
		for v := math.Ceil(f.xmin/xs) * xs; v <= f.xmax+xs/1000; v += xs {
			fmt.Fprintf(b, `<text x="%.1f" y="%.1f" class="tick" text-anchor="middle">%s</text>`, f.x(v), f.h-f.b+16, trimFloat(v))
		}
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" class="label" text-anchor="middle">%s</text>`, (f.l+f.w-f.r)/2, f.h-4, html.EscapeString(xlabel))
	}
	fmt.Fprintf(b, `<text x="12" y="%.1f" class="label" transform="rotate(-90 12 %.1f)" text-anchor="middle">%s</text>`,
		(f.t+f.h-f.b)/2, (f.t+f.h-f.b)/2, html.EscapeString(ylabel))
	fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" class="axis"/>`, f.l, f.h-f.b, f.w-f.r, f.h-f.b)
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.2f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "-0" {
		return "0"
	}
	return s
}

func polyline(b *strings.Builder, f frame, pts []Point, col, name string) {
	if len(pts) == 0 {
		return
	}
	var d strings.Builder
	for i, p := range pts {
		cmd := "L"
		if i == 0 {
			cmd = "M"
		}
		fmt.Fprintf(&d, "%s%.1f %.1f ", cmd, f.x(p.T), f.y(p.V))
	}
	fmt.Fprintf(b, `<path class="data" d="%s" fill="none" stroke="%s" stroke-width="2"><title>%s</title></path>`, strings.TrimSpace(d.String()), col, html.EscapeString(name))
	if len(pts) == 1 { // a line of one point draws nothing
		fmt.Fprintf(b, `<circle class="data" cx="%.1f" cy="%.1f" r="3" fill="%s"><title>%s</title></circle>`, f.x(pts[0].T), f.y(pts[0].V), col, html.EscapeString(name))
	}
}

func legend(b *strings.Builder, f frame, items []string, cols []string) {
	x := f.w - f.r
	for i := len(items) - 1; i >= 0; i-- {
		x -= float64(len(items[i]))*6.5 + 22
		fmt.Fprintf(b, `<rect x="%.1f" y="8" width="10" height="10" fill="%s"/><text x="%.1f" y="17" class="tick">%s</text>`, x, cols[i], x+14, html.EscapeString(items[i]))
	}
}

func noData(name, title, why string) template.HTML {
	return template.HTML(fmt.Sprintf(`<svg class="chart" data-chart="%s" viewBox="0 0 760 80" xmlns="http://www.w3.org/2000/svg"><text x="64" y="16" class="title">%s</text><text x="64" y="48" class="tick">%s</text></svg>`,
		name, html.EscapeString(title), html.EscapeString(why)))
}

// throughputChart: served requests and errors per second over the whole run, with verify's
// operations marked.
func throughputChart(r *Report) template.HTML {
	const name, title = "throughput", "Throughput and errors per second; reloads and scaling marked"
	if len(r.Throughput) == 0 {
		return noData(name, title, "no load ran")
	}
	maxT, maxY := 1.0, 1.0
	for _, s := range r.Throughput {
		maxT = max(maxT, s.T+s.Length)
		maxY = max(maxY, float64(s.Requests)/s.Length, float64(s.Errors)/s.Length)
	}
	for _, e := range r.Events {
		maxT = max(maxT, e.T)
	}
	f := newFrame(0, math.Ceil(maxT), 0, niceMax(maxY))
	var b strings.Builder
	f.open(&b, name, title, "seconds since the start", "requests / s", func(v float64) string { return trimFloat(v) })
	// Each load is drawn as a line of its own: none across the gap between two.
	var run []Point
	flush := func() {
		polyline(&b, f, run, colour(0), "served requests per second")
		run = nil
	}
	end := -1.0
	for _, s := range r.Throughput {
		if s.T > end+0.05 {
			flush()
		}
		run = append(run, Point{T: s.T + s.Length/2, V: float64(s.Requests) / s.Length})
		end = s.T + s.Length
	}
	flush()
	bw := max(2, (f.x(1)-f.x(0))*0.6)
	for _, s := range r.Throughput {
		if s.Errors > 0 {
			v := float64(s.Errors) / s.Length
			fmt.Fprintf(&b, `<rect class="data errors" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#dc2626"><title>%d failed at %.1f s</title></rect>`,
				f.x(s.T+s.Length/2)-bw/2, f.y(v), bw, max(1, f.y(0)-f.y(v)), s.Errors, s.T)
		}
	}
	for i, e := range r.Events {
		x := f.x(e.T)
		fmt.Fprintf(&b, `<line class="event" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#6b7280" stroke-dasharray="4 3"/>`, x, f.t, x, f.h-f.b)
		fmt.Fprintf(&b, `<text class="tick event-label" x="%.1f" y="%.1f">%s</text>`, x+3, f.t+12+float64(i%3)*12, html.EscapeString(e.Label))
	}
	legend(&b, f, []string{"served", "failed"}, []string{colour(0), "#dc2626"})
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// shareChart: each worker's share of the requests and of the CPU in the steady load, against
// the fair share and the tolerated band.
func shareChart(r *Report, minShare float64) template.HTML {
	const name, title = "share", "Share of the work per worker (steady load)"
	if len(r.Shares) == 0 {
		return noData(name, title, "no distribution was measured")
	}
	fair := 1 / float64(len(r.Shares))
	top := 0.0
	for _, s := range r.Shares {
		top = max(top, s.Requests, s.CPU)
	}
	top = max(top, (2-minShare)*fair)
	f := newFrame(0, float64(len(r.Shares)), 0, niceMax(top*100)/100)
	f.b = 52
	var b strings.Builder
	f.open(&b, name, title, "", "share", func(v float64) string { return trimFloat(v*100) + " %" })
	lo, hi := minShare*fair, (2-minShare)*fair
	fmt.Fprintf(&b, `<rect class="band" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#16a34a" fill-opacity="0.12"><title>tolerated: %s–%s</title></rect>`,
		f.l, f.y(hi), f.w-f.r-f.l, f.y(lo)-f.y(hi), pct(lo), pct(hi))
	fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#16a34a" stroke-dasharray="6 3"/>`, f.l, f.y(fair), f.w-f.r, f.y(fair))
	slot := f.x(1) - f.x(0)
	bw := slot * 0.3
	for i, s := range r.Shares {
		x0 := f.x(float64(i))
		fmt.Fprintf(&b, `<rect class="data" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>worker %d: %s of the requests</title></rect>`,
			x0+slot*0.18, f.y(s.Requests), bw, f.y(0)-f.y(s.Requests), colour(0), s.ID, pct(s.Requests))
		if s.CPU >= 0 {
			fmt.Fprintf(&b, `<rect class="data" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>worker %d: %s of the CPU</title></rect>`,
				x0+slot*0.52, f.y(s.CPU), bw, f.y(0)-f.y(s.CPU), colour(2), s.ID, pct(s.CPU))
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" class="tick" text-anchor="middle">worker %d</text>`, x0+slot/2, f.h-f.b+16, s.ID)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" class="tick" text-anchor="middle">pid %d</text>`, x0+slot/2, f.h-f.b+30, s.PID)
	}
	legend(&b, f, []string{"requests", "CPU", "fair share"}, []string{colour(0), colour(2), "#16a34a"})
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// memoryChart: each worker's RSS over the run.
func memoryChart(r *Report) template.HTML {
	const name, title = "memory", "Memory (RSS) per worker over time"
	if len(r.Memory) == 0 {
		return noData(name, title, "no memory samples")
	}
	maxT, maxV := 1.0, 1.0
	for _, w := range r.Memory {
		for _, p := range w.Points {
			maxT, maxV = max(maxT, p.T), max(maxV, p.V)
		}
	}
	f := newFrame(0, math.Ceil(maxT), 0, niceMax(maxV/(1<<20)))
	var b strings.Builder
	f.open(&b, name, title, "seconds since the start", "RSS", func(v float64) string { return trimFloat(v) + " MB" })
	var items, cols []string
	for i, w := range r.Memory {
		mb := make([]Point, len(w.Points))
		for j, p := range w.Points {
			mb[j] = Point{T: p.T, V: p.V / (1 << 20)}
		}
		polyline(&b, f, mb, colour(i), fmt.Sprintf("worker %d", w.ID))
		items, cols = append(items, fmt.Sprintf("worker %d", w.ID)), append(cols, colour(i))
	}
	for _, e := range r.Events {
		x := f.x(e.T)
		fmt.Fprintf(&b, `<line class="event" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#9ca3af" stroke-dasharray="4 3"><title>%s</title></line>`, x, f.t, x, f.h-f.b, html.EscapeString(e.Label))
	}
	legend(&b, f, items, cols)
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// latencyChart: the steady load's latency percentiles.
func latencyChart(r *Report) template.HTML {
	const name, title = "latency", "Latency percentiles (steady load)"
	l := r.Latency
	if l.Max == 0 {
		return noData(name, title, "no request completed")
	}
	vals := []struct {
		label string
		v     float64
	}{{"p50", l.P50}, {"p90", l.P90}, {"p99", l.P99}, {"max", l.Max}}
	f := newFrame(0, float64(len(vals)), 0, niceMax(l.Max))
	var b strings.Builder
	f.open(&b, name, title, "", "ms", func(v float64) string { return trimFloat(v) + " ms" })
	slot := f.x(1) - f.x(0)
	for i, v := range vals {
		x0 := f.x(float64(i))
		fmt.Fprintf(&b, `<rect class="data" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %s</title></rect>`,
			x0+slot*0.25, f.y(v.v), slot*0.5, max(1, f.y(0)-f.y(v.v)), colour(i), v.label, ms(v.v))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" class="tick" text-anchor="middle">%s</text>`, x0+slot/2, f.h-f.b+16, v.label)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" class="tick" text-anchor="middle">%s</text>`, x0+slot/2, f.y(v.v)-4, ms(v.v))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}
