package ecosystem

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/corral-pm/corral/internal/spec"
)

// Load reads an ecosystem file and resolves every app in it. On any problem it returns an
// *Error listing all of them and no apps.
func Load(path string, opt Options) (*Result, error) {
	opt = opt.withDefaults()
	file := path
	if !filepath.IsAbs(file) {
		file = filepath.Join(opt.Cwd, file)
	}
	file = filepath.Clean(file)

	kind := loadKind(file)
	if kind == kindUnknown {
		return nil, &Error{Problems: []string{fmt.Sprintf(
			"%s: not an ecosystem file: its name must contain .json, .yml or .yaml, or end in .config.js, .config.cjs or .config.mjs", file)}}
	}
	src, err := readLimited(file)
	if big := (*errFileTooLarge)(nil); errors.As(err, &big) {
		return nil, &Error{Problems: []string{fmt.Sprintf(
			"%s: the file %s allowed for an ecosystem file (real ones are a few KB): check that it is the right file, or split its apps over several files; nothing was started",
			file, big.excess())}, cause: err}
	}
	if err != nil {
		return nil, &Error{Problems: []string{fmt.Sprintf("cannot read ecosystem file: %v", err)}, cause: err}
	}

	return loadSource(file, kind, src, opt)
}

// LoadJSON resolves the apps of an ecosystem file in JSON that has no file of its own (`corral
// start -`, read from stdin): name labels its messages, and relative paths resolve against
// opt.Cwd, as if the file were there.
func LoadJSON(name string, src []byte, opt Options) (*Result, error) {
	opt = opt.withDefaults()
	if len(src) > MaxFileSize {
		return nil, &Error{Problems: []string{fmt.Sprintf("%s: %d bytes, more than the %d allowed for an ecosystem file; nothing was started", name, len(src), MaxFileSize)}}
	}
	return loadSource(filepath.Join(opt.Cwd, name), kindJSON, src, opt)
}

// loadSource evaluates and resolves the source of an ecosystem file.
func loadSource(file string, kind int, src []byte, opt Options) (*Result, error) {
	root, env, err := evaluate(file, kind, src, opt)
	if err != nil {
		return nil, &Error{Problems: []string{err.Error()}}
	}
	baseEnv := copyEnv(opt.Environ)
	if kind == kindJS {
		baseEnv = env // process.env as the file left it
		if baseEnv == nil {
			baseEnv = map[string]string{}
		}
	}

	plainRoot := plain(root)
	entries, warnings, err := appEntries(file, plainRoot)
	if err != nil {
		return nil, err
	}
	deployed := applyDeployEnv(plainRoot, entries, opt.EnvName)
	return resolveFile(file, entries, warnings, baseEnv, opt, deployed)
}

// applyDeployEnv gives every app the env of the file's deploy.<envName> section, under the
// app's own env (and env_<envName>), as PM2 does with `--env production`. It reports whether
// the section had an env.
func applyDeployEnv(root any, entries []appEntry, envName string) bool {
	obj, ok := root.(map[string]any)
	if !ok || envName == "" {
		return false
	}
	deploy, _ := obj["deploy"].(map[string]any)
	target, _ := deploy[envName].(map[string]any)
	denv, ok := target["env"].(map[string]any)
	if !ok {
		return false
	}
	for _, e := range entries {
		merged := maps.Clone(denv)
		if own, ok := e.raw["env"].(map[string]any); ok {
			maps.Copy(merged, own)
		}
		e.raw["env"] = merged
	}
	return true
}

func parseYAML(file string, src []byte) (any, error) {
	var root any
	if err := yaml.Unmarshal(src, &root); err != nil {
		return nil, fmt.Errorf("%s: %v", file, err)
	}
	if root == nil {
		return nil, fmt.Errorf("%s: the file is empty: expected apps: [...]", file)
	}
	return root, nil
}

// appEntry is one app object of a file, with where it sits for error messages.
type appEntry struct {
	path string // "apps[1]", "pm2[0]", "[2]", or "" for a file that is a single app
	num  int    // 1-based position, for apps without a name
	raw  map[string]any
}

// label names the app in messages: `app "web" (apps[1])`, or `app #2 (apps[1])` when it has no
// usable name (none, or one that breaks the rules for names: its problem is reported apart).
func (a appEntry) label() string {
	var who string
	if name, ok := a.raw["name"].(string); ok && name != "" && spec.NameProblem(name) == "" {
		who = fmt.Sprintf("app %q", name)
	} else if a.path == "" {
		who = "app"
	} else {
		who = fmt.Sprintf("app #%d", a.num)
	}
	if a.path != "" {
		who += " (" + a.path + ")"
	}
	return who
}

