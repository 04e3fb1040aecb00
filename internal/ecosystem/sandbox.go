package ecosystem

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/corral-pm/corral/internal/reaper"
)

// An ecosystem file is evaluated in a process of its own: the running executable (corral, or a
// test binary) started again with evalChildArg. JavaScript and JSON files are code; YAML
// is not, but its parser is not linear either (a 1 MiB file of 60,000 keys takes it 17 s and
// 110 MB: it checks each key against the others). In-process, goja's
// interrupt only bounds JavaScript code, as it is checked between instructions: one call of a
// built-in ('x'.repeat(2**29), new Array(1e8).fill(1), JSON.stringify of a huge object, a
// backtracking regular expression) can allocate gigabytes or run for minutes before the
// interpreter sees it (measured in-process: 5 GB and 40 s for the fill, over a minute for
// /(a+)+\1$/.test('a'.repeat(40)+'b')), and a memory watchdog in the same process could not
// stop it either. A process of its own can be bounded for real:
//
//   - memory: the child limits its address space (RLIMIT_AS) so that its resident size cannot
//     exceed the memory limit (see limitAddressSpace: reservations count, so it is stopped
//     somewhat before); an allocation past it fails and the Go runtime ends the child ("out
//     of memory" on its stderr); the GC is told the same limit (debug.SetMemoryLimit), so
//     garbage does not count against it;
//   - time: the child interrupts the evaluation at the time limit, as before, and the parent
//     kills it evalKillGrace later if it has not answered by then;
//   - output: the parent reads at most maxEvalOutput bytes of result.
//
// The parent writes the request (the file's source, its environment) as JSON on the child's
// stdin; the child answers on its stdout in JSON lines: console output as it is written, then
// the result (module.exports, in the form encodeValue gives it, and process.env). Resolving
// the result into apps stays in the parent. The cost is one process start, about 5 ms, and
// the child's start-up is not paid by other commands: the hook is a comparison in an init
// function (so it works in any binary that links this package, test binaries included).

// evalChildArg is os.Args[1] of the evaluation process.
const evalChildArg = "__corral-evaluate-ecosystem-file"

// evalKillGrace is how long after the time limit the parent kills an evaluation that has not
// answered: the child's own interrupt fires at the limit, and ends JavaScript code at once.
const evalKillGrace = 250 * time.Millisecond

// maxEvalOutput bounds the answer the parent reads: the result line, and each console line.
// A 1 MiB file of apps resolves to about as much; a much larger result is generated data
// that the daemon (16 MiB per request) would refuse anyway.
const maxEvalOutput = 8 << 20

// maxConsoleLine bounds one console.log line; the rest is cut.
const maxConsoleLine = 64 << 10

func init() {
	if len(os.Args) == 2 && os.Args[1] == evalChildArg {
		os.Exit(evalChild(os.Stdin, os.Stdout))
	}
}

// evalRequest is what the parent asks the child to evaluate.
type evalRequest struct {
	File    string            `json:"file"`
	Kind    int               `json:"kind"` // kindJS, kindJSON or kindYAML
	Source  []byte            `json:"source"`
	Environ map[string]string `json:"environ"`
	Cwd     string            `json:"cwd"`
	Timeout time.Duration     `json:"timeout"`
	Memory  int64             `json:"memory"`
	Argv    []string          `json:"argv"` // the CLI's process.argv
	Pid     int               `json:"pid"`  // the CLI's process.pid
}

// evalFrame is one line of the child's answer: console output, or the final frame.
type evalFrame struct {
	Console *string `json:"console,omitempty"`
	Done    bool    `json:"done,omitempty"`
	Error   string  `json:"error,omitempty"`  // the evaluation failed: the message to report
	Result  any     `json:"result,omitempty"` // module.exports or the JSON file's value, encoded
	Env     []any   `json:"env,omitempty"`    // process.env: name, value, name, value...
}

