// Package ecosystem turns PM2 ecosystem files (JavaScript, JSON or YAML) and command-line
// attributes into fully resolved spec.App values.
//
// It is the only place where PM2's loose input rules live: aliases, camelCase names, numeric
// strings, "max", shell-split strings, paths relative to the file. Everything downstream (the
// daemon, the saved list) sees the resolved form only. A file with any problem yields an error
// listing every problem, and no apps, so a bad file never starts half of its apps. Loading is
// bounded in file size, time and memory, whatever the file does (see limits.go, sandbox.go).
package ecosystem

import (
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/corral-pm/corral/internal/spec"
)

// Options carries what resolution needs from the CLI.
type Options struct {
	Environ   map[string]string // the CLI's environment: process.env inside JS files, and the source of App.BaseEnv
	EnvName   string            // --env <name>: env_<name> is merged over env
	Cwd       string            // the CLI's working directory (relative paths given on the command line)
	LogDir    string            // CORRAL_HOME/logs: default out/error/log file paths
	PidDir    string            // CORRAL_HOME/pids: default pid file paths
	Only      []string          // --only: keep just these apps (error naming any unknown name)
	Overrides map[string]any    // attributes set explicitly on the command line (PM2 names), applied over every app of a file before normalizing; "name" only allowed when the file has one app
	Timeout   time.Duration     // limit for evaluating the file; 0 means DefaultTimeout
	// MemoryLimit bounds the memory evaluating the file may use; 0 means MaxEvalMemory.
	MemoryLimit int64

	// What process.argv and process.pid show; set in the evaluation process to the CLI's.
	argv []string
	pid  int
}

// Result is what a file resolved to.
type Result struct {
	File     string // absolute path of the file loaded ("" for Normalize)
	Apps     []spec.App
	Warnings []string
}

func (o Options) withDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MemoryLimit <= 0 {
		o.MemoryLimit = MaxEvalMemory
	}
	if o.Cwd == "" {
		o.Cwd, _ = os.Getwd()
	} else if !filepath.IsAbs(o.Cwd) {
		if abs, err := filepath.Abs(o.Cwd); err == nil {
			o.Cwd = abs
		}
	}
	if o.Environ == nil {
		o.Environ = map[string]string{}
	}
	return o
}

// fileKinds, by how PM2 recognises them.
const (
	kindUnknown = iota
	kindJSON
	kindYAML
	kindJS
)

// fileKind applies PM2's rule (Common.isConfigFile), by substring of the file name, in PM2's
// order: ".json" (so ".json5" too), ".yml"/".yaml", then ".config.js", ".config.cjs",
// ".config.mjs". Only the base name is looked at, so a directory called "x.json" does not
// turn every script in it into a config file.
func fileKind(path string) int {
	base := filepath.Base(path)
	switch {
	case strings.Contains(base, ".json"):
		return kindJSON
	case strings.Contains(base, ".yml") || strings.Contains(base, ".yaml"):
		return kindYAML
	case strings.Contains(base, ".config.js") || strings.Contains(base, ".config.cjs") || strings.Contains(base, ".config.mjs"):
		return kindJS
	}
	return kindUnknown
}

// IsConfigFile reports whether `corral start <path>` should load path as an ecosystem file
// rather than start it as a script: PM2's rule, by substring of the file name.
func IsConfigFile(path string) bool { return fileKind(path) != kindUnknown }

// loadKind is fileKind, plus any .js/.cjs/.mjs file: Load is only called on files meant as
// ecosystem files, so "pm2.js" passed explicitly is evaluated rather than refused.
func loadKind(path string) int {
	if k := fileKind(path); k != kindUnknown {
		return k
	}
	switch filepath.Ext(path) {
	case ".js", ".cjs", ".mjs":
		return kindJS
	}
	return kindUnknown
}

func copyEnv(env map[string]string) map[string]string {
	out := make(map[string]string, len(env))
	for k, v := range env {
		out[k] = v
	}
	return out
}
