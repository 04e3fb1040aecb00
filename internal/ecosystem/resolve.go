package ecosystem

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/corral-pm/corral/internal/spec"
)

// interpreterByExt picks the interpreter when a file script names none, as PM2 does.
var interpreterByExt = map[string]string{
	".js":  "node",
	".mjs": "node",
	".cjs": "node",
	".py":  "python3",
	".sh":  "bash",
	".rb":  "ruby",
	".php": "php",
	".pl":  "perl",
}

// defaultIgnoreWatch is used when an app watches files and names nothing to ignore: the usual
// sources of change storms (dependencies, git metadata, the app's own logs).
var defaultIgnoreWatch = []string{"node_modules", ".git", "*.log"}

// resolve finishes an app: paths made absolute against the file system, the interpreter,
// name, mode, environment and log paths derived. It returns warnings; errors go to errs.
func resolve(app *spec.App, p *pending, src appSource, errs *problems) []string {
	var warnings []string
	opt := src.opt

	cwd, cwdOK := resolveCwd(p, src, errs)
	app.Cwd = cwd
	for i, sock := range app.Listen {
		if sock.Network == "unix" && !filepath.IsAbs(sock.Address) && cwdOK {
			app.Listen[i].Address = filepath.Join(cwd, sock.Address)
		}
	}

	if p.script != "" && cwdOK {
		warnings = append(warnings, resolveScript(app, p, src.baseEnv["PATH"], errs)...)
	}

	// Name: as written, else from the script (resolved if that worked, as written otherwise).
	name, derived := p.name, false
	if name == "" {
		name, derived = defaultName(app, p.script), true
	}
	if name != "" && p.appendEnvToName && opt.EnvName != "" {
		name += "-" + opt.EnvName
	}
	if name != "" {
		if problem := spec.NameProblem(name); problem != "" {
			if derived {
				errs.addf("", `the name taken from the script, %s; set "name"`, problem)
			} else {
				errs.addf(p.key("name"), "%s", problem)
			}
		}
	}
	app.Name = name

	// PM2's rule: instances without exec_mode means cluster mode for a Node app.
	switch {
	case p.execMode != "":
		app.ExecMode = p.execMode
	case p.instancesGiven && app.IsNode():
		app.ExecMode = spec.ModeCluster
	default:
		app.ExecMode = spec.ModeFork
	}
	if p.mergeLogs != nil {
		app.MergeLogs = *p.mergeLogs
	} else {
		app.MergeLogs = app.ExecMode == spec.ModeFork && !p.instancesGiven
	}
	if app.ExecMode == spec.ModeCluster && app.SchedPolicy == "" {
		app.SchedPolicy = spec.PolicyRoundRobin
	} else if app.ExecMode == spec.ModeFork && p.schedPolicyGiven {
		warnings = append(warnings, fmt.Sprintf("%s ignored: it only applies in cluster mode", p.key("sched_policy")))
		app.SchedPolicy = ""
	}

	app.BaseEnv = p.filter.apply(src.baseEnv)
	env := p.env
	if p.port != "" {
		env["PORT"] = p.port
	}
	if strings.HasPrefix(filepath.Base(app.Interpreter), "python") {
		if _, set := env["PYTHONUNBUFFERED"]; !set {
			// As PM2 does: otherwise Python buffers its output and logs arrive late or never.
			env["PYTHONUNBUFFERED"] = "1"
		}
	}
	if len(env) > 0 {
		app.Env = env
	}
	app.EnvName = opt.EnvName

	if p.watch.cwd {
		app.Watch = []string{cwd}
	}
	for _, w := range p.watch.paths {
		app.Watch = append(app.Watch, absFrom(cwd, w))
	}
	if len(app.Watch) > 0 && !p.ignoreWatchGiven {
		app.IgnoreWatch = append([]string(nil), defaultIgnoreWatch...)
	}

	safe := spec.SafeFileName(app.Name)
	app.OutFile = logPath(p.outFile, cwd, opt.LogDir, safe+"-out.log")
	app.ErrorFile = logPath(p.errorFile, cwd, opt.LogDir, safe+"-error.log")
	app.PidFile = logPath(p.pidFile, cwd, opt.PidDir, safe+".pid")
	switch {
	case p.logFile.path != "":
		app.LogFile = logPath(p.logFile.path, cwd, opt.LogDir, safe+".log")
	case p.logFile.byDefault:
		app.LogFile = logPath("", cwd, opt.LogDir, safe+".log")
	}
	if p.time && app.LogDateFormat == "" {
		app.LogDateFormat = "YYYY-MM-DDTHH:mm:ss"
	}
	app.Source = src.file
	return warnings
}

// resolveCwd returns the app's working directory, absolute, and whether it exists.
func resolveCwd(p *pending, src appSource, errs *problems) (string, bool) {
	cwd := src.baseDir
	if strings.TrimSpace(p.cwd) != "" {
		cwd = absFrom(src.baseDir, p.cwd)
	}
	st, err := os.Stat(cwd)
	switch {
	case err != nil:
		errs.addf(p.key("cwd"), "no directory %s", cwd)
		return cwd, false
	case !st.IsDir():
		errs.addf(p.key("cwd"), "%s is not a directory", cwd)
		return cwd, false
	}
	return cwd, true
}

