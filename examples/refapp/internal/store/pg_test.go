package store

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/pgtest"
)

func openPG(t *testing.T, url string, maxConns int) *PG {
	t.Helper()
	s, err := OpenPG(PGOptions{URL: url, AppName: "refapp-w7", MaxConns: maxConns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// connect-pg-simple's table.sql, as shipped in its npm package.
const nodeTableSQL = `CREATE TABLE "session" (
  "sid" varchar NOT NULL COLLATE "default",
  "sess" json NOT NULL,
  "expire" timestamp(6) NOT NULL
)
WITH (OIDS=FALSE);
ALTER TABLE "session" ADD CONSTRAINT "session_pkey" PRIMARY KEY ("sid") NOT DEFERRABLE INITIALLY IMMEDIATE;
CREATE INDEX "IDX_session_expire" ON "session" ("expire");`

type schemaInfo struct{ columns, indexes string }

func schemaOf(t *testing.T, url string) schemaInfo {
	c := connect(t, url)
	ctx := context.Background()
	var s schemaInfo
	err := c.QueryRow(ctx, `SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod) || CASE WHEN attnotnull THEN ' not null' ELSE '' END, ', ' ORDER BY attnum)
		FROM pg_attribute WHERE attrelid = '"session"'::regclass AND attnum > 0 AND NOT attisdropped`).Scan(&s.columns)
	if err != nil {
		t.Fatal(err)
	}
	err = c.QueryRow(ctx, `SELECT string_agg(indexdef, '; ' ORDER BY indexname) FROM pg_indexes WHERE tablename = 'session'`).Scan(&s.indexes)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPGSchemaIsConnectPgSimples(t *testing.T) {
	ctx := context.Background()
	// Node's table first, then our migration on top of it: no error, nothing changed.
	nodeURL := pgtest.DSN(t, pgtest.NewDB(t))
	if _, err := connect(t, nodeURL).Exec(ctx, nodeTableSQL); err != nil {
		t.Fatal(err)
	}
	want := schemaOf(t, nodeURL)
	if err := openPG(t, nodeURL, 2).Migrate(ctx); err != nil {
		t.Fatalf("Migrate over Node's table: %v", err)
	}
	if got := schemaOf(t, nodeURL); got != want {
		t.Errorf("Migrate changed Node's table: %+v → %+v", want, got)
	}
	// Our migration on an empty database gives the same table.
	goURL := pgtest.DSN(t, pgtest.NewDB(t))
	if err := openPG(t, goURL, 2).Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if got := schemaOf(t, goURL); got != want {
		t.Errorf("schema differs from table.sql:\n got %+v\nwant %+v", got, want)
	}
	if !strings.Contains(want.columns, "sess json not null") || !strings.Contains(want.columns, "expire timestamp(6) without time zone not null") {
		t.Errorf("unexpected table.sql columns: %s", want.columns)
	}
}

func TestPGPruneSkipsWhileLocked(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DSN(t, pgtest.NewDB(t))
	s := openPG(t, url, 2)
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Insert(ctx, "old", nodeSess, now-10); err != nil {
		t.Fatal(err)
	}
	// Another worker is pruning: it holds the lock in its transaction.
	other := connect(t, url)
	tx, err := other.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, pgPruneLock); err != nil {
		t.Fatal(err)
	}
	n, ran, err := s.Prune(ctx, now)
	if err != nil || ran || n != 0 {
		t.Fatalf("Prune while locked = %d, %v, %v; want skipped", n, ran, err)
	}
	if _, found, _ := s.Load(ctx, "old", now-20); !found {
		t.Fatal("row deleted while another worker held the prune lock")
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if n, ran, err := s.Prune(ctx, now); err != nil || !ran || n != 1 {
		t.Fatalf("Prune after unlock = %d, %v, %v; want 1 deleted", n, ran, err)
	}
}

func TestPGTimeZoneGuard(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DSN(t, pgtest.NewDB(t))
	var serverTZ string
	if err := connect(t, url).QueryRow(ctx, `SHOW TimeZone`).Scan(&serverTZ); err != nil {
		t.Fatal(err)
	}
	other := "Asia/Tokyo"
	if strings.EqualFold(serverTZ, other) {
		other = "America/New_York"
	}

	plain := openPG(t, url, 1)
	if tz, err := plain.CheckTimeZone(ctx, ""); err != nil || tz != serverTZ {
		t.Errorf("server default: %q, %v", tz, err)
	}
	if _, err := plain.CheckTimeZone(ctx, serverTZ); err != nil {
		t.Errorf("expected = server zone: %v", err)
	}
	if _, err := plain.CheckTimeZone(ctx, other); !errors.Is(err, ErrTimeZone) {
		t.Errorf("expected %s on a %s connection: err = %v, want ErrTimeZone", other, serverTZ, err)
	}
	if _, err := plain.CheckTimeZone(ctx, "Not/AZone"); !errors.Is(err, ErrTimeZone) {
		t.Errorf("unknown expected zone: err = %v", err)
	}
	if serverTZ == "Etc/UTC" || serverTZ == "UTC" {
		// Two names for one zone are accepted.
		if _, err := plain.CheckTimeZone(ctx, "GMT"); err != nil {
			t.Errorf("GMT on %s: %v", serverTZ, err)
		}
	}

	// The zone set by this client (timezone= in the URL, or PGTZ as pgx honours it).
	viaURL := openPG(t, url+" timezone="+other, 1)
	if _, err := viaURL.CheckTimeZone(ctx, ""); !errors.Is(err, ErrTimeZone) {
		t.Errorf("timezone= in DATABASE_URL: err = %v, want ErrTimeZone", err)
	}
	if _, err := viaURL.CheckTimeZone(ctx, other); err != nil {
		t.Errorf("timezone= in DATABASE_URL, confirmed by DB_TIMEZONE: %v", err)
	}
	t.Setenv("PGTZ", other)
	viaEnv := openPG(t, url, 1)
	if _, err := viaEnv.CheckTimeZone(ctx, ""); !errors.Is(err, ErrTimeZone) {
		t.Errorf("PGTZ: err = %v, want ErrTimeZone", err)
	}
}

// What the guard prevents: the same epoch written through two zones lands hours apart, and a
// reader in the other zone sees the session expire early (docs/sessions.md §4.3).
func TestPGTimeZoneMismatchShiftsExpiry(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DSN(t, pgtest.NewDB(t))
	utc := openPG(t, url+" timezone=UTC", 1)
	ny := openPG(t, url+" timezone=America/New_York", 1)
	if err := utc.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	exp := now + 3600 // valid for one more hour
	if _, err := ny.Insert(ctx, "sid", nodeSess, exp); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := ny.Load(ctx, "sid", now); !found {
		t.Fatal("the writer's zone should see its session")
	}
	if _, found, _ := utc.Load(ctx, "sid", now); found {
		t.Fatal("expected the UTC reader to see the New York row as expired (written 4-5 hours 'earlier')")
	}
}

func TestPGExecModes(t *testing.T) {
	// The casts make the SQL valid in every pgx mode, including exec and simple_protocol,
	// which a transaction-mode pooler (PgBouncer, Supavisor :6543) needs.
	ctx := context.Background()
	url := pgtest.DSN(t, pgtest.NewDB(t))
	if err := openPG(t, url, 1).Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"cache_statement", "cache_describe", "describe_exec", "exec", "simple_protocol"} {
		s := openPG(t, url+" default_query_exec_mode="+mode, 1)
		sid := "sid-" + mode
		steps := []func() (bool, error){
			func() (bool, error) { return s.Insert(ctx, sid, nodeSess, now+10) },
			func() (bool, error) { _, ok, err := s.Load(ctx, sid, now); return ok, err },
			func() (bool, error) { return s.Touch(ctx, sid, now+20) },
			func() (bool, error) { return s.Update(ctx, sid, nodeSess, now+30, nodeSess) },
			func() (bool, error) { _, ran, err := s.Prune(ctx, now); return ran, err },
			func() (bool, error) { return s.Destroy(ctx, sid) },
		}
		for i, step := range steps {
			if ok, err := step(); err != nil || !ok {
				t.Errorf("%s: step %d = %v, %v", mode, i, ok, err)
			}
		}
		if _, err := s.Seed(ctx, []Seed{{"u-" + mode + "@x", "pw"}}, 4); err != nil {
			t.Errorf("%s: seed: %v", mode, err)
		}
		if _, _, found, err := s.UserByEmail(ctx, "u-"+mode+"@x"); err != nil || !found {
			t.Errorf("%s: user: %v %v", mode, found, err)
		}
	}
}

// The pool's settings (docs/sessions.md §6.5): MaxConns from the caller (DB_POOL_TOTAL / workers),
// MinConns 0, idle 2 min, lifetime 30 min + up to 5 min of jitter, health check every minute;
// pgxpool's pool_* parameters in DATABASE_URL win. Nothing connects here.
func TestPGPoolSettings(t *testing.T) {
	const dsn = "host=127.0.0.1 port=1 user=x dbname=x"
	s := openPG(t, dsn, 5)
	c := s.Pool().Config()
	if s.MaxConnsFromURL || c.MaxConns != 5 || c.MinConns != 0 || c.MinIdleConns != 0 ||
		c.MaxConnIdleTime != 2*time.Minute || c.MaxConnLifetime != 30*time.Minute ||
		c.MaxConnLifetimeJitter != 5*time.Minute || c.HealthCheckPeriod != time.Minute {
		t.Errorf("defaults: from URL %v, %+v", s.MaxConnsFromURL, c)
	}
	if got := c.ConnConfig.RuntimeParams["application_name"]; got != "refapp-w7" {
		t.Errorf("application_name %q", got)
	}
	// At least one connection.
	s = openPG(t, dsn, 0)
	if c = s.Pool().Config(); c.MaxConns != 1 {
		t.Errorf("MaxConns 0: %+v", c)
	}
	// The URL's pool_* parameters win, and are not sent to the server.
	s = openPG(t, dsn+" pool_max_conns=3 pool_min_conns=1 pool_max_conn_idle_time=10s pool_max_conn_lifetime=1h pool_max_conn_lifetime_jitter=0s pool_health_check_period=5s", 9)
	c = s.Pool().Config()
	if !s.MaxConnsFromURL || c.MaxConns != 3 || c.MinConns != 1 || c.MaxConnIdleTime != 10*time.Second ||
		c.MaxConnLifetime != time.Hour || c.MaxConnLifetimeJitter != 0 || c.HealthCheckPeriod != 5*time.Second {
		t.Errorf("from the URL: from URL %v, %+v", s.MaxConnsFromURL, c)
	}
	for k := range c.ConnConfig.RuntimeParams {
		if strings.HasPrefix(k, "pool_") {
			t.Errorf("%s would be sent to the server", k)
		}
	}
	for _, bad := range []string{" pool_max_conns=x", " pool_max_conns=0", " pool_max_conn_lifetime=soon"} {
		if _, err := OpenPG(PGOptions{URL: dsn + bad, MaxConns: 2}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// The pool never opens more than MaxConns connections, however many requests wait.
func TestPGPoolBound(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DSN(t, pgtest.NewDB(t))
	s := openPG(t, url, 3)
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var peak int32
	admin := connect(t, url)
	for range 40 {
		wg.Go(func() {
			if _, err := s.Pool().Exec(ctx, "SELECT pg_sleep(0.01)"); err != nil {
				t.Error(err)
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for {
		var n int32
		if err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = 'refapp-w7'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		peak = max(peak, n)
		select {
		case <-done:
		default:
			continue
		}
		break
	}
	if st := s.Stats().(PGStats); peak > 3 || st.NewConnsCount > 3 || st.Total > 3 || st.Max != 3 {
		t.Errorf("peak %d server connections, stats %+v; max 3", peak, st)
	}
}

// A connection the server dropped (restart, idle timeout, admin) is replaced: the pool pings a
// connection that sat idle before reusing it.
func TestPGPoolReplacesDroppedConnections(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DSN(t, pgtest.NewDB(t))
	s := openPG(t, url, 2)
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	admin := connect(t, url)
	var killed int
	if err := admin.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'refapp-w7'`).Scan(&killed); err != nil || killed == 0 {
		t.Fatalf("terminated %d backends: %v", killed, err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := s.Ping(ctx)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pool did not recover from a dropped connection: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st := s.Stats().(PGStats); st.NewConnsCount < 2 {
		t.Errorf("no new connection after the drop: %+v", st)
	}
}

func TestPGPoolConfig(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DSN(t, pgtest.NewDB(t))
	s := openPG(t, url+" pool_max_conns=3 pool_min_conns=1", 9)
	if !s.MaxConnsFromURL || s.Pool().Config().MaxConns != 3 {
		t.Errorf("pool_max_conns: from URL %v, max %d", s.MaxConnsFromURL, s.Pool().Config().MaxConns)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("pool_* parameters must not reach the server: %v", err)
	}
	var name string
	if err := s.Pool().QueryRow(ctx, `SELECT current_setting('application_name')`).Scan(&name); err != nil || name != "refapp-w7" {
		t.Errorf("application_name = %q, %v", name, err)
	}
	if _, _, err := ParsePGConfig(url + " pool_max_conns=x"); err == nil {
		t.Error("bad pool_max_conns accepted")
	}
}

func TestPGUnavailable(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DSN(t, pgtest.NewDB(t))
	s := openPG(t, url, 1)
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	// Saturated pool: the acquire times out → unavailable (503), never a hang.
	c, err := s.Pool().Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, _, err = s.Load(tctx, "x", now)
	cancel()
	c.Release()
	if !Unavailable(err) {
		t.Errorf("saturated pool: err %v not Unavailable", err)
	}
	// Nothing listens there.
	down := openPG(t, "host=127.0.0.1 port=1 user=x dbname=x connect_timeout=2", 1)
	if _, _, err := down.Load(ctx, "x", now); !Unavailable(err) {
		t.Errorf("refused connection: err %v not Unavailable", err)
	}
	s.Close()
	if _, _, err := s.Load(ctx, "x", now); !Unavailable(err) {
		t.Errorf("closed pool: err %v not Unavailable", err)
	}
	// A SQL error is not "unavailable".
	if _, err := openPG(t, url, 1).Pool().Exec(ctx, `SELECT * FROM no_such_table`); err == nil || Unavailable(err) {
		t.Errorf("SQL error %v classified as unavailable", err)
	}
}