// appEntries finds the apps in a file's value. Accepted shapes, as in PM2: {apps: [...]},
// {pm2: [...]} (a package.json), a bare array, or a single app object with a script.
func appEntries(file string, root any) ([]appEntry, []string, error) {
	var warnings []string
	var list any
	var listName string
	switch r := root.(type) {
	case []any:
		list, listName = r, ""
	case map[string]any:
		switch {
		case r["apps"] != nil:
			list, listName = r["apps"], "apps"
			for _, k := range sortedKeys(r) {
				switch k {
				case "apps", "deploy":
				case "static":
					warnings = append(warnings, fmt.Sprintf("%s: \"static\" (pm2 serve apps) is not supported by corral; ignored", file))
				default:
					// Other top-level keys are the file's business (YAML anchors, say), but an
					// app attribute here is a mistake: it applies to no app.
					if _, attr := canonicalName[k]; attr || isEnvSection(k) {
						warnings = append(warnings, fmt.Sprintf("%s: top-level %q ignored: app attributes go inside each app of \"apps\"", file, k))
					}
				}
			}
		case r["pm2"] != nil:
			list, listName = r["pm2"], "pm2"
		case hasScript(r):
			return []appEntry{{num: 1, raw: r}}, nil, nil
		default:
			return nil, nil, &Error{Problems: []string{fmt.Sprintf("%s: no apps found: expected {apps: [...]}, a list of apps, or a single app with \"script\"; got an object with %s",
				file, describeKeys(r))}}
		}
	default:
		return nil, nil, &Error{Problems: []string{fmt.Sprintf("%s: no apps found: expected {apps: [...]}, a list of apps, or a single app with \"script\"; got %s",
			file, typeName(root))}}
	}

	// PM2 also takes a lone object where the list belongs.
	if obj, ok := list.(map[string]any); ok {
		return []appEntry{{path: listName, num: 1, raw: obj}}, warnings, nil
	}
	items, ok := list.([]any)
	if !ok {
		return nil, nil, &Error{Problems: []string{fmt.Sprintf("%s: %s: expected an array of apps, got %s", file, orRoot(listName), typeName(list))}}
	}
	if len(items) == 0 {
		return nil, nil, &Error{Problems: []string{fmt.Sprintf("%s: %s is empty: there is no app to start", file, orRoot(listName))}}
	}
	var entries []appEntry
	var problems []string
	for i, item := range items {
		path := fmt.Sprintf("%s[%d]", listName, i)
		obj, ok := item.(map[string]any)
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: app #%d (%s): expected an object with the app's attributes, got %s", file, i+1, path, typeName(item)))
			continue
		}
		entries = append(entries, appEntry{path: path, num: i + 1, raw: obj})
	}
	return entries, warnings, asError(problems)
}

func orRoot(listName string) string {
	if listName == "" {
		return "the list of apps"
	}
	return fmt.Sprintf("%q", listName)
}

func hasScript(obj map[string]any) bool {
	for k := range obj {
		if canonicalName[k] == "script" {
			return true
		}
	}
	return false
}

func describeKeys(obj map[string]any) string {
	keys := sortedKeys(obj)
	if len(keys) == 0 {
		return "no keys"
	}
	if len(keys) > 8 {
		keys = append(keys[:8], "...")
	}
	return "keys " + strings.Join(keys, ", ")
}

