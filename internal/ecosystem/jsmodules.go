package ecosystem

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/dop251/goja"
)

// The slice of Node.js that ecosystem files use in practice: process.env and friends,
// console, and require() of path, os, fs, dotenv and relative files. Anything else fails with
// an error listing what is available, rather than half-working.

// availableModules is quoted in the error for any other require().
const availableModules = `"path", "os", "fs" (existsSync, readFileSync), "dotenv", "dotenv/config", and relative files ("./x.js", "./x.json")`

// consoleOutput is where console.log and friends write; a variable so tests can capture it.
var consoleOutput io.Writer = os.Stderr

// installGlobals defines process and console.
func (e *jsEvaluator) installGlobals() {
	vm := e.vm
	process := vm.NewObject()
	env := vm.NewObject()
	for _, k := range sortedKeys(e.opt.Environ) {
		_ = env.Set(k, e.opt.Environ[k])
	}
	_ = process.Set("env", env)
	_ = process.Set("cwd", func() string { return e.opt.Cwd })
	_ = process.Set("platform", nodePlatform())
	_ = process.Set("arch", nodeArch())
	pid, argv := e.opt.pid, e.opt.argv
	if pid == 0 {
		pid, argv = os.Getpid(), processArgv()
	}
	argvList := make([]any, len(argv))
	for i, a := range argv {
		argvList[i] = a
	}
	_ = process.Set("pid", pid)
	_ = process.Set("argv", argvList)
	_ = process.Set("versions", map[string]any{})
	e.process = process
	_ = vm.Set("process", process)

	console := vm.NewObject()
	for _, name := range []string{"log", "info", "debug", "warn", "error"} {
		_ = console.Set(name, e.consoleWrite)
	}
	_ = vm.Set("console", console)
}

// processArgv mimics what PM2's config sees: [node, pm2 script, ...CLI arguments], so the
// usual process.argv.slice(2) yields the CLI's own arguments ("start", "ecosystem.config.js", ...).
func processArgv() []string {
	exe, err := os.Executable()
	if err != nil {
		exe = os.Args[0]
	}
	return append([]string{exe, exe}, os.Args[1:]...)
}

func nodePlatform() string {
	if runtime.GOOS == "windows" {
		return "win32"
	}
	return runtime.GOOS
}

func nodeArch() string {
	switch runtime.GOARCH {
	case "amd64":
		return "x64"
	case "386":
		return "ia32"
	}
	return runtime.GOARCH
}

func (e *jsEvaluator) consoleWrite(call goja.FunctionCall) goja.Value {
	parts := make([]string, len(call.Arguments))
	stringify, _ := goja.AssertFunction(e.vm.Get("JSON").ToObject(e.vm).Get("stringify"))
	for i, a := range call.Arguments {
		parts[i] = a.String()
		if obj, ok := a.(*goja.Object); ok && obj.ClassName() != "Function" && obj.ClassName() != "Error" {
			if s, err := stringify(goja.Undefined(), a); err == nil && s != nil && !goja.IsUndefined(s) {
				parts[i] = s.String()
			}
		}
	}
	fmt.Fprintln(consoleOutput, strings.Join(parts, " "))
	return goja.Undefined()
}

// throwError throws a JavaScript Error with message from Go code called by JavaScript.
func (e *jsEvaluator) throwError(format string, args ...any) {
	ctor := e.vm.Get("Error")
	obj, err := e.vm.New(ctor, e.vm.ToValue(fmt.Sprintf(format, args...)))
	if err != nil {
		panic(e.vm.NewGoError(err))
	}
	panic(obj)
}

