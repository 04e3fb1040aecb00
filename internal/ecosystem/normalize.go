package ecosystem

import (
	"maps"
	"path/filepath"

	"github.com/corral-pm/corral/internal/alerts"
	"github.com/corral-pm/corral/internal/spec"
)

// appSource is where an app comes from: what its relative paths and inherited environment are
// resolved against, and how messages about it are labelled.
type appSource struct {
	prefix  string            // message prefix: `/x/ecosystem.config.js: app "web" (apps[0])`, or "command line"
	file    string            // the ecosystem file, "" for the command line
	baseDir string            // the default cwd, and what a relative cwd is resolved against
	baseEnv map[string]string // the inherited environment before filter_env; read only
	opt     Options
}

// appResult is one normalized app with everything said about it.
type appResult struct {
	app          spec.App
	name         string // the final name, or a best guess when resolution failed; "" if none
	declaredName string // "name" as written, before append_env_to_name
	warnings     []string
	decodeErrs   []string // type and value errors: wrong whatever machine the file is used on
	resolveErrs  []string // errors about this machine's files (cwd, script, interpreter)
}

// pending holds attributes that are decoded but need the file system, or other attributes,
// before they become App fields.
type pending struct {
	keys             map[string]string // PM2 name -> the key as written, for messages
	name             string
	script           string
	interpreter      string
	interpreterArgs  []string
	cwd              string
	execMode         string // "" = infer from instances and interpreter
	instancesGiven   bool
	env              map[string]string
	port             string
	filter           envFilter
	appendEnvToName  bool
	watch            watchSpec
	ignoreWatchGiven bool
	outFile          string
	errorFile        string
	pidFile          string
	logFile          logFileSpec
	mergeLogs        *bool
	time             bool
	schedPolicyGiven bool
}

// key returns the attribute's name as the user wrote it.
func (p *pending) key(name string) string {
	if k, ok := p.keys[name]; ok {
		return k
	}
	return name
}

// normalizeApp decodes and resolves one app. overrides (canonicalized) apply over raw.
func normalizeApp(src appSource, raw map[string]any, overrides attrSet) appResult {
	attrs, warnings := canonicalize(raw)
	applyOverrides(attrs, overrides)

	var res appResult
	for _, w := range warnings {
		res.warnings = append(res.warnings, joinPrefix(src.prefix, w))
	}
	app := spec.Defaults()
	decodeErrs := &problems{prefix: src.prefix}
	p := decode(attrs, src.opt, &app, decodeErrs)
	decodeAlerts(attrs, src, &app, decodeErrs)
	res.decodeErrs = decodeErrs.list
	res.declaredName = p.name

	resolveErrs := &problems{prefix: src.prefix}
	resolveWarnings := resolve(&app, p, src, resolveErrs)
	for _, w := range resolveWarnings {
		res.warnings = append(res.warnings, joinPrefix(src.prefix, w))
	}
	if decodeErrs.empty() && resolveErrs.empty() {
		if err := app.Validate(); err != nil {
			resolveErrs.addf("", "%v", err)
		}
	}
	res.resolveErrs = resolveErrs.list
	res.app = app
	res.name = app.Name
	return res
}

// applyOverrides sets command-line attributes over an app's own. env and env_<name> objects
// are merged key by key, so a variable given on the command line adds to the file's env
// instead of replacing it; every other attribute is replaced.
func applyOverrides(attrs, overrides attrSet) {
	for name, ov := range overrides {
		cur, ok := attrs[name]
		if ok && (name == "env" || isEnvSection(name)) {
			a, aok := cur.value.(map[string]any)
			b, bok := ov.value.(map[string]any)
			if aok && bok {
				merged := maps.Clone(a)
				maps.Copy(merged, b)
				attrs[name] = attrValue{key: cur.key, value: merged}
				continue
			}
		}
		attrs[name] = ov
	}
}

// field decodes one attribute with conv into dst. It reports whether the attribute was given
// with a valid value; a wrong one is recorded under the key as the user wrote it.
func field[T any](attrs attrSet, errs *problems, name string, conv func(any) (T, error), dst *T) bool {
	v, ok := attrs[name]
	if !ok {
		return false
	}
	x, err := conv(v.value)
	if err != nil {
		errs.addErr(v.key, err)
		return false
	}
	*dst = x
	return true
}

