package main

import (
	"math"
	"testing"
)

func TestSummarize(t *testing.T) {
	cases := []struct {
		in                    []float64
		median, p90, min, max float64
	}{
		{[]float64{5}, 5, 5, 5, 5},
		{[]float64{3, 1, 2}, 2, 3, 1, 3},
		{[]float64{4, 1, 3, 2}, 2.5, 4, 1, 4},
		{[]float64{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}, 5.5, 9, 1, 10},
		{[]float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, 6, 10, 1, 11},
	}
	for _, c := range cases {
		in := append([]float64(nil), c.in...)
		s := Summarize(c.in)
		if s.Median != c.median || s.P90 != c.p90 || s.Min != c.min || s.Max != c.max || s.N != len(c.in) {
			t.Errorf("Summarize(%v) = median %v p90 %v min %v max %v n %d; want %v %v %v %v %d",
				in, s.Median, s.P90, s.Min, s.Max, s.N, c.median, c.p90, c.min, c.max, len(c.in))
		}
		for i := range in {
			if c.in[i] != in[i] {
				t.Errorf("Summarize reordered its input: %v, was %v", c.in, in)
				break
			}
		}
	}
	if s := Summarize(nil); s.N != 0 || s.Median != 0 {
		t.Errorf("Summarize(nil) = %+v", s)
	}
	if !math.IsNaN(Percentile(nil, 90)) {
		t.Error("Percentile of nothing should be NaN")
	}
}
