package startup

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestSystemdUnitGolden(t *testing.T) {
	for _, tc := range []struct {
		golden string
		opts   Options
	}{
		{"basic.service", Options{
			Binary:     "/usr/local/bin/corral",
			User:       "alice",
			Home:       "/home/alice",
			CorralHome: "/home/alice/.corral",
			Path:       "/home/alice/.nvm/versions/node/v20.11.1/bin:/usr/local/bin:/usr/bin:/bin",
		}},
		{"waitip.service", Options{
			Binary:      "/usr/local/bin/corral",
			User:        "deploy",
			Home:        "/srv/deploy",
			CorralHome:  "/srv/deploy/.corral",
			ServiceName: "corral-web",
			Path:        "/usr/local/bin:/usr/bin:/bin",
			WaitIP:      true,
		}},
		{"spaces.service", Options{
			Binary:     "/opt/my apps/corral",
			User:       "bob",
			Home:       "/home/bob smith",
			CorralHome: "/home/bob smith/.corral",
			Path:       "/home/bob smith/node 20/bin:/usr/bin:/bin",
		}},
		{"minimal.service", Options{ // no HOME, PATH or CORRAL_HOME lines
			Binary: "/usr/bin/corral",
			User:   "root",
		}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			if err := tc.opts.Validate(); err != nil {
				t.Fatal(err)
			}
			got := SystemdUnit(tc.opts)
			path := filepath.Join("testdata", tc.golden)
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("SystemdUnit differs from %s (run go test -update if intended):\n%s", path, got)
			}
		})
	}
}

func TestName(t *testing.T) {
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{User: "alice"}, "corral-alice"},
		{Options{User: "alice", ServiceName: "apps"}, "apps"},
		{Options{User: "alice", ServiceName: "apps.service"}, "apps"},
	} {
		if got := tc.o.Name(); got != tc.want {
			t.Errorf("%+v.Name() = %q, want %q", tc.o, got, tc.want)
		}
	}
	if got := (Options{User: "alice"}).UnitPath(""); got != "/etc/systemd/system/corral-alice.service" {
		t.Errorf("UnitPath = %q", got)
	}
}

func TestValidate(t *testing.T) {
	good := Options{Binary: "/usr/bin/corral", User: "alice", Home: "/home/alice", CorralHome: "/home/alice/.corral", Path: "/usr/bin"}
	for _, tc := range []struct {
		name   string
		mutate func(*Options)
		errHas string // "" when valid
	}{
		{"good", func(*Options) {}, ""},
		{"spaces are fine", func(o *Options) { o.Binary, o.Path = "/opt/my apps/corral", "/a b:/c" }, ""},
		{"relative binary", func(o *Options) { o.Binary = "corral" }, "not an absolute path"},
		{"unclean binary", func(o *Options) { o.Binary = "/usr/bin/../bin/corral" }, "not a clean path"},
		{"quote in binary", func(o *Options) { o.Binary = "/opt/it's/corral" }, "quotes or backslashes"},
		{"backslash in binary", func(o *Options) { o.Binary = `/opt/a\b/corral` }, "quotes or backslashes"},
		{"no user", func(o *Options) { o.User = "" }, "user is empty"},
		{"user with space", func(o *Options) { o.User = "a b" }, "not a valid user name"},
		{"relative home", func(o *Options) { o.Home = "home/alice" }, "home \"home/alice\" is not an absolute path"},
		{"relative corral home", func(o *Options) { o.CorralHome = ".corral" }, "CORRAL_HOME"},
		{"newline in PATH", func(o *Options) { o.Path = "/usr/bin\nExecStartPre=/bin/sh" }, "control characters"},
		{"bad unit name", func(o *Options) { o.ServiceName = "corral@x" }, "not a valid systemd unit name"},
		{"user makes a bad unit name", func(o *Options) { o.User = "host$" }, "set a service name"},
		{"user with bad unit name but service name set", func(o *Options) { o.User, o.ServiceName = "host$", "corral-host" }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := good
			tc.mutate(&o)
			err := o.Validate()
			switch {
			case tc.errHas == "" && err != nil:
				t.Errorf("Validate() = %v", err)
			case tc.errHas != "" && (err == nil || !strings.Contains(err.Error(), tc.errHas)):
				t.Errorf("Validate() = %v, want an error containing %q", err, tc.errHas)
			}
		})
	}
}

// hostile holds every character systemd treats specially in the settings corral writes.
var hostile = Options{
	Binary:     `/opt/my apps/100% $x ${HOME};/corral`,
	User:       "bob",
	Home:       "/home/bob smith",
	CorralHome: `/home/bob smith/.corral %h ${HOME} "q" it's\ a=b`,
	Path:       "/home/bob smith/node 20/bin:/usr/bin:/bin",
}

