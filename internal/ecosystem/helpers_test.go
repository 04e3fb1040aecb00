package ecosystem

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/corral-pm/corral/internal/spec"
)

const (
	testLogDir = "/var/lib/corral/logs"
	testPidDir = "/var/lib/corral/pids"
)

// testOptions returns Options with a known environment (PATH kept so programs resolve) and
// the given working directory.
func testOptions(cwd string) Options {
	return Options{
		Environ: map[string]string{"PATH": os.Getenv("PATH"), "HOME": "/home/tester", "FROM_SHELL": "shell"},
		Cwd:     cwd,
		LogDir:  testLogDir,
		PidDir:  testPidDir,
	}
}

// packageDir is the test's working directory, where testdata lives.
func packageDir(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}

// writeFiles creates files under dir. A name ending in "*" is created executable (the star is
// not part of the name).
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, "*") {
			name, mode = strings.TrimSuffix(name, "*"), 0o755
		}
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
}

func mustLoad(t *testing.T, path string, opt Options) *Result {
	t.Helper()
	res, err := Load(path, opt)
	if err != nil {
		t.Fatalf("Load(%s): %v", path, err)
	}
	return res
}

func appNamed(t *testing.T, apps []spec.App, name string) spec.App {
	t.Helper()
	for _, a := range apps {
		if a.Name == name {
			return a
		}
	}
	t.Fatalf("no app %q among %v", name, names(apps))
	return spec.App{}
}

func names(apps []spec.App) []string {
	var out []string
	for _, a := range apps {
		out = append(out, a.Name)
	}
	return out
}

// wantErrorLines checks that err is an *Error and that each wanted substring appears on one of
// its lines.
func wantErrorLines(t *testing.T, err error, wants ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one containing %q", wants)
	}
	e, ok := err.(*Error)
	if !ok {
		t.Fatalf("error is a %T, want *Error: %v", err, err)
	}
	for _, want := range wants {
		if !slices.ContainsFunc(e.Problems, func(line string) bool { return strings.Contains(line, want) }) {
			t.Errorf("no error line contains %q; got:\n%s", want, err)
		}
	}
}

func wantWarning(t *testing.T, warnings []string, want string) {
	t.Helper()
	if !slices.ContainsFunc(warnings, func(w string) bool { return strings.Contains(w, want) }) {
		t.Errorf("no warning contains %q; got %q", want, warnings)
	}
}

// normalizeIn runs Normalize for an app whose files live in dir.
func normalizeIn(t *testing.T, dir string, raw map[string]any) (spec.App, []string, error) {
	t.Helper()
	return Normalize("command line", raw, testOptions(dir))
}
