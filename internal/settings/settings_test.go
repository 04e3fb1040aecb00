package settings

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		key, value string
		wantErr    string // "" = accepted
	}{
		{HTTPListen, "127.0.0.1:9615", ""},
		{HTTPListen, "localhost:0", ""},
		{HTTPListen, "[::1]:9615", ""},
		{HTTPListen, "0.0.0.0:9615", ""},
		{HTTPListen, "", ""},
		{HTTPListen, "9615", "not host:port"},
		{HTTPListen, ":9615", "no host"},
		{HTTPListen, "127.0.0.1:http", "is not a number"},
		{HTTPListen, "127.0.0.1:70000", "is not a number"},
		{"http.lsten", "127.0.0.1:9615", `unknown setting "http.lsten"`},
	} {
		err := Check(tc.key, tc.value)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("Check(%q, %q) = %v, want nil", tc.key, tc.value, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("Check(%q, %q) = %v, want %q", tc.key, tc.value, err, tc.wantErr)
		case tc.wantErr != "" && tc.key == HTTPListen && !strings.Contains(err.Error(), HTTPListen):
			t.Errorf("Check(%q, %q) = %v: does not name the setting", tc.key, tc.value, err)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:9615": true, "127.1.2.3:1": true, "[::1]:9615": true, "localhost:9615": true,
		"0.0.0.0:9615": false, "[::]:9615": false, "10.0.0.1:9615": false, "example.com:9615": false,
	} {
		if got := IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

// TestListen: the environment variable, when set (even empty), wins over the file.
func TestListen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "settings.json")
	if err := Save(path, map[string]string{HTTPListen: "127.0.0.1:9615"}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("saved settings: %v %v", fi, err)
	}
	for _, tc := range []struct {
		name     string
		env      *string
		want     string
		wantFrom string
	}{
		{"file", nil, "127.0.0.1:9615", "setting " + HTTPListen},
		{"env", ptr("127.0.0.1:1"), "127.0.0.1:1", EnvHTTPListen},
		{"env empty turns it off", ptr(""), "", EnvHTTPListen},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != nil {
				t.Setenv(EnvHTTPListen, *tc.env)
			} else {
				t.Setenv(EnvHTTPListen, "")
				os.Unsetenv(EnvHTTPListen)
			}
			got, from, err := Listen(path)
			if err != nil || got != tc.want || from != tc.wantFrom {
				t.Errorf("Listen = %q, %q, %v; want %q, %q", got, from, err, tc.want, tc.wantFrom)
			}
		})
	}
	t.Setenv(EnvHTTPListen, "nope")
	if _, _, err := Listen(path); err == nil || !strings.Contains(err.Error(), EnvHTTPListen) {
		t.Errorf("a bad %s: %v, want an error naming it", EnvHTTPListen, err)
	}
	os.Unsetenv(EnvHTTPListen)
	if got, _, err := Listen(filepath.Join(t.TempDir(), "none.json")); got != "" || err != nil {
		t.Errorf("no file: %q", got)
	}
}

func ptr(s string) *string { return &s }
