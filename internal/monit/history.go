package monit

import (
	"math"
	"strings"

	"github.com/corral-pm/corral/internal/api"
)

// The daemon keeps a history of every process's figures only for the web dashboard (when the
// HTTP listener is on, and behind its token): the control socket serves the figures of now.
// So monit keeps its own, from each poll, for as long as it runs.

// historyPoints is how many polls each series keeps: a minute at the default interval, and
// more than the widest sparkline draws.
const historyPoints = 120

// series is one figure of one process, oldest first.
type series struct {
	values []float64
}

func (s *series) add(v float64) {
	if len(s.values) == historyPoints {
		copy(s.values, s.values[1:])
		s.values = s.values[:historyPoints-1]
	}
	s.values = append(s.values, v)
}

// last is the newest value, 0 before any.
func (s *series) last() float64 {
	if len(s.values) == 0 {
		return 0
	}
	return s.values[len(s.values)-1]
}

// procHistory is a process's CPU (percent of one CPU), memory (bytes) and requests per second.
type procHistory struct {
	cpu, mem, req series
}

// history is every process's series, by pm_id.
type history map[int]*procHistory

// record adds one poll's figures and forgets the processes that are gone (deleted, scaled
// down): their ids may come back as other processes.
func (h history) record(procs []api.Process) {
	seen := make(map[int]bool, len(procs))
	for _, p := range procs {
		seen[p.ID] = true
		ph := h[p.ID]
		if ph == nil {
			ph = &procHistory{}
			h[p.ID] = ph
		}
		ph.cpu.add(p.CPU)
		ph.mem.add(float64(p.Memory))
		req := 0.0
		if st := p.RequestStats(); st != nil {
			req = st.ReqPerSec
		}
		ph.req.add(req)
	}
	for id := range h {
		if !seen[id] {
			delete(h, id)
		}
	}
}

// sparkBlocks are the eight heights of a sparkline's bars.
var sparkBlocks = []rune("▁▂▃▄▅▆▇█")

// sparkline draws the newest width values as bars, right-aligned: fewer values than width
// leave blanks on the left. The bars span from 0 to the largest value, or, fromMin, from the
// smallest: memory is never near 0, and its growth is what matters. The span is floor at
// least, so that an idle process's noise does not fill the bars.
func sparkline(values []float64, width int, floor float64, fromMin bool) string {
	if width <= 0 {
		return ""
	}
	if len(values) > width {
		values = values[len(values)-width:]
	}
	lo, hi := 0.0, 0.0
	for i, v := range values {
		if i == 0 || v > hi {
			hi = v
		}
		if fromMin && (i == 0 || v < lo) {
			lo = v
		}
	}
	span := math.Max(hi-lo, floor)
	var b strings.Builder
	b.WriteString(strings.Repeat(" ", width-len(values)))
	for _, v := range values {
		i := 0
		if span > 0 && v > lo {
			i = int(math.Ceil((v-lo)/span*float64(len(sparkBlocks)))) - 1
			i = min(max(i, 0), len(sparkBlocks)-1)
		}
		b.WriteRune(sparkBlocks[i])
	}
	return b.String()
}
