package ecosystem

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/robfig/cron/v3"

	"github.com/corral-pm/corral/internal/spec"
)

// Parsers for attributes whose values have rules of their own. Each takes a plain value and
// returns the parsed form or an error that says what is expected; the caller prefixes the
// attribute name.

func asNonEmptyString(v any) (string, error) {
	s, err := asString(v)
	if err != nil {
		return "", err
	}
	if strings.TrimSpace(s) == "" {
		return "", fmt.Errorf("must not be empty")
	}
	return strings.TrimSpace(s), nil
}

// asVarName reads an environment variable name (instance_var).
func asVarName(v any) (string, error) {
	s, err := asNonEmptyString(v)
	if err != nil {
		return "", err
	}
	if strings.ContainsAny(s, "=\x00 ") {
		return "", fmt.Errorf("%q is not a valid environment variable name", s)
	}
	return s, nil
}

// asExecMode accepts PM2's four spellings.
func asExecMode(v any) (string, error) {
	s, err := asString(v)
	if err != nil {
		return "", err
	}
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "fork", "fork_mode":
		return spec.ModeFork, nil
	case "cluster", "cluster_mode":
		return spec.ModeCluster, nil
	}
	return "", fmt.Errorf("%q is not an exec mode: use \"fork\" or \"cluster\"", s)
}

// asInstances reads instances as PM2 does: a number, a numeric string, or "max" (0, one per
// CPU); a negative number means all CPUs but that many.
func asInstances(v any) (int, error) {
	const hint = `use a number, "max" (one per CPU) or a negative number (CPUs minus that many)`
	var n int64
	switch x := v.(type) {
	case string:
		s := strings.ToLower(strings.TrimSpace(x))
		if s == "max" {
			return 0, nil
		}
		parsed, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			return 0, fmt.Errorf("%q is not a number of instances: %s", x, hint)
		}
		n = parsed
	case int64, float64:
		whole, ok := wholeNumber(x)
		if !ok {
			return 0, fmt.Errorf("%s is not a number of instances: %s", formatNumber(x), hint)
		}
		n = whole
	default:
		return 0, typeErr(`a number or "max"`, v)
	}
	if n > 1<<16 || n < -(1<<16) {
		return 0, fmt.Errorf("%d instances is out of range", n)
	}
	return int(n), nil
}

func asPort(v any) (string, error) {
	n, err := asInt(v)
	if err != nil {
		return "", err
	}
	if n < 0 || n > 65535 {
		return "", fmt.Errorf("%d is not a port number (0-65535)", n)
	}
	return strconv.FormatInt(n, 10), nil
}

// envFilter is filter_env: drop the whole inherited environment, or the variables whose names
// contain any of the substrings.
type envFilter struct {
	all        bool
	substrings []string
}

func asEnvFilter(v any) (envFilter, error) {
	if b, ok := v.(bool); ok {
		return envFilter{all: b}, nil
	}
	list, err := asStringList(v)
	if err != nil {
		return envFilter{}, fmt.Errorf("expected true, false, a string or an array of strings, got %s", typeName(v))
	}
	return envFilter{substrings: list}, nil
}

func (f envFilter) apply(env map[string]string) map[string]string {
	out := map[string]string{}
	if f.all {
		return out
	}
	for k, v := range env {
		drop := false
		for _, s := range f.substrings {
			drop = drop || (s != "" && strings.Contains(k, s))
		}
		if !drop {
			out[k] = v
		}
	}
	return out
}

// asExitCodes reads stop_exit_codes: a number, or an array of them (numeric strings too).
func asExitCodes(v any) ([]int, error) {
	var items []any
	switch x := v.(type) {
	case []any:
		items = x
	case string:
		for _, f := range strings.FieldsFunc(x, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
			items = append(items, f)
		}
	default:
		items = []any{x}
	}
	codes := make([]int, 0, len(items))
	for _, item := range items {
		n, err := asInt(item)
		if err != nil {
			return nil, fmt.Errorf("expected an exit code (0-255) or an array of them: %v", err)
		}
		if n < 0 || n > 255 {
			return nil, fmt.Errorf("%d is not an exit code (0-255)", n)
		}
		codes = append(codes, int(n))
	}
	return codes, nil
}

// cronParser accepts what PM2's croner accepts in practice: five fields, six with seconds
// first, and descriptors such as @hourly.
var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// asCron reads cron_restart; "0", 0 and false switch it off (PM2 uses 0 to clear it).
func asCron(v any) (string, error) {
	switch x := v.(type) {
	case bool:
		if !x {
			return "", nil
		}
		return "", fmt.Errorf(`true is not a cron expression: use a string like "0 3 * * *", or false to disable`)
	case int64, float64:
		if n, ok := wholeNumber(x); ok && n == 0 {
			return "", nil
		}
		return "", fmt.Errorf(`%s is not a cron expression: use a string like "0 3 * * *", or 0 to disable`, formatNumber(x))
	case string:
		s := strings.TrimSpace(x)
		if s == "" || s == "0" {
			return "", nil
		}
		if _, err := cronParser.Parse(s); err != nil {
			return "", fmt.Errorf(`%q is not a cron expression (%v): use 5 fields like "0 3 * * *", 6 with seconds first, or a descriptor like "@hourly"`, x, err)
		}
		return s, nil
	}
	return "", typeErr("a cron expression string", v)
}

