package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/corral-pm/corral/internal/ecosystem"
	"github.com/corral-pm/corral/internal/spec"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// This file holds what lets a PM2 runbook run unchanged: PM2's argument forms that a flag
// parser does not take as they are, the attribute flags of restart and reload, scripts as
// targets, ecosystem files from stdin, and PM2's extra verbs.

// optionalValueFlags take an optional value (`-l` alone is the default combined log). PM2's
// parser also takes the value as the next word (`start echo.js -l combined.log`); pflag only
// takes `-l=x`. rewriteArgs joins such a word to its flag.
var optionalValueFlags = map[string]string{"-l": "--log", "--log": "--log"}

// valueWordCommands are the commands whose -l/--log is the log attribute.
var valueWordCommands = []string{"start", "restart", "reload", "startOrRestart", "startOrReload", "startOrGracefulReload"}

// rewriteArgs turns `-l <file>` into `--log=<file>` in the commands that have the flag. The
// next word is the flag's value when it is not a flag itself and is not an existing file that
// could be the script (`start -l app.js` still starts app.js with the default log), unless a
// script was given before the flag or the word is a .log file.
func rewriteArgs(args []string) []string {
	if len(args) == 0 || !slices.Contains(valueWordCommands, args[0]) {
		return args
	}
	out := []string{args[0]}
	positional := false
	for i := 1; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		if a == "--watch" && i+1 < len(args) && isDir(args[i+1]) {
			// `--watch src`: a directory is never a script, so it is the paths to watch.
			out = append(out, "--watch="+args[i+1])
			i++
			continue
		}
		long, ok := optionalValueFlags[a]
		if ok && i+1 < len(args) {
			next := args[i+1]
			if next != "" && !strings.HasPrefix(next, "-") && (positional || strings.HasSuffix(next, ".log") || !isFile(next)) {
				out = append(out, long+"="+next)
				i++
				continue
			}
		}
		if !strings.HasPrefix(a, "-") {
			positional = true
		}
		out = append(out, a)
	}
	return out
}

// scriptTargets turns scripts among targets into absolute paths: the daemon matches an
// absolute path against its apps' scripts (PM2 takes a script as a target: `restart echo.js`).
// A name, id, namespace or ecosystem file stays as it is.
func scriptTargets(targets []string) []string {
	out := make([]string, len(targets))
	for i, t := range targets {
		out[i] = t
		if t != "all" && !ecosystem.IsConfigFile(t) && isFile(t) {
			if abs, err := filepath.Abs(t); err == nil {
				out[i] = abs
			}
		}
	}
	return out
}

// checkAnyApp fails when targets are just "all" and no app exists: PM2 exits 1 then, and a
// runbook's `stop all` or `restart all` on an empty host must not look like it did something.
// `delete all` stays idempotent: it is how scripts clean up.
func (c *cli) checkAnyApp(ctx context.Context, action string, targets []string) error {
	if len(targets) != 1 || targets[0] != "all" {
		return nil
	}
	procs, err := c.processes(ctx, false)
	if err != nil {
		return err
	}
	if len(procs) == 0 {
		return fmt.Errorf("%s all: no app is registered (`corral ls` is empty); start one with `corral start <script|ecosystem file>`", action)
	}
	return nil
}

// checkScriptsRunning refuses, as PM2 does ("Script already launched"), to start a script
// whose app runs already, unless -f: then corral restarts it with the command line's
// attributes (PM2 would start a second app of the same name; in corral a name is one app). A
// stopped or errored app is simply started again with them, as in PM2.
func (c *cli) checkScriptsRunning(ctx context.Context, apps []spec.App, force bool) error {
	if force {
		return nil
	}
	var scripts []spec.App
	for _, a := range apps {
		if a.Source == "" {
			scripts = append(scripts, a)
		}
	}
	if len(scripts) == 0 {
		return nil
	}
	procs, err := c.processes(ctx, false)
	if err != nil {
		return err
	}
	for _, a := range scripts {
		for _, p := range procs {
			if p.Name != a.Name {
				continue
			}
			switch p.Status {
			case "online", "launching", "waiting restart":
				return fmt.Errorf("%s is already running as %s (id %d): `corral restart %s` restarts it; -f restarts it with this command line's attributes; --name <other> starts another copy",
					filepath.Base(a.Script), a.Name, p.ID, a.Name)
			}
		}
	}
	return nil
}

// respec gives the apps that targets select the attributes set on the command line
// (`restart web --watch`, `start web --node-args=--harmony`), and returns their new specs.
// Each app's other attributes stay as they are. A rename is refused: in corral a name is the
// app's identity (its logs, its saved entry), so a new name is a new app.
func (c *cli) respec(ctx context.Context, targets []string, over map[string]any, opt ecosystem.Options, updateEnv bool) ([]spec.App, error) {
	procs, err := c.processes(ctx, true, targets...)
	if err != nil {
		return nil, err
	}
	if name, ok := over["name"]; ok && len(procs) > 0 {
		p := procs[0]
		return nil, fmt.Errorf("--name cannot rename %s: in corral a name is the app's identity (its logs, its saved entry); `corral delete %s && corral start %s --name %v` starts it under the new name",
			p.Name, p.Name, p.App.Script, name)
	}
	var out []spec.App
	for _, p := range procs {
		if slices.ContainsFunc(out, func(a spec.App) bool { return a.Name == p.Name }) {
			continue
		}
		s := p.App.Clone()
		if err := c.applyAttributes(&s, over, opt); err != nil {
			return nil, err
		}
		if updateEnv {
			s.BaseEnv = opt.Environ
		}
		out = append(out, s)
	}
	return out, nil
}

