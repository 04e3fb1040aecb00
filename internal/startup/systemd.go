// Package startup generates what `corral startup` installs so that the daemon, and the apps
// it saved, come back at boot.
//
// PM2's systemd unit is Type=forking with a PIDFile: systemd watches a pid file written by a
// daemon that `pm2 resurrect` spawned in the background, boot ordering is only as good as
// that race, and node/nvm upgrades break the baked-in PATH (PM2 issues #3778, #3148).
// corral's unit runs the daemon in the foreground (Type=notify): systemd supervises the
// daemon process itself and considers the service started only when the daemon reports
// READY=1 (sd_notify) after resurrecting the saved list.
package startup

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"unicode"
)

// Options describe the service to generate.
type Options struct {
	Binary      string // absolute path of the corral binary
	User        string
	Home        string // the user's home directory; baked in as HOME when set
	CorralHome  string // CORRAL_HOME; when empty the daemon's default applies
	ServiceName string // default "corral-<user>"
	Path        string // PATH to bake in (so node/python are found at boot)
	WaitIP      bool   // After=/Wants=network-online.target
}

// Name returns the service name without ".service": ServiceName (a ".service" suffix is
// dropped) or "corral-"+User, PM2's "pm2-<user>" convention.
func (o Options) Name() string {
	if o.ServiceName != "" {
		return strings.TrimSuffix(o.ServiceName, ".service")
	}
	return "corral-" + o.User
}

// UnitDir is where system units are installed.
const UnitDir = "/etc/systemd/system"

// UnitPath is where the unit file goes in dir ("" = UnitDir).
func (o Options) UnitPath(dir string) string {
	if dir == "" {
		dir = UnitDir
	}
	return filepath.Join(dir, o.Name()+".service")
}

// Validate reports options that would make a unit systemd rejects or misreads. SystemdUnit
// escapes what it can, but it cannot make these right.
func (o Options) Validate() error {
	var errs []error
	switch {
	case !filepath.IsAbs(o.Binary):
		errs = append(errs, fmt.Errorf("binary %q is not an absolute path", o.Binary))
	case filepath.Clean(o.Binary) != o.Binary:
		errs = append(errs, fmt.Errorf("binary %q is not a clean path (want %q)", o.Binary, filepath.Clean(o.Binary)))
	case strings.ContainsAny(o.Binary, `"'\`):
		// systemd refuses such a command ("Executable name contains special characters").
		errs = append(errs, fmt.Errorf("binary %q: systemd cannot run a command whose path contains quotes or backslashes; install corral elsewhere", o.Binary))
	}
	if o.User == "" {
		errs = append(errs, errors.New("user is empty"))
	} else if strings.ContainsFunc(o.User, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r) || strings.ContainsRune(`/:\"'`, r)
	}) {
		errs = append(errs, fmt.Errorf("user %q is not a valid user name", o.User))
	}
	for _, p := range []struct{ what, v string }{{"home", o.Home}, {"CORRAL_HOME", o.CorralHome}} {
		if p.v != "" && !filepath.IsAbs(p.v) {
			errs = append(errs, fmt.Errorf("%s %q is not an absolute path", p.what, p.v))
		}
	}
	// systemd rejects control characters in command paths and in environment values.
	for _, f := range []struct{ what, v string }{
		{"binary", o.Binary}, {"home", o.Home}, {"CORRAL_HOME", o.CorralHome}, {"PATH", o.Path},
	} {
		if strings.ContainsFunc(f.v, unicode.IsControl) {
			errs = append(errs, fmt.Errorf("%s %q contains control characters", f.what, f.v))
		}
	}
	if name := o.Name(); !validUnitName(name) {
		errs = append(errs, fmt.Errorf("service name %q is not a valid systemd unit name (letters, digits and : - _ . \\ only); set a service name", name))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("startup: %w", err)
	}
	return nil
}

