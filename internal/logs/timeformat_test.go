package logs

import (
	"testing"
	"time"
)

func TestTimeFormat(t *testing.T) {
	india := time.FixedZone("IST", 5*3600+30*60)
	pacific := time.FixedZone("PST", -8*3600)
	afternoon := time.Date(2024, time.March, 5, 14, 7, 9, 45_678_000, india) // a Tuesday
	midnight := time.Date(2005, time.December, 25, 0, 5, 0, 0, pacific)      // a Sunday
	noon := time.Date(999, time.January, 1, 12, 0, 0, 0, time.UTC)

	tests := []struct {
		format string
		t      time.Time
		want   string
	}{
		{PM2TimeFormat, afternoon, "2024-03-05T14:07:09"},
		{"YYYY-MM-DD HH:mm:ss.SSS Z", afternoon, "2024-03-05 14:07:09.045 +05:30"},
		{"YY M D H m s", afternoon, "24 3 5 14 7 9"},
		{"hh h A a", afternoon, "02 2 PM pm"},
		{"hh h A a", midnight, "12 12 AM am"},
		{"hh h A a", noon, "12 12 PM pm"},
		{"Z ZZ", afternoon, "+05:30 +0530"},
		{"Z ZZ", midnight, "-08:00 -0800"},
		{"Z ZZ", noon, "+00:00 +0000"},
		{"MMM MMMM ddd dddd dd d", afternoon, "Mar March Tue Tuesday Tu 2"},
		{"MMMM D, YYYY dddd", midnight, "December 25, 2005 Sunday"},
		{"YYYY YY", noon, "0999 99"},
		{"YY", midnight, "05"},
		{"SSS", midnight, "000"},
		{"[YYYY] YYYY", afternoon, "YYYY 2024"},
		{"[at] HH[h]mm", afternoon, "at 14h07"},
		{"[] x[", afternoon, "[] x["},
		{"Y YYY S SS SSSS", afternoon, "Y YYY S SS 045S"},
		{"YYYYY", afternoon, "2024Y"},
		{"DDD HHH", afternoon, "055 1414"},
		{"T", afternoon, "T"},
		{"T -- ", afternoon, "T -- "}, // no tokens at all: printed as is
		{"pid: ", afternoon, "pi2: "}, // as with dayjs: d is the weekday; use [pid]
		{"Ω HH:mm ✓", afternoon, "Ω 14:07 ✓"},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			f, err := NewTimeFormat(tt.format)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.Format(tt.t); got != tt.want {
				t.Errorf("Format(%q) = %q, want %q", tt.format, got, tt.want)
			}
			if got := string(f.AppendFormat([]byte("x"), tt.t)); got != "x"+tt.want {
				t.Errorf("AppendFormat = %q", got)
			}
			if f.String() != tt.format {
				t.Errorf("String() = %q", f.String())
			}
		})
	}
}

func TestTimeFormatErrors(t *testing.T) {
	for _, format := range []string{"", "YYYY\nMM", "HH\r"} {
		if _, err := NewTimeFormat(format); err == nil {
			t.Errorf("NewTimeFormat(%q) succeeded", format)
		}
	}
}

func TestTimeFormatAllocs(t *testing.T) {
	f := MustTimeFormat("YYYY-MM-DD HH:mm:ss.SSS Z")
	buf := make([]byte, 0, 64)
	now := time.Now()
	if n := testing.AllocsPerRun(100, func() { buf = f.AppendFormat(buf[:0], now) }); n != 0 {
		t.Errorf("AppendFormat allocates %v times per call", n)
	}
}
