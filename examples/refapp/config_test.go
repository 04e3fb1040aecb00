package main

import (
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/corral-pm/corral/examples/refapp/internal/store"
)

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestConfigDefaults(t *testing.T) {
	c, warnings, err := loadConfig(envOf(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != ":5000" || c.DatabaseURL != "" || c.SQLitePath != "refapp.db" || c.CookieName != "connect.sid" ||
		c.MaxAge != 24*time.Hour || c.PruneInterval != 15*time.Minute || c.AppName != "refapp-w0" || c.PoolTotal != 20 {
		t.Errorf("defaults: %+v", c)
	}
	if !c.DemoSecret || len(c.Secrets) != 1 || c.Secrets[0] != demoSecret {
		t.Errorf("SQLite without a secret: demo secret expected, got %v", c.Secrets)
	}
	if c.Workers != runtime.NumCPU() || c.WorkersSource != "runtime.NumCPU()" || c.PoolPerWorker != max(2, 20/runtime.NumCPU()) {
		t.Errorf("workers %d from %s, pool %d", c.Workers, c.WorkersSource, c.PoolPerWorker)
	}
	if want := []store.Seed{{Email: "demo@example.com", Password: "demo-password"}}; !reflect.DeepEqual(c.Seeds, want) {
		t.Errorf("seeds %v", c.Seeds)
	}
	_ = warnings
}

func TestConfigPostgresNeedsSecret(t *testing.T) {
	_, _, err := loadConfig(envOf(map[string]string{"DATABASE_URL": "postgres://x/y"}), nil)
	if err == nil || !strings.Contains(err.Error(), "SESSION_SECRET") {
		t.Errorf("err = %v", err)
	}
	c, _, err := loadConfig(envOf(map[string]string{"DATABASE_URL": "postgres://x/y", "SESSION_SECRET": "s"}), nil)
	if err != nil || c.DemoSecret || !reflect.DeepEqual(c.Secrets, []string{"s"}) {
		t.Errorf("%v %v", c, err)
	}
	// The one-off migration signs nothing: no secret needed.
	if c, _, err := loadConfig(envOf(map[string]string{"DATABASE_URL": "postgres://x/y"}), []string{"-migrate"}); err != nil || !c.MigrateOnly {
		t.Errorf("-migrate without a secret: %v", err)
	}
}

func TestConfigSecrets(t *testing.T) {
	c, warnings, err := loadConfig(envOf(map[string]string{"SESSION_SECRETS": "new secret,old secret", "SESSION_SECRET": "x"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.Secrets, []string{"new secret", "old secret"}) {
		t.Errorf("secrets %q", c.Secrets)
	}
	if !strings.Contains(strings.Join(warnings, "\n"), "SESSION_SECRET is ignored") {
		t.Errorf("warnings %q", warnings)
	}
	if _, _, err := loadConfig(envOf(map[string]string{"SESSION_SECRETS": "a,,b"}), nil); err == nil {
		t.Error("empty secret accepted")
	}
}

func TestConfigPoolSizing(t *testing.T) {
	cases := []struct {
		total, workers string
		want           int
	}{
		{"20", "4", 5},
		{"20", "3", 6},
		{"20", "16", 2}, // min 2
		{"100", "1", 100},
		{"", "4", 5}, // default total 20
	}
	for _, c := range cases {
		env := map[string]string{"WORKERS": c.workers}
		if c.total != "" {
			env["DB_POOL_TOTAL"] = c.total
		}
		cfg, _, err := loadConfig(envOf(env), nil)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.PoolPerWorker != c.want || cfg.WorkersSource != "WORKERS" {
			t.Errorf("DB_POOL_TOTAL=%s WORKERS=%s: %d per worker, want %d", c.total, c.workers, cfg.PoolPerWorker, c.want)
		}
	}
	for _, bad := range []map[string]string{{"WORKERS": "0"}, {"WORKERS": "x"}, {"DB_POOL_TOTAL": "0"}} {
		if _, _, err := loadConfig(envOf(bad), nil); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestConfigInstanceAndPort(t *testing.T) {
	c, _, err := loadConfig(envOf(map[string]string{"NODE_APP_INSTANCE": "3", "PORT": "8080"}), nil)
	if err != nil || c.AppName != "refapp-w3" || c.InstanceRaw != "3" || c.Addr != ":8080" {
		t.Errorf("%+v %v", c, err)
	}
	c, _, _ = loadConfig(envOf(map[string]string{"PORT": "127.0.0.1:0"}), nil)
	if c.Addr != "127.0.0.1:0" {
		t.Errorf("addr %q", c.Addr)
	}
	if _, _, err := loadConfig(envOf(map[string]string{"NODE_APP_INSTANCE": "x"}), nil); err == nil {
		t.Error("bad NODE_APP_INSTANCE accepted")
	}
}

func TestConfigMaxAge(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"86400000": 24 * time.Hour, // milliseconds, as express-session's cookie.maxAge
		"1d":       24 * time.Hour,
		"7d":       7 * 24 * time.Hour,
		"1d12h":    36 * time.Hour,
		"30m":      30 * time.Minute,
		"2500ms":   2500 * time.Millisecond,
	} {
		c, _, err := loadConfig(envOf(map[string]string{"SESSION_MAX_AGE": in}), nil)
		if err != nil || c.MaxAge != want {
			t.Errorf("SESSION_MAX_AGE=%s: %v %v, want %v", in, c.MaxAge, err, want)
		}
	}
	for _, bad := range []string{"0", "-5", "soon", "d"} {
		if _, _, err := loadConfig(envOf(map[string]string{"SESSION_MAX_AGE": bad}), nil); err == nil {
			t.Errorf("SESSION_MAX_AGE=%s accepted", bad)
		}
	}
}

func TestConfigSeeds(t *testing.T) {
	c, _, err := loadConfig(envOf(map[string]string{"SEED_USERS": "a@x:pw1, b@x:p:w2", "DEMO_EMAIL": "d@x", "DEMO_PASSWORD": "dp"}),
		[]string{"-seed-users", "c@x:pw3"})
	if err != nil {
		t.Fatal(err)
	}
	want := []store.Seed{{Email: "d@x", Password: "dp"}, {Email: "a@x", Password: "pw1"}, {Email: "b@x", Password: "p:w2"}, {Email: "c@x", Password: "pw3"}}
	if !reflect.DeepEqual(c.Seeds, want) {
		t.Errorf("seeds %v, want %v", c.Seeds, want)
	}
	c, _, _ = loadConfig(envOf(map[string]string{"DEMO_EMAIL": ""}), nil)
	if len(c.Seeds) != 0 {
		t.Errorf("DEMO_EMAIL= should disable the demo user: %v", c.Seeds)
	}
	if _, _, err := loadConfig(envOf(map[string]string{"SEED_USERS": "nopassword"}), nil); err == nil {
		t.Error("bad SEED_USERS accepted")
	}
}

func TestConfigPrune(t *testing.T) {
	c, _, _ := loadConfig(envOf(map[string]string{"SESSION_PRUNE_INTERVAL": "off"}), nil)
	if c.PruneInterval != 0 {
		t.Errorf("off: %v", c.PruneInterval)
	}
	c, _, _ = loadConfig(envOf(map[string]string{"SESSION_PRUNE_INTERVAL": "1m"}), nil)
	if c.PruneInterval != time.Minute {
		t.Errorf("1m: %v", c.PruneInterval)
	}
}