// requireFunc returns the require() of a module in dir: relative paths resolve against the
// requiring file, as in Node.
func (e *jsEvaluator) requireFunc(dir string) goja.Value {
	return e.vm.ToValue(func(call goja.FunctionCall) goja.Value {
		id := call.Argument(0).String()
		name := strings.TrimPrefix(id, "node:")
		switch name {
		case "path", "path/posix":
			return e.pathModule()
		case "os":
			return e.osModule()
		case "fs":
			return e.fsModule()
		case "dotenv":
			return e.dotenvModule()
		case "dotenv/config":
			e.dotenvConfig(goja.FunctionCall{})
			return e.vm.NewObject()
		}
		if strings.HasPrefix(id, "./") || strings.HasPrefix(id, "../") || strings.HasPrefix(id, "/") || id == "." || id == ".." {
			target := id
			if !filepath.IsAbs(target) {
				target = filepath.Join(dir, target)
			}
			return e.requireFile(id, target)
		}
		e.throwError("require(%q): module not available in corral's ecosystem file evaluator; available: %s", id, availableModules)
		return nil
	})
}

// requireFile loads a relative module: the exact path, then with .js, .json or .cjs added,
// then index.js in a directory, as Node tries them.
func (e *jsEvaluator) requireFile(id, target string) goja.Value {
	candidates := []string{target, target + ".js", target + ".json", target + ".cjs", filepath.Join(target, "index.js"), filepath.Join(target, "index.json")}
	for _, c := range candidates {
		if st, err := os.Stat(c); err != nil || st.IsDir() {
			continue
		}
		if m, ok := e.modules[c]; ok {
			return m.Get("exports")
		}
		src, err := readSource(c)
		if msg, big := tooLargeToRead(err); big {
			e.throwError("require(%q): %s", id, msg)
		}
		if err != nil {
			e.throwError("require(%q): %v", id, err)
		}
		if strings.HasSuffix(c, ".json") {
			return e.requireJSON(id, c, src)
		}
		m, err := e.runModule(c, src)
		if err != nil {
			var ex *goja.Exception
			var interrupted *goja.InterruptedError
			var overflow *goja.StackOverflowError
			switch {
			case errors.As(err, &interrupted):
				panic(interrupted)
			case errors.As(err, &overflow):
				panic(overflow)
			case errors.As(err, &ex):
				panic(ex) // rethrown as is: its position points into the required file
			}
			e.throwError("require(%q): %v", id, e.describe(err))
		}
		return m.Get("exports")
	}
	e.throwError("require(%q): no file %s (tried .js, .json, .cjs and index.js)", id, target)
	return nil
}

// requireJSON parses a required .json file strictly, as Node's require does.
func (e *jsEvaluator) requireJSON(id, path, src string) goja.Value {
	parse, _ := goja.AssertFunction(e.vm.Get("JSON").ToObject(e.vm).Get("parse"))
	v, err := parse(goja.Undefined(), e.vm.ToValue(strings.TrimPrefix(src, "\ufeff")))
	if err != nil {
		var ex *goja.Exception
		if errors.As(err, &ex) {
			e.throwError("require(%q): %s: %s", id, path, thrownMessage(ex.Value()))
		}
		panic(err)
	}
	module := e.vm.NewObject()
	_ = module.Set("exports", v)
	e.modules[path] = module
	return v
}

// pathModule implements Node's path (POSIX flavour).
func (e *jsEvaluator) pathModule() goja.Value {
	m := e.vm.NewObject()
	strs := func(call goja.FunctionCall) []string {
		out := make([]string, len(call.Arguments))
		for i, a := range call.Arguments {
			out[i] = a.String()
		}
		return out
	}
	_ = m.Set("sep", "/")
	_ = m.Set("delimiter", ":")
	_ = m.Set("join", func(call goja.FunctionCall) goja.Value {
		var parts []string
		for _, p := range strs(call) {
			if p != "" {
				parts = append(parts, p)
			}
		}
		return e.vm.ToValue(nodeNormalize(strings.Join(parts, "/")))
	})
	_ = m.Set("resolve", func(call goja.FunctionCall) goja.Value {
		return e.vm.ToValue(e.nodeResolve(strs(call)...))
	})
	_ = m.Set("normalize", func(p string) string { return nodeNormalize(p) })
	_ = m.Set("isAbsolute", func(p string) bool { return strings.HasPrefix(p, "/") })
	_ = m.Set("dirname", nodeDirname)
	_ = m.Set("basename", func(call goja.FunctionCall) goja.Value {
		base := nodeBasename(call.Argument(0).String())
		if ext := call.Argument(1); !goja.IsUndefined(ext) {
			if s := ext.String(); s != "" && s != base && strings.HasSuffix(base, s) {
				base = strings.TrimSuffix(base, s)
			}
		}
		return e.vm.ToValue(base)
	})
	_ = m.Set("extname", func(p string) string { return nodeExtname(p) })
	_ = m.Set("relative", func(from, to string) string {
		rel, err := filepath.Rel(e.nodeResolve(from), e.nodeResolve(to))
		if err != nil || rel == "." {
			return ""
		}
		return rel
	})
	_ = m.Set("posix", m)
	return m
}

