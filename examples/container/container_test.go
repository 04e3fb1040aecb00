// Package container holds the example image (Dockerfile) and the ecosystem file it runs. Its
// tests check the Dockerfile's shape (stages, the paths it copies and builds, the user, the
// entrypoint, the ports), load the ecosystem file with corral's own loader, carry the
// Dockerfile out without a container engine and run the result as a container would
// (TestImageRun, image_run_test.go; as root), and, where a Docker daemon answers, build the
// image. docs/containers.md §8.1 says what each proves.
package container

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/ecosystem"
	"github.com/corral-pm/corral/internal/spec"
)

// repoRoot is the build context the Dockerfile expects.
const repoRoot = "../.."

// readDockerfile parses the Dockerfile with the parser TestImageRun carries it out with
// (dockerfile_parse_test.go): an instruction it does not know fails both tests.
func readDockerfile(t *testing.T) []instruction {
	t.Helper()
	ins, err := parseDockerfile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	return ins
}

func jsonArgs(t *testing.T, in instruction) []string {
	t.Helper()
	args := in.args
	if in.cmd == "HEALTHCHECK" {
		_, args, _ = strings.Cut(args, "CMD ")
	}
	var out []string
	if err := json.Unmarshal([]byte(args), &out); err != nil {
		t.Fatalf("Dockerfile line %d: %s is not in JSON (exec) form: %v", in.line, in.cmd, err)
	}
	return out
}

