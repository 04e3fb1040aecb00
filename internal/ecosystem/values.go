package ecosystem

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/corral-pm/corral/internal/spec"
)

// Raw attribute values come from three places: goja (int64, float64, string, bool, []any,
// map[string]any), YAML (int, uint64, map[any]any, ...) and the CLI (whatever Go types its
// flags produce). plain folds them all into one small set of types so the coercions below only
// deal with nil, bool, string, int64, float64, []any, map[string]any and the jsValue marker.

// jsValue stands for a JavaScript value that has no plain-data form (a function, a Date, a
// Promise...). It is kept rather than dropped so the error can say what was found.
type jsValue struct{ kind string }

func plain(v any) any {
	switch x := v.(type) {
	case nil, bool, string, int64, float64, jsValue:
		return x
	case time.Duration:
		// The CLI may hand over parsed durations; attributes are milliseconds.
		return x.Milliseconds()
	case time.Time:
		// YAML reads an unquoted 2024-01-01 as a timestamp; in an ecosystem file it is text
		// (a release date in env, say), so give it back as written as far as possible.
		if x.Equal(x.Truncate(24*time.Hour)) && x.Location() == time.UTC {
			return x.Format(time.DateOnly)
		}
		return x.Format(time.RFC3339Nano)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = plain(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = plain(e)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[fmt.Sprint(k)] = plain(e)
		}
		return out
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		u := rv.Uint()
		if u > math.MaxInt64 {
			return float64(u)
		}
		return int64(u)
	case reflect.Float32, reflect.Float64:
		return rv.Float()
	case reflect.String:
		return rv.String()
	case reflect.Bool:
		return rv.Bool()
	case reflect.Slice, reflect.Array:
		out := make([]any, rv.Len())
		for i := range out {
			out[i] = plain(rv.Index(i).Interface())
		}
		return out
	case reflect.Map:
		out := make(map[string]any, rv.Len())
		iter := rv.MapRange()
		for iter.Next() {
			out[fmt.Sprint(iter.Key().Interface())] = plain(iter.Value().Interface())
		}
		return out
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return nil
		}
		return plain(rv.Elem().Interface())
	}
	return jsValue{kind: fmt.Sprintf("a Go %T", v)}
}

// typeName describes a plain value for error messages ("got an object").
func typeName(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return fmt.Sprintf("a boolean (%t)", x)
	case string:
		return fmt.Sprintf("a string (%q)", x)
	case int64, float64:
		return fmt.Sprintf("a number (%s)", formatNumber(x))
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	case jsValue:
		return x.kind
	}
	return fmt.Sprintf("a %T", v)
}

func typeErr(expected string, v any) error {
	return fmt.Errorf("expected %s, got %s", expected, typeName(v))
}

// formatNumber renders a number as JavaScript's String() would for ordinary values: no
// trailing ".0", no exponent for everyday magnitudes.
func formatNumber(v any) string {
	switch x := v.(type) {
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		switch {
		case math.IsNaN(x):
			return "NaN"
		case math.IsInf(x, 1):
			return "Infinity"
		case math.IsInf(x, -1):
			return "-Infinity"
		case x == math.Trunc(x) && math.Abs(x) < 1e21:
			return strconv.FormatFloat(x, 'f', -1, 64)
		}
		return strconv.FormatFloat(x, 'g', -1, 64)
	}
	return fmt.Sprint(v)
}

// wholeNumber returns v as an integer when it is a number without a fraction.
func wholeNumber(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case float64:
		if x == math.Trunc(x) && !math.IsInf(x, 0) && math.Abs(x) < 1<<53 {
			return int64(x), true
		}
	}
	return 0, false
}

func asString(v any) (string, error) {
	if s, ok := v.(string); ok {
		return s, nil
	}
	return "", typeErr("a string", v)
}

// asBool accepts booleans and, as PM2's schema coercion does, the strings "true" and "false".
func asBool(v any) (bool, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case string:
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
	}
	return false, typeErr("true or false", v)
}

// asInt accepts whole numbers and numeric strings ("16"), as PM2 coerces them.
func asInt(v any) (int64, error) {
	if n, ok := wholeNumber(v); ok {
		return n, nil
	}
	if s, ok := v.(string); ok {
		if n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64); err == nil {
			return n, nil
		}
		return 0, fmt.Errorf("%q is not a whole number", s)
	}
	if _, ok := v.(float64); ok {
		return 0, fmt.Errorf("%s is not a whole number", formatNumber(v))
	}
	return 0, typeErr("a whole number", v)
}

