package ecosystem

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// The result crosses from the evaluation process as encodeValue gives it, and comes back
// exactly: integers stay integers, floats floats (2.0, -0, NaN and infinities included),
// strings that are not valid UTF-8 keep their bytes, and markers of non-data values stay.
func TestEncodeValueRoundTrip(t *testing.T) {
	in := map[string]any{
		"int":      int64(42),
		"big":      int64(math.MaxInt64),
		"float":    2.0,
		"half":     0.5,
		"negzero":  math.Copysign(0, -1),
		"inf":      math.Inf(-1),
		"nan":      math.NaN(),
		"str":      "héllo",
		"bad\xffk": "bad\xfevalue",
		"nil":      nil,
		"bool":     true,
		"list":     []any{int64(1), "two", 3.5, nil, []any{}, map[string]any{}},
		"fn":       jsValue{kind: "a function"},
		"o":        map[string]any{"f": "not a float", "o": []any{"not an object"}},
	}
	b, err := json.Marshal(encodeValue(in))
	if err != nil {
		t.Fatal(err)
	}
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.UseNumber()
	var wire any
	if err := d.Decode(&wire); err != nil {
		t.Fatal(err)
	}
	out, err := decodeValue(wire)
	if err != nil {
		t.Fatal(err)
	}
	got := out.(map[string]any)
	if f := got["nan"].(float64); !math.IsNaN(f) {
		t.Errorf("NaN came back as %v", f)
	}
	if f := got["negzero"].(float64); f != 0 || !math.Signbit(f) {
		t.Errorf("-0 came back as %v", f)
	}
	delete(got, "nan")
	delete(in, "nan")
	if !reflect.DeepEqual(got, in) {
		t.Errorf("round trip:\n got %#v\nwant %#v", got, in)
	}

	env := map[string]string{"A": "1", "B\xff": "\xfe", "EMPTY": ""}
	pairs, err := json.Marshal(encodeEnvPairs(env))
	if err != nil {
		t.Fatal(err)
	}
	var list []any
	if err := json.Unmarshal(pairs, &list); err != nil {
		t.Fatal(err)
	}
	if back, err := decodeEnvPairs(list); err != nil || !reflect.DeepEqual(back, env) {
		t.Errorf("env round trip: %q, %v", back, err)
	}
}

// What the file sees of the CLI is the CLI's, not the evaluation process's.
func TestLoadSeesTheCLIProcess(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"app.js": "",
		"ecosystem.config.js": `module.exports = {apps: [{script: 'app.js', env: {
  PID: process.pid, ARGV: process.argv.slice(2).join(' '), CWD: process.cwd(), SHELL_VAR: process.env.FROM_SHELL,
}}]};`,
	})
	res := mustLoad(t, filepath.Join(dir, "ecosystem.config.js"), testOptions(dir))
	want := map[string]string{"PID": strconv.Itoa(os.Getpid()), "ARGV": strings.Join(os.Args[1:], " "), "CWD": dir, "SHELL_VAR": "shell"}
	if env := res.Apps[0].Env; !mapsEqual(env, want) {
		t.Errorf("env = %q, want %q", env, want)
	}
}

// Console output is passed on as it comes, a long line cut short.
func TestLoadConsoleOutput(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"app.js": "",
		"ecosystem.config.js": `console.log('one', {a: 1}); console.log(); console.error('x'.repeat(200000));
module.exports = {apps: [{script: 'app.js'}]};`,
	})
	var out strings.Builder
	consoleOutput = &out
	defer func() { consoleOutput = os.Stderr }()
	mustLoad(t, filepath.Join(dir, "ecosystem.config.js"), testOptions(dir))
	want := "one {\"a\":1}\n\n" + strings.Repeat("x", maxConsoleLine) + "... (134464 more bytes)\n"
	if got := out.String(); got != want {
		t.Errorf("console output is %d bytes, want %d: %.80q...", len(got), len(want), got)
	}
}

// raceEnabled is set when the tests run with the race detector.
var raceEnabled = false