// TestQuotingRoundTrip reads the unit back the way systemd does and checks that every value
// arrives intact: paths with spaces, quotes, backslashes, "%" and "$".
func TestQuotingRoundTrip(t *testing.T) {
	for _, o := range []Options{hostile, {Binary: "/usr/bin/corral", User: "alice", Path: "/a:/b", CorralHome: "/c"}} {
		unit := SystemdUnit(o)
		env := map[string]string{}
		execs := map[string][]string{}
		for _, ln := range strings.Split(unit, "\n") {
			key, val, ok := strings.Cut(ln, "=")
			if !ok || strings.HasPrefix(ln, "#") {
				continue
			}
			switch {
			case key == "Environment":
				words, err := systemdUnquote(unspecify(val))
				if err != nil {
					t.Fatalf("%s: %v", ln, err)
				}
				for _, w := range words {
					k, v, _ := strings.Cut(w, "=")
					env[k] = v
				}
			case strings.HasPrefix(key, "Exec"):
				words, err := systemdUnquote(unspecify(val))
				if err != nil {
					t.Fatalf("%s: %v", ln, err)
				}
				for i := 1; i < len(words); i++ { // $$ is unescaped in arguments only
					words[i] = strings.ReplaceAll(words[i], "$$", "$")
				}
				execs[key] = words
			}
		}
		wantEnv := map[string]string{"PATH": o.Path, "CORRAL_HOME": o.CorralHome}
		if o.Home != "" {
			wantEnv["HOME"] = o.Home
		}
		if !reflect.DeepEqual(env, wantEnv) {
			t.Errorf("Environment read back as %q, want %q\n%s", env, wantEnv, unit)
		}
		wantExec := map[string][]string{
			"ExecStart":  {o.Binary, "daemon", "--resurrect"},
			"ExecReload": {o.Binary, "reload", "all"},
			"ExecStop":   {o.Binary, "kill"},
		}
		if !reflect.DeepEqual(execs, wantExec) {
			t.Errorf("Exec lines read back as %q, want %q\n%s", execs, wantExec, unit)
		}
	}
}

func TestSpacesAreQuoted(t *testing.T) {
	unit := SystemdUnit(Options{
		Binary: "/opt/my apps/corral", User: "bob", Home: "/home/bob smith",
		CorralHome: "/home/bob smith/.corral", Path: "/home/bob smith/bin:/usr/bin",
	})
	for _, want := range []string{
		`Environment="HOME=/home/bob smith"` + "\n",
		`Environment="PATH=/home/bob smith/bin:/usr/bin"` + "\n",
		`Environment="CORRAL_HOME=/home/bob smith/.corral"` + "\n",
		`ExecStart="/opt/my apps/corral" daemon --resurrect` + "\n",
		`ExecReload="/opt/my apps/corral" reload all` + "\n",
		`ExecStop="/opt/my apps/corral" kill` + "\n",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q:\n%s", want, unit)
		}
	}
}

// TestSystemdAnalyzeVerify has systemd itself parse the generated unit, when systemd-analyze
// is installed: no warning about quoting, escapes or syntax may appear.
func TestSystemdAnalyzeVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed")
	}
	u, err := user.Current()
	if err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	// verify checks that the command exists, so give it a real one, in a hostile directory.
	binDir := filepath.Join(dir, `my apps 100% $x ${HOME};`)
	if err := os.Mkdir(binDir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(binDir, "corral")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, waitIP := range []bool{false, true} {
		o := hostile
		o.Binary, o.User, o.ServiceName, o.WaitIP = bin, u.Username, "corral-test", waitIP
		if err := o.Validate(); err != nil {
			t.Fatal(err)
		}
		unitFile := filepath.Join(dir, o.Name()+".service")
		if err := os.WriteFile(unitFile, []byte(SystemdUnit(o)), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(analyze, "verify", "--man=no", unitFile)
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stderr, &stderr
		if err := cmd.Run(); err != nil || stderr.Len() > 0 {
			t.Errorf("systemd-analyze verify: %v\n%s\n%s", err, stderr.String(), SystemdUnit(o))
		}
	}
}

// unspecify resolves the only specifier the generator writes, "%%".
func unspecify(s string) string { return strings.ReplaceAll(s, "%%", "%") }

// systemdUnquote splits a value into words as systemd's extract_first_word does with
// EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE, for the escapes the generator emits.
func systemdUnquote(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	var q byte // current quote, or 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			if i+1 >= len(s) {
				return nil, strconv.ErrSyntax
			}
			i++
			switch e := s[i]; e {
			case 'n':
				cur.WriteByte('\n')
			case 't':
				cur.WriteByte('\t')
			case 's':
				cur.WriteByte(' ')
			case 'x':
				if i+2 >= len(s) {
					return nil, strconv.ErrSyntax
				}
				n, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
				if err != nil {
					return nil, err
				}
				cur.WriteByte(byte(n))
				i += 2
			case '\\', '"', '\'':
				cur.WriteByte(e)
			default:
				return nil, strconv.ErrSyntax
			}
			inWord = true
		case q != 0:
			if c == q {
				q = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '"' || c == '\'':
			q, inWord = c, true
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if q != 0 {
		return nil, strconv.ErrSyntax
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}
