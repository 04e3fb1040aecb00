package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/ecosystem"
	"github.com/corral-pm/corral/internal/spec"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// appFlags are the `start` flags that set app attributes. Each maps a flag to the PM2
// attribute it sets; only flags given explicitly become attributes, so an ecosystem file's
// values stand unless the command line overrides them.
type appFlags struct {
	envName   string
	only      []string
	force     bool
	noDaemon  bool
	updateEnv bool
}

// attrFlag ties a flag to an attribute.
type attrFlag struct {
	flag, attr string
	// value converts the flag's text to the attribute's value (default: the text).
	value func(string) any
}

var attrFlags = []attrFlag{
	{flag: "name", attr: "name"},
	{flag: "instances", attr: "instances"},
	{flag: "cwd", attr: "cwd"},
	{flag: "interpreter", attr: "interpreter"},
	{flag: "interpreter-args", attr: "interpreter_args", value: nullableWords},
	{flag: "node-args", attr: "interpreter_args", value: nullableWords},
	{flag: "watch", attr: "watch", value: watchValue},
	{flag: "ignore-watch", attr: "ignore_watch", value: splitList},
	{flag: "watch-delay", attr: "watch_delay"},
	{flag: "max-memory-restart", attr: "max_memory_restart"},
	{flag: "restart-delay", attr: "restart_delay"},
	{flag: "exp-backoff-restart-delay", attr: "exp_backoff_restart_delay"},
	{flag: "max-restarts", attr: "max_restarts"},
	{flag: "min-uptime", attr: "min_uptime"},
	{flag: "no-autorestart", attr: "autorestart", value: negate},
	{flag: "no-autostart", attr: "autostart", value: negate},
	{flag: "no-pmx", attr: "pmx", value: negate},
	{flag: "no-automation", attr: "automation", value: negate},
	{flag: "kill-timeout", attr: "kill_timeout"},
	{flag: "kill-signal", attr: "kill_signal"},
	{flag: "listen-timeout", attr: "listen_timeout"},
	{flag: "wait-ready", attr: "wait_ready", value: boolValue},
	{flag: "shutdown-with-message", attr: "shutdown_with_message", value: boolValue},
	{flag: "cron-restart", attr: "cron_restart"},
	{flag: "cron", attr: "cron_restart"},
	{flag: "stop-exit-codes", attr: "stop_exit_codes", value: splitList},
	{flag: "time", attr: "time", value: boolValue},
	{flag: "log-date-format", attr: "log_date_format"},
	{flag: "output", attr: "out_file"},
	{flag: "error", attr: "error_file"},
	{flag: "log", attr: "log_file", value: logValue},
	{flag: "merge-logs", attr: "merge_logs", value: boolValue},
	{flag: "namespace", attr: "namespace"},
	{flag: "pid", attr: "pid_file"},
	{flag: "filter-env", attr: "filter_env", value: splitList},
	{flag: "sched-policy", attr: "sched_policy"},
	{flag: "log-max-size", attr: "log_max_size"},
	{flag: "log-retain", attr: "log_retain"},
}

func negate(string) any { return false }