// evaluate evaluates an ecosystem file in a child process. env is the final process.env for
// a JS file, nil for the others.
func evaluate(file string, kind int, src []byte, opt Options) (root any, env map[string]string, err error) {
	req, err := json.Marshal(evalRequest{
		File: file, Kind: kind, Source: src,
		Environ: opt.Environ, Cwd: opt.Cwd, Timeout: opt.Timeout, Memory: opt.MemoryLimit,
		Argv: processArgv(), Pid: os.Getpid(),
	})
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %v", file, err)
	}
	exe := selfExecutable()
	cmd := exec.Command(exe, evalChildArg)
	cmd.Args[0] = os.Args[0]
	cmd.Env = []string{
		"GOTRACEBACK=none",         // the runtime's last words, without every goroutine's stack
		"GORACE=atexit_sleep_ms=0", // with the race detector (tests), do not linger a second at exit
		// In a binary built with cgo (`go run`, tests), glibc's malloc reserves 64 MiB of
		// address space for each thread that calls it: one arena is plenty here, and the
		// rest would count against the memory limit.
		"MALLOC_ARENA_MAX=1",
	}
	cmd.Stdin = bytes.NewReader(req)
	stderr := &headBuffer{max: 4 << 10}
	cmd.Stderr = stderr
	cmd.SysProcAttr = childSysProcAttr()
	cmd.WaitDelay = time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: cannot evaluate the file: %v", file, err)
	}
	// Through the reaper's registry: `corral run` as PID 1 must not collect this child's status.
	if err := reaper.Start(cmd); err != nil {
		return nil, nil, fmt.Errorf("%s: cannot start the process that evaluates the file (%s): %v", file, exe, err)
	}
	var killed atomic.Bool
	timer := time.AfterFunc(opt.Timeout+evalKillGrace, func() {
		killed.Store(true)
		_ = cmd.Process.Kill()
	})
	defer timer.Stop()

	var final *evalFrame
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 0, 64<<10), maxEvalOutput)
	for final == nil && sc.Scan() {
		var f evalFrame
		d := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		d.UseNumber()
		if err := d.Decode(&f); err != nil {
			break
		}
		switch {
		case f.Done:
			final = &f
		case f.Console != nil:
			fmt.Fprintln(consoleOutput, *f.Console)
		}
	}
	tooLong := errors.Is(sc.Err(), bufio.ErrTooLong)
	if final == nil {
		_ = cmd.Process.Kill()
	}
	waitErr := cmd.Wait()
	reaper.Release(cmd.Process.Pid)
	timer.Stop()

	switch {
	case final != nil && final.Error != "":
		return nil, nil, errors.New(final.Error)
	case final != nil:
		if root, err = decodeValue(final.Result); err == nil {
			env, err = decodeEnvPairs(final.Env)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: cannot read the evaluation's result: %v", file, err)
		}
		if kind != kindJS {
			env = nil
		}
		return root, env, nil
	case killed.Load():
		return nil, nil, errors.New(timeoutProblem(file, opt.Timeout))
	case ranOutOfMemory(stderr.String()):
		return nil, nil, errors.New(memoryProblem(file, opt.MemoryLimit))
	case tooLong:
		return nil, nil, errors.New(outputProblem(file))
	}
	why := strings.TrimSpace(stderr.String())
	if line, _, _ := strings.Cut(why, "\n"); line != "" {
		why = line
	} else if waitErr != nil {
		why = waitErr.Error()
	} else {
		why = "no result"
	}
	return nil, nil, fmt.Errorf("%s: evaluation failed: %s; nothing was started", file, why)
}

// ranOutOfMemory tells from the evaluation process's stderr whether it ended because it could
// not map memory: the Go runtime's "out of memory" (the heap) and "cannot allocate memory"
// (its own structures); in a binary built with cgo (tests), "pthread_create failed" (a
// thread's stack); with the race detector (tests), its allocations failing with ENOMEM.
func ranOutOfMemory(stderr string) bool {
	for _, s := range []string{"out of memory", "cannot allocate memory", "pthread_create failed", "(errno: 12)", "too many address space collisions"} {
		if strings.Contains(stderr, s) {
			return true
		}
	}
	return false
}

