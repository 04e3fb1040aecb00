package spec

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"
)

func TestNameProblem(t *testing.T) {
	for _, tc := range []struct {
		name string
		want string // a substring of the problem; "" for a good name
	}{
		{"web", ""},
		{"api-v2.internal_1", ""},
		{"my app", ""}, // PM2 allows spaces between words
		{"café", ""},
		{"日本語", ""},
		{"a1", ""},
		{strings.Repeat("a", MaxNameLength), ""},

		{".", "cannot be used as a name"},
		{"..", "cannot be used as a name"},
		{"a/b", "must not contain '/'"},
		{"123", "mistaken for a process id"},
		{"all", "reserved"},

		{"web\x1b[31m", `"web\x1b[31m" contains a control character (U+001B)`},
		{"web\a", "a control character (U+0007)"},
		{"web\nFAKE log line", "a control character (U+000A)"},
		{"web\r", "a control character (U+000D)"},
		{"a\x00b", "a control character (U+0000)"},
		{"web\x7f", "a control character (U+007F)"},
		{"web\u0085", "a control character (U+0085)"},
		{"web\tapi", "a control character (U+0009)"},
		{"web\u00a0api", "a whitespace character other than the space (U+00A0)"},
		{"web\u2028", "a whitespace character other than the space (U+2028)"},
		{"web\u200b", "an invisible character (U+200B)"},
		{"\u202eweb", "an invisible character (U+202E)"},
		{"web\xff", "not valid UTF-8"},
		{" web", "starts or ends with a space"},
		{"web ", "starts or ends with a space"},
		{strings.Repeat("a", MaxNameLength+1), "129 bytes long: the limit is 128"},
		{strings.Repeat("x", 5000), `"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"... (5000 bytes) is 5000 bytes long`},
	} {
		got := NameProblem(tc.name)
		if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
			t.Errorf("NameProblem(%q) = %q, want %q", tc.name, got, tc.want)
		}
		if strings.ContainsAny(got, "\x00\a\x1b\n\r\t\x7f") {
			t.Errorf("NameProblem(%q) = %q: the message itself holds a control character", tc.name, got)
		}
		if len(got) > 200 {
			t.Errorf("NameProblem(%q) is %d bytes long: %q", tc.name, len(got), got)
		}
	}
}

func TestNamespaceProblem(t *testing.T) {
	for _, tc := range []struct {
		ns   string
		want string
	}{
		{"default", ""},
		{"2024", ""}, // unlike a name, a namespace may be made of digits
		{"team a", ""},
		{"", "is empty"},
		{"prod\x1b]0;pwned\a", "a control character (U+001B)"},
		{"prod\n", "a control character (U+000A)"},
		{strings.Repeat("n", 5000), "5000 bytes long"},
		{" prod", "starts or ends with a space"},
	} {
		got := NamespaceProblem(tc.ns)
		if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
			t.Errorf("NamespaceProblem(%q) = %q, want %q", tc.ns, got, tc.want)
		}
	}
}

func TestValidateNames(t *testing.T) {
	base := Defaults()
	base.Name, base.Script, base.Cwd = "web", "/srv/web/app.js", "/srv/web"
	if err := base.Validate(); err != nil {
		t.Fatalf("Validate() of a good app = %v", err)
	}
	for _, tc := range []struct {
		edit func(*App)
		want string
	}{
		{func(a *App) { a.Name = "web\x1b[2J" }, `app name "web\x1b[2J" contains a control character`},
		{func(a *App) { a.Name = "web\a" }, `app name "web\a" contains a control character`},
		{func(a *App) { a.Name = "web\n2024-01-01 corral: app \"x\" stopped" }, "contains a control character (U+000A)"},
		{func(a *App) { a.Name = strings.Repeat("w", 5000) }, "is 5000 bytes long: the limit is 128"},
		{func(a *App) { a.Namespace = "ns\x1b" }, `app "web": namespace "ns\x1b" contains a control character`},
		{func(a *App) { a.Namespace = strings.Repeat("n", 200) }, "namespace"},
		{func(a *App) { a.Namespace = "" }, ""}, // the daemon fills in the default
	} {
		a := base.Clone()
		tc.edit(&a)
		err := a.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("Validate() = %v, want nil", err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("Validate() = %v, want an error containing %q", err, tc.want)
		}
	}
}

func TestQuoteName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"web", `"web"`},
		{"a\x1bb", `"a\x1bb"`},
		{strings.Repeat("é", 30), `"` + strings.Repeat("é", 20) + `"... (60 bytes)`},
		{strings.Repeat("a", 39) + "é", `"` + strings.Repeat("a", 39) + `"... (41 bytes)`},
	} {
		if got := QuoteName(tc.in); got != tc.want {
			t.Errorf("QuoteName(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// The longest name's longest file, a rotated error log of the highest id, fits the 255-byte
// limit on a file name.
func TestLongestNameFitsFileNames(t *testing.T) {
	name := strings.Repeat("é", MaxNameLength/2)
	if NameProblem(name) != "" {
		t.Fatalf("NameProblem(%q) = %q", name, NameProblem(name))
	}
	path := ProcessFilePath("/home/u/.corral/logs/"+SafeFileName(name)+"-error.log", math.MaxInt, false)
	rotated := fmt.Sprintf("%s.%d", path, math.MaxInt)
	if n := len(filepath.Base(rotated)); n > 255 {
		t.Errorf("%s is %d bytes long", filepath.Base(rotated), n)
	}
}
