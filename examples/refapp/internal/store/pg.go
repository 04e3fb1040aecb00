package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The schema: connect-pg-simple's table.sql (same names, types, key and index, so the Node app
// and this one share the table), made idempotent, plus the users table. Migrate runs it under
// a transaction-scoped advisory lock, so N workers starting at once do not race on CREATE
// (plain CREATE TABLE IF NOT EXISTS can still fail on pg_type's unique index when two run
// together).
var pgSchema = []string{
	`CREATE TABLE IF NOT EXISTS "session" (
  "sid" varchar NOT NULL COLLATE "default",
  "sess" json NOT NULL,
  "expire" timestamp(6) NOT NULL,
  CONSTRAINT "session_pkey" PRIMARY KEY ("sid") NOT DEFERRABLE INITIALLY IMMEDIATE
)`,
	`CREATE INDEX IF NOT EXISTS "IDX_session_expire" ON "session" ("expire")`,
	`CREATE TABLE IF NOT EXISTS users (
  id serial PRIMARY KEY,
  email text NOT NULL UNIQUE,
  password_hash text NOT NULL
)`,
}

// The session SQL of docs/sessions.md §6.2. Times are Unix seconds from the app clock
// (connect-pg-simple's to_timestamp($n)); the casts keep every statement valid in every pgx
// exec mode, including default_query_exec_mode=exec behind a transaction-mode pooler
// (docs/sessions.md §6.4).
const (
	pgLoad    = `SELECT sess::text FROM "session" WHERE sid = $1::varchar AND expire >= to_timestamp($2::float8)`
	pgInsert  = `INSERT INTO "session" (sess, expire, sid) VALUES ($1::json, to_timestamp($2::float8), $3::varchar) ON CONFLICT (sid) DO NOTHING`
	pgUpdate  = `UPDATE "session" SET sess = $1::json, expire = to_timestamp($2::float8) WHERE sid = $3::varchar`
	pgUpdCAS  = `UPDATE "session" SET sess = $1::json, expire = to_timestamp($2::float8) WHERE sid = $3::varchar AND sess::text = $4::text`
	pgTouch   = `UPDATE "session" SET expire = to_timestamp($1::float8) WHERE sid = $2::varchar`
	pgDestroy = `DELETE FROM "session" WHERE sid = $1::varchar`
	pgPrune   = `DELETE FROM "session" WHERE expire < to_timestamp($1::float8)`

	// Lock keys (pg_advisory_*lock(bigint)). Transaction-scoped, so they also work through a
	// transaction-mode pooler and are released by COMMIT/ROLLBACK or a lost connection.
	pgPruneLock  = `SELECT pg_try_advisory_xact_lock(hashtext('session-prune'))`
	pgSchemaLock = `SELECT pg_advisory_xact_lock(hashtext('refapp-schema'))`
)

// Pool defaults (docs/sessions.md §6.5): no connection kept open when idle (MinConns 0), idle
// connections given back after 2 minutes, every connection replaced after 30 minutes plus up to
// 5 minutes of jitter (so N workers do not reconnect in lock-step), idle connections checked
// every minute. pgxpool's own defaults (1 h lifetime, no jitter, 30 min idle) are not used.
const (
	DefaultMaxConnIdleTime       = 2 * time.Minute
	DefaultMaxConnLifetime       = 30 * time.Minute
	DefaultMaxConnLifetimeJitter = 5 * time.Minute
	DefaultHealthCheckPeriod     = time.Minute
)

// PGOptions configure OpenPG.
type PGOptions struct {
	URL     string // DATABASE_URL: URL or keyword/value form, libpq's PG* variables apply
	AppName string // application_name of every connection (refapp-w<instance>)
	// Per worker. A pool_* parameter in URL (pgxpool's names: pool_max_conns, pool_min_conns,
	// pool_max_conn_idle_time, pool_max_conn_lifetime, pool_max_conn_lifetime_jitter,
	// pool_health_check_period...) wins over it and over the defaults above.
	MaxConns int
}

// PG is the PostgreSQL store.
type PG struct {
	pool *pgxpool.Pool
	// MaxConnsFromURL is true when pool_max_conns in the URL set the pool size.
	MaxConnsFromURL bool
}

// ParsePGConfig parses DATABASE_URL as pgxpool does (pool_* parameters are the pool's, not
// sent to the server), and reports which pool_* parameters the URL set.
func ParsePGConfig(url string) (*pgxpool.Config, map[string]bool, error) {
	// pgconn keeps unknown keys as run-time parameters: that is where pool_* show up before
	// pgxpool takes them out.
	raw, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, nil, err
	}
	set := map[string]bool{}
	for k := range raw.RuntimeParams {
		if strings.HasPrefix(k, "pool_") {
			set[k] = true
		}
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, nil, err
	}
	return cfg, set, nil
}