// evalChild is the evaluation process: it reads a request on in, evaluates the file and
// writes its answer on out. It returns the exit code.
func evalChild(in io.Reader, out io.Writer) int {
	var req evalRequest
	if err := json.NewDecoder(in).Decode(&req); err != nil {
		fmt.Fprintf(os.Stderr, "corral: evaluation request: %v\n", err)
		return 2
	}
	if req.Memory <= 0 {
		req.Memory = MaxEvalMemory
	}
	if err := limitMemory(req.Memory); err != nil {
		fmt.Fprintf(os.Stderr, "corral: cannot limit the evaluation's memory: %v\n", err)
		return 2
	}
	// Should the parent be gone without killing this process, it ends itself.
	time.AfterFunc(req.Timeout+evalKillGrace+time.Second, func() { os.Exit(3) })

	frames := &frameWriter{w: bufio.NewWriter(out)}
	consoleOutput = frames
	opt := Options{Environ: req.Environ, Cwd: req.Cwd, Timeout: req.Timeout, argv: req.Argv, pid: req.Pid}
	var root any
	var env map[string]string
	var err error
	switch req.Kind {
	case kindJS:
		root, env, err = evalJSFile(req.File, req.Source, opt)
	case kindJSON:
		root, err = evalJSONFile(req.File, req.Source, opt)
	case kindYAML:
		root, err = parseYAML(req.File, req.Source)
	default:
		err = fmt.Errorf("%s: unknown kind of file %d", req.File, req.Kind)
	}
	root = plain(root)
	switch {
	case err != nil:
		frames.write(evalFrame{Done: true, Error: err.Error()})
	case encodedSizeAtLeast(root)+encodedSizeAtLeast(env) > maxEvalOutput:
		// Said before encoding it, which would take several times its size in memory.
		frames.write(evalFrame{Done: true, Error: outputProblem(req.File)})
	default:
		frames.write(evalFrame{Done: true, Result: encodeValue(root), Env: encodeEnvPairs(env)})
	}
	if frames.err != nil {
		return 2
	}
	return 0
}

// outputProblem is the message for an evaluation whose result is over maxEvalOutput.
func outputProblem(file string) string {
	return fmt.Sprintf("%s: evaluation produced more than %s of configuration (the limit for ecosystem files); nothing was started",
		file, formatSize(maxEvalOutput))
}

// encodedSizeAtLeast is a lower bound of the size of v (plain data, or an environment) as
// encodeValue and JSON render it: the text of its strings, with quotes, and a byte per
// other value and separator.
func encodedSizeAtLeast(v any) int {
	switch x := v.(type) {
	case string:
		return len(x) + 2
	case []any:
		n := 2
		for _, e := range x {
			n += encodedSizeAtLeast(e) + 1
		}
		return n
	case map[string]any:
		n := 2
		for k, e := range x {
			n += len(k) + 3 + encodedSizeAtLeast(e) + 1
		}
		return n
	case map[string]string:
		n := 2
		for k, e := range x {
			n += len(k) + len(e) + 6
		}
		return n
	}
	return 1
}

// frameWriter writes evalFrames as JSON lines; as consoleOutput, it frames console lines.
type frameWriter struct {
	mu  sync.Mutex
	w   *bufio.Writer
	err error
}

func (f *frameWriter) write(frame evalFrame) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, err := json.Marshal(frame)
	if err == nil {
		_, err = f.w.Write(append(b, '\n'))
	}
	if err == nil {
		err = f.w.Flush()
	}
	if err != nil && f.err == nil {
		f.err = err
	}
}

// Write takes one console line (consoleWrite writes each with one call).
func (f *frameWriter) Write(p []byte) (int, error) {
	line := strings.TrimSuffix(string(p), "\n")
	if len(line) > maxConsoleLine {
		cut := maxConsoleLine
		for cut > 0 && !utf8.RuneStart(line[cut]) {
			cut--
		}
		line = fmt.Sprintf("%s... (%d more bytes)", line[:cut], len(line)-cut)
	}
	f.write(evalFrame{Console: &line})
	return len(p), f.err
}

