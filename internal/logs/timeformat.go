package logs

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// PM2TimeFormat is the format PM2 uses for `time: true` (and `--time`).
const PM2TimeFormat = "YYYY-MM-DDTHH:mm:ss"

// TimeFormat renders timestamps with PM2's dayjs-style format strings (log_date_format), so an
// ecosystem file moved from PM2 keeps producing the same log prefixes. The format is parsed
// once; formatting then appends into a caller's buffer without allocating, since it runs for
// every log line.
type TimeFormat struct {
	layout string
	parts  []part
}

// part is literal text, or one token when tok is set.
type part struct {
	lit string
	tok string
}

// tokens are what dayjs's core format understands. Like dayjs, a run of one letter is matched
// greedily (Y{1,4}, M{1,4}, D{1,2}, d{1,4}, H{1,2}, h{1,2}, m{1,2}, s{1,2}, Z{1,2}, SSS, a, A),
// so "MMM" is the short month name, never "MM" then "M". Runs dayjs matches but does not know
// ("Y", "YYY") stay literal text here; dayjs would print the zone offset for them, which no one
// relies on.
var tokens = map[string]bool{
	"YYYY": true, "YY": true,
	"M": true, "MM": true, "MMM": true, "MMMM": true,
	"D": true, "DD": true,
	"d": true, "dd": true, "ddd": true, "dddd": true,
	"H": true, "HH": true, "h": true, "hh": true,
	"m": true, "mm": true, "s": true, "ss": true,
	"SSS": true, "Z": true, "ZZ": true, "A": true, "a": true,
}

// maxRun is the longest run of each letter that dayjs's format regex takes as one token.
var maxRun = map[byte]int{
	'Y': 4, 'M': 4, 'D': 2, 'd': 4, 'H': 2, 'h': 2, 'm': 2, 's': 2, 'Z': 2, 'S': 3, 'a': 1, 'A': 1,
}

// NewTimeFormat parses a dayjs format string. Tokens: YYYY YY M MM MMM MMMM D DD d dd ddd dddd
// H HH h hh m mm s ss SSS Z ZZ A a (English names); text in [brackets] is printed as is,
// without the brackets; anything else is literal. Formats that are empty or contain a line
// break (which would split every log line in two) are refused.
func NewTimeFormat(dayjs string) (*TimeFormat, error) {
	if dayjs == "" {
		return nil, errors.New("logs: empty date format")
	}
	if strings.ContainsAny(dayjs, "\r\n") {
		return nil, fmt.Errorf("logs: date format %q contains a line break", dayjs)
	}
	f := &TimeFormat{layout: dayjs}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			f.parts = append(f.parts, part{lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(dayjs); {
		c := dayjs[i]
		if c == '[' {
			if end := strings.IndexByte(dayjs[i+1:], ']'); end > 0 {
				lit.WriteString(dayjs[i+1 : i+1+end])
				i += end + 2
				continue
			}
		}
		if limit, ok := maxRun[c]; ok {
			n := 1
			for i+n < len(dayjs) && dayjs[i+n] == c && n < limit {
				n++
			}
			run := dayjs[i : i+n]
			if tokens[run] {
				flush()
				f.parts = append(f.parts, part{tok: run})
			} else {
				lit.WriteString(run)
			}
			i += n
			continue
		}
		lit.WriteByte(c)
		i++
	}
	flush()
	return f, nil
}

// MustTimeFormat is NewTimeFormat for formats known to be valid, such as PM2TimeFormat.
func MustTimeFormat(dayjs string) *TimeFormat {
	f, err := NewTimeFormat(dayjs)
	if err != nil {
		panic(err)
	}
	return f
}

// String returns the dayjs format string.
func (f *TimeFormat) String() string { return f.layout }

// Format renders t (in t's location) with the format.
func (f *TimeFormat) Format(t time.Time) string {
	return string(f.AppendFormat(make([]byte, 0, 32), t))
}

// AppendFormat appends t rendered with the format to dst.
func (f *TimeFormat) AppendFormat(dst []byte, t time.Time) []byte {
	for _, p := range f.parts {
		if p.tok == "" {
			dst = append(dst, p.lit...)
			continue
		}
		switch p.tok {
		case "YYYY":
			dst = appendPadded(dst, t.Year(), 4)
		case "YY":
			y := strconv.Itoa(t.Year())
			dst = append(dst, y[max(len(y)-2, 0):]...) // dayjs: String(year).slice(-2)
		case "M":
			dst = strconv.AppendInt(dst, int64(t.Month()), 10)
		case "MM":
			dst = appendPadded(dst, int(t.Month()), 2)
		case "MMM":
			dst = append(dst, t.Month().String()[:3]...)
		case "MMMM":
			dst = append(dst, t.Month().String()...)
		case "D":
			dst = strconv.AppendInt(dst, int64(t.Day()), 10)
		case "DD":
			dst = appendPadded(dst, t.Day(), 2)
		case "d":
			dst = strconv.AppendInt(dst, int64(t.Weekday()), 10)
		case "dd":
			dst = append(dst, t.Weekday().String()[:2]...)
		case "ddd":
			dst = append(dst, t.Weekday().String()[:3]...)
		case "dddd":
			dst = append(dst, t.Weekday().String()...)
		case "H":
			dst = strconv.AppendInt(dst, int64(t.Hour()), 10)
		case "HH":
			dst = appendPadded(dst, t.Hour(), 2)
		case "h":
			dst = strconv.AppendInt(dst, int64(hour12(t)), 10)
		case "hh":
			dst = appendPadded(dst, hour12(t), 2)
		case "m":
			dst = strconv.AppendInt(dst, int64(t.Minute()), 10)
		case "mm":
			dst = appendPadded(dst, t.Minute(), 2)
		case "s":
			dst = strconv.AppendInt(dst, int64(t.Second()), 10)
		case "ss":
			dst = appendPadded(dst, t.Second(), 2)
		case "SSS":
			dst = appendPadded(dst, t.Nanosecond()/int(time.Millisecond), 3)
		case "Z":
			dst = appendZone(dst, t, true)
		case "ZZ":
			dst = appendZone(dst, t, false)
		case "A":
			dst = append(dst, meridiem(t, "AM", "PM")...)
		case "a":
			dst = append(dst, meridiem(t, "am", "pm")...)
		}
	}
	return dst
}

func hour12(t time.Time) int {
	if h := t.Hour() % 12; h != 0 {
		return h
	}
	return 12
}

func meridiem(t time.Time, am, pm string) string {
	if t.Hour() < 12 {
		return am
	}
	return pm
}

// appendPadded appends v left-padded with zeros to width digits.
func appendPadded(dst []byte, v, width int) []byte {
	if v < 0 {
		dst = append(dst, '-')
		v = -v
	}
	var buf [20]byte
	s := strconv.AppendInt(buf[:0], int64(v), 10)
	for i := len(s); i < width; i++ {
		dst = append(dst, '0')
	}
	return append(dst, s...)
}

// appendZone appends the UTC offset as +hh:mm (colon) or +hhmm, as dayjs does (+00:00 in UTC).
func appendZone(dst []byte, t time.Time, colon bool) []byte {
	_, off := t.Zone()
	sign := byte('+')
	if off < 0 {
		sign = '-'
		off = -off
	}
	mins := off / 60
	dst = append(dst, sign)
	dst = appendPadded(dst, mins/60, 2)
	if colon {
		dst = append(dst, ':')
	}
	return appendPadded(dst, mins%60, 2)
}