// OpenPG makes the store's pool. It does not connect: call Ping, CheckTimeZone, Migrate.
func OpenPG(o PGOptions) (*PG, error) {
	cfg, fromURL, err := ParsePGConfig(o.URL)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	if o.AppName != "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = o.AppName
	}
	s := &PG{MaxConnsFromURL: fromURL["pool_max_conns"]}
	def := func(key string, field *time.Duration, d time.Duration) {
		if !fromURL[key] {
			*field = d
		}
	}
	if !s.MaxConnsFromURL {
		cfg.MaxConns = int32(max(1, o.MaxConns))
	}
	if !fromURL["pool_min_conns"] {
		cfg.MinConns = 0
	}
	def("pool_max_conn_idle_time", &cfg.MaxConnIdleTime, DefaultMaxConnIdleTime)
	def("pool_max_conn_lifetime", &cfg.MaxConnLifetime, DefaultMaxConnLifetime)
	def("pool_max_conn_lifetime_jitter", &cfg.MaxConnLifetimeJitter, DefaultMaxConnLifetimeJitter)
	def("pool_health_check_period", &cfg.HealthCheckPeriod, DefaultHealthCheckPeriod)
	// No context: with MinConns 0 nothing connects here; the first Acquire does, bounded by
	// its caller's context (a request's 3 s: a saturated or unreachable database is a 503).
	s.pool, err = pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Pool is the connection pool.
func (s *PG) Pool() *pgxpool.Pool { return s.pool }

// Close closes the pool.
func (s *PG) Close() { s.pool.Close() }

// Kind names the backend.
func (s *PG) Kind() string { return "postgres" }

// Ping checks the database.
func (s *PG) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// PGStats is the pool's snapshot, for /api/health.
type PGStats struct {
	Acquired             int32 `json:"acquired"`
	Idle                 int32 `json:"idle"`
	Constructing         int32 `json:"constructing"`
	Total                int32 `json:"total"`
	Max                  int32 `json:"max"`
	AcquireCount         int64 `json:"acquire_count"`
	WaitCount            int64 `json:"wait_count"` // acquires that found no idle connection
	CanceledAcquireCount int64 `json:"canceled_acquire_count"`
	NewConnsCount        int64 `json:"new_conns_count"`
}

// Stats is the pool's snapshot, for /api/health.
func (s *PG) Stats() any {
	st := s.pool.Stat()
	return PGStats{
		Acquired:             st.AcquiredConns(),
		Idle:                 st.IdleConns(),
		Constructing:         st.ConstructingConns(),
		Total:                st.TotalConns(),
		Max:                  st.MaxConns(),
		AcquireCount:         st.AcquireCount(),
		WaitCount:            st.EmptyAcquireCount(),
		CanceledAcquireCount: st.CanceledAcquireCount(),
		NewConnsCount:        st.NewConnsCount(),
	}
}

// Migrate creates the tables and index if missing, one worker at a time.
func (s *PG) Migrate(ctx context.Context) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, pgSchemaLock); err != nil {
			return err
		}
		for _, q := range pgSchema {
			if _, err := tx.Exec(ctx, q); err != nil {
				return err
			}
		}
		return nil
	})
}

// ErrTimeZone is returned by CheckTimeZone on a mismatch.
var ErrTimeZone = errors.New("time zone guard")