func nodeNormalize(p string) string {
	if p == "" {
		return "."
	}
	trailing := strings.HasSuffix(p, "/")
	c := path.Clean(p)
	if trailing && c != "/" {
		c += "/"
	}
	return c
}

// nodeResolve resolves right to left until a path is absolute, then against process.cwd().
func (e *jsEvaluator) nodeResolve(parts ...string) string {
	resolved := ""
	for i := len(parts) - 1; i >= 0 && !strings.HasPrefix(resolved, "/"); i-- {
		if parts[i] == "" {
			continue
		}
		resolved = strings.TrimSuffix(parts[i]+"/"+resolved, "/")
	}
	if !strings.HasPrefix(resolved, "/") {
		resolved = e.opt.Cwd + "/" + resolved
	}
	return path.Clean(resolved)
}

func nodeDirname(p string) string {
	if p == "" {
		return "."
	}
	trimmed := strings.TrimRight(p, "/")
	if trimmed == "" {
		return "/"
	}
	return path.Dir(trimmed)
}

func nodeBasename(p string) string {
	trimmed := strings.TrimRight(p, "/")
	if trimmed == "" {
		return ""
	}
	return path.Base(trimmed)
}

// nodeExtname is Node's extname: from the last '.' of the base name, unless that dot starts it.
func nodeExtname(p string) string {
	base := nodeBasename(p)
	i := strings.LastIndexByte(base, '.')
	if i <= 0 || base == ".." {
		return ""
	}
	return base[i:]
}

// osModule implements the parts of Node's os that configs use, chiefly cpus().length.
func (e *jsEvaluator) osModule() goja.Value {
	m := e.vm.NewObject()
	_ = m.Set("EOL", "\n")
	_ = m.Set("cpus", func() []any {
		cpus := make([]any, runtime.NumCPU())
		for i := range cpus {
			cpus[i] = map[string]any{"model": "", "speed": 0, "times": map[string]any{"user": 0, "nice": 0, "sys": 0, "idle": 0, "irq": 0}}
		}
		return cpus
	})
	_ = m.Set("availableParallelism", runtime.NumCPU)
	_ = m.Set("hostname", func() string {
		h, _ := os.Hostname()
		return h
	})
	_ = m.Set("homedir", func() string {
		if h := e.opt.Environ["HOME"]; h != "" {
			return h
		}
		h, _ := os.UserHomeDir()
		return h
	})
	_ = m.Set("tmpdir", func() string {
		if t := e.opt.Environ["TMPDIR"]; t != "" {
			return nodeTrimSlash(t)
		}
		return "/tmp"
	})
	_ = m.Set("platform", nodePlatform)
	_ = m.Set("arch", nodeArch)
	_ = m.Set("type", func() string {
		switch runtime.GOOS {
		case "linux":
			return "Linux"
		case "darwin":
			return "Darwin"
		case "windows":
			return "Windows_NT"
		case "freebsd":
			return "FreeBSD"
		}
		return runtime.GOOS
	})
	_ = m.Set("totalmem", func() int64 { return memInfo("MemTotal") })
	_ = m.Set("freemem", func() int64 { return memInfo("MemAvailable") })
	return m
}

func nodeTrimSlash(p string) string {
	if len(p) > 1 {
		return strings.TrimRight(p, "/")
	}
	return p
}

