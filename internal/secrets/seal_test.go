package secrets

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

func newSealer(t *testing.T) *Sealer {
	t.Helper()
	s, err := OpenSealer(filepath.Join(t.TempDir(), "secret.key"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var testEnv = map[string]string{
	"DATABASE_URL":   "postgres://app:s3cret@db:5432/x",
	"SESSION_SECRET": "keyboard cat",
	"API_KEY":        "", // empty secret: nothing to hide
	"NODE_ENV":       "production",
	"PATH":           "/usr/local/bin:/usr/bin:/bin",
	"LOOKS_SEALED":   SealedPrefix + "not really",
}

func TestSealOpenRoundTrip(t *testing.T) {
	s := newSealer(t)
	sealed := s.SealEnv(testEnv)
	for k, v := range testEnv {
		got := sealed[k]
		switch k {
		case "DATABASE_URL", "SESSION_SECRET", "LOOKS_SEALED":
			if !IsSealed(got) || strings.Contains(got, v[len(v)-4:]) {
				t.Errorf("%s not sealed: %q", k, got)
			}
		default:
			if got != v {
				t.Errorf("%s = %q, want it unchanged (%q)", k, got, v)
			}
		}
	}
	if reflect.DeepEqual(sealed, testEnv) {
		t.Fatal("SealEnv returned its input")
	}
	if testEnv["SESSION_SECRET"] != "keyboard cat" {
		t.Fatal("SealEnv modified its argument")
	}

	opened, err := s.OpenEnv(sealed)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(opened, testEnv) {
		t.Errorf("OpenEnv(SealEnv(env)) = %v, want %v", opened, testEnv)
	}

	// Each sealing uses a fresh nonce: equal inputs give different outputs.
	if again := s.SealEnv(testEnv); again["SESSION_SECRET"] == sealed["SESSION_SECRET"] {
		t.Error("two sealings of the same value are identical (nonce reuse?)")
	}

	// A second Sealer on the same key file opens what the first sealed.
	s2, err := OpenSealer(s.KeyPath())
	if err != nil {
		t.Fatal(err)
	}
	if opened, err := s2.OpenEnv(sealed); err != nil || !reflect.DeepEqual(opened, testEnv) {
		t.Errorf("reopened key: OpenEnv = %v, %v", opened, err)
	}

	if s.SealEnv(nil) != nil {
		t.Error("SealEnv(nil) != nil")
	}
	if m, err := s.OpenEnv(nil); m != nil || err != nil {
		t.Errorf("OpenEnv(nil) = %v, %v", m, err)
	}
}

func TestOpenEnvFailures(t *testing.T) {
	s := newSealer(t)
	sealed := s.SealEnv(testEnv)

	flip := func(v string) string {
		raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(v, SealedPrefix))
		if err != nil {
			t.Fatal(err)
		}
		raw[len(raw)/2] ^= 1
		return SealedPrefix + base64.StdEncoding.EncodeToString(raw)
	}
	for _, tc := range []struct {
		name   string
		mutate func(env map[string]string)
		bad    string // variables the error must name
	}{
		{"tampered ciphertext", func(env map[string]string) { env["SESSION_SECRET"] = flip(env["SESSION_SECRET"]) }, "SESSION_SECRET"},
		{"truncated", func(env map[string]string) { env["DATABASE_URL"] = env["DATABASE_URL"][:30] }, "DATABASE_URL"},
		{"not base64", func(env map[string]string) { env["DATABASE_URL"] = SealedPrefix + "%%%" }, "DATABASE_URL"},
		{"moved to another variable", func(env map[string]string) {
			env["SESSION_SECRET"], env["DATABASE_URL"] = env["DATABASE_URL"], env["SESSION_SECRET"]
		}, "DATABASE_URL, SESSION_SECRET"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := make(map[string]string, len(sealed))
			for k, v := range sealed {
				env[k] = v
			}
			tc.mutate(env)
			got, err := s.OpenEnv(env)
			if err == nil {
				t.Fatalf("OpenEnv succeeded: %v", got)
			}
			if got != nil {
				t.Errorf("OpenEnv returned a map with its error: %v", got)
			}
			if msg := err.Error(); !strings.Contains(msg, tc.bad) || !strings.Contains(msg, s.KeyPath()) || !strings.Contains(msg, "may have changed") {
				t.Errorf("error %q should name %s and the key file", msg, tc.bad)
			}
		})
	}
}

func TestOpenEnvWrongKey(t *testing.T) {
	sealed := newSealer(t).SealEnv(testEnv)
	other := newSealer(t)
	if _, err := other.OpenEnv(sealed); err == nil {
		t.Fatal("a different key opened the values")
	} else if !strings.Contains(err.Error(), "DATABASE_URL, LOOKS_SEALED, SESSION_SECRET") {
		t.Errorf("error should name every variable that failed: %v", err)
	}
}

func TestOpenSealerCreatesKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "home") // missing directory is created
	path := filepath.Join(dir, "secret.key")
	if _, err := OpenSealer(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Size() != KeySize {
		t.Errorf("key file mode %v size %d, want 0600 and %d", fi.Mode().Perm(), fi.Size(), KeySize)
	}
	if di, err := os.Stat(dir); err != nil || di.Mode().Perm() != 0o700 {
		t.Errorf("key directory: %v, %v; want mode 0700", di.Mode().Perm(), err)
	}
	key1, _ := os.ReadFile(path)
	if _, err := OpenSealer(path); err != nil {
		t.Fatal(err)
	}
	if key2, _ := os.ReadFile(path); !bytes.Equal(key1, key2) {
		t.Error("opening an existing key file rewrote it")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}

// Processes starting at once must agree on one key: otherwise values sealed by one would be
// unreadable after the other's key replaced it.
func TestOpenSealerConcurrentCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret.key")
	const n = 16
	sealers := make([]*Sealer, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			s, err := OpenSealer(path)
			if err != nil {
				t.Error(err)
			}
			sealers[i] = s
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	sealed := sealers[0].SealEnv(testEnv)
	for i, s := range sealers {
		if _, err := s.OpenEnv(sealed); err != nil {
			t.Errorf("sealer %d has another key: %v", i, err)
		}
	}
}

func TestOpenSealerBadKeyFile(t *testing.T) {
	for _, tc := range []struct {
		name    string
		data    []byte
		mode    os.FileMode
		wantErr []string
	}{
		{"group readable", make([]byte, KeySize), 0o640, []string{"0640", "chmod 600"}},
		{"world readable", make([]byte, KeySize), 0o644, []string{"0644", "chmod 600"}},
		{"group writable", make([]byte, KeySize), 0o620, []string{"chmod 600"}},
		{"too short", make([]byte, 16), 0o600, []string{"16 bytes, want 32", "restore it"}},
		{"too long", make([]byte, 33), 0o600, []string{"33 bytes", "restore it"}},
		{"empty", nil, 0o600, []string{"0 bytes"}},
		{"owner read only is fine", make([]byte, KeySize), 0o400, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "secret.key")
			if err := os.WriteFile(path, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			_, err := OpenSealer(path)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("OpenSealer accepted the key file")
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if data, _ := os.ReadFile(path); !bytes.Equal(data, tc.data) {
				t.Error("a bad key file was modified")
			}
		})
	}

	t.Run("directory", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "secret.key")
		if err := os.Mkdir(path, 0o700); err != nil {
			t.Fatal(err)
		}
		if _, err := OpenSealer(path); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("OpenSealer(directory) = %v", err)
		}
	})
}