func TestDockerfile(t *testing.T) {
	st, err := splitStages(readDockerfile(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(st) < 2 {
		t.Fatalf("want a multi-stage build (a build stage and a runtime stage), got %d stages", len(st))
	}
	build, final := st[0].body, st[len(st)-1].body

	// The build stage builds static binaries of packages that exist.
	buildText := ""
	outputs := map[string]bool{}
	for _, in := range build {
		buildText += in.cmd + " " + in.args + "\n"
		if in.cmd == "RUN" {
			f := strings.Fields(in.args)
			for i, w := range f {
				if w == "-o" && i+2 < len(f) {
					outputs[f[i+1]] = true
					pkg := f[i+2]
					if st, err := os.Stat(filepath.Join(repoRoot, pkg)); err != nil || !st.IsDir() {
						t.Errorf("the build stage builds %s, which is not a package directory of the repository", pkg)
					}
				}
			}
		}
	}
	if !strings.Contains(buildText, "CGO_ENABLED=0") {
		t.Error("the binaries are not built static (CGO_ENABLED=0): the runtime image has no libc")
	}

	// The runtime stage: non-root, copies what exists, runs corral as PID 1.
	copied := map[string]string{} // destination -> source
	user, listen := "", ""
	var exposed []string
	var entry, health []string
	for _, in := range final {
		switch in.cmd {
		case "COPY":
			f := copyArgs(in)
			from := in.flags["from"]
			if len(f) != 2 {
				t.Errorf("Dockerfile line %d: COPY %s: want one source and a destination", in.line, in.args)
				continue
			}
			if from == "" {
				if _, err := os.Stat(filepath.Join(repoRoot, f[0])); err != nil {
					t.Errorf("Dockerfile line %d: COPY %s: not in the repository: %v", in.line, f[0], err)
				}
			} else if !outputs[f[0]] {
				t.Errorf("Dockerfile line %d: COPY --from=%s %s: the build stage does not make it (it makes %v)", in.line, from, f[0], outputs)
			}
			copied[f[1]] = f[0]
		case "USER":
			user = in.args
		case "ENV":
			pairs, err := envPairs(in)
			if err != nil {
				t.Fatal(err)
			}
			for _, kv := range pairs {
				if kv[0] == "CORRAL_HTTP_LISTEN" {
					listen = kv[1]
				}
			}
		case "EXPOSE":
			exposed = append(exposed, strings.Fields(in.args)...)
		case "ENTRYPOINT":
			entry = jsonArgs(t, in)
		case "HEALTHCHECK":
			health = jsonArgs(t, in)
		}
	}
	if uid, _, _ := strings.Cut(user, ":"); uid == "" || uid == "0" || uid == "root" {
		t.Errorf("the image runs as %q: want a non-root user", user)
	}
	if len(entry) < 3 || entry[1] != "run" {
		t.Fatalf("ENTRYPOINT %q: want corral run <ecosystem file>", entry)
	}
	if _, ok := copied[entry[0]]; !ok {
		t.Errorf("ENTRYPOINT runs %s, which no COPY puts in the image", entry[0])
	}
	if src, ok := copied[entry[2]]; !ok || src != "examples/container/ecosystem.config.js" {
		t.Errorf("ENTRYPOINT runs %s, which is not examples/container/ecosystem.config.js copied in (%v)", entry[2], copied)
	}
	for _, flag := range []string{"--log-format", "--grace"} {
		if !slices.Contains(entry, flag) {
			t.Errorf("ENTRYPOINT has no %s", flag)
		}
	}
	if len(health) < 3 || health[0] != entry[0] || health[1] != "ping" || health[2] != "--ready" {
		t.Errorf("HEALTHCHECK %q: want corral ping --ready", health)
	}
	_, port, err := net.SplitHostPort(listen)
	if err != nil || !slices.Contains(exposed, port) {
		t.Errorf("CORRAL_HTTP_LISTEN %q: its port is not EXPOSEd (%v)", listen, exposed)
	}

	// The ecosystem file runs the binary the image holds. The loader wants the script to
	// exist: it is given a stand-in here, and the file's own script is read from its text.
	abs, err := filepath.Abs("ecosystem.config.js")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(abs)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`script: '([^']+)'`).FindSubmatch(src)
	if m == nil {
		t.Fatal("the ecosystem file names no script")
	}
	if _, ok := copied[string(m[1])]; !ok {
		t.Errorf("the app runs %s, which no COPY puts in the image", m[1])
	}
	standIn := filepath.Join(t.TempDir(), "refapp")
	if err := os.WriteFile(standIn, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	res, err := ecosystem.Load(abs, ecosystem.Options{Environ: map[string]string{}, Cwd: "/app", Overrides: map[string]any{"script": standIn}})
	if err != nil {
		t.Fatalf("corral does not load the image's ecosystem file: %v", err)
	}
	if len(res.Apps) != 1 {
		t.Fatalf("%d apps, want 1", len(res.Apps))
	}
	app := res.Apps[0]
	if app.ExecMode != spec.ModeCluster || app.HealthURL == "" {
		t.Errorf("the app is not in cluster mode with a health_url: %+v", app)
	}
	if !slices.Contains(exposed, app.Env["PORT"]) {
		t.Errorf("the app's PORT %s is not EXPOSEd (%v)", app.Env["PORT"], exposed)
	}
}

// TestDockerBuild builds the image where a Docker daemon answers.
func TestDockerBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: no image build")
	}
	docker, err := exec.LookPath("docker")
	if err != nil {
		t.Skip("no docker CLI")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, docker, "info").CombinedOutput(); err != nil {
		t.Skipf("no Docker daemon answers: %v\n%s", err, out)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	tag := "corral-refapp-test:" + time.Now().Format("20060102150405")
	out, err := exec.CommandContext(ctx, docker, "build", "-f", "examples/container/Dockerfile", "-t", tag, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
	_ = exec.Command(docker, "rmi", tag).Run()
}

// TestDockerignore: the build context's exclusions keep out what is not needed (the
// repository's history, node_modules, build output) and nothing the build reads. The matcher
// is the one TestImageRun copies the context with (build_context_test.go).
func TestDockerignore(t *testing.T) {
	file, patterns, err := dockerignoreFor("Dockerfile", repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(file) != "Dockerfile.dockerignore" {
		t.Fatalf("the build reads its exclusions from %q, want Dockerfile.dockerignore beside the Dockerfile", file)
	}
	for _, out := range []string{".git", "node_modules", "integration/testdata/node_modules/express/index.js",
		"bin/corral", "examples/refapp/bin/refapp", "examples/refapp/refapp.db", "refapp.db-wal", "bench/results/x.json"} {
		if !ignored(patterns, out) {
			t.Errorf("%s is not excluded from the build context", out)
		}
	}
	// Every path the build reads must be sent.
	for _, in := range []string{"go.mod", "go.sum", "cmd/corral/main.go", "internal/daemon/daemon.go", "worker",
		"examples/refapp/main.go", "examples/container/ecosystem.config.js", "internal/cli/run.go"} {
		if ignored(patterns, in) {
			t.Errorf("%s is excluded from the build context, and the build needs it", in)
		}
	}
}

// TestDockerignoreMatcher: the matcher follows Docker's rules for the patterns it meets.
func TestDockerignoreMatcher(t *testing.T) {
	patterns, err := parseDockerignore("# comment\n/docs/*.md\n**/tmp\na/**/z\n*.log\n!keep.log\nsrc/[ab]?.go\n")
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]bool{
		"docs/x.md": true, "docs/sub/x.md": false, "x.md": false,
		"tmp": true, "a/b/tmp/f": true,
		"a/z": true, "a/b/c/z": true, "a/z/f": true, "b/a/z": false,
		"x.log": true, "keep.log": false, "d/x.log": false,
		"src/a1.go": true, "src/c1.go": false, "src/a12.go": false,
	} {
		if got := ignored(patterns, path); got != want {
			t.Errorf("%s: ignored %v, want %v", path, got, want)
		}
	}
}