// resolveFile normalizes the apps of one file and applies the file-level rules: overrides,
// --only, unique names, the --env check.
//
// Type and value errors are reported for every app, since the whole file is meant to be
// valid. Errors that depend on the machine (a cwd or script that does not exist here) are
// reported only for the apps --only selects, so one file can describe apps for several hosts,
// as it can with PM2.
func resolveFile(file string, entries []appEntry, warnings []string, baseEnv map[string]string, opt Options, deployed bool) (*Result, error) {
	var errs []string
	overrides, overrideWarnings := canonicalize(opt.Overrides)
	for _, w := range overrideWarnings {
		warnings = append(warnings, "command line: "+w)
	}
	if ov, ok := overrides["cwd"]; ok {
		// --cwd is typed relative to where the CLI runs, not to the file.
		if dir, isString := ov.value.(string); isString && dir != "" && !filepath.IsAbs(dir) {
			overrides["cwd"] = attrValue{key: ov.key, value: filepath.Join(opt.Cwd, dir)}
		}
	}
	if ov, ok := overrides["name"]; ok && len(entries) > 1 {
		errs = append(errs, fmt.Sprintf("%s: %s cannot be applied: the file declares %d apps and a name belongs to one app (use --only to pick apps)",
			file, ov.key, len(entries)))
		delete(overrides, "name")
	}

	results := make([]appResult, len(entries))
	for i, entry := range entries {
		src := appSource{
			prefix:  file + ": " + entry.label(),
			file:    file,
			baseDir: filepath.Dir(file),
			baseEnv: baseEnv,
			opt:     opt,
		}
		results[i] = normalizeApp(src, entry.raw, overrides)
	}

	selected := make([]bool, len(results))
	for i, r := range results {
		selected[i] = len(opt.Only) == 0 || slices.Contains(opt.Only, r.name) || (r.declaredName != "" && slices.Contains(opt.Only, r.declaredName))
	}
	for _, want := range opt.Only {
		found := false
		for _, r := range results {
			found = found || r.name == want || r.declaredName == want
		}
		if !found {
			errs = append(errs, fmt.Sprintf("%s: --only %q: no app of that name (apps: %s)", file, want, appNames(results)))
		}
	}

	firstByName := map[string]int{}
	for i, r := range results {
		errs = append(errs, r.decodeErrs...)
		if selected[i] {
			errs = append(errs, r.resolveErrs...)
			warnings = append(warnings, r.warnings...)
		}
		if r.name == "" {
			continue
		}
		if j, dup := firstByName[r.name]; dup {
			errs = append(errs, fmt.Sprintf("%s: app %s is declared twice (%s and %s): app names must be unique",
				file, spec.QuoteName(r.name), entryPath(entries[j]), entryPath(entries[i])))
			continue
		}
		firstByName[r.name] = i
	}

	if opt.EnvName != "" {
		section := "env_" + opt.EnvName
		declared := false
		for _, entry := range entries {
			for k := range entry.raw {
				declared = declared || k == section
			}
		}
		if _, ok := overrides[section]; !ok && !declared && !deployed {
			warnings = append(warnings, fmt.Sprintf("%s: --env %s: no app declares %q; only \"env\" applies", file, opt.EnvName, section))
		}
	}

	if err := asError(errs); err != nil {
		return nil, err
	}
	res := &Result{File: file, Warnings: warnings}
	for i, r := range results {
		if selected[i] {
			res.Apps = append(res.Apps, r.app)
		}
	}
	return res, nil
}

func entryPath(e appEntry) string {
	if e.path == "" {
		return "the file"
	}
	return e.path
}

func appNames(results []appResult) string {
	var names []string
	for _, r := range results {
		switch {
		case r.name == "":
		case spec.NameProblem(r.name) != "":
			names = append(names, spec.QuoteName(r.name))
		default:
			names = append(names, r.name)
		}
	}
	if len(names) == 0 {
		return "none named"
	}
	return strings.Join(names, ", ")
}

// Normalize turns one app's raw attributes into a spec.App. `where` labels errors (e.g.
// "command line"). The CLI uses it for `corral start app.js --name web -i 2 ...`: it builds
// raw from the flags, with PM2 attribute names; values may be plain Go types ([]string, int,
// bool, map[string]string; a time.Duration is taken as that many milliseconds). Relative
// paths resolve against opt.Cwd, and BaseEnv is opt.Environ. opt.Overrides, if any, apply
// over raw as they do over a file's apps.
func Normalize(where string, raw map[string]any, opt Options) (spec.App, []string, error) {
	opt = opt.withDefaults()
	overrides, overrideWarnings := canonicalize(opt.Overrides)
	var warnings []string
	for _, w := range overrideWarnings {
		warnings = append(warnings, "command line: "+w)
	}
	r := normalizeApp(appSource{
		prefix:  where,
		baseDir: opt.Cwd,
		baseEnv: opt.Environ,
		opt:     opt,
	}, raw, overrides)
	warnings = append(warnings, r.warnings...)
	if err := asError(append(r.decodeErrs, r.resolveErrs...)); err != nil {
		return spec.App{}, warnings, err
	}
	return r.app, warnings, nil
}
