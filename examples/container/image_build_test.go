package container

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// imageConfig is what a container runtime reads from a built image: the Dockerfile's
// ENV, WORKDIR, USER, EXPOSE, HEALTHCHECK, STOPSIGNAL and ENTRYPOINT over its base image's.
type imageConfig struct {
	env        []string // KEY=VALUE, later instructions replacing earlier keys
	workdir    string
	user       string
	exposed    []string // "5000", "9615/tcp"
	entrypoint []string
	health     healthcheck
	stopSignal unix.Signal
}

type healthcheck struct {
	cmd      []string // nil: none
	interval time.Duration
	timeout  time.Duration
	retries  int
}

func (c *imageConfig) setEnv(key, value string) {
	c.env = slices.DeleteFunc(c.env, func(kv string) bool { return strings.HasPrefix(kv, key+"=") })
	c.env = append(c.env, key+"="+value)
}

// builtStage is one stage carried out: its filesystem lives under root (an image path /x is
// root/x).
type builtStage struct {
	name   string
	root   string
	config imageConfig
	// runsOnHost: the stage's base (golang) is emulated by the host's own toolchain, and its
	// RUN commands run on the host with the stage's own paths redirected under root.
	runsOnHost bool
	// redirected are the absolute paths of the stage that its RUN commands see under root:
	// its WORKDIRs, its COPY destinations and what later stages COPY --from it.
	redirected []string
}

func (s *builtStage) path(p string) string {
	return filepath.Join(s.root, filepath.Clean("/"+p))
}

// buildImage carries out the Dockerfile without a container engine, into workDir: the build
// context is copied as BuildKit would send it (its .dockerignore applied), each stage starts
// from an emulation of its base image (emulatedBase), and its instructions run in order. It
// returns every stage; the last one is the image.
func buildImage(ctx context.Context, dockerfile, contextDir, workDir string, logf func(string, ...any)) ([]*builtStage, error) {
	ins, err := parseDockerfile(dockerfile)
	if err != nil {
		return nil, err
	}
	stages, err := splitStages(ins)
	if err != nil {
		return nil, err
	}
	ignoreFile, patterns, err := dockerignoreFor(dockerfile, contextDir)
	if err != nil {
		return nil, err
	}
	logf("build context: %s, exclusions from %s", contextDir, ignoreFile)
	sent := filepath.Join(workDir, "context")
	if err := copyBuildContext(contextDir, sent, patterns); err != nil {
		return nil, fmt.Errorf("copying the build context: %w", err)
	}

	var built []*builtStage
	for i, st := range stages {
		root := filepath.Join(workDir, fmt.Sprintf("stage-%d-%s", i, st.name))
		if err := os.MkdirAll(root, 0o755); err != nil {
			return nil, err
		}
		b, err := emulatedBase(st, root, contextDir)
		if err != nil {
			return nil, err
		}
		b.name = st.name
		b.redirected = redirectedPaths(stages, i)
		for _, in := range st.body {
			if err := b.apply(ctx, in, sent, built, logf); err != nil {
				return nil, fmt.Errorf("stage %s: %w", st.name, err)
			}
		}
		built = append(built, b)
	}
	return built, nil
}

// redirectedPaths lists the absolute paths stage i owns (see builtStage.redirected).
func redirectedPaths(stages []stage, i int) []string {
	var out []string
	workdir := "/"
	for _, in := range stages[i].body {
		switch in.cmd {
		case "WORKDIR":
			workdir = imagePath(workdir, in.args)
			out = append(out, workdir)
		case "COPY":
			argv := copyArgs(in)
			if len(argv) > 1 && strings.HasPrefix(argv[len(argv)-1], "/") {
				out = append(out, filepath.Clean(argv[len(argv)-1]))
			}
		}
	}
	for _, later := range stages[i+1:] {
		for _, in := range later.body {
			if in.cmd == "COPY" && (in.flags["from"] == stages[i].name || in.flags["from"] == strconv.Itoa(i)) {
				argv := copyArgs(in)
				for _, src := range argv[:max(len(argv)-1, 0)] {
					out = append(out, filepath.Dir(imagePath("/", src)))
				}
			}
		}
	}
	// The longest first, so that /src/app is rewritten before /src; equal ones adjacent.
	slices.SortFunc(out, func(a, b string) int {
		if len(a) != len(b) {
			return len(b) - len(a)
		}
		return strings.Compare(a, b)
	})
	return slices.Compact(out)
}

