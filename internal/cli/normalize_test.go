package cli

import (
	"regexp"
	"strings"
	"unicode/utf8"
)

// normalize makes output comparable from run to run: the home and the apps' directory become
// $CORRAL_HOME and $DIR, and in the tables (which are redrawn to fit) and `ls -m`'s blocks the
// values that change on every run (pids, uptimes, cpu, memory, times, the user) become
// placeholders.
func (e *testEnv) normalize(s string) string {
	s = strings.ReplaceAll(s, e.dir, "$DIR")
	s = strings.ReplaceAll(s, e.home, "$CORRAL_HOME")
	for _, r := range miniListVolatile {
		s = r.re.ReplaceAllString(s, r.with)
	}
	return redrawBoxes(s, volatileCell)
}

// miniListVolatile are the lines of `ls -m` that change from run to run.
var miniListVolatile = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`(?m)^pid : [1-9][0-9]*$`), "pid : <pid>"},
	{regexp.MustCompile(`(?m)^uptime : [0-9]+[smhDMY]$`), "uptime : <uptime>"},
	{regexp.MustCompile(`(?m)^memory usage : .*$`), "memory usage : <mem>"},
	{regexp.MustCompile(`(?m)^corral daemon \S+: pid [1-9][0-9]*, up [0-9]+[smhDMY];`), "corral daemon <version>: pid <pid>, up <uptime>;"},
}

// volatileCell replaces the value of a table cell in column (or, in a key/value table, on the
// row of key) col when it changes from run to run.
func volatileCell(col, v string) string {
	switch col {
	case "pid":
		if v != "0" {
			return "<pid>"
		}
	case "uptime":
		if v != "0" {
			return "<uptime>"
		}
	case "cpu":
		return "<cpu>"
	case "mem", "memory":
		return "<mem>"
	case "user":
		return "<user>"
	case "created at":
		return "<time>"
	}
	return v
}

// redrawBoxes finds the box-drawn tables of s (render's: ┌ ├ └ rules, │ rows), passes every
// cell through fix (with its column's header, or for a table without a header, the row's first
// cell) and draws them again with widths that fit the new cells.
func redrawBoxes(s string, fix func(col, v string) string) string {
	lines := strings.SplitAfter(s, "\n")
	var out strings.Builder
	for i := 0; i < len(lines); i++ {
		if !strings.HasPrefix(lines[i], "┌") {
			out.WriteString(lines[i])
			continue
		}
		j := i
		for j < len(lines) && !strings.HasPrefix(lines[j], "└") {
			j++
		}
		if j == len(lines) {
			out.WriteString(strings.Join(lines[i:], ""))
			break
		}
		out.WriteString(redrawBox(lines[i:j+1], fix))
		i = j
	}
	return out.String()
}

// boxRules are the left, middle and right characters of each kind of rule.
var boxRules = map[string][3]string{"┌": {"┌", "┬", "┐"}, "├": {"├", "┼", "┤"}, "└": {"└", "┴", "┘"}}

// redrawBox redraws one table: its lines from ┌ to └.
func redrawBox(lines []string, fix func(col, v string) string) string {
	type row struct {
		rule  string // "┌", "├" or "└" for a rule, "" for cells
		cells []string
	}
	var rows []row
	hasHeader := false
	for _, l := range lines {
		l = strings.TrimRight(l, "\n")
		switch {
		case strings.HasPrefix(l, "│"):
			parts := strings.Split(l, "│")
			cells := make([]string, 0, len(parts))
			for _, p := range parts[1 : len(parts)-1] {
				cells = append(cells, strings.TrimSpace(p))
			}
			rows = append(rows, row{cells: cells})
		default:
			r, _ := utf8.DecodeRuneInString(l)
			if r == '├' {
				hasHeader = true
			}
			rows = append(rows, row{rule: string(r)})
		}
	}
	var header []string
	for i, r := range rows {
		if r.cells == nil {
			continue
		}
		if hasHeader && header == nil {
			header = r.cells
			continue
		}
		for c := range r.cells {
			col := ""
			switch {
			case hasHeader && c < len(header):
				col = header[c]
			case !hasHeader && c > 0:
				col = r.cells[0]
			}
			if col != "" {
				rows[i].cells[c] = fix(col, r.cells[c])
			}
		}
	}
	var widths []int
	for _, r := range rows {
		for c, v := range r.cells {
			if c >= len(widths) {
				widths = append(widths, 0)
			}
			widths[c] = max(widths[c], utf8.RuneCountInString(v))
		}
	}
	var b strings.Builder
	for _, r := range rows {
		if r.cells == nil {
			l, m, rt := boxRules[r.rule][0], boxRules[r.rule][1], boxRules[r.rule][2]
			b.WriteString(l)
			for c, w := range widths {
				if c > 0 {
					b.WriteString(m)
				}
				b.WriteString(strings.Repeat("─", w+2))
			}
			b.WriteString(rt + "\n")
			continue
		}
		b.WriteString("│")
		for c, v := range r.cells {
			b.WriteString(" " + v + strings.Repeat(" ", widths[c]-utf8.RuneCountInString(v)) + " │")
		}
		b.WriteString("\n")
	}
	return b.String()
}
