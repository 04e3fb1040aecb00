package ecosystem

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/dop251/goja"
	"github.com/dop251/goja/parser"
)

// PM2 loads an ecosystem .js file with Node's require(); corral has no Node, so it evaluates
// the file in goja with the small slice of Node that ecosystem files actually use (see
// jsmodules.go). The evaluation is bounded in time and call depth here, because a file is code
// and an endless loop in it must not hang the CLI; it runs in a process of its own, bounded in
// memory and killed if the time limit cannot interrupt it (see sandbox.go).

// modulePrefix wraps a CommonJS module like Node does, so top-level declarations stay local to
// the module and `exports`, `require`, `module`, `__filename` and `__dirname` are in scope. It
// is on the module's first line, so line numbers are unchanged; columns on line 1 are
// corrected in positions reported to the user.
const modulePrefix = "(function (exports, require, module, __filename, __dirname) { "

// errEvalTimeout is the value the timer interrupts the runtime with.
var errEvalTimeout = errors.New("evaluation timed out")

// jsEvaluator evaluates one ecosystem file and what it requires, in one goja runtime.
type jsEvaluator struct {
	vm      *goja.Runtime
	opt     Options
	file    string                  // the ecosystem file, absolute
	timeout time.Duration           // the limit, for the error message
	modules map[string]*goja.Object // module objects by absolute path, as Node's require cache
	process *goja.Object
	// lines counts the lines of each file compiled, to recognise errors past its end (the
	// text corral wraps it in is then what the parser trips on).
	lines map[string]int
}

// evalJSFile evaluates an ecosystem .js/.cjs/.mjs file and returns module.exports as plain
// data, with the final process.env (which becomes every app's BaseEnv).
func evalJSFile(file string, src []byte, opt Options) (root any, env map[string]string, err error) {
	e := newEvaluator(file, opt)
	defer e.startTimer()()

	e.installGlobals()
	module, err := e.runModule(file, string(src))
	if err != nil {
		return nil, nil, e.describe(err)
	}
	if err := e.callGo(func() error {
		var err error
		root, err = e.toPlain(module.Get("exports"), "module.exports", nil, 0)
		if err != nil {
			return err
		}
		env, err = e.processEnvMap()
		return err
	}); err != nil {
		return nil, nil, e.describe(err)
	}
	return root, env, nil
}

// evalJSONFile evaluates a .json file as PM2 does: as a JavaScript expression, so comments,
// unquoted keys and trailing commas work. It gets no globals beyond the language's own.
func evalJSONFile(file string, src []byte, opt Options) (any, error) {
	text := strings.TrimPrefix(string(src), "\ufeff")
	if strings.TrimSpace(text) == "" {
		return nil, fmt.Errorf("%s: the file is empty: expected {apps: [...]}", file)
	}
	e := newEvaluator(file, opt)
	defer e.startTimer()()

	// "(" shifts line 1 by one column; the newline before ")" ends a trailing // comment.
	e.lines[file] = strings.Count(text, "\n") + 1
	prg, err := compileJS(file, "("+text+"\n)")
	if err != nil {
		return nil, e.describe(err)
	}
	value, err := e.vm.RunProgram(prg)
	if err != nil {
		return nil, e.describe(err)
	}
	var root any
	if err := e.callGo(func() error {
		var err error
		root, err = e.toPlain(value, "the file's value", nil, 0)
		return err
	}); err != nil {
		return nil, e.describe(err)
	}
	return root, nil
}

func newEvaluator(file string, opt Options) *jsEvaluator {
	vm := goja.New()
	vm.SetMaxCallStackSize(MaxCallDepth)
	return &jsEvaluator{
		vm:      vm,
		opt:     opt,
		file:    file,
		timeout: opt.Timeout,
		modules: map[string]*goja.Object{},
		lines:   map[string]int{},
	}
}

// startTimer arms the evaluation time limit and returns the function that disarms it.
func (e *jsEvaluator) startTimer() (stop func()) {
	t := time.AfterFunc(e.timeout, func() { e.vm.Interrupt(errEvalTimeout) })
	return func() { t.Stop() }
}

// callGo runs Go code that reads JavaScript objects (property getters and proxies run script
// code) inside goja's exception handling, so a throw or the time limit becomes an error
// instead of a panic.
func (e *jsEvaluator) callGo(f func() error) error {
	var ferr error
	fn, _ := goja.AssertFunction(e.vm.ToValue(func(goja.FunctionCall) goja.Value {
		ferr = f()
		return goja.Undefined()
	}))
	if _, err := fn(goja.Undefined()); err != nil {
		return err
	}
	return ferr
}

// compileJS parses and compiles src, keeping the parser's position in syntax errors.
func compileJS(name, src string) (*goja.Program, error) {
	ast, err := parser.ParseFile(nil, name, src, 0, parser.WithDisableSourceMaps)
	if err != nil {
		return nil, err
	}
	return goja.CompileAST(ast, false)
}