// imagePath resolves p (absolute, or relative to dir) as a clean absolute path of an image.
func imagePath(dir, p string) string {
	if !strings.HasPrefix(p, "/") {
		p = dir + "/" + p
	}
	return filepath.Clean(p)
}

// copyArgs is COPY's sources and destination, in either form.
func copyArgs(in instruction) []string {
	if argv, exec := command(in.args); exec {
		return argv
	}
	return strings.Fields(in.args)
}

// apply carries out one instruction of the stage.
func (s *builtStage) apply(ctx context.Context, in instruction, contextCopy string, earlier []*builtStage, logf func(string, ...any)) error {
	c := &s.config
	switch in.cmd {
	case "WORKDIR":
		c.workdir = imagePath(c.workdir, in.args)
		return os.MkdirAll(s.path(c.workdir), 0o755)
	case "ENV":
		pairs, err := envPairs(in)
		if err != nil {
			return err
		}
		for _, kv := range pairs {
			c.setEnv(kv[0], kv[1])
		}
	case "COPY":
		return s.copy(in, contextCopy, earlier)
	case "RUN":
		return s.run(ctx, in, logf)
	case "USER":
		c.user = in.args
	case "EXPOSE":
		c.exposed = append(c.exposed, strings.Fields(in.args)...)
	case "HEALTHCHECK":
		return s.healthcheck(in)
	case "STOPSIGNAL":
		sig, err := parseSignal(in.args)
		if err != nil {
			return fmt.Errorf("%s: %w", in, err)
		}
		c.stopSignal = sig
	case "ENTRYPOINT":
		c.entrypoint, _ = command(in.args)
	default:
		return fmt.Errorf("%s: not carried out (the parser knows it, apply does not)", in)
	}
	return nil
}

// copy is COPY: from the build context or, with --from, from an earlier stage's
// filesystem; files and the directories it creates belong to root (no --chown), modes kept.
func (s *builtStage) copy(in instruction, contextCopy string, earlier []*builtStage) error {
	argv := copyArgs(in)
	if len(argv) < 2 {
		return fmt.Errorf("%s: want sources and a destination", in)
	}
	srcs, dest := argv[:len(argv)-1], argv[len(argv)-1]
	toDir := strings.HasSuffix(dest, "/") || dest == "." || dest == ".."
	if len(srcs) > 1 && !strings.HasSuffix(dest, "/") {
		return fmt.Errorf("%s: with several sources the destination must end with /", in)
	}
	dest = imagePath(s.config.workdir, dest)
	srcRoot, what := contextCopy, "the build context (after .dockerignore)"
	if from := in.flags["from"]; from != "" {
		i := slices.IndexFunc(earlier, func(b *builtStage) bool { return b.name == from })
		if i < 0 {
			return fmt.Errorf("%s: --from=%s names no earlier stage", in, from)
		}
		srcRoot, what = earlier[i].root, "stage "+from
	}
	for _, src := range srcs {
		if strings.ContainsAny(src, "*?[") {
			return fmt.Errorf("%s: wildcard sources are not supported by this test", in)
		}
		from := filepath.Join(srcRoot, filepath.Clean("/"+src))
		info, err := os.Lstat(from)
		if err != nil {
			return fmt.Errorf("%s: %s is not in %s: %w", in, src, what, err)
		}
		target := s.path(dest)
		if !info.IsDir() {
			if st, err := os.Stat(target); toDir || (err == nil && st.IsDir()) {
				target = filepath.Join(target, filepath.Base(from))
			}
		}
		if err := s.mkdirAllRoot(filepath.Dir(target)); err != nil {
			return err
		}
		err = filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(from, path)
			if err != nil {
				return err
			}
			t := filepath.Join(target, rel)
			if err := copyEntry(path, t, d); err != nil {
				return err
			}
			return os.Lchown(t, 0, 0)
		})
		if err != nil {
			return fmt.Errorf("%s: %w", in, err)
		}
	}
	return nil
}