// resolveScript decides what the script is (a file, a program in PATH, or a shell command
// line) and which interpreter runs it.
func resolveScript(app *spec.App, p *pending, pathEnv string, errs *problems) []string {
	var warnings []string
	key := p.key("script")
	file := absFrom(app.Cwd, p.script)
	st, statErr := os.Stat(file)
	switch {
	case statErr == nil && st.IsDir():
		errs.addf(key, "%s is a directory, not a program", file)
		return nil

	case statErr == nil:
		app.Script = file
		app.Interpreter = p.interpreter
		if app.Interpreter == "" {
			app.Interpreter = interpreterByExt[strings.ToLower(filepath.Ext(file))]
		}
		switch {
		case app.Interpreter != "" && app.Interpreter != "none":
		case isExecutable(st):
			app.Interpreter = "none"
		case p.interpreter == "none":
			errs.addf(key, "%s is not executable: make it executable (chmod +x) or set \"interpreter\"", file)
		default:
			errs.addf(key, "%s is not executable and its extension does not say what runs it: set \"interpreter\" (for example \"node\", \"python3\" or \"bash\") or make it executable", file)
		}

	case app.Build != "" && builtFile(p.script):
		// Not there yet: the app's build makes it (the daemon checks once the build has run).
		app.Script = file
		app.Interpreter = p.interpreter
		if app.Interpreter == "" {
			app.Interpreter = interpreterByExt[strings.ToLower(filepath.Ext(file))]
		}
		if app.Interpreter == "" {
			app.Interpreter = "none" // a built program
		}

	case strings.ContainsAny(p.script, " \t\n"):
		// A command line: sh -c runs it, so it can use pipes, variables and PATH lookup.
		app.Shell = true
		app.Interpreter = "none"
		app.Script = strings.TrimSpace(p.script)
		for _, a := range app.Args {
			app.Script += " " + shellQuote(a)
		}
		app.Args = nil
		if p.interpreter != "" && p.interpreter != "none" {
			warnings = append(warnings, fmt.Sprintf("%s ignored: %q is a shell command line (it runs under sh -c)", p.key("interpreter"), p.script))
		}

	case !strings.Contains(p.script, "/"):
		found, ok := lookPath(p.script, pathEnv, app.Cwd)
		if !ok {
			errs.addf(key, "no file %s and no program %q in PATH", file, p.script)
			return nil
		}
		app.Script = found
		app.Interpreter = p.interpreter
		if app.Interpreter == "" {
			app.Interpreter = "none"
		}

	default:
		errs.addf(key, "no file %s", file)
		return nil
	}

	if len(p.interpreterArgs) > 0 {
		if app.Interpreter == "none" {
			warnings = append(warnings, fmt.Sprintf("%s ignored: the script runs without an interpreter", p.key("interpreter_args")))
		} else {
			app.InterpreterArgs = p.interpreterArgs
		}
	}
	return warnings
}

// builtFile reports whether a script that does not exist yet may be the output of the app's
// build: a path ("dist/server.js", "./bin/app") or a file name with a known extension
// ("server.js"); not a command line, and not a bare name, which is a program in PATH.
func builtFile(script string) bool {
	if strings.ContainsAny(script, " \t\n") {
		return false
	}
	return strings.Contains(script, "/") || interpreterByExt[strings.ToLower(filepath.Ext(script))] != ""
}

// lookPath finds an executable in a PATH list. Relative entries are taken from the app's cwd;
// empty entries are skipped rather than meaning ".", which is how accidents happen.
func lookPath(prog, pathEnv, cwd string) (string, bool) {
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			continue
		}
		candidate := filepath.Join(absFrom(cwd, dir), prog)
		if st, err := os.Stat(candidate); err == nil && !st.IsDir() && isExecutable(st) {
			return candidate, true
		}
	}
	return "", false
}

func isExecutable(st os.FileInfo) bool { return st.Mode().Perm()&0o111 != 0 }

// defaultName is PM2's default: the script's base name without its extension; for a shell
// command line, the base name of its first word.
func defaultName(app *spec.App, script string) string {
	if app.Shell || (app.Script == "" && strings.ContainsAny(strings.TrimSpace(script), " \t\n")) {
		words, err := SplitShellWords(script)
		if err != nil || len(words) == 0 {
			return ""
		}
		return filepath.Base(words[0])
	}
	s := app.Script
	if s == "" {
		s = strings.TrimSpace(script)
	}
	if s == "" {
		return ""
	}
	base := filepath.Base(s)
	return strings.TrimSuffix(base, filepath.Ext(base))
}

// absFrom makes p absolute against dir.
func absFrom(dir, p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(dir, p)
}

// logPath resolves a log or pid file path: "NULL" and /dev/null switch the file off, relative
// paths are taken from the app's cwd, and an empty one gets defaultName in defaultDir (or
// stays empty when corral gave no directory, leaving the choice to the daemon).
func logPath(p, cwd, defaultDir, defaultName string) string {
	switch strings.TrimSpace(p) {
	case "NULL", spec.NullPath:
		return spec.NullPath
	case "":
		if defaultDir == "" {
			return ""
		}
		return filepath.Join(defaultDir, defaultName)
	}
	return absFrom(cwd, p)
}