var (
	importStatement = regexp.MustCompile(`(?m)^[ \t]*import(?:[ \t]+[\w*{$"']|[ \t]*[{*"'])`)
	exportDefault   = regexp.MustCompile(`(?m)^([ \t]*)export[ \t]+default\b[ \t]*`)
	otherExport     = regexp.MustCompile(`(?m)^[ \t]*export[ \t]+(?:const|let|var|function|class|async|\{|\*)`)
)

// prepareModuleSource turns a file into the body of a CommonJS wrapper. ES modules are
// supported in their common ecosystem-file form, `export default {...}`, by rewriting it to
// `module.exports = {...}`; import statements and named exports cannot be, and get an error
// that says what to write instead.
func prepareModuleSource(name, src string) (string, error) {
	src = strings.TrimPrefix(src, "\ufeff")
	if strings.HasPrefix(src, "#!") {
		src = "//" + src[2:]
	}
	if loc := importStatement.FindStringIndex(src); loc != nil {
		return "", fmt.Errorf("%s:%d: import statements are not supported: corral evaluates ecosystem files as CommonJS; use require() (available: %s)",
			name, lineOf(src, loc[0]), availableModules)
	}
	if loc := otherExport.FindStringIndex(src); loc != nil {
		return "", fmt.Errorf("%s:%d: only `export default {...}` is supported in an ES module ecosystem file; use `export default` or `module.exports =`",
			name, lineOf(src, loc[0]))
	}
	src = exportDefault.ReplaceAllString(src, "${1}module.exports = ")
	return modulePrefix + src + "\n})", nil
}

func lineOf(src string, offset int) int { return strings.Count(src[:offset], "\n") + 1 }

// runModule evaluates a CommonJS module and returns its module object. Errors are goja's;
// describe turns them into messages.
func (e *jsEvaluator) runModule(path, src string) (*goja.Object, error) {
	body, err := prepareModuleSource(path, src)
	if err != nil {
		return nil, err
	}
	e.lines[path] = strings.Count(src, "\n") + 1
	prg, err := compileJS(path, body)
	if err != nil {
		return nil, err
	}
	wrapper, err := e.vm.RunProgram(prg)
	if err != nil {
		return nil, err
	}
	fn, ok := goja.AssertFunction(wrapper)
	if !ok {
		return nil, fmt.Errorf("%s: internal error: module wrapper is not a function", path)
	}
	dir := filepath.Dir(path)
	module := e.vm.NewObject()
	exports := e.vm.NewObject()
	_ = module.Set("exports", exports)
	_ = module.Set("id", path)
	_ = module.Set("filename", path)
	_ = module.Set("loaded", false)
	e.modules[path] = module // before running, so require cycles see the partial exports, as in Node
	if _, err := fn(exports, exports, e.requireFunc(dir), module, e.vm.ToValue(path), e.vm.ToValue(dir)); err != nil {
		return nil, err
	}
	_ = module.Set("loaded", true)
	return module, nil
}

// describe turns an evaluation error into a message naming the file, the position and what
// went wrong.
func (e *jsEvaluator) describe(err error) error {
	var interrupted *goja.InterruptedError
	if errors.As(err, &interrupted) {
		return errors.New(timeoutProblem(e.file, e.timeout))
	}
	var overflow *goja.StackOverflowError
	if errors.As(err, &overflow) {
		return fmt.Errorf("%s: RangeError: Maximum call stack size exceeded: calls nested more than %d deep (an endless recursion?); nothing was started",
			e.stackPosition(overflow.Stack()), MaxCallDepth)
	}
	var list parser.ErrorList
	if errors.As(err, &list) && len(list) > 0 {
		p := list[0].Position
		if n, ok := e.lines[p.Filename]; ok && p.Line > n {
			return fmt.Errorf("%s:%d: SyntaxError: unexpected end of file (a closing bracket, brace or parenthesis is missing)", p.Filename, n)
		}
		return fmt.Errorf("%s: SyntaxError: %s", e.position(p.Filename, p.Line, p.Column), list[0].Message)
	}
	var syntax *goja.CompilerSyntaxError
	if errors.As(err, &syntax) {
		if syntax.File != nil {
			p := syntax.File.Position(syntax.Offset)
			return fmt.Errorf("%s: SyntaxError: %s", e.position(p.Filename, p.Line, p.Column), syntax.Message)
		}
		return fmt.Errorf("%s: SyntaxError: %s", e.file, syntax.Message)
	}
	var ex *goja.Exception
	if errors.As(err, &ex) {
		return fmt.Errorf("%s: %s", e.stackPosition(ex.Stack()), thrownMessage(ex.Value()))
	}
	if strings.HasPrefix(err.Error(), e.file) {
		return err
	}
	return fmt.Errorf("%s: %w", e.file, err)
}

// stackPosition is the position of the innermost frame of stack that is in a file, or the
// ecosystem file's name.
func (e *jsEvaluator) stackPosition(stack []goja.StackFrame) string {
	for _, frame := range stack {
		if p := frame.Position(); p.Filename != "" {
			return e.position(p.Filename, p.Line, p.Column)
		}
	}
	return e.file
}

