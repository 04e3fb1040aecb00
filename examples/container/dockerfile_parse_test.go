package container

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/corral-pm/corral/internal/ecosystem"
)

// TestParseDockerfile: continuation lines (with comments between them), options, both
// command forms, ENV's quoting, and the refusals.
func TestParseDockerfile(t *testing.T) {
	dir := t.TempDir()
	write := func(text string) string {
		p := filepath.Join(dir, "Dockerfile")
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ins, err := parseDockerfile(write("# syntax=docker/dockerfile:1\nfrom golang:1.26 AS build\n" +
		"RUN a && \\\n  # a comment inside\n    b\n" +
		"COPY --from=build /out/x /y\n" +
		"ENV A=1 B=\"two words\" C='x  y' D=e\\ f\n" +
		"HEALTHCHECK --interval=10s --timeout=3s CMD [\"/x\", \"ping\"]\n" +
		"ENTRYPOINT /x run\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ins) != 6 || ins[0].cmd != "FROM" || ins[1].args != "a && b" || ins[1].line != 3 ||
		ins[2].flags["from"] != "build" || ins[2].args != "/out/x /y" || ins[4].flags["timeout"] != "3s" {
		t.Fatalf("parsed: %+v", ins)
	}
	if _, err := parseDockerfile(write("FROM x\nENV A=$B\n")); err == nil {
		t.Error("ENV with a $ substitution: no error")
	}
	if _, err := parseDockerfile(write("FROM x\nADD a b\n")); err == nil {
		t.Error("ADD: no error")
	}
	if _, err := parseDockerfile(write("FROM x\nCOPY --chown=1 a b\n")); err == nil {
		t.Error("COPY --chown: no error")
	}
	if _, err := parseDockerfile(write("FROM x\nRUN a \\\n")); err == nil {
		t.Error("a trailing continuation: no error")
	}
	pairs, err := envPairs(instruction{cmd: "ENV", args: `A=1 B="two words" C='x  y' D=e\ f`})
	if want := [][2]string{{"A", "1"}, {"B", "two words"}, {"C", "x  y"}, {"D", "e f"}}; err != nil || !reflect.DeepEqual(pairs, want) {
		t.Errorf("ENV pairs %q, %v; want %q", pairs, err, want)
	}
	if argv, exec := command(`["/x", "ping"]`); !exec || !reflect.DeepEqual(argv, []string{"/x", "ping"}) {
		t.Errorf("exec form: %q", argv)
	}
	if argv, exec := command("/x run"); exec || !reflect.DeepEqual(argv, []string{"/bin/sh", "-c", "/x run"}) {
		t.Errorf("shell form: %q", argv)
	}
}

// instruction is one Dockerfile instruction: its continuation lines joined, its leading
// --name=value options split off.
type instruction struct {
	cmd   string            // upper case: FROM, RUN, ...
	flags map[string]string // --from=build: "from" -> "build"
	args  string            // the rest of the instruction
	line  int               // where it starts, for messages
}

func (in instruction) String() string {
	return fmt.Sprintf("Dockerfile line %d: %s", in.line, in.cmd)
}

// supportedFlags lists, for each instruction the test knows how to carry out, the options it
// honours. An instruction or an option outside this table fails the parse: the test must never
// silently skip something the Dockerfile asks for, so it cannot drift from the file.
var supportedFlags = map[string][]string{
	"FROM":        nil,
	"WORKDIR":     nil,
	"COPY":        {"from"},
	"ENV":         nil,
	"RUN":         nil,
	"USER":        nil,
	"EXPOSE":      nil,
	"HEALTHCHECK": {"interval", "timeout", "start-period", "start-interval", "retries"},
	"STOPSIGNAL":  nil,
	"ENTRYPOINT":  nil,
}

// substituted are the instructions whose arguments Docker expands $VARIABLES in. The test's
// runner does not expand them: a '$' there fails the parse instead of being taken literally.
var substituted = map[string]bool{"FROM": true, "WORKDIR": true, "COPY": true, "ENV": true,
	"USER": true, "EXPOSE": true, "STOPSIGNAL": true}

// parseDockerfile reads a Dockerfile as BuildKit's parser does for the subset in
// supportedFlags: comment lines (also between continuation lines) and blank lines are
// skipped, a trailing backslash continues the instruction on the next line (each line's
// leading blanks dropped), and the first word is the instruction, case-insensitively.
func parseDockerfile(path string) ([]instruction, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the Dockerfile: %w", err)
	}
	escapeDirective := regexp.MustCompile(`(?i)^#\s*escape\s*=`)
	var out []instruction
	var cur strings.Builder
	start := 0
	for i, raw := range strings.Split(string(b), "\n") {
		line := strings.TrimLeft(strings.TrimSuffix(raw, "\r"), " \t")
		if cur.Len() == 0 && escapeDirective.MatchString(line) {
			return nil, fmt.Errorf("line %d: the escape parser directive is not supported by this test", i+1)
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if body, ok := strings.CutSuffix(strings.TrimRight(line, " \t"), "\\"); ok {
			cur.WriteString(body)
			continue
		}
		cur.WriteString(line)
		in, err := splitInstruction(cur.String(), start)
		if err != nil {
			return nil, err
		}
		out = append(out, in)
		cur.Reset()
	}
	if cur.Len() > 0 {
		return nil, fmt.Errorf("line %d: the last instruction ends in a continuation", start)
	}
	return out, nil
}

// splitInstruction checks one joined instruction against supportedFlags and splits off its
// options.
func splitInstruction(text string, line int) (instruction, error) {
	word, rest, _ := strings.Cut(strings.TrimSpace(text), " ")
	in := instruction{cmd: strings.ToUpper(word), flags: map[string]string{}, line: line}
	allowed, known := supportedFlags[in.cmd]
	if !known {
		return in, fmt.Errorf("line %d: instruction %s is not one this test knows how to carry out: teach it to dockerfile_parse_test.go (supportedFlags) and image_build_test.go (apply)", line, word)
	}
	rest = strings.TrimSpace(rest)
	for strings.HasPrefix(rest, "--") {
		opt, after, _ := strings.Cut(rest, " ")
		name, value, ok := strings.Cut(strings.TrimPrefix(opt, "--"), "=")
		if !ok || !slices.Contains(allowed, name) {
			return in, fmt.Errorf("line %d: %s option %s is not one this test honours", line, in.cmd, opt)
		}
		in.flags[name] = value
		rest = strings.TrimSpace(after)
	}
	in.args = rest
	if substituted[in.cmd] && strings.Contains(rest, "$") {
		return in, fmt.Errorf("line %d: %s %s: variable substitution is not supported by this test", line, in.cmd, rest)
	}
	return in, nil
}

// command is the argv of RUN, ENTRYPOINT or HEALTHCHECK CMD: the exec form (a JSON array of
// strings) as written, else the shell form, which Docker runs as /bin/sh -c.
func command(args string) (argv []string, execForm bool) {
	if strings.HasPrefix(args, "[") {
		if err := json.Unmarshal([]byte(args), &argv); err == nil && len(argv) > 0 {
			return argv, true
		}
	}
	return []string{"/bin/sh", "-c", args}, false
}

// envPairs parses ENV's arguments: KEY=VALUE pairs separated by blanks, with values quoted
// ("..." or '...') or backslash-escaped as Docker allows, split as a POSIX shell splits words
// (ecosystem.SplitShellWords; a '$', which would be expanded, never gets here), or the legacy
// one-pair form ENV KEY value.
func envPairs(in instruction) ([][2]string, error) {
	words, err := ecosystem.SplitShellWords(in.args)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in, err)
	}
	if len(words) == 0 {
		return nil, fmt.Errorf("%s: no variable", in)
	}
	if !strings.Contains(words[0], "=") {
		key, value, _ := strings.Cut(in.args, " ")
		return [][2]string{{key, strings.TrimSpace(value)}}, nil
	}
	var out [][2]string
	for _, w := range words {
		k, v, ok := strings.Cut(w, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%s: %q is not KEY=VALUE", in, w)
		}
		out = append(out, [2]string{k, v})
	}
	return out, nil
}

// stage is one FROM and the instructions up to the next.
type stage struct {
	name string // AS name, or the stage's index
	base string // the image it starts from
	body []instruction
	from instruction
}

// splitStages groups the instructions by stage.
func splitStages(ins []instruction) ([]stage, error) {
	var out []stage
	for _, in := range ins {
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			if len(f) == 0 {
				return nil, fmt.Errorf("%s: no image", in)
			}
			st := stage{base: f[0], name: fmt.Sprint(len(out)), from: in}
			switch {
			case len(f) == 3 && strings.EqualFold(f[1], "AS"):
				st.name = f[2]
			case len(f) != 1:
				return nil, fmt.Errorf("%s %s: want an image and an optional AS name", in, in.args)
			}
			out = append(out, st)
			continue
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("%s comes before any FROM", in)
		}
		out[len(out)-1].body = append(out[len(out)-1].body, in)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no FROM")
	}
	return out, nil
}