// applyAttributes sets the command line's attributes on s: the flags are resolved as for a
// new app of s's script and cwd, and the fields they set are copied.
func (c *cli) applyAttributes(s *spec.App, over map[string]any, opt ecosystem.Options) error {
	if len(over) == 0 {
		return nil
	}
	raw := map[string]any{"name": s.Name, "script": s.Script, "cwd": s.Cwd}
	if s.Interpreter != "" {
		raw["interpreter"] = s.Interpreter
	}
	o := opt
	o.Overrides = over
	o.Cwd = s.Cwd
	f, warnings, err := ecosystem.Normalize("command line", raw, o)
	for _, w := range warnings {
		c.warnf("%s", w)
	}
	if err != nil {
		return err
	}
	for attr := range over {
		if set, ok := attrCopy[attr]; ok {
			set(s, &f)
		} else {
			c.warnf("%s: %s is not changed on an app that exists (delete it and start it again to change it)", s.Name, attr)
		}
	}
	return nil
}

// attrCopy copies one attribute's fields from a resolved spec (from) to an app (to). An
// attribute missing here (filter_env: it would replace the inherited environment, which is
// --update-env's job) is not changed by restart.
var attrCopy = map[string]func(to, from *spec.App){
	"instances": func(to, from *spec.App) { to.Instances, to.ExecMode = from.Instances, from.ExecMode },
	"exec_mode": func(to, from *spec.App) { to.ExecMode = from.ExecMode },
	"cwd":       func(to, from *spec.App) { to.Cwd = from.Cwd },
	"interpreter": func(to, from *spec.App) {
		to.Interpreter = from.Interpreter
	},
	"interpreter_args":          func(to, from *spec.App) { to.InterpreterArgs = from.InterpreterArgs },
	"watch":                     func(to, from *spec.App) { to.Watch = from.Watch },
	"ignore_watch":              func(to, from *spec.App) { to.IgnoreWatch = from.IgnoreWatch },
	"watch_delay":               func(to, from *spec.App) { to.WatchDelay = from.WatchDelay },
	"max_memory_restart":        func(to, from *spec.App) { to.MaxMemoryRestart = from.MaxMemoryRestart },
	"restart_delay":             func(to, from *spec.App) { to.RestartDelay = from.RestartDelay },
	"exp_backoff_restart_delay": func(to, from *spec.App) { to.ExpBackoffRestartDelay = from.ExpBackoffRestartDelay },
	"max_restarts":              func(to, from *spec.App) { to.MaxRestarts = from.MaxRestarts },
	"min_uptime":                func(to, from *spec.App) { to.MinUptime = from.MinUptime },
	"autorestart":               func(to, from *spec.App) { to.Autorestart = from.Autorestart },
	"autostart":                 func(to, from *spec.App) { to.Autostart = from.Autostart },
	"kill_timeout":              func(to, from *spec.App) { to.KillTimeout = from.KillTimeout },
	"kill_signal":               func(to, from *spec.App) { to.KillSignal = from.KillSignal },
	"listen_timeout":            func(to, from *spec.App) { to.ListenTimeout = from.ListenTimeout },
	"wait_ready":                func(to, from *spec.App) { to.WaitReady = from.WaitReady },
	"shutdown_with_message":     func(to, from *spec.App) { to.ShutdownWithMessage = from.ShutdownWithMessage },
	"cron_restart":              func(to, from *spec.App) { to.CronRestart = from.CronRestart },
	"stop_exit_codes":           func(to, from *spec.App) { to.StopExitCodes = from.StopExitCodes },
	"time":                      func(to, from *spec.App) { to.LogDateFormat = from.LogDateFormat },
	"log_date_format":           func(to, from *spec.App) { to.LogDateFormat = from.LogDateFormat },
	"out_file":                  func(to, from *spec.App) { to.OutFile = from.OutFile },
	"error_file":                func(to, from *spec.App) { to.ErrorFile = from.ErrorFile },
	"log_file":                  func(to, from *spec.App) { to.LogFile = from.LogFile },
	"merge_logs":                func(to, from *spec.App) { to.MergeLogs = from.MergeLogs },
	"namespace":                 func(to, from *spec.App) { to.Namespace = from.Namespace },
	"pid_file":                  func(to, from *spec.App) { to.PidFile = from.PidFile },
	"sched_policy":              func(to, from *spec.App) { to.SchedPolicy = from.SchedPolicy },
	"log_max_size":              func(to, from *spec.App) { to.LogMaxSize = from.LogMaxSize },
	"log_retain":                func(to, from *spec.App) { to.LogRetain = from.LogRetain },
}