// timeoutProblem is the message for an evaluation that ran out of time.
func timeoutProblem(file string, timeout time.Duration) string {
	hint := ": an endless loop?"
	if fileKind(file) == kindYAML {
		hint = "" // not code: a file that its parser finds hard
	}
	return fmt.Sprintf("%s: evaluation did not finish within %s (the time limit for ecosystem files%s); nothing was started", file, timeout, hint)
}

// memoryProblem is the message for an evaluation that ran out of memory.
func memoryProblem(file string, limit int64) string {
	return fmt.Sprintf("%s: evaluation needed more than %s of memory (the limit for ecosystem files); nothing was started", file, formatSize(limit))
}

// position renders file:line:column, correcting the column on line 1 for the text corral put
// in front of the user's code.
func (e *jsEvaluator) position(file string, line, column int) string {
	if line == 1 {
		if file == e.file && e.isJSONFile() {
			column -= len("(")
		} else {
			column -= len(modulePrefix)
		}
		column = max(column, 1)
	}
	return fmt.Sprintf("%s:%d:%d", file, line, column)
}

func (e *jsEvaluator) isJSONFile() bool { return fileKind(e.file) == kindJSON }

// thrownMessage renders a thrown value: "Error: message" for Error objects, the value otherwise.
func thrownMessage(v goja.Value) string {
	if v == nil || goja.IsUndefined(v) {
		return "uncaught exception: undefined"
	}
	if obj, ok := v.(*goja.Object); ok {
		if msg := obj.Get("message"); msg != nil && !goja.IsUndefined(msg) {
			return v.String()
		}
	}
	return "uncaught exception: " + v.String()
}

func withArticle(noun string) string {
	if noun != "" && strings.ContainsRune("AEIOUaeiou", rune(noun[0])) {
		return "an " + noun
	}
	return "a " + noun
}

var promiseType = reflect.TypeOf((*goja.Promise)(nil))

// maxDepth bounds nesting in exported data; real ecosystem files are a few levels deep.
const maxDepth = 64

// toPlain converts a JavaScript value into plain Go data: nil, bool, string, int64, float64,
// []any, map[string]any, or a jsValue marker for functions, dates and other objects that are
// not data. seen holds the objects on the current path, to report cycles.
func (e *jsEvaluator) toPlain(v goja.Value, path string, seen map[*goja.Object]bool, depth int) (any, error) {
	if v == nil || goja.IsUndefined(v) || goja.IsNull(v) {
		return nil, nil
	}
	obj, isObject := v.(*goja.Object)
	if !isObject {
		switch x := v.Export().(type) {
		case int64, float64, string, bool:
			return x, nil
		}
		return jsValue{kind: withArticle(v.ExportType().String()) + " value"}, nil
	}
	if depth >= maxDepth {
		return nil, fmt.Errorf("%s is nested more than %d levels deep", path, maxDepth)
	}
	if seen[obj] {
		return nil, fmt.Errorf("%s refers back to an object that contains it (a cycle)", path)
	}
	if obj.ExportType() == promiseType {
		return jsValue{kind: "a Promise (corral cannot wait for an async config: export the object itself)"}, nil
	}
	switch class := obj.ClassName(); class {
	case "Function":
		return jsValue{kind: "a function"}, nil
	case "String", "Number", "Boolean":
		return plain(obj.Export()), nil
	case "Array":
		if seen == nil {
			seen = map[*goja.Object]bool{}
		}
		seen[obj] = true
		defer delete(seen, obj)
		n := obj.Get("length").ToInteger()
		out := make([]any, 0, n)
		for i := int64(0); i < n; i++ {
			item, err := e.toPlain(obj.Get(fmt.Sprint(i)), fmt.Sprintf("%s[%d]", path, i), seen, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, item)
		}
		return out, nil
	case "Object":
		if seen == nil {
			seen = map[*goja.Object]bool{}
		}
		seen[obj] = true
		defer delete(seen, obj)
		out := map[string]any{}
		for _, k := range obj.Keys() {
			item, err := e.toPlain(obj.Get(k), path+"."+k, seen, depth+1)
			if err != nil {
				return nil, err
			}
			out[k] = item
		}
		return out, nil
	default:
		return jsValue{kind: withArticle(class)}, nil
	}
}

// processEnvMap reads the final process.env: what the file started with plus whatever it (or
// dotenv) set, minus what it deleted. Values are strings, as Node coerces them.
func (e *jsEvaluator) processEnvMap() (map[string]string, error) {
	envValue := e.process.Get("env")
	env := map[string]string{}
	if envValue == nil || goja.IsUndefined(envValue) || goja.IsNull(envValue) {
		return env, nil
	}
	obj, ok := envValue.(*goja.Object)
	if !ok {
		return nil, fmt.Errorf("process.env was replaced by a %s: it must stay an object", envValue.ExportType())
	}
	for _, k := range obj.Keys() {
		v := obj.Get(k)
		if v == nil || goja.IsUndefined(v) {
			continue
		}
		env[k] = v.String()
	}
	return env, nil
}

// readSource reads a file for require().
func readSource(path string) (string, error) {
	b, err := readLimited(path)
	if err != nil {
		return "", err
	}
	return string(b), nil
}