// mkdirAllRoot creates dir and its missing parents as a build does: owned by root, 0755.
func (s *builtStage) mkdirAllRoot(dir string) error {
	if _, err := os.Stat(dir); err == nil || dir == s.root {
		return nil
	}
	if err := s.mkdirAllRoot(filepath.Dir(dir)); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	return os.Chown(dir, 0, 0)
}

// run is RUN, in a stage whose base the host emulates: the command runs on the host, in the
// stage's working directory under root, with the stage's environment only, and with the
// stage's own absolute paths (redirected) rewritten to their place under root.
func (s *builtStage) run(ctx context.Context, in instruction, logf func(string, ...any)) error {
	if !s.runsOnHost {
		return fmt.Errorf("%s: this stage's base has no shell or toolchain this test can run", in)
	}
	argv, _ := command(in.args)
	for i := range argv {
		argv[i] = s.redirect(argv[i])
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = s.path(s.config.workdir)
	cmd.Env = s.config.env
	if p := envValue(s.config.env, "PATH"); p != "" && !strings.Contains(argv[0], "/") {
		if found, err := lookPathIn(argv[0], p); err == nil {
			cmd.Path = found
		}
	}
	start := time.Now()
	out, err := cmd.CombinedOutput()
	logf("%s (%s): %s\n%s", in, time.Since(start).Round(time.Millisecond), strings.Join(argv, " "), out)
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", in, err, out)
	}
	return nil
}

// redirect rewrites, in one word or shell command line, each of the stage's own absolute
// paths that stands as a path (at the start, or after a blank, '=' or a quote).
func (s *builtStage) redirect(text string) string {
	for _, p := range s.redirected {
		if p == "/" {
			continue
		}
		re := regexp.MustCompile(`(^|[\s='"])` + regexp.QuoteMeta(p) + `(/|[\s'"]|$)`)
		text = re.ReplaceAllString(text, "${1}"+strings.ReplaceAll(s.path(p), "$", "$$")+"${2}")
	}
	return text
}

// lookPathIn finds an executable file named name in the directories of path.
func lookPathIn(name, path string) (string, error) {
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found in %s", name, path)
}

func (s *builtStage) healthcheck(in instruction) error {
	h := healthcheck{interval: 30 * time.Second, timeout: 30 * time.Second, retries: 3}
	if strings.EqualFold(in.args, "NONE") {
		s.config.health = healthcheck{}
		return nil
	}
	rest, ok := strings.CutPrefix(in.args, "CMD ")
	if !ok {
		return fmt.Errorf("%s: want CMD or NONE", in)
	}
	h.cmd, _ = command(strings.TrimSpace(rest))
	for name, value := range in.flags {
		var err error
		switch name {
		case "interval":
			h.interval, err = time.ParseDuration(value)
		case "timeout":
			h.timeout, err = time.ParseDuration(value)
		case "retries":
			h.retries, err = strconv.Atoi(value)
		default: // start-period, start-interval: when checks begin, nothing the test checks
			_, err = time.ParseDuration(value)
		}
		if err != nil {
			return fmt.Errorf("%s: --%s=%s: %w", in, name, value, err)
		}
	}
	s.config.health = h
	return nil
}

// parseSignal reads a STOPSIGNAL: SIGTERM, TERM or a number.
func parseSignal(s string) (unix.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		return unix.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q", s)
}