// readStdinFile loads an ecosystem file in JSON from stdin (`cat apps.json | corral start -`).
func (c *cli) readStdinFile(opt ecosystem.Options) ([]spec.App, error) {
	src, err := io.ReadAll(io.LimitReader(os.Stdin, ecosystem.MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read the ecosystem file from stdin: %w", err)
	}
	if len(strings.TrimSpace(string(src))) == 0 {
		return nil, errors.New("`corral start -` reads an ecosystem file in JSON from stdin, and stdin was empty")
	}
	res, err := ecosystem.LoadJSON("stdin.json", src, opt)
	if err != nil {
		return nil, err
	}
	for _, w := range res.Warnings {
		c.warnf("%s", w)
	}
	return res.Apps, nil
}

// addPM2NoopFlags accepts PM2 flags that change nothing in corral, so a runbook's command
// line is not refused for them.
func addPM2NoopFlags(fs *pflag.FlagSet) {
	fs.Bool("no-vizion", false, "accepted for PM2 compatibility (corral does not read version control metadata)")
	fs.Bool("vizion", false, "accepted for PM2 compatibility")
	fs.Bool("no-treekill", false, "accepted for PM2 compatibility (corral always stops the whole process tree)")
	fs.Bool("disable-trace", false, "accepted for PM2 compatibility")
	for _, n := range []string{"vizion", "no-treekill", "disable-trace"} {
		fs.Lookup(n).Hidden = true
	}
}

// starterEcosystem is what `corral init` writes: one app, with the attributes a PM2 user
// reaches for first.
const starterEcosystem = `// corral (and PM2) ecosystem file: corral start ecosystem.config.js [--env production]
module.exports = {
  apps: [
    {
      name: 'app',
      script: './app.js',
      // exec_mode: 'cluster', instances: 'max', // one worker per usable CPU behind one port
      env: {
        NODE_ENV: 'development',
      },
      env_production: {
        NODE_ENV: 'production',
      },
    },
  ],
};
`

func (c *cli) initCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "init [file.config.js]",
		Aliases: []string{"ecosystem"},
		Short:   "write a starter ecosystem file (ecosystem.config.js)",
		GroupID: "apps",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := "ecosystem.config.js"
			if len(args) == 1 && ecosystem.IsConfigFile(args[0]) {
				path = args[0] // a file name; other words (PM2's `init simple`) pick nothing here
			}
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
			if errors.Is(err, os.ErrExist) {
				return fmt.Errorf("%s exists already: corral init does not overwrite it (remove it, or name another file: `corral init other.config.js`)", path)
			}
			if err != nil {
				return fmt.Errorf("write the starter ecosystem file: %w", err)
			}
			if _, err := f.WriteString(starterEcosystem); err != nil {
				f.Close()
				return fmt.Errorf("write %s: %w", path, err)
			}
			if err := f.Close(); err != nil {
				return fmt.Errorf("write %s: %w", path, err)
			}
			abs, _ := filepath.Abs(path)
			c.infof("Wrote %s: edit it, then `corral start %s`", abs, path)
			return nil
		},
	}
}

// actionTargets prepares the targets of a lifecycle command: ecosystem files become their
// apps' names, scripts absolute paths.
func (c *cli) actionTargets(args, only []string) ([]string, error) {
	targets, err := c.expandTargetsOnly(args, only)
	if err != nil {
		return nil, err
	}
	return scriptTargets(targets), nil
}

// noSuchFile explains an argument that is neither a file nor an app, file first: most often a
// path was mistyped.
func noSuchFile(arg string) error {
	abs, err := filepath.Abs(arg)
	if err != nil {
		abs = arg
	}
	if ecosystem.IsConfigFile(arg) {
		return fmt.Errorf("%s: no such file (%s): check the ecosystem file's path", arg, abs)
	}
	return fmt.Errorf("%s: no such file (%s), and no app, id or namespace of that name (`corral ls` lists the apps)", arg, abs)
}

func isDir(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.IsDir()
}

// listenWaitAfter is how long a start runs before it says what it waits for.
const listenWaitAfter = time.Second

// listenWaitNote says, once a start has taken listenWaitAfter, that the daemon waits for the
// new cluster apps' workers to listen (it does, to report a taken port), so that nobody waits
// in silence. The returned function ends it; it returns once the note is printed or dropped.
func (c *cli) listenWaitNote(apps []spec.App, existing map[string]bool) (stop func()) {
	var names []string
	var wait time.Duration
	for _, a := range apps {
		if a.ExecMode == spec.ModeCluster && !existing[a.Name] {
			names = append(names, a.Name)
			wait = max(wait, min(a.ListenTimeout.D(), 5*time.Second)) // the daemon's maxListenWait
		}
	}
	if len(names) == 0 || c.silent {
		return func() {}
	}
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		select {
		case <-time.After(listenWaitAfter):
			c.infof("Starting %s: waiting up to %v for the workers to listen (a port in use is reported)...", strings.Join(names, ", "), wait)
		case <-done:
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}