// validUnitName checks the characters systemd allows in a unit name. "@" is left out: it
// would make a template or an instance of one.
func validUnitName(name string) bool {
	if name == "" || len(name)+len(".service") > 255 {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(`:-_.\`, r)) {
			return false
		}
	}
	return true
}

// DocumentationURL is the Documentation= of the unit.
const DocumentationURL = "https://github.com/corral-pm/corral"

// SystemdUnit returns the text of the unit file. Call Validate first: values are quoted and
// escaped for systemd, but an invalid option still yields a unit that systemd rejects.
func SystemdUnit(o Options) string {
	var b strings.Builder
	line := func(s ...string) {
		for _, p := range s {
			b.WriteString(p)
		}
		b.WriteByte('\n')
	}
	bin := o.Binary
	execLine := func(key string, args ...string) {
		words := []string{execWord(bin, true)}
		for _, a := range args {
			words = append(words, execWord(a, false))
		}
		line(key, "=", strings.Join(words, " "))
	}

	line("# ", o.Name(), ".service, written by `corral startup`. Run `corral startup` again rather")
	line("# than editing this file, e.g. after moving corral or upgrading node (PATH is baked in).")
	line("[Unit]")
	line("Description=corral process manager for ", plain(o.User))
	line("Documentation=", DocumentationURL)
	if o.WaitIP {
		line("Wants=network-online.target")
		line("After=network-online.target")
	} else {
		line("After=network.target")
	}
	line()
	line("[Service]")
	line("# The daemon stays in the foreground and tells systemd it is ready (READY=1) once the")
	line("# saved process list has been resurrected.")
	line("Type=notify")
	line("User=", plain(o.User))
	if o.Home != "" {
		line("Environment=", envAssign("HOME", o.Home))
	}
	if o.Path != "" {
		line("Environment=", envAssign("PATH", o.Path))
	}
	if o.CorralHome != "" {
		line("Environment=", envAssign("CORRAL_HOME", o.CorralHome))
	}
	line("LimitNOFILE=infinity")
	line("LimitNPROC=infinity")
	line("LimitCORE=infinity")
	// `corral daemon` is the keeper (package keeper), the daemon's parent: it is the main
	// pid, so it is the one that sends READY=1 (when its daemon says it serves) and
	// STOPPING=1 (NotifyAccess=main); the daemon does not get NOTIFY_SOCKET. On stop,
	// KillMode=mixed sends SIGTERM to the keeper alone, which passes it to the daemon and exits
	// with it; Restart=on-failure covers the keeper itself, which restarts the daemon.
	execLine("ExecStart", "daemon", "--resurrect")
	execLine("ExecReload", "reload", "all")
	execLine("ExecStop", "kill")
	line("Restart=on-failure")
	line("# Stop: `corral kill` stops the apps, each with its own signal and timeout; then only")
	line("# the daemon gets SIGTERM, and whatever still runs after TimeoutStopSec gets SIGKILL.")
	line("KillMode=mixed")
	line("TimeoutStopSec=60")
	line()
	line("[Install]")
	line("WantedBy=multi-user.target")
	return b.String()
}

// plain escapes a value for a setting that is not unquoted by systemd (Description=,
// User=): only specifiers ("%") are expanded there. Control characters, which would end the
// line, are replaced; Validate rejects them.
func plain(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, s)
	return strings.ReplaceAll(s, "%", "%%")
}

// envAssign renders NAME=value for Environment=. The line is unquoted by systemd (see
// "Quoting" in systemd.syntax(7)): an assignment containing white space, quotes, a
// backslash or "=" in its value is put in double quotes as a whole, with \ and " escaped.
// "%" starts a specifier and is doubled; "$" has no special meaning in Environment=.
func envAssign(name, value string) string {
	s := name + "=" + value
	if needsQuotes(s) || strings.Contains(value, "=") {
		s = quote(s)
	}
	return strings.ReplaceAll(s, "%", "%%")
}

// execWord renders one word of an Exec*= command line: quoted like envAssign, with "%"
// doubled, and "$" doubled in arguments, where systemd expands ${VAR} and $VAR. The command
// path is not subject to variable expansion (systemd executes it literally, and reports
// "$$" in it as a missing file), so its "$" is left alone.
func execWord(s string, command bool) string {
	if needsQuotes(s) || s == ";" {
		s = quote(s)
	}
	s = strings.ReplaceAll(s, "%", "%%")
	if !command {
		s = strings.ReplaceAll(s, "$", "$$")
	}
	return s
}

func needsQuotes(s string) bool {
	return s == "" || strings.ContainsFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r) || r == '"' || r == '\'' || r == '\\'
	})
}

// quote double-quotes s with C-style escapes, as systemd unquotes it.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case unicode.IsControl(r) && r < 0x80:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