// watchSpec is watch: the app's cwd (true), listed paths, or nothing.
type watchSpec struct {
	cwd   bool
	paths []string
}

func asWatch(v any) (watchSpec, error) {
	if b, ok := v.(bool); ok {
		return watchSpec{cwd: b}, nil
	}
	list, err := asStringList(v)
	if err != nil {
		return watchSpec{}, fmt.Errorf("expected true, false, a path or an array of paths, got %s", typeName(v))
	}
	var paths []string
	for _, p := range list {
		if strings.TrimSpace(p) != "" {
			paths = append(paths, p)
		}
	}
	return watchSpec{paths: paths}, nil
}

// logFileSpec is log_file: true for the default path, a path, or off.
type logFileSpec struct {
	byDefault bool
	path      string
}

func asLogFile(v any) (logFileSpec, error) {
	switch x := v.(type) {
	case bool:
		return logFileSpec{byDefault: x}, nil
	case string:
		return logFileSpec{path: x}, nil
	}
	return logFileSpec{}, typeErr(`true, false or a path`, v)
}

// signals are the POSIX signal names a kill_signal may use.
var signals = map[string]bool{
	"HUP": true, "INT": true, "QUIT": true, "ILL": true, "TRAP": true, "ABRT": true, "BUS": true,
	"FPE": true, "KILL": true, "USR1": true, "SEGV": true, "USR2": true, "PIPE": true, "ALRM": true,
	"TERM": true, "CHLD": true, "CONT": true, "STOP": true, "TSTP": true, "TTIN": true, "TTOU": true,
	"URG": true, "XCPU": true, "XFSZ": true, "VTALRM": true, "PROF": true, "WINCH": true, "IO": true,
	"SYS": true,
}

// asSignal accepts "SIGTERM", "TERM" or "sigterm" and returns "SIGTERM".
func asSignal(v any) (string, error) {
	s, err := asString(v)
	if err != nil {
		return "", err
	}
	name := strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(s)), "SIG")
	if !signals[name] {
		return "", fmt.Errorf("%q is not a signal: use a name like \"SIGINT\", \"SIGTERM\" or \"SIGQUIT\"", s)
	}
	return "SIG" + name, nil
}

// asSockets reads `listen`: one address or a list ("5000", "127.0.0.1:5000", "unix:/path",
// "name=:8080"); numbers are ports.
func asSockets(v any) ([]spec.Socket, error) {
	var items []any
	switch x := v.(type) {
	case []any:
		items = x
	default:
		items = []any{x}
	}
	out := make([]spec.Socket, 0, len(items))
	names := map[string]bool{}
	for _, it := range items {
		var text string
		switch y := it.(type) {
		case string:
			text = y
		case float64, int, int64:
			text = fmt.Sprint(y)
		default:
			return nil, fmt.Errorf("expected addresses like \"5000\", \"127.0.0.1:5000\" or \"unix:/path\", got %s", typeName(it))
		}
		s, err := spec.ParseSocket(text)
		if err != nil {
			return nil, err
		}
		if names[s.String()] {
			return nil, fmt.Errorf("%q is listed twice", text)
		}
		names[s.String()] = true
		out = append(out, s)
	}
	return out, nil
}

func asSchedPolicy(v any) (string, error) {
	s, err := asString(v)
	if err != nil {
		return "", err
	}
	switch p := strings.ToLower(strings.TrimSpace(s)); p {
	case spec.PolicyRoundRobin, spec.PolicyShared, spec.PolicyReuseport:
		return p, nil
	}
	return "", fmt.Errorf("%q is not a policy: use %q (round-robin hand-off), %q (one listening socket per worker) or %q (shared listening socket)",
		s, spec.PolicyRoundRobin, spec.PolicyReuseport, spec.PolicyShared)
}

// asLogType reads log_type: "json" writes each log line as a JSON object, as PM2 does; "raw"
// (or "") plain lines.
func asLogType(v any) (string, error) {
	s, err := asString(v)
	if err != nil {
		return "", err
	}
	switch s {
	case "json":
		return s, nil
	case "", "raw":
		return "", nil
	}
	return "", fmt.Errorf(`%q is not a log type: use "json" (a JSON object per line) or leave it out`, s)
}

// asBuild reads build: one shell command line, run with `sh -c` in the app's cwd before its
// processes start. A list is refused rather than joined: whether its items should run with
// "&&" or ";" between them is the user's call ("a && b" says it).
func asBuild(v any) (string, error) {
	const hint = `use one shell command line such as "go build -o bin/app ." or "npm run build" (join steps with &&), or leave build out`
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("expected a string, got %s: %s", typeName(v), hint)
	}
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return "", fmt.Errorf("is empty: %s", hint)
	case strings.ContainsRune(s, 0):
		return "", fmt.Errorf("contains a NUL byte: %s", hint)
	}
	return s, nil
}
