package ecosystem

import (
	"path/filepath"
	"testing"

	"github.com/corral-pm/corral/internal/spec"
)

// TestBuildAttribute: `build` and `build_timeout`, corral's own attributes, in their spellings
// and with the errors that say what to write instead.
func TestBuildAttribute(t *testing.T) {
	runAttrCases(t, []attrCase{
		{name: "none by default", raw: map[string]any{}, check: func(t *testing.T, a spec.App, _ string) {
			if a.Build != "" || a.BuildTimeout != 0 || a.BuildTimeoutD() != spec.DefaultBuildTimeout.D() {
				t.Errorf("build %q timeout %d (%v)", a.Build, a.BuildTimeout, a.BuildTimeoutD())
			}
		}},
		{name: "a command line, trimmed", raw: map[string]any{"build": "  go build -v -o bin/app . && echo built \n"}, check: func(t *testing.T, a spec.App, _ string) {
			if a.Build != "go build -v -o bin/app . && echo built" {
				t.Errorf("build %q", a.Build)
			}
		}},
		{name: "timeout in PM2 units", raw: map[string]any{"build": "make", "build_timeout": "5m"}, check: func(t *testing.T, a spec.App, _ string) {
			if a.BuildTimeout != 300000 || a.BuildTimeoutD().Minutes() != 5 {
				t.Errorf("build_timeout %d", a.BuildTimeout)
			}
		}},
		{name: "camelCase", raw: map[string]any{"build": "make", "buildTimeout": 90000}, check: func(t *testing.T, a spec.App, _ string) {
			if a.Build != "make" || a.BuildTimeout != 90000 {
				t.Errorf("build %q timeout %d", a.Build, a.BuildTimeout)
			}
		}},
		{name: "null is no build", raw: map[string]any{"build": nil}, check: func(t *testing.T, a spec.App, _ string) {
			if a.Build != "" {
				t.Errorf("build %q", a.Build)
			}
		}},
		{name: "a script the build makes", raw: map[string]any{"script": "./bin/api", "build": "go build -o bin/api ."}, check: func(t *testing.T, a spec.App, dir string) {
			if a.Script != filepath.Join(dir, "bin", "api") || a.Interpreter != "none" || a.Shell {
				t.Errorf("script %q interpreter %q shell %v", a.Script, a.Interpreter, a.Shell)
			}
		}},
		{name: "a script the build makes, by extension", raw: map[string]any{"script": "dist/server.js", "build": "npm run build"}, check: func(t *testing.T, a spec.App, dir string) {
			if a.Script != filepath.Join(dir, "dist", "server.js") || a.Interpreter != "node" {
				t.Errorf("script %q interpreter %q", a.Script, a.Interpreter)
			}
		}},
		{name: "a missing script without a build", raw: map[string]any{"script": "dist/server.js"}, wantErr: "script: no file "},
		{name: "a bare name is still a program in PATH", raw: map[string]any{"script": "no-such-program-xyz", "build": "make"}, wantErr: `no program "no-such-program-xyz" in PATH`},
		{name: "empty", raw: map[string]any{"build": "  "}, wantErr: `build: is empty: use one shell command line such as "go build -o bin/app ." or "npm run build" (join steps with &&), or leave build out`},
		{name: "a list", raw: map[string]any{"build": []any{"npm ci", "npm run build"}}, wantErr: `build: expected a string, got an array: use one shell command line`},
		{name: "true", raw: map[string]any{"build": true}, wantErr: `build: expected a string, got a boolean (true)`},
		{name: "negative timeout", raw: map[string]any{"build": "make", "build_timeout": -1}, wantErr: `build_timeout: -1 is not a duration`},
		{name: "timeout not a duration", raw: map[string]any{"build": "make", "build_timeout": "later"}, wantErr: `build_timeout: "later" is not a duration`},
	})
}

// TestBuildAttributeIsKnown: no "unknown attribute" warning, and a typo gets the suggestion.
func TestBuildAttributeIsKnown(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"app.js": ""})
	_, warnings, err := normalizeIn(t, dir, map[string]any{"script": "app.js", "build": "make", "build_timeout": 1000})
	if err != nil || len(warnings) > 0 {
		t.Fatalf("err %v, warnings %q", err, warnings)
	}
	_, warnings, err = normalizeIn(t, dir, map[string]any{"script": "app.js", "biuld": "make"})
	if err != nil {
		t.Fatal(err)
	}
	wantWarning(t, warnings, `unknown attribute "biuld" ignored (did you mean "build"?)`)
}

// TestRefappEcosystemFile loads the README's first command's file as `corral run` does: it
// builds with build.sh, runs the binary it makes (which need not exist yet), and its port is 5000 unless the caller's PORT says otherwise (the
// README's `PORT=5050 go run ./cmd/corral run ...`).
func TestRefappEcosystemFile(t *testing.T) {
	file, err := filepath.Abs(filepath.Join("..", "..", "examples", "refapp", "ecosystem.config.js"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, port, want string
	}{
		{name: "default port", want: "5000"},
		{name: "PORT from the environment", port: "5050", want: "5050"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opt := testOptions(t.TempDir())
			if tc.port != "" {
				opt.Environ["PORT"] = tc.port
			}
			res := mustLoad(t, file, opt)
			a := appNamed(t, res.Apps, "refapp")
			if got := a.Env["PORT"]; got != tc.want {
				t.Errorf("PORT %q, want %q", got, tc.want)
			}
			if a.Build != "./build.sh" || a.Script != filepath.Join(filepath.Dir(file), "bin", "refapp") || a.Interpreter != "none" {
				t.Errorf("build %q, script %q", a.Build, a.Script)
			}
		})
	}
}
