package main

import (
	"errors"
	"flag"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/corral-pm/corral/examples/refapp/internal/store"
)

// demoSecret signs cookies on the SQLite demo when no secret is configured. Never with
// PostgreSQL: there the secret is shared with the Node app and must be given.
const demoSecret = "refapp-demo-secret-not-for-production"

// config is the app's configuration, from the environment (and one flag).
type config struct {
	Addr string // from PORT

	DatabaseURL string // PostgreSQL; empty: SQLite
	SQLitePath  string

	Secrets    []string
	DemoSecret bool // no secret given: the fixed demo secret (SQLite only)

	CookieName     string
	MaxAge         time.Duration
	CookieSecure   bool
	CookieSameSite string
	CookieDomain   string
	Rolling        bool
	PruneInterval  time.Duration // 0: no pruning from this worker

	InstanceRaw string // NODE_APP_INSTANCE as given
	AppName     string // application_name: refapp-w<NODE_APP_INSTANCE, 0 when absent>

	PoolTotal     int
	Workers       int
	WorkersSource string // "WORKERS" or "runtime.NumCPU()"
	PoolPerWorker int

	ExpectedTZ string // DB_TIMEZONE

	Seeds       []store.Seed
	DemoDefault bool // the demo user with its default credentials is among Seeds
	BcryptCost  int

	MigrateOnly bool // -migrate: create the tables, seed the users, exit
}

// loadConfig reads the configuration. getenv is os.LookupEnv in production.
func loadConfig(getenv func(string) (string, bool), args []string) (*config, []string, error) {
	var warnings []string
	env := func(k, def string) string {
		if v, ok := getenv(k); ok && v != "" {
			return v
		}
		return def
	}
	fs := flag.NewFlagSet("refapp", flag.ContinueOnError)
	seedFlag := fs.String("seed-users", "", "extra users to create if missing, email:password[,email:password...] (adds to SEED_USERS)")
	migrate := fs.Bool("migrate", false, "create the tables (the session table as connect-pg-simple's table.sql) and seed the users, then exit: the one-off migration to run before the Node app uses a new database")
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}

	c := &config{MigrateOnly: *migrate}
	port := env("PORT", "5000")
	if _, err := strconv.Atoi(port); err == nil {
		c.Addr = ":" + port
	} else {
		c.Addr = port // host:port
	}

	c.DatabaseURL = env("DATABASE_URL", "")
	c.SQLitePath = env("SQLITE_PATH", "refapp.db")

	// Secrets: SESSION_SECRETS (comma list, the first signs) or SESSION_SECRET. Not trimmed:
	// the HMAC key is the exact bytes Node uses.
	if list := env("SESSION_SECRETS", ""); list != "" {
		c.Secrets = strings.Split(list, ",")
		if s := env("SESSION_SECRET", ""); s != "" && s != c.Secrets[0] {
			warnings = append(warnings, "SESSION_SECRET is ignored: SESSION_SECRETS is set and its first entry signs")
		}
	} else if s := env("SESSION_SECRET", ""); s != "" {
		c.Secrets = []string{s}
	}
	for i, s := range c.Secrets {
		if s == "" {
			return nil, nil, fmt.Errorf("SESSION_SECRETS: entry %d is empty", i+1)
		}
		if strings.TrimSpace(s) != s {
			warnings = append(warnings, fmt.Sprintf("SESSION_SECRETS: entry %d has leading or trailing spaces; they are part of the secret", i+1))
		}
		if len(s) < 32 {
			warnings = append(warnings, fmt.Sprintf("session secret %d is shorter than 32 bytes", i+1))
		}
	}
	if len(c.Secrets) == 0 {
		if c.DatabaseURL != "" && !c.MigrateOnly {
			return nil, nil, errors.New("SESSION_SECRET (or SESSION_SECRETS) is required with DATABASE_URL: it must be the Node app's secret, so that both read each other's cookies")
		}
		c.Secrets, c.DemoSecret = []string{demoSecret}, true
	}

	c.CookieName = env("SESSION_COOKIE_NAME", "connect.sid")
	var err error
	if c.MaxAge, err = parseDuration(env("SESSION_MAX_AGE", "1d")); err != nil || c.MaxAge <= 0 {
		return nil, nil, fmt.Errorf("SESSION_MAX_AGE %q: want a positive duration (86400000 = ms as in express-session's cookie.maxAge, or 1d, 12h, 30m)", env("SESSION_MAX_AGE", ""))
	}
	if c.CookieSecure, err = parseBool(env("SESSION_COOKIE_SECURE", "false")); err != nil {
		return nil, nil, fmt.Errorf("SESSION_COOKIE_SECURE: %w", err)
	}
	c.CookieSameSite = strings.ToLower(env("SESSION_COOKIE_SAMESITE", ""))
	switch c.CookieSameSite {
	case "", "lax", "strict", "none":
	default:
		return nil, nil, fmt.Errorf("SESSION_COOKIE_SAMESITE %q: want lax, strict or none", c.CookieSameSite)
	}
	c.CookieDomain = env("SESSION_COOKIE_DOMAIN", "")
	if c.Rolling, err = parseBool(env("SESSION_ROLLING", "false")); err != nil {
		return nil, nil, fmt.Errorf("SESSION_ROLLING: %w", err)
	}
	if p := env("SESSION_PRUNE_INTERVAL", "15m"); p == "off" || p == "false" || p == "0" {
		c.PruneInterval = 0
	} else if c.PruneInterval, err = parseDuration(p); err != nil || c.PruneInterval <= 0 {
		return nil, nil, fmt.Errorf("SESSION_PRUNE_INTERVAL %q: want a duration (15m) or off", p)
	}

	c.InstanceRaw = env("NODE_APP_INSTANCE", "")
	instance := 0
	if c.InstanceRaw != "" {
		if instance, err = strconv.Atoi(c.InstanceRaw); err != nil || instance < 0 {
			return nil, nil, fmt.Errorf("NODE_APP_INSTANCE %q is not a worker number", c.InstanceRaw)
		}
	}
	c.AppName = "refapp-w" + strconv.Itoa(instance)

	// Pool: a total budget divided by the number of workers, at least 2 each.
	if c.PoolTotal, err = strconv.Atoi(env("DB_POOL_TOTAL", "20")); err != nil || c.PoolTotal < 1 {
		return nil, nil, fmt.Errorf("DB_POOL_TOTAL %q: want a positive number", env("DB_POOL_TOTAL", ""))
	}
	if w := env("WORKERS", ""); w != "" {
		if c.Workers, err = strconv.Atoi(w); err != nil || c.Workers < 1 {
			return nil, nil, fmt.Errorf("WORKERS %q: want a positive number", w)
		}
		c.WorkersSource = "WORKERS"
	} else {
		c.Workers, c.WorkersSource = runtime.NumCPU(), "runtime.NumCPU()"
	}
	c.PoolPerWorker = max(2, c.PoolTotal/c.Workers)
	if c.PoolPerWorker*c.Workers > c.PoolTotal {
		warnings = append(warnings, fmt.Sprintf("%d workers × the minimum of %d connections = %d > DB_POOL_TOTAL=%d", c.Workers, c.PoolPerWorker, c.PoolPerWorker*c.Workers, c.PoolTotal))
	}

	c.ExpectedTZ = env("DB_TIMEZONE", "")

	// Users: the demo user (DEMO_EMAIL set to "" disables it), then SEED_USERS and -seed-users.
	demoEmail, set := getenv("DEMO_EMAIL")
	if !set {
		demoEmail = "demo@example.com"
	}
	if demoEmail != "" {
		pw := env("DEMO_PASSWORD", "demo-password")
		c.Seeds = append(c.Seeds, store.Seed{Email: demoEmail, Password: pw})
		c.DemoDefault = pw == "demo-password"
	}
	for _, list := range []string{env("SEED_USERS", ""), *seedFlag} {
		seeds, err := parseSeeds(list)
		if err != nil {
			return nil, nil, err
		}
		c.Seeds = append(c.Seeds, seeds...)
	}
	if c.BcryptCost, err = strconv.Atoi(env("BCRYPT_COST", strconv.Itoa(bcrypt.DefaultCost))); err != nil ||
		c.BcryptCost < bcrypt.MinCost || c.BcryptCost > bcrypt.MaxCost {
		return nil, nil, fmt.Errorf("BCRYPT_COST: want %d to %d", bcrypt.MinCost, bcrypt.MaxCost)
	}
	return c, warnings, nil
}