// headBuffer keeps the first max bytes written to it.
type headBuffer struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (h *headBuffer) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if room := h.max - h.buf.Len(); room > 0 {
		h.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (h *headBuffer) String() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.buf.String()
}

// limitMemory bounds the memory this process may still map to budget bytes, and sets the
// GC's soft limit to it.
func limitMemory(budget int64) error {
	debug.SetMemoryLimit(budget)
	return limitAddressSpace(budget)
}

// encodeValue turns plain data (see plain) into JSON that decodeValue turns back into exactly
// the same values: a JSON number is an int64, and the other kinds JSON cannot tell apart or
// carry are one-key objects: {"f": "2.5"} a float64 (NaN and infinities too), {"b": base64}
// a string that is not valid UTF-8, {"js": "a function"} a jsValue, and {"o": [name, value,
// ...]} an object.
func encodeValue(v any) any {
	switch x := v.(type) {
	case nil, bool, int64:
		return x
	case string:
		return encodeString(x)
	case float64:
		return map[string]any{"f": strconv.FormatFloat(x, 'g', -1, 64)}
	case jsValue:
		return map[string]any{"js": x.kind}
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = encodeValue(e)
		}
		return out
	case map[string]any:
		pairs := make([]any, 0, 2*len(x))
		for k, e := range x {
			pairs = append(pairs, encodeString(k), encodeValue(e))
		}
		return map[string]any{"o": pairs}
	}
	return map[string]any{"js": fmt.Sprintf("a %T value", v)}
}

func encodeString(s string) any {
	if utf8.ValidString(s) {
		return s
	}
	return map[string]any{"b": []byte(s)}
}

func encodeEnvPairs(env map[string]string) []any {
	if env == nil {
		return nil
	}
	out := make([]any, 0, 2*len(env))
	for k, v := range env {
		out = append(out, encodeString(k), encodeString(v))
	}
	return out
}

// decodeValue reverses encodeValue, on JSON decoded with UseNumber.
func decodeValue(v any) (any, error) {
	switch x := v.(type) {
	case nil, bool, string:
		return x, nil
	case json.Number:
		return x.Int64()
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			var err error
			if out[i], err = decodeValue(e); err != nil {
				return nil, err
			}
		}
		return out, nil
	case map[string]any:
		if len(x) != 1 {
			break
		}
		switch {
		case x["f"] != nil:
			s, _ := x["f"].(string)
			return strconv.ParseFloat(s, 64)
		case x["b"] != nil:
			return decodeString(x)
		case x["js"] != nil:
			kind, _ := x["js"].(string)
			return jsValue{kind: kind}, nil
		case x["o"] != nil:
			pairs, ok := x["o"].([]any)
			if !ok || len(pairs)%2 != 0 {
				break
			}
			out := make(map[string]any, len(pairs)/2)
			for i := 0; i < len(pairs); i += 2 {
				k, err := decodeString(pairs[i])
				if err != nil {
					return nil, err
				}
				if out[k], err = decodeValue(pairs[i+1]); err != nil {
					return nil, err
				}
			}
			return out, nil
		}
	}
	return nil, fmt.Errorf("unexpected %T in the result", v)
}

func decodeString(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case map[string]any:
		if s, ok := x["b"].(string); ok && len(x) == 1 {
			b, err := base64.StdEncoding.DecodeString(s)
			return string(b), err
		}
	}
	return "", fmt.Errorf("unexpected %T where a string belongs in the result", v)
}

func decodeEnvPairs(list []any) (map[string]string, error) {
	if list == nil {
		return nil, nil
	}
	if len(list)%2 != 0 {
		return nil, errors.New("odd environment list")
	}
	env := make(map[string]string, len(list)/2)
	for i := 0; i < len(list); i += 2 {
		k, err := decodeString(list[i])
		if err != nil {
			return nil, err
		}
		if env[k], err = decodeString(list[i+1]); err != nil {
			return nil, err
		}
	}
	return env, nil
}
