package ecosystem

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFormatSize(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want string
	}{
		{0, "0 bytes"}, {1023, "1023 bytes"}, {1024, "1 KiB"}, {1536, "1.5 KiB"},
		{MaxFileSize, "1 MiB"}, {17_500_000, "16.7 MiB"}, {3 << 30, "3 GiB"},
	} {
		if got := formatSize(tc.n); got != tc.want {
			t.Errorf("formatSize(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

// bigFile writes a file of n bytes of valid JSON/JS (a string literal), sparse on disk.
func bigFile(t *testing.T, path string, n int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(`{"apps": [], "pad": "`); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(n); err != nil {
		t.Fatal(err)
	}
}

func TestLoadRefusesOversizeFile(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"ecosystem.config.js", "ecosystem.json", "ecosystem.yaml"} {
		file := filepath.Join(dir, name)
		bigFile(t, file, 17_500_000)
		_, err := Load(file, testOptions(dir))
		wantErrorLines(t, err, file+": the file is 16.7 MiB, more than the 1 MiB allowed for an ecosystem file (real ones are a few KB): check that it is the right file, or split its apps over several files; nothing was started")
		var big *errFileTooLarge
		if !errors.As(err, &big) {
			t.Errorf("the error does not wrap errFileTooLarge: %v", err)
		}
	}

	// At the limit exactly, the file is read (and here, found to declare no app).
	file := filepath.Join(dir, "limit.json")
	writeFiles(t, dir, map[string]string{"limit.json": `{"apps": []}` + strings.Repeat(" ", MaxFileSize-len(`{"apps": []}`))})
	_, err := Load(file, testOptions(dir))
	wantErrorLines(t, err, `"apps" is empty`)
}

// Files the ecosystem file reads are capped too, with a message that names them; the error is a
// JavaScript exception, so the file's position is given.
func TestLoadRefusesOversizeReads(t *testing.T) {
	dir := t.TempDir()
	bigFile(t, filepath.Join(dir, "huge.json"), 53_300_000)
	bigFile(t, filepath.Join(dir, "huge.env"), 2<<20)
	writeFiles(t, dir, map[string]string{
		"app.js":             "",
		"require.config.js":  "const data = require('./huge.json');\nmodule.exports = {apps: [{script: 'app.js'}]};",
		"readfile.config.js": "const data = require('fs').readFileSync(__dirname + '/huge.json');\nmodule.exports = {apps: [{script: 'app.js'}]};",
		"dotenv.config.js":   "require('dotenv').config({path: 'huge.env'});\nmodule.exports = {apps: [{script: 'app.js'}]};",
		"devzero.config.js":  "const z = require('fs').readFileSync('/dev/zero');\nmodule.exports = {apps: [{script: 'app.js'}]};",
	})
	huge := filepath.Join(dir, "huge.json")
	for _, tc := range []struct{ file, want string }{
		{"require.config.js", `require.config.js:1:21: Error: require("./huge.json"): ` + huge + ` is 50.8 MiB, more than the 1 MiB allowed for a file read by an ecosystem file: read large data in the app itself, at run time`},
		{"readfile.config.js", `readfile.config.js:1:40: Error: EFBIG: ` + huge + ` is 50.8 MiB, more than the 1 MiB allowed for a file read by an ecosystem file`},
		{"dotenv.config.js", `dotenv.config.js:1:25: Error: dotenv: ` + filepath.Join(dir, "huge.env") + ` is 2 MiB, more than the 1 MiB allowed`},
		{"devzero.config.js", `Error: EFBIG: /dev/zero holds more than the 1 MiB allowed for a file read by an ecosystem file`},
	} {
		t.Run(tc.file, func(t *testing.T) {
			_, err := Load(filepath.Join(dir, tc.file), testOptions(dir))
			wantErrorLines(t, err, tc.want)
		})
	}
}
