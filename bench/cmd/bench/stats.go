package main

import (
	"sort"
	"time"

	"github.com/corral-pm/corral/internal/loadgen"
)

// Summary describes the samples of one figure for one contender.
type Summary struct {
	N       int       `json:"n"`
	Median  float64   `json:"median"`
	P90     float64   `json:"p90"`
	Min     float64   `json:"min"`
	Max     float64   `json:"max"`
	Mean    float64   `json:"mean"`
	Samples []float64 `json:"samples"`
}

// Summarize computes the summary of samples (which it does not modify). The median of an even
// count is the mean of the two middle values; p90 is the nearest-rank percentile.
func Summarize(samples []float64) Summary {
	s := Summary{N: len(samples), Samples: append([]float64(nil), samples...)}
	if len(samples) == 0 {
		return s
	}
	sorted := append([]float64(nil), samples...)
	sort.Float64s(sorted)
	s.Min, s.Max = sorted[0], sorted[len(sorted)-1]
	s.Median = Percentile(sorted, 50)
	s.P90 = Percentile(sorted, 90)
	sum := 0.0
	for _, v := range sorted {
		sum += v
	}
	s.Mean = sum / float64(len(sorted))
	return s
}

// Percentile is loadgen.Percentile: the median for p = 50, otherwise the nearest rank.
func Percentile(sorted []float64, p float64) float64 { return loadgen.Percentile(sorted, p) }

// ms converts a duration to milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
