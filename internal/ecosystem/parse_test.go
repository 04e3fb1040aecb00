package ecosystem

import (
	"slices"
	"strings"
	"testing"
)

func TestParseDotenv(t *testing.T) {
	src := "# comment\n" +
		"export A=1\n" +
		"B = spaced value \n" +
		"C='single # not a comment'\n" +
		"D=\"line1\\nline2\"\n" +
		"E=unquoted # comment\n" +
		"F=\"multi\nline\"\n" +
		"G=`back`\n" +
		"not an assignment\n" +
		"H=\"unterminated\n" +
		"I=last\r\n" +
		"A=2\n"
	got := map[string]string{}
	for _, p := range parseDotenv(src) {
		got[p.key] = p.value
	}
	want := map[string]string{
		"A": "2", "B": "spaced value", "C": "single # not a comment", "D": "line1\nline2",
		"E": "unquoted", "F": "multi\nline", "G": "back", "H": `"unterminated`, "I": "last",
	}
	if !mapsEqual(got, want) {
		t.Errorf("parseDotenv:\n got %q\nwant %q", got, want)
	}
}

func TestSplitShellWords(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"a b  c", []string{"a", "b", "c"}},
		{`--name "my app" --x='1 2'`, []string{"--name", "my app", "--x=1 2"}},
		{`a\ b "q\"uote" ''`, []string{"a b", `q"uote`, ""}},
	}
	for _, tt := range tests {
		got, err := SplitShellWords(tt.in)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("SplitShellWords(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if _, err := SplitShellWords(`"open`); err == nil {
		t.Error("unterminated quote accepted")
	}
}

func TestSuggest(t *testing.T) {
	tests := map[string]string{
		"instaces":          "instances",
		"Instances":         "instances",
		"maxMemoryRestat":   "maxMemoryRestart",
		"max_memry_restart": "max_memory_restart",
		"evn":               "env",
		"frobnicate":        "",
		"xy":                "",
	}
	for in, want := range tests {
		if got := suggest(in); got != want {
			t.Errorf("suggest(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPrepareModuleSource(t *testing.T) {
	tests := []struct {
		src     string
		want    string // substring of the prepared body
		wantErr string
	}{
		{src: "export default { apps: [] };", want: "module.exports = { apps: [] };"},
		{src: "const a = 1;\n  export default a;", want: "\n  module.exports = a;"},
		{src: "const importantThing = 1;\nimportantThing;", want: "importantThing;"},
		{src: "const m = import('x');", want: "import('x')"},
		{src: "#!/usr/bin/env node\nmodule.exports = {};", want: "//usr/bin/env node"},
		{src: "// ok\nimport fs from 'fs';", wantErr: "f.js:2: import statements are not supported"},
		{src: "import {join} from 'path';", wantErr: "import statements are not supported"},
		{src: "import 'dotenv/config';", wantErr: "import statements are not supported"},
		{src: "export const apps = [];", wantErr: "only `export default {...}` is supported"},
	}
	for _, tt := range tests {
		got, err := prepareModuleSource("f.js", tt.src)
		switch {
		case tt.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: err = %v, want %q", tt.src, err, tt.wantErr)
			}
		case err != nil:
			t.Errorf("%q: %v", tt.src, err)
		case !strings.Contains(got, tt.want):
			t.Errorf("%q: prepared %q lacks %q", tt.src, got, tt.want)
		}
	}
}