// nullableWords is --node-args' value: "null" clears the arguments, as in PM2.
func nullableWords(v string) any {
	if v == "null" {
		return []any{}
	}
	return v
}
func boolValue(v string) any { return v != "false" }
func splitList(v string) any {
	parts := strings.Split(v, ",")
	out := make([]any, 0, len(parts))
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
func watchValue(v string) any {
	if v == "" || v == "true" {
		return true
	}
	if v == "false" {
		return false
	}
	return splitList(v)
}
func logValue(v string) any {
	if v == "" || v == "true" {
		return true
	}
	return v
}

// addAppFlags declares the app-attribute flags on cmd (PM2's names and short forms).
func addAppFlags(fs *pflag.FlagSet, f *appFlags) {
	fs.StringP("name", "n", "", "app name (default: the script's base name)")
	fs.StringP("instances", "i", "", "number of processes: N, max (one per usable CPU), -1 (max minus one); Node scripts run in cluster mode")
	fs.String("cwd", "", "working directory of the app")
	fs.String("interpreter", "", "interpreter (default by extension: node, python3, bash; none for executables)")
	fs.String("interpreter-args", "", "arguments for the interpreter")
	fs.String("node-args", "", "alias of --interpreter-args")
	fs.String("watch", "", "restart when files change (optionally: comma-separated paths)")
	fs.Lookup("watch").NoOptDefVal = "true"
	fs.String("ignore-watch", "", "comma-separated glob patterns not to watch")
	fs.String("watch-delay", "", "wait this long after a change before restarting (e.g. 1s)")
	fs.String("max-memory-restart", "", "restart when the process tree uses more memory (e.g. 300M, 1G)")
	fs.String("restart-delay", "", "wait this long before restarting a crashed app (ms or 5s)")
	fs.String("exp-backoff-restart-delay", "", "exponential backoff between restarts, starting at this delay")
	fs.String("max-restarts", "", "unstable restarts in a row before the app is marked errored (default 16)")
	fs.String("min-uptime", "", "a run shorter than this counts as unstable (default 1s)")
	fs.Bool("no-autorestart", false, "do not restart the app when it exits")
	fs.Bool("no-autostart", false, "register the app without starting it")
	fs.Bool("no-pmx", false, "no request metrics (Node: corral's preload does not count requests)")
	fs.Bool("no-automation", false, "alias of --no-pmx, as in PM2")
	fs.StringP("kill-timeout", "k", "", "time between the stop signal and SIGKILL (default 1600ms)")
	fs.String("kill-signal", "", "signal that asks the app to stop (default SIGINT)")
	fs.String("listen-timeout", "", "how long to wait for an app to be ready (default 3s)")
	fs.Bool("wait-ready", false, "the app is ready when it sends process.send('ready')")
	fs.Bool("shutdown-with-message", false, "stop the app with a 'shutdown' IPC message instead of a signal")
	fs.StringP("cron-restart", "c", "", "restart on a cron schedule (5 or 6 fields)")
	fs.String("cron", "", "alias of --cron-restart")
	fs.String("stop-exit-codes", "", "comma-separated exit codes that must not restart the app")
	fs.Bool("time", false, "prefix every log line with its date")
	fs.String("log-date-format", "", "date format of log line prefixes (dayjs style, e.g. YYYY-MM-DD HH:mm:ss)")
	fs.StringP("output", "o", "", "stdout log file")
	fs.StringP("error", "e", "", "stderr log file")
	fs.StringP("log", "l", "", "combined stdout+stderr log file (optionally: its path)")
	fs.Lookup("log").NoOptDefVal = "true"
	fs.Bool("merge-logs", false, "one log file for every instance (no -<id> suffix)")
	fs.String("namespace", "", "namespace of the app")
	fs.StringP("pid", "p", "", "pid file")
	fs.String("filter-env", "", "comma-separated names: do not inherit variables whose names contain them")
	fs.String("sched-policy", "", "cluster connection policy: rr (round-robin, default), reuseport (a listening socket per worker) or shared")
	fs.String("log-max-size", "", "rotate log files at this size (default 10M)")
	fs.String("log-retain", "", "rotated log files to keep (default 5)")
	fs.BoolP("execute-command", "x", false, "run in fork mode even with -i")
	fs.StringVar(&f.envName, "env", "", "use env_<name> of the ecosystem file")
	fs.StringSliceVar(&f.only, "only", nil, "start only these apps of the ecosystem file")
	fs.BoolVarP(&f.force, "force", "f", false, "accepted for PM2 compatibility: corral runs one app per name, so an app that runs is restarted")
	fs.BoolVar(&f.noDaemon, "no-daemon", false, "run in the foreground (as `corral run`)")
	fs.BoolVarP(&f.updateEnv, "update-env", "a", false, "with an existing app: take this shell's environment")
	addPM2NoopFlags(fs)
}

// overrides collects the attributes set explicitly on the command line.
func overrides(fs *pflag.FlagSet) map[string]any {
	out := map[string]any{}
	for _, af := range attrFlags {
		fl := fs.Lookup(af.flag)
		if fl == nil || !fl.Changed {
			continue
		}
		if af.value != nil {
			out[af.attr] = af.value(fl.Value.String())
		} else {
			out[af.attr] = fl.Value.String()
		}
	}
	if fl := fs.Lookup("execute-command"); fl != nil && fl.Changed {
		out["exec_mode"] = "fork"
	}
	return out
}

// loaderOptions are what the ecosystem loader needs from the CLI.
func (c *cli) loaderOptions(f *appFlags, over map[string]any) (ecosystem.Options, error) {
	cwd, err := os.Getwd()
	if err != nil {
		return ecosystem.Options{}, fmt.Errorf("working directory: %w", err)
	}
	return ecosystem.Options{
		Environ:   spec.EnvMap(os.Environ()),
		EnvName:   f.envName,
		Cwd:       cwd,
		LogDir:    c.paths.LogDir,
		PidDir:    c.paths.PidDir,
		Only:      f.only,
		Overrides: over,
	}, nil
}

// loadFile loads an ecosystem file, printing its warnings.
func (c *cli) loadFile(path string, opt ecosystem.Options) ([]spec.App, error) {
	res, err := ecosystem.Load(path, opt)
	if err != nil {
		return nil, err
	}
	for _, w := range res.Warnings {
		c.warnf("%s", w)
	}
	return res.Apps, nil
}

func isFile(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir()
}

func (c *cli) startCommand() *cobra.Command {
	f := &appFlags{}
	cmd := &cobra.Command{
		Use: "start [script | command | ecosystem file | - | name | id | namespace | all]... [-- args]",
		// PM2's deploy verbs: start an ecosystem file's apps, or update and restart (rolling
		// where the app owns its port) those that run.
		Aliases: []string{"startOrRestart", "startOrReload", "startOrGracefulReload"},
		Short:   "start an app (script, command or ecosystem file), or start stopped apps again",
		Example: `  corral start app.js -i max
  corral start ecosystem.config.js --env production
  corral start "python3 -m http.server 8000" --name files
  corral start server.js -- --port 5000`,
		GroupID: "apps",
		RunE: func(cmd *cobra.Command, args []string) error {
			var scriptArgs []string
			if dash := cmd.ArgsLenAtDash(); dash >= 0 {
				scriptArgs = args[dash:]
				args = args[:dash]
			}
			return c.start(cmd.Context(), cmd.Flags(), f, args, scriptArgs)
		},
	}
	addAppFlags(cmd.Flags(), f)
	return cmd
}

func (c *cli) start(ctx context.Context, fs *pflag.FlagSet, f *appFlags, args, scriptArgs []string) error {
	if len(args) == 0 {
		if !isFile("ecosystem.config.js") {
			return errors.New("nothing to start: give a script, a command, or an ecosystem file (none named ecosystem.config.js here)")
		}
		args = []string{"ecosystem.config.js"}
	}
	if f.noDaemon {
		if len(args) != 1 {
			return errors.New("--no-daemon runs one script or ecosystem file in the foreground")
		}
		return c.runForeground(ctx, fs, f, &runFlags{logFormat: "text"}, args[0], scriptArgs)
	}
	if err := c.connect(ctx, true); err != nil {
		return err
	}
	over := overrides(fs)
	opt, err := c.loaderOptions(f, over)
	if err != nil {
		return err
	}
	apps, targets, err := c.resolveStartArgs(ctx, args, scriptArgs, opt, f)
	if err != nil {
		return err
	}
	if err := c.checkScriptsRunning(ctx, apps, f.force); err != nil {
		return err
	}
	var errs []string
	if len(targets) > 0 && len(over) > 0 {
		// `start web --node-args=--harmony` on an existing app: PM2 restarts it with them.
		respecced, err := c.respec(ctx, targets, over, opt, f.updateEnv)
		if err != nil {
			return err
		}
		apps = append(apps, respecced...)
		targets = nil
	}
	if len(targets) > 0 {
		req := api.ActionRequest{Targets: targets}
		if f.updateEnv {
			req.UpdateEnv = spec.EnvMap(os.Environ())
		}
		resp, err := request(ctx, c, func(cl *api.Client) (api.ActionResponse, error) { return cl.Act(ctx, api.ActionStart, req) })
		if err != nil {
			return err
		}
		errs = append(errs, resp.Errors...)
	}
	if len(apps) > 0 {
		// The apps that exist already are updated and restarted, as PM2's start does: one
		// name is one app.
		existing := map[string]bool{}
		if procs, err := c.processes(ctx, false); err == nil {
			for _, p := range procs {
				existing[p.Name] = true
			}
		}
		stopBuilds := c.followBuilds(ctx, apps)
		stopNote := c.listenWaitNote(apps, existing)
		resp, err := request(ctx, c, func(cl *api.Client) (api.ActionResponse, error) {
			return cl.Start(ctx, api.StartRequest{Apps: apps, Mode: api.ModeFile})
		})
		stopNote()
		stopBuilds()
		if err != nil {
			return err // the daemon checks the whole request first: nothing was started
		}
		for _, a := range apps {
			n := "1 process"
			if a.Instances != 1 {
				n = instancesText(a.Instances)
			}
			if existing[a.Name] {
				c.infof("Restarted %s in %s mode (%s): it was running already, and `start` restarts it as PM2 does", displayScript(a), a.ExecMode, n)
				if f.force {
					c.infof("corral runs one app per name: -f restarted %s; `--name <other>` starts another copy", a.Name)
				}
			} else {
				c.infof("Starting %s in %s mode (%s)", displayScript(a), a.ExecMode, n)
			}
		}
		errs = append(errs, resp.Errors...)
	}
	if err := c.printTable(ctx); err != nil {
		return err
	}
	return c.reportErrors(errs)
}

func instancesText(n int) string {
	switch {
	case n == 0:
		return "one process per CPU"
	case n < 0:
		return fmt.Sprintf("one process per CPU minus %d", -n)
	default:
		return fmt.Sprintf("%d processes", n)
	}
}

func displayScript(a spec.App) string {
	if a.Shell {
		return fmt.Sprintf("%q as %s", a.Script, a.Name)
	}
	return fmt.Sprintf("%s as %s", a.Script, a.Name)
}

// resolveStartArgs sorts start's arguments into apps to create or update (scripts, commands,
// ecosystem files, "-" for a file on stdin) and targets to start again (names, ids,
// namespaces of existing apps). Several scripts start several apps, as in PM2.
func (c *cli) resolveStartArgs(ctx context.Context, args, scriptArgs []string, opt ecosystem.Options, f *appFlags) ([]spec.App, []string, error) {
	var apps []spec.App
	var targets []string
	scripts := 0
	for _, arg := range args {
		if arg != "-" && !ecosystem.IsConfigFile(arg) && (isFile(arg) || strings.ContainsAny(arg, " \t")) {
			scripts++
		}
	}
	if _, named := opt.Overrides["name"]; named && scripts > 1 {
		return nil, nil, fmt.Errorf("--name names one app, and %d scripts were given: start them one by one", scripts)
	}
	for i, arg := range args {
		switch {
		case arg == "-":
			loaded, err := c.readStdinFile(opt)
			if err != nil {
				return nil, nil, err
			}
			apps = append(apps, loaded...)
		case ecosystem.IsConfigFile(arg) && isFile(arg):
			loaded, err := c.loadFile(arg, opt)
			if err != nil {
				return nil, nil, err
			}
			apps = append(apps, loaded...)
		case isFile(arg) || strings.ContainsAny(arg, " \t"):
			a, err := c.scriptApp(arg, scriptArgs, opt)
			if err != nil {
				return nil, nil, err
			}
			apps = append(apps, a)
		case ecosystem.IsConfigFile(arg):
			return nil, nil, noSuchFile(arg)
		default:
			exists, err := c.targetExists(ctx, arg)
			if err != nil {
				return nil, nil, err
			}
			if exists {
				targets = append(targets, arg)
				continue
			}
			if i > 0 || strings.ContainsRune(arg, '/') || filepath.Ext(arg) != "" {
				return nil, nil, noSuchFile(arg)
			}
			// A program in PATH (`corral start python3 -- -m http.server`).
			a, err := c.scriptApp(arg, scriptArgs, opt)
			if err != nil {
				return nil, nil, fmt.Errorf("%q is not a running app, and %w", arg, err)
			}
			apps = append(apps, a)
		}
	}
	if f.envName != "" && len(apps) > 0 && apps[0].Source == "" && args[0] != "-" {
		return nil, nil, errors.New("--env selects env_<name> of an ecosystem file; give the file")
	}
	return apps, targets, nil
}

// scriptApp builds an app from a script or command and the command-line flags.
func (c *cli) scriptApp(script string, scriptArgs []string, opt ecosystem.Options) (spec.App, error) {
	raw := map[string]any{}
	for k, v := range opt.Overrides {
		raw[k] = v
	}
	raw["script"] = script
	if len(scriptArgs) > 0 {
		list := make([]any, len(scriptArgs))
		for i, a := range scriptArgs {
			list[i] = a
		}
		raw["args"] = list
	}
	a, warnings, err := ecosystem.Normalize("command line", raw, opt)
	for _, w := range warnings {
		c.warnf("%s", w)
	}
	return a, err
}

// targetExists asks the daemon whether arg names existing processes, as a target of its
// actions would.
func (c *cli) targetExists(ctx context.Context, arg string) (bool, error) {
	procs, err := c.processes(ctx, false, arg)
	var se *api.StatusError
	if errors.As(err, &se) && (se.Code == api.CodeNotFound || se.Code == api.CodeBadRequest) {
		return false, nil
	}
	return len(procs) > 0, err
}

// expandTargets replaces ecosystem files among targets by the names of their apps.
func (c *cli) expandTargets(args []string) ([]string, error) { return c.expandTargetsOnly(args, nil) }

// expandTargetsOnly is expandTargets keeping, of the files' apps, those only names (--only).
func (c *cli) expandTargetsOnly(args, only []string) ([]string, error) {
	var out []string
	for _, a := range args {
		if a == "-" {
			// An ecosystem file on stdin (`cat all.json | corral delete -`): its apps.
			opt, err := c.loaderOptions(&appFlags{only: only}, nil)
			if err != nil {
				return nil, err
			}
			apps, err := c.readStdinFile(opt)
			if err != nil {
				return nil, err
			}
			for _, app := range apps {
				out = append(out, app.Name)
			}
			continue
		}
		if ecosystem.IsConfigFile(a) && isFile(a) {
			opt, err := c.loaderOptions(&appFlags{only: only}, nil)
			if err != nil {
				return nil, err
			}
			apps, err := c.loadFile(a, opt)
			if err != nil {
				return nil, err
			}
			for _, app := range apps {
				out = append(out, app.Name)
			}
			continue
		}
		out = append(out, a)
	}
	return out, nil
}