// parseSeeds reads "a@x:pw1,b@x:pw2". A password may contain ':' (the first one splits).
func parseSeeds(list string) ([]store.Seed, error) {
	var out []store.Seed
	if strings.TrimSpace(list) == "" {
		return nil, nil
	}
	for _, item := range strings.Split(list, ",") {
		email, pw, ok := strings.Cut(item, ":")
		email = strings.TrimSpace(email)
		if !ok || email == "" || pw == "" {
			return nil, fmt.Errorf("seed users: %q is not email:password", item)
		}
		out = append(out, store.Seed{Email: email, Password: pw})
	}
	return out, nil
}

// parseDuration reads a bare number as milliseconds (express-session's cookie.maxAge unit),
// else a Go duration, with "d" for days ("1d", "7d", "1d12h").
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Duration(n) * time.Millisecond, nil
	}
	var days int64
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.ParseInt(s[:i], 10, 64)
		if err != nil {
			return 0, err
		}
		days, s = n, s[i+1:]
	}
	var rest time.Duration
	if s != "" {
		var err error
		if rest, err = time.ParseDuration(s); err != nil {
			return 0, err
		}
	}
	return time.Duration(days)*24*time.Hour + rest, nil
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "true", "yes", "on":
		return true, nil
	case "0", "false", "no", "off", "":
		return false, nil
	}
	return false, fmt.Errorf("%q is not true or false", s)
}