// decode type-checks every attribute. Values that need nothing else go straight into app; the
// rest are returned in pending for resolve.
func decode(attrs attrSet, opt Options, app *spec.App, errs *problems) *pending {
	p := &pending{keys: map[string]string{}}
	for name, v := range attrs {
		p.keys[name] = v.key
	}

	field(attrs, errs, "name", asString, &p.name)
	if field(attrs, errs, "namespace", asNonEmptyString, &app.Namespace) {
		if problem := spec.NamespaceProblem(app.Namespace); problem != "" {
			errs.addf(p.key("namespace"), "%s", problem)
		}
	}
	if _, given := attrs["script"]; !given {
		errs.addf("", `script is missing: every app needs "script" (the file or command to run)`)
	} else {
		field(attrs, errs, "script", asNonEmptyString, &p.script)
	}
	field(attrs, errs, "args", asWords, &app.Args)
	field(attrs, errs, "interpreter", asString, &p.interpreter)
	field(attrs, errs, "interpreter_args", asWords, &p.interpreterArgs)
	field(attrs, errs, "cwd", asString, &p.cwd)
	field(attrs, errs, "build", asBuild, &app.Build)
	field(attrs, errs, "build_timeout", asMillis, &app.BuildTimeout)

	field(attrs, errs, "exec_mode", asExecMode, &p.execMode)
	p.instancesGiven = field(attrs, errs, "instances", asInstances, &app.Instances)
	field(attrs, errs, "instance_var", asVarName, &app.InstanceVar)
	field(attrs, errs, "increment_var", asVarName, &app.IncrementVar)
	field(attrs, errs, "sched_policy", asSchedPolicy, &app.SchedPolicy)
	field(attrs, errs, "listen", asSockets, &app.Listen)
	p.schedPolicyGiven = app.SchedPolicy != ""

	p.env = decodeEnv(attrs, opt.EnvName, errs)
	field(attrs, errs, "port", asPort, &p.port)
	field(attrs, errs, "filter_env", asEnvFilter, &p.filter)
	field(attrs, errs, "append_env_to_name", asBool, &p.appendEnvToName)

	field(attrs, errs, "autorestart", asBool, &app.Autorestart)
	field(attrs, errs, "autostart", asBool, &app.Autostart)
	field(attrs, errs, "max_restarts", asNonNegativeInt, &app.MaxRestarts)
	field(attrs, errs, "min_uptime", asMillis, &app.MinUptime)
	field(attrs, errs, "restart_delay", asMillis, &app.RestartDelay)
	field(attrs, errs, "exp_backoff_restart_delay", asMillis, &app.ExpBackoffRestartDelay)
	field(attrs, errs, "stop_exit_codes", asExitCodes, &app.StopExitCodes)
	var memLimit memoryRestart
	if field(attrs, errs, "max_memory_restart", asMemoryRestart, &memLimit) {
		app.MaxMemoryRestart, app.MaxMemoryRestartPercent = memLimit.bytes, memLimit.percent
	}
	field(attrs, errs, "cron_restart", asCron, &app.CronRestart)

	field(attrs, errs, "watch", asWatch, &p.watch)
	p.ignoreWatchGiven = field(attrs, errs, "ignore_watch", asStringList, &app.IgnoreWatch)
	field(attrs, errs, "watch_delay", asMillis, &app.WatchDelay)

	field(attrs, errs, "kill_timeout", asMillis, &app.KillTimeout)
	field(attrs, errs, "kill_signal", asSignal, &app.KillSignal)
	field(attrs, errs, "shutdown_with_message", asBool, &app.ShutdownWithMessage)
	field(attrs, errs, "wait_ready", asBool, &app.WaitReady)
	field(attrs, errs, "listen_timeout", asMillis, &app.ListenTimeout)
	field(attrs, errs, "health_url", asHealthURL, &app.HealthURL)
	// PM2 injects its metrics module unless either is false; corral's equivalent is its preload's
	// request metrics.
	pmx, automation := true, true
	field(attrs, errs, "pmx", asBool, &pmx)
	field(attrs, errs, "automation", asBool, &automation)
	app.NoPMX = !pmx || !automation

	field(attrs, errs, "out_file", asString, &p.outFile)
	field(attrs, errs, "error_file", asString, &p.errorFile)
	field(attrs, errs, "log_file", asLogFile, &p.logFile)
	field(attrs, errs, "pid_file", asString, &p.pidFile)
	var merge bool
	if field(attrs, errs, "merge_logs", asBool, &merge) {
		p.mergeLogs = &merge
	}
	field(attrs, errs, "log_date_format", asString, &app.LogDateFormat)
	field(attrs, errs, "log_type", asLogType, &app.LogType)
	field(attrs, errs, "time", asBool, &p.time)
	field(attrs, errs, "log_max_size", asSize, &app.LogMaxSize)
	field(attrs, errs, "log_retain", asNonNegativeInt, &app.LogRetain)
	field(attrs, errs, "verify", asVerify, &app.Verify)
	return p
}

// decodeEnv checks env and every env_<name> section, and returns env overlaid with
// env_<envName>. A null value in the selected section removes a variable env declares.
func decodeEnv(attrs attrSet, envName string, errs *problems) map[string]string {
	env := map[string]string{}
	if v, ok := attrs["env"]; ok {
		set, _, err := asEnv(v.value)
		errs.addErr(v.key, err)
		maps.Copy(env, set)
	}
	for _, name := range sortedKeys(attrs) {
		if !isEnvSection(name) {
			continue
		}
		v := attrs[name]
		set, unset, err := asEnv(v.value)
		if err != nil {
			errs.addErr(v.key, err)
			continue
		}
		if envName != "" && name == "env_"+envName {
			maps.Copy(env, set)
			for _, k := range unset {
				delete(env, k)
			}
		}
	}
	return env
}

// decodeAlerts reads the alerts attribute (package alerts; docs/alerts.md). Without it the app
// keeps a nil Alerts: the defaults, decided by the daemon. A relative command in notify is
// taken from the ecosystem file's directory, like a script's path.
func decodeAlerts(attrs attrSet, src appSource, app *spec.App, errs *problems) {
	v, ok := attrs["alerts"]
	if !ok {
		return
	}
	dir := src.baseDir
	if src.file != "" {
		dir = filepath.Dir(src.file)
	}
	a, err := alerts.Parse(v.value, alerts.ParseOptions{BaseDir: dir, MaxMemoryRestart: app.MaxMemoryRestart})
	if err != nil {
		errs.addErr(v.key, err)
		return
	}
	app.Alerts = &a
}