// CheckTimeZone guards the expire column (timestamp without time zone, written through the
// connection's TimeZone): every writer and reader of the table must use the same zone, or
// sessions expire hours early or late. With expected set (DB_TIMEZONE: the zone the Node
// app's connections use), the session's zone must be equivalent to it; without, the zone must
// not have been set by this client (PGTZ, timezone= or options= in DATABASE_URL), since
// node-postgres sends none and gets the server's default. It returns the session's zone.
func (s *PG) CheckTimeZone(ctx context.Context, expected string) (string, error) {
	var tz, source string
	err := s.pool.QueryRow(ctx, `SELECT current_setting('TimeZone'), (SELECT source FROM pg_settings WHERE name = 'TimeZone')`).Scan(&tz, &source)
	if err != nil {
		return "", err
	}
	if expected != "" {
		if strings.EqualFold(tz, expected) {
			return tz, nil
		}
		// Different names for one zone (UTC, Etc/UTC, GMT...): same local time at every
		// instant of four years around now.
		var same bool
		err := s.pool.QueryRow(ctx, `SELECT bool_and((t AT TIME ZONE $1::text) = (t AT TIME ZONE current_setting('TimeZone')))
			FROM generate_series(now() - interval '2 years', now() + interval '2 years', interval '6 hours') t`, expected).Scan(&same)
		if err != nil {
			return tz, fmt.Errorf("%w: DB_TIMEZONE=%q: %v", ErrTimeZone, expected, err)
		}
		if !same {
			return tz, fmt.Errorf("%w: this connection's TimeZone is %q but DB_TIMEZONE says the Node app's is %q: the session table's expire (timestamp without time zone) would be written in two zones, and sessions would expire early or late; make them agree", ErrTimeZone, tz, expected)
		}
		return tz, nil
	}
	if source == "client" {
		return tz, fmt.Errorf("%w: TimeZone %q was set by this client (PGTZ, or timezone= / options= in DATABASE_URL); node-postgres sends no TimeZone, so the Node app writes the session table's expire (timestamp without time zone) in the server's default zone and the two apps would disagree on every expiry. Unset it, or set DB_TIMEZONE=%q if the Node app's connections use that zone too", ErrTimeZone, tz, tz)
	}
	return tz, nil
}

// Seed creates the missing users.
func (s *PG) Seed(ctx context.Context, seeds []Seed, cost int) (SeedResult, error) {
	return seedUsers(ctx, seeds, cost,
		s.UserByEmail,
		func(ctx context.Context, email, hash string) (bool, error) {
			return s.exec(ctx, `INSERT INTO users (email, password_hash) VALUES ($1::text, $2::text) ON CONFLICT (email) DO NOTHING`, email, hash)
		})
}

// UserByEmail returns the user and its password hash.
func (s *PG) UserByEmail(ctx context.Context, email string) (User, string, bool, error) {
	var u User
	var h string
	found, err := rowFound(s.pool.QueryRow(ctx, `SELECT id, email, password_hash FROM users WHERE email = $1::text`, email).Scan(&u.ID, &u.Email, &h))
	return u, h, found, err
}

// UserByID returns a user.
func (s *PG) UserByID(ctx context.Context, id int64) (User, bool, error) {
	var u User
	found, err := rowFound(s.pool.QueryRow(ctx, `SELECT id, email FROM users WHERE id = $1::int8`, id).Scan(&u.ID, &u.Email))
	return u, found, err
}

// Load implements session.Store.
func (s *PG) Load(ctx context.Context, sid string, nowSecs int64) (string, bool, error) {
	var text string
	found, err := rowFound(s.pool.QueryRow(ctx, pgLoad, sid, float64(nowSecs)).Scan(&text))
	return text, found, err
}

// Insert implements session.Store.
func (s *PG) Insert(ctx context.Context, sid, sess string, expireSecs int64) (bool, error) {
	return s.exec(ctx, pgInsert, sess, float64(expireSecs), sid)
}

// Update implements session.Store.
func (s *PG) Update(ctx context.Context, sid, sess string, expireSecs int64, prev string) (bool, error) {
	if prev == "" {
		return s.exec(ctx, pgUpdate, sess, float64(expireSecs), sid)
	}
	return s.exec(ctx, pgUpdCAS, sess, float64(expireSecs), sid, prev)
}

// Touch implements session.Store.
func (s *PG) Touch(ctx context.Context, sid string, expireSecs int64) (bool, error) {
	return s.exec(ctx, pgTouch, float64(expireSecs), sid)
}

// Destroy implements session.Store.
func (s *PG) Destroy(ctx context.Context, sid string) (bool, error) {
	return s.exec(ctx, pgDestroy, sid)
}

// exec runs a statement that writes at most one row (sid and email are unique) and reports
// whether it wrote one: the PostgreSQL side of SQLite's affected.
func (s *PG) exec(ctx context.Context, sql string, args ...any) (bool, error) {
	tag, err := s.pool.Exec(ctx, sql, args...)
	return err == nil && tag.RowsAffected() > 0, err
}

// Prune implements session.Store: one worker at a time, through a transaction-scoped try-lock;
// a worker that finds the lock taken skips this round.
func (s *PG) Prune(ctx context.Context, nowSecs int64) (deleted int64, ran bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, pgPruneLock).Scan(&ran); err != nil || !ran {
			return err
		}
		tag, err := tx.Exec(ctx, pgPrune, float64(nowSecs))
		deleted = tag.RowsAffected()
		return err
	})
	if err != nil {
		return 0, false, err
	}
	return deleted, ran, nil
}