func asNonNegativeInt(v any) (int, error) {
	n, err := asInt(v)
	if err != nil {
		return 0, err
	}
	if n < 0 || n > math.MaxInt32 {
		return 0, fmt.Errorf("%d is out of range: use a number from 0 up", n)
	}
	return int(n), nil
}

// asMillis reads a duration: a number of milliseconds, or a string spec.ParseMillis accepts
// ("1600", "500ms", "10s", "2m").
func asMillis(v any) (spec.Millis, error) {
	if f, ok := numberAsFloat(v); ok {
		if f < 0 || math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, fmt.Errorf("%s is not a duration: use a number of milliseconds from 0 up, or a value like \"10s\"", formatNumber(v))
		}
		return spec.Millis(math.Round(f)), nil
	}
	if s, ok := v.(string); ok {
		return spec.ParseMillis(s)
	}
	return 0, typeErr(`a duration (milliseconds, or a string like "10s")`, v)
}

func numberAsFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}

// asSize reads a byte count: a number of bytes, or a string spec.ParseSize accepts ("300M").
func asSize(v any) (int64, error) {
	switch x := v.(type) {
	case int64:
		if x < 0 {
			return 0, fmt.Errorf("%d is not a size: use bytes or a value like \"300M\" or \"1G\"", x)
		}
		return x, nil
	case float64:
		if x < 0 || math.IsNaN(x) || math.IsInf(x, 0) {
			return 0, fmt.Errorf("%s is not a size: use bytes or a value like \"300M\" or \"1G\"", formatNumber(x))
		}
		return int64(x), nil
	case string:
		return spec.ParseSize(x)
	}
	return 0, typeErr(`a size (bytes, or a string like "300M")`, v)
}

// asWords reads a list of words: an array (numbers and booleans are stringified, since
// `args: ["--port", 3000]` is common) or a string split shell-style, as PM2 splits "array"
// attributes given as strings.
func asWords(v any) ([]string, error) {
	switch x := v.(type) {
	case string:
		return SplitShellWords(x)
	case []any:
		out := make([]string, 0, len(x))
		for i, e := range x {
			s, err := scalarString(e)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, typeErr("a string or an array of strings", v)
}

// asStringList reads a string or an array of strings, without splitting a lone string.
func asStringList(v any) ([]string, error) {
	switch x := v.(type) {
	case string:
		return []string{x}, nil
	case []any:
		out := make([]string, 0, len(x))
		for i, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("[%d]: %w", i, typeErr("a string", e))
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, typeErr("a string or an array of strings", v)
}

// scalarString stringifies a string, number or boolean.
func scalarString(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	case int64, float64:
		return formatNumber(x), nil
	}
	return "", typeErr("a string, number or boolean", v)
}

// envValue stringifies an environment value the way PM2 hands env to a process: strings as
// they are, numbers without a trailing ".0", booleans as "true"/"false", objects and arrays
// as JSON. ok is false for null/undefined, which leave the variable out.
func envValue(v any) (s string, ok bool, err error) {
	switch x := v.(type) {
	case nil:
		return "", false, nil
	case string, bool, int64, float64:
		s, err := scalarString(x)
		return s, true, err
	case []any, map[string]any:
		b, err := json.Marshal(x)
		if err != nil {
			return "", false, err
		}
		return string(b), true, nil
	}
	return "", false, typeErr("a string, number, boolean, object or array", v)
}

// asEnv reads an environment object ({NAME: value}) into a map; null values are reported in
// unset so an env_<name> section can remove a variable that env declares.
func asEnv(v any) (set map[string]string, unset []string, err error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, nil, typeErr("an object of NAME: value pairs", v)
	}
	set = make(map[string]string, len(obj))
	var problems []string
	for _, k := range sortedKeys(obj) {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			problems = append(problems, fmt.Sprintf("%q is not a valid variable name (it must be non-empty and contain no '=')", k))
			continue
		}
		s, ok, err := envValue(obj[k])
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("%s: %v", k, err))
		case !ok:
			unset = append(unset, k)
		case strings.ContainsRune(s, 0):
			problems = append(problems, fmt.Sprintf("%s: the value contains a NUL byte", k))
		default:
			set[k] = s
		}
	}
	if len(problems) > 0 {
		return nil, nil, fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return set, unset, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
