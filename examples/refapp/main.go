// Command refapp is corral's reference web app: the deployment's Express app in miniature, in
// Go. It logs users in and out with sessions in PostgreSQL that the Node app (express-session +
// connect-pg-simple + passport) reads and writes too: same table, same signed connect.sid
// cookie, same secrets, so any worker of either app serves any request.
//
// Routes: POST /api/auth/login, POST /api/auth/logout, GET /api/me, GET /api/health.
// Configuration: see README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/corral-pm/corral/examples/refapp/internal/app"
	"github.com/corral-pm/corral/examples/refapp/internal/session"
	"github.com/corral-pm/corral/examples/refapp/internal/store"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("worker", os.Getenv("NODE_APP_INSTANCE"), "pid", os.Getpid())
	if err := run(os.Args[1:], os.LookupEnv, log); err != nil {
		log.Error("refapp: " + err.Error())
		os.Exit(1)
	}
}

// backend is what run needs from a store beyond the app's Backend.
type backend interface {
	app.Backend
	Migrate(ctx context.Context) error
	Seed(ctx context.Context, seeds []store.Seed, cost int) (store.SeedResult, error)
	Close()
}

func run(args []string, getenv func(string) (string, bool), log *slog.Logger) error {
	cfg, warnings, err := loadConfig(getenv, args)
	if err != nil {
		return err
	}
	for _, w := range warnings {
		log.Warn(w)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, err := openBackend(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer b.Close()

	if err := b.Migrate(ctx); err != nil {
		return fmt.Errorf("creating the tables: %w", err)
	}
	res, err := b.Seed(ctx, cfg.Seeds, cfg.BcryptCost)
	if err != nil {
		return fmt.Errorf("seeding users: %w", err)
	}
	if len(res.Created) > 0 {
		log.Info("users created", "emails", strings.Join(res.Created, ","))
	}
	for _, e := range res.Kept {
		log.Warn("user exists with another password; left unchanged", "email", e)
	}
	if cfg.DemoDefault && cfg.DatabaseURL != "" {
		log.Warn("the demo user is seeded in PostgreSQL with the default password: set DEMO_PASSWORD, or DEMO_EMAIL= (empty) to not create it", "email", cfg.Seeds[0].Email)
	}
	if cfg.MigrateOnly {
		log.Info("migrated: the tables exist and the users are seeded")
		return nil
	}

	sm, err := session.NewManager(b, session.Options{
		Name:     cfg.CookieName,
		Secrets:  cfg.Secrets,
		MaxAge:   cfg.MaxAge,
		Secure:   cfg.CookieSecure,
		SameSite: cfg.CookieSameSite,
		Domain:   cfg.CookieDomain,
		Rolling:  cfg.Rolling,
		Logger:   log,
	})
	if err != nil {
		return err
	}
	if cfg.DemoSecret {
		log.Warn("SESSION_SECRET is not set: cookies are signed with the fixed demo secret (SQLite demo only)")
	}
	log.Info("sessions", "cookie", cfg.CookieName, "max_age", cfg.MaxAge, "secrets", len(cfg.Secrets),
		"rolling", cfg.Rolling, "secure", cfg.CookieSecure, "prune_every", cfg.PruneInterval)

	pruneCtx, stopPrune := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { sm.RunPruner(pruneCtx, cfg.PruneInterval) })
	defer func() { stopPrune(); wg.Wait() }()

	a := app.New(app.Config{Worker: cfg.InstanceRaw, PID: os.Getpid(), BcryptCost: cfg.BcryptCost, Logger: log}, b, sm)
	ln, err := listen(cfg.Addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           a.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("listening", "addr", ln.Addr().String())
	err = serve(srv, ln)
	log.Info("stopped")
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

func openBackend(ctx context.Context, cfg *config, log *slog.Logger) (backend, error) {
	if cfg.DatabaseURL == "" {
		path, err := filepath.Abs(cfg.SQLitePath)
		if err != nil {
			return nil, err
		}
		log.Warn("DATABASE_URL is not set: using the embedded SQLite demo database (the demo's default; "+
			"every worker of this host shares the file). Set DATABASE_URL to use PostgreSQL and share sessions with the Node app.",
			"path", path)
		s, err := store.OpenSQLite(ctx, path, cfg.PoolPerWorker)
		if err != nil {
			return nil, err
		}
		log.Info("database pool", "max_conns", cfg.PoolPerWorker, "DB_POOL_TOTAL", cfg.PoolTotal, "workers", cfg.Workers, "workers_from", cfg.WorkersSource)
		return s, nil
	}

	s, err := store.OpenPG(store.PGOptions{URL: cfg.DatabaseURL, AppName: cfg.AppName, MaxConns: cfg.PoolPerWorker})
	if err != nil {
		return nil, err
	}
	pc := s.Pool().Config()
	size := []any{"max_conns", pc.MaxConns, "from", "pool_max_conns in DATABASE_URL"}
	if !s.MaxConnsFromURL {
		size = []any{"max_conns", pc.MaxConns, "rule", fmt.Sprintf("max(2, DB_POOL_TOTAL=%d / %d workers from %s)", cfg.PoolTotal, cfg.Workers, cfg.WorkersSource)}
	}
	log.Info("database pool", append(size, "min_conns", pc.MinConns, "max_idle", pc.MaxConnIdleTime, "max_lifetime", pc.MaxConnLifetime,
		"lifetime_jitter", pc.MaxConnLifetimeJitter, "health_check", pc.HealthCheckPeriod, "application_name", cfg.AppName)...)
	if err := s.Ping(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	tz, err := s.CheckTimeZone(ctx, cfg.ExpectedTZ)
	if err != nil {
		s.Close()
		return nil, err
	}
	log.Info("database", "kind", "postgres", "TimeZone", tz)
	return s, nil
}
