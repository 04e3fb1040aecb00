// Package spec defines an app as corral runs it: the fully resolved form of one entry of an
// ecosystem file (or of `corral start` flags). The CLI resolves files, flags and its own
// environment into App values and sends them to the daemon; the daemon never reads ecosystem
// files itself, so what is saved and resurrected is exactly what ran.
//
// JSON field names are PM2's attribute names wherever PM2 has one, so the saved list and
// `jlist` read naturally to PM2 users.
package spec

import (
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Exec modes.
const (
	ModeFork    = "fork"
	ModeCluster = "cluster"
)

// Cluster connection policies (issue 3): round-robin hand-off by the daemon, or the listening
// socket shared with every worker.
const (
	PolicyRoundRobin = "rr"
	PolicyShared     = "shared"
	// PolicyReuseport: one SO_REUSEPORT listening socket per worker, all held by the daemon
	// (issue 12; docs/node-cluster-protocol.md §6.6).
	PolicyReuseport = "reuseport"
)

// Defaults, PM2's unless a comment says otherwise.
const (
	DefaultNamespace     = "default"
	DefaultInstanceVar   = "NODE_APP_INSTANCE"
	DefaultMaxRestarts   = 16
	DefaultMinUptime     = Millis(1000)
	DefaultKillTimeout   = Millis(1600)
	DefaultListenTimeout = Millis(3000)
	DefaultKillSignal    = "SIGINT"
	// DefaultLogMaxSize caps each log file; PM2 has no cap at all (its most common complaint
	// about logs). The value matches pm2-logrotate's default.
	DefaultLogMaxSize = 10 << 20
	// DefaultLogRetain is how many rotated files are kept beside the live one.
	DefaultLogRetain = 5
	// MaxBackoffDelay caps exp_backoff_restart_delay, as PM2 does.
	MaxBackoffDelay = 15 * time.Second
	// BackoffResetAfter: an app that stays up this long has its backoff delay reset.
	BackoffResetAfter = 30 * time.Second
	// DefaultBuildTimeout bounds an app's build (corral's own attribute, no PM2 default): long
	// enough for a first Go or TypeScript build on a cold cache on a small, busy machine, short
	// enough that a build stuck on a prompt or a lock does not hold a start for ever.
	DefaultBuildTimeout = Millis(15 * 60 * 1000)
)

// Millis is a duration in whole milliseconds, PM2's unit for every time attribute.
type Millis int64

// D converts to a time.Duration.
func (m Millis) D() time.Duration { return time.Duration(m) * time.Millisecond }

// App is one app, fully resolved: paths absolute, units parsed, defaults applied.
type App struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`

	// Script is the program to run: an absolute path, a program found in PATH, or a shell
	// command line (then Shell is true and it runs under `sh -c`).
	Script          string   `json:"script"`
	Shell           bool     `json:"shell,omitempty"`
	Args            []string `json:"args,omitempty"`
	Interpreter     string   `json:"exec_interpreter"` // "none" when Script is run directly
	InterpreterArgs []string `json:"node_args,omitempty"`
	Cwd             string   `json:"cwd"`
	// Build is a shell command (`sh -c`) the daemon runs once, in Cwd with the app's
	// environment, before it starts the app's processes on start, restart and reload (never
	// before a crash restart, which must be quick and must not rebuild what runs): "go build -o
	// bin/app .", "npm run build". Its output goes to the app's logs; a failed build starts
	// nothing, and leaves a reloaded app's old processes serving. corral's own attribute: PM2
	// ignores it. "": no build.
	Build string `json:"build,omitempty"`
	// BuildTimeout bounds Build; 0 is DefaultBuildTimeout (specs saved before it existed).
	BuildTimeout Millis `json:"build_timeout,omitempty"`

	ExecMode    string `json:"exec_mode"`
	Instances   int    `json:"instances"` // as declared: N > 0, 0 = max, -N = max - N
	InstanceVar string `json:"instance_var"`
	// IncrementVar names a variable of the environment that each process gets plus its
	// instance number (PM2's increment_var: PORT 3000 gives 3000, 3001...).
	IncrementVar string `json:"increment_var,omitempty"`
	// SchedPolicy is the cluster connection policy: PolicyRoundRobin (default) or PolicyShared.
	SchedPolicy string `json:"sched_policy,omitempty"`
	// Listen are sockets the daemon owns for the app and passes to its processes (see Socket).
	Listen []Socket `json:"listen,omitempty"`

	// Env is the app's declared environment (env, then env_<name> with --env).
	Env map[string]string `json:"env,omitempty"`
	// BaseEnv is the environment of the CLI that started (or last --update-env'd) the app.
	// A process gets BaseEnv overlaid with Env. Kept apart so --update-env can replace the
	// inherited part (dropping variables unset since) without touching what the file declares.
	BaseEnv map[string]string `json:"base_env,omitempty"`
	// EnvName is the --env name the app was started with, if any.
	EnvName string `json:"env_name,omitempty"`

	Autorestart            bool   `json:"autorestart"`
	Autostart              bool   `json:"autostart"`
	MaxRestarts            int    `json:"max_restarts"`
	MinUptime              Millis `json:"min_uptime"`
	RestartDelay           Millis `json:"restart_delay"`
	ExpBackoffRestartDelay Millis `json:"exp_backoff_restart_delay"`
	StopExitCodes          []int  `json:"stop_exit_codes,omitempty"`
	MaxMemoryRestart       int64  `json:"max_memory_restart,omitempty"` // bytes, whole process tree
	// MaxMemoryRestartPercent, when set ('80%'), is max_memory_restart as a share of the
	// container's memory limit, read when memory is checked (docs/containers.md §6).
	MaxMemoryRestartPercent float64 `json:"max_memory_restart_percent,omitempty"`
	CronRestart             string  `json:"cron_restart,omitempty"`

	Watch       []string `json:"watch,omitempty"` // absolute paths; empty = not watching
	IgnoreWatch []string `json:"ignore_watch,omitempty"`
	WatchDelay  Millis   `json:"watch_delay,omitempty"`

	KillTimeout         Millis `json:"kill_timeout"`
	KillSignal          string `json:"kill_signal"`
	ShutdownWithMessage bool   `json:"shutdown_with_message,omitempty"`
	WaitReady           bool   `json:"wait_ready,omitempty"`
	ListenTimeout       Millis `json:"listen_timeout"`
	// HealthURL, when set, is asked by /readyz and `corral ping --ready` (a path on the
	// app's port, or an http:// URL), of each worker where one can be reached alone; see
	// docs/containers.md §5.
	HealthURL string `json:"health_url,omitempty"`
	// NoPMX is PM2's pmx: false (or automation: false), which turns off PM2's injected metrics
	// module: here, corral's request metrics (docs/node-cluster-protocol.md §10.1). Fork-mode
	// Node processes then run without corral's preload; cluster workers keep it for draining,
	// with the counting off. Negative, so that an app saved before it existed keeps metrics on.
	NoPMX bool `json:"no_pmx,omitempty"`

	// Log paths are absolute, or "/dev/null" to discard. Merge logs: one file for every
	// instance; otherwise each file name gets a -<id> suffix.
	OutFile       string `json:"out_file"`
	ErrorFile     string `json:"error_file"`
	LogFile       string `json:"log_file,omitempty"` // combined out+err, off when empty
	PidFile       string `json:"pid_file,omitempty"`
	MergeLogs     bool   `json:"merge_logs"`
	LogDateFormat string `json:"log_date_format,omitempty"` // dayjs-style, as PM2
	// LogType "json" writes each line as PM2's JSON object (message, timestamp, type,
	// process_id, app_name); "" plain lines.
	LogType    string `json:"log_type,omitempty"`
	LogMaxSize int64  `json:"log_max_size"`
	LogRetain  int    `json:"log_retain"`

	// Alerts are the app's alert rules (package alerts); nil means the defaults.
	Alerts *Alerts `json:"alerts,omitempty"`

	// Source is the ecosystem file the app came from, if any.
	Source string `json:"source,omitempty"`

	// Verify configures `corral verify` for this app (corral's own attribute; nil: defaults).
	Verify *Verify `json:"verify,omitempty"`
}

// Defaults returns an App with every default set; loaders start from it.
func Defaults() App {
	return App{
		Namespace:     DefaultNamespace,
		ExecMode:      ModeFork,
		Instances:     1,
		InstanceVar:   DefaultInstanceVar,
		Autorestart:   true,
		Autostart:     true,
		MaxRestarts:   DefaultMaxRestarts,
		MinUptime:     DefaultMinUptime,
		KillTimeout:   DefaultKillTimeout,
		KillSignal:    DefaultKillSignal,
		ListenTimeout: DefaultListenTimeout,
		LogMaxSize:    DefaultLogMaxSize,
		LogRetain:     DefaultLogRetain,
	}
}

// BuildTimeoutD is how long the app's build may run.
func (a *App) BuildTimeoutD() time.Duration {
	if a.BuildTimeout <= 0 {
		return DefaultBuildTimeout.D()
	}
	return a.BuildTimeout.D()
}

// IsNode reports whether the app runs under Node.js, which decides whether it gets Node's IPC
// channel and whether it can be a Node cluster worker.
func (a *App) IsNode() bool {
	base := filepath.Base(a.Interpreter)
	return base == "node" || base == "nodejs" || base == "bun"
}

// Environ returns the process environment: BaseEnv overlaid with Env, sorted by key so spawns
// are reproducible.
func (a *App) Environ() map[string]string {
	out := make(map[string]string, len(a.BaseEnv)+len(a.Env))
	for k, v := range a.BaseEnv {
		out[k] = v
	}
	for k, v := range a.Env {
		out[k] = v
	}
	return out
}

// EnvList renders an environment map as sorted KEY=value strings.
func EnvList(env map[string]string) []string {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k+"="+env[k])
	}
	return out
}

// EnvMap parses KEY=value strings (os.Environ's form).
func EnvMap(list []string) map[string]string {
	out := make(map[string]string, len(list))
	for _, kv := range list {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			out[k] = v
		}
	}
	return out
}

// Argv is the command line a process is started with.
func (a *App) Argv() []string {
	if a.Shell {
		return []string{"/bin/sh", "-c", a.Script}
	}
	var argv []string
	if a.Interpreter != "" && a.Interpreter != "none" {
		argv = append(argv, a.Interpreter)
		argv = append(argv, a.InterpreterArgs...)
	}
	argv = append(argv, a.Script)
	return append(argv, a.Args...)
}

// Clone returns a deep copy, so a stored spec never shares maps or slices with a caller.
func (a App) Clone() App {
	a.Args = cloneSlice(a.Args)
	a.InterpreterArgs = cloneSlice(a.InterpreterArgs)
	a.StopExitCodes = cloneSlice(a.StopExitCodes)
	a.Watch = cloneSlice(a.Watch)
	a.IgnoreWatch = cloneSlice(a.IgnoreWatch)
	a.Listen = cloneSlice(a.Listen)
	a.Env = cloneMap(a.Env)
	a.BaseEnv = cloneMap(a.BaseEnv)
	a.Alerts = a.Alerts.Clone()
	a.Verify = a.Verify.Clone()
	return a
}

func cloneSlice[T any](s []T) []T {
	if s == nil {
		return nil
	}
	return append([]T(nil), s...)
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Validate checks the invariants every App must satisfy before the daemon accepts it. Loaders
// give friendlier, file-specific errors first; this is the daemon's last line of defence.
func (a *App) Validate() error {
	switch {
	case a.Name == "":
		return fmt.Errorf("app has no name")
	case NameProblem(a.Name) != "":
		return fmt.Errorf("app name %s", NameProblem(a.Name))
	case a.Namespace != "" && NamespaceProblem(a.Namespace) != "":
		return fmt.Errorf("app %q: namespace %s", a.Name, NamespaceProblem(a.Namespace))
	case a.Script == "":
		return fmt.Errorf("app %q: no script", a.Name)
	case a.ExecMode != ModeFork && a.ExecMode != ModeCluster:
		return fmt.Errorf("app %q: exec_mode %q is neither %q nor %q", a.Name, a.ExecMode, ModeFork, ModeCluster)
	case !filepath.IsAbs(a.Cwd):
		return fmt.Errorf("app %q: cwd %q is not absolute", a.Name, a.Cwd)
	case a.KillTimeout < 0 || a.ListenTimeout < 0 || a.MinUptime < 0 || a.RestartDelay < 0 || a.BuildTimeout < 0:
		return fmt.Errorf("app %q: negative durations are not allowed", a.Name)
	}
	switch a.SchedPolicy {
	case "", PolicyRoundRobin, PolicyShared, PolicyReuseport:
	default:
		return fmt.Errorf("app %q: sched_policy %q is not %q, %q or %q", a.Name, a.SchedPolicy, PolicyRoundRobin, PolicyShared, PolicyReuseport)
	}
	return nil
}

// MaxNameLength is the longest app name or namespace, in bytes. An app's files are named after
// it, the longest being a rotated error log, "<name>-error-<id>.log.<n>": with 128 bytes it
// stays far below the 255-byte limit on a file name whatever the id and n. A longer name
// would make its log files impossible to create, and its output would be lost.
const MaxNameLength = 128

// NameProblem explains why name cannot be an app name, or returns "". Names are targets on
// the command line, next to ids, namespaces and "all", so they must not be mistaken for those.
// They are also printed to terminals and written to corral.log and into file names, so they
// must be short, printable text (see TextProblem).
func NameProblem(name string) string {
	if problem := TextProblem(name); problem != "" {
		return problem
	}
	switch {
	case name == "." || name == "..":
		return fmt.Sprintf("%q cannot be used as a name", name)
	case strings.Contains(name, "/"):
		return fmt.Sprintf("%q must not contain '/'", name)
	case isAllDigits(name):
		return fmt.Sprintf("%q is made only of digits and would be mistaken for a process id", name)
	case name == "all":
		return `"all" is reserved (it targets every app)`
	}
	return ""
}

// NamespaceProblem explains why ns cannot be a namespace, or returns "". A namespace is a
// target like a name, printed like a name, so it follows the same text rule; it may be made
// of digits (a name or namespace that equals an id wins over the id).
func NamespaceProblem(ns string) string {
	if ns == "" {
		return "is empty"
	}
	return TextProblem(ns)
}

// TextProblem explains why s is not acceptable as a name or namespace, or returns "". The
// rule: at most MaxNameLength bytes of valid UTF-8, every character printable (letters,
// marks, digits, punctuation, symbols, and the ASCII space), and no space at either end.
//
// Control characters are refused because they act on the terminal that prints the name
// (ESC, BEL) or forge lines in logs (newline, carriage return); other invisible characters
// (zero-width and bidirectional marks, non-breaking and other Unicode spaces) because two
// names that look the same must not be different apps. The ASCII space is kept, between
// words, because PM2 allows "my app" and files moved from PM2 must still load; at the ends
// it would be invisible, so "web " could not be told from "web".
func TextProblem(s string) string {
	if len(s) > MaxNameLength {
		return fmt.Sprintf("%s is %d bytes long: the limit is %d", QuoteName(s), len(s), MaxNameLength)
	}
	if !utf8.ValidString(s) {
		return fmt.Sprintf("%s is not valid UTF-8", QuoteName(s))
	}
	for _, r := range s {
		if unicode.IsPrint(r) {
			continue
		}
		kind := "an invisible character"
		switch {
		case unicode.IsControl(r):
			kind = "a control character"
		case unicode.IsSpace(r):
			kind = "a whitespace character other than the space"
		}
		return fmt.Sprintf("%s contains %s (U+%04X): only printable characters are allowed", QuoteName(s), kind, r)
	}
	if strings.HasPrefix(s, " ") || strings.HasSuffix(s, " ") {
		return fmt.Sprintf("%s starts or ends with a space", QuoteName(s))
	}
	return ""
}

// quoteNameMax is how many bytes of a name QuoteName shows.
const quoteNameMax = 40

// QuoteName renders a name for a message, whatever it holds: quoted with Go's escapes (so a
// control character shows as \x1b instead of acting on the terminal), and cut after
// quoteNameMax bytes with its length given (a 5,000-byte name would drown the message).
func QuoteName(s string) string {
	if len(s) <= quoteNameMax {
		return strconv.Quote(s)
	}
	cut := quoteNameMax
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s... (%d bytes)", strconv.Quote(s[:cut]), len(s))
}

func isAllDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// NullPath is how a log or pid file is switched off ("NULL" in an ecosystem file).
const NullPath = "/dev/null"

// ProcessFilePath returns the file one process uses for a per-app path: the path itself when
// merged (or switched off), else the path with "-<id>" before its extension, as PM2 names
// "web-out.log" -> "web-out-3.log".
func ProcessFilePath(path string, id int, merged bool) string {
	if merged || path == "" || path == NullPath {
		return path
	}
	ext := filepath.Ext(path)
	return fmt.Sprintf("%s-%d%s", strings.TrimSuffix(path, ext), id, ext)
}

// SafeFileName turns an app name into something usable in a file name, as PM2 does: every
// character outside [A-Za-z0-9._-] becomes '-'.
func SafeFileName(name string) string {
	b := []byte(name)
	for i, c := range b {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			b[i] = '-'
		}
	}
	return string(b)
}
