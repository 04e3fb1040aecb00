package main

import (
	"math"
	"sort"
	"time"
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

// Percentile returns the p-th percentile (0 < p <= 100) of sorted values: for p = 50 the
// median (mean of the middle pair for an even count), otherwise the nearest rank
// (the smallest value with at least p % of the values at or below it).
func Percentile(sorted []float64, p float64) float64 {
	n := len(sorted)
	if n == 0 {
		return math.NaN()
	}
	if p == 50 {
		if n%2 == 1 {
			return sorted[n/2]
		}
		return (sorted[n/2-1] + sorted[n/2]) / 2
	}
	rank := int(math.Ceil(p / 100 * float64(n)))
	if rank < 1 {
		rank = 1
	}
	if rank > n {
		rank = n
	}
	return sorted[rank-1]
}

// ms converts a duration to milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