// memInfo reads a /proc/meminfo field in bytes (0 where there is no /proc).
func memInfo(field string) int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
		if err != nil {
			return 0
		}
		return kb * 1024
	}
	return 0
}

// fsModule implements existsSync and readFileSync. readFileSync always returns a string (there
// are no Buffers here); that is what configs do with it anyway (JSON.parse, split, trim).
// Relative paths resolve against process.cwd(), as in Node.
func (e *jsEvaluator) fsModule() goja.Value {
	m := e.vm.NewObject()
	_ = m.Set("existsSync", func(p string) bool {
		_, err := os.Stat(e.nodeResolve(p))
		return err == nil
	})
	_ = m.Set("readFileSync", func(call goja.FunctionCall) goja.Value {
		p := e.nodeResolve(call.Argument(0).String())
		b, err := readLimited(p)
		if msg, big := tooLargeToRead(err); big {
			e.throwError("EFBIG: %s", msg)
		}
		if err != nil {
			var code string
			switch {
			case errors.Is(err, os.ErrNotExist):
				code = "ENOENT: no such file or directory"
			case errors.Is(err, os.ErrPermission):
				code = "EACCES: permission denied"
			default:
				code = err.Error()
			}
			e.throwError("%s, open '%s'", code, p)
		}
		return e.vm.ToValue(string(b))
	})
	return m
}

// dotenvModule implements dotenv's config() and parse().
func (e *jsEvaluator) dotenvModule() goja.Value {
	m := e.vm.NewObject()
	_ = m.Set("config", e.dotenvConfig)
	_ = m.Set("parse", func(call goja.FunctionCall) goja.Value {
		out := e.vm.NewObject()
		for _, p := range parseDotenv(call.Argument(0).String()) {
			_ = out.Set(p.key, p.value)
		}
		return out
	})
	return m
}

// dotenvConfig is dotenv.config({path, override}): it loads a .env file into process.env,
// without replacing variables already set unless override is true, and returns {parsed}
// (or {parsed, error} when a file cannot be read: like dotenv, a missing file is not fatal).
// The default path, and relative paths, are taken from the ecosystem file's directory rather
// than the CLI's working directory, so the file works wherever corral is run from.
func (e *jsEvaluator) dotenvConfig(call goja.FunctionCall) goja.Value {
	dir := filepath.Dir(e.file)
	paths := []string{".env"}
	override := false
	if opts, ok := call.Argument(0).(*goja.Object); ok {
		if p := opts.Get("path"); p != nil && !goja.IsUndefined(p) && !goja.IsNull(p) {
			paths = nil
			if list, ok := p.(*goja.Object); ok && list.ClassName() == "Array" {
				for _, k := range list.Keys() {
					paths = append(paths, list.Get(k).String())
				}
			} else {
				paths = []string{p.String()}
			}
		}
		if o := opts.Get("override"); o != nil {
			override = o.ToBoolean()
		}
	}
	env := e.process.Get("env").ToObject(e.vm)
	parsed := e.vm.NewObject()
	result := e.vm.NewObject()
	for _, p := range paths {
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		b, err := readLimited(p)
		if msg, big := tooLargeToRead(err); big {
			// Unlike a missing file, which dotenv only reports in its result, this is a mistake
			// that would otherwise go unnoticed.
			e.throwError("dotenv: %s", msg)
		}
		if err != nil {
			errObj, _ := e.vm.New(e.vm.Get("Error"), e.vm.ToValue(fmt.Sprintf("dotenv: cannot read %s: %v", p, errors.Unwrap(err))))
			_ = result.Set("error", errObj)
			continue
		}
		for _, pair := range parseDotenv(string(b)) {
			_ = parsed.Set(pair.key, pair.value)
			if existing := env.Get(pair.key); override || existing == nil || goja.IsUndefined(existing) {
				_ = env.Set(pair.key, pair.value)
			}
		}
	}
	_ = result.Set("parsed", parsed)
	return result
}
