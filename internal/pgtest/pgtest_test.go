package pgtest

import (
	"context"
	"crypto/tls"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Both renderings parse back (as pgx parses DATABASE_URL) to the admin server, credentials and
// TLS choice, with the given database.
func TestRender(t *testing.T) {
	for _, c := range []struct {
		name                     string
		host, user, password, db string
		port                     uint16
		tls                      bool
	}{
		{name: "socket", host: "/var/run/postgresql", user: "root", db: "corral_test_1", port: 5432},
		{name: "tcp with password", host: "127.0.0.1", user: "o'brien", password: `p@ss w:o/r\d'?`, db: "x", port: 6543},
		{name: "ipv6", host: "::1", user: "u", db: "x", port: 5432},
		{name: "tls", host: "db.example.com", user: "u", password: "pw", db: "x", port: 5432, tls: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := pgx.ParseConfig("")
			if err != nil {
				t.Fatal(err)
			}
			cfg.Host, cfg.Port, cfg.User, cfg.Password, cfg.TLSConfig = c.host, c.port, c.user, c.password, nil
			if c.tls {
				cfg.TLSConfig = &tls.Config{ServerName: c.host}
			}
			for form, s := range map[string]string{"keyword": keywordDSN(cfg, c.db), "URL": pgURL(cfg, c.db)} {
				got, err := pgx.ParseConfig(s)
				if err != nil {
					t.Fatalf("%s %q: %v", form, s, err)
				}
				if got.Host != c.host || got.Port != c.port || got.User != c.user || got.Password != c.password ||
					got.Database != c.db || (got.TLSConfig != nil) != c.tls {
					t.Errorf("%s %q parses to host %q port %d user %q password %q database %q TLS %v",
						form, s, got.Host, got.Port, got.User, got.Password, got.Database, got.TLSConfig != nil)
				}
			}
		})
	}
}

// NewDB's database is empty, reachable through DSN and URL, and gone after the test.
func TestNewDB(t *testing.T) {
	var name string
	t.Run("use", func(t *testing.T) {
		name = NewDB(t)
		// The store tests append pgxpool's parameters to the keyword form.
		if cfg, err := pgxpool.ParseConfig(DSN(t, name) + " pool_max_conns=3"); err != nil || cfg.MaxConns != 3 {
			t.Errorf("DSN + pool_max_conns=3: %v", err)
		}
		for form, s := range map[string]string{"keyword": DSN(t, name), "URL": URL(t, name)} {
			c, err := pgx.Connect(context.Background(), s)
			if err != nil {
				t.Fatalf("%s %q: %v", form, s, err)
			}
			var db string
			var tables int
			err = c.QueryRow(context.Background(), `SELECT current_database(), (SELECT count(*) FROM pg_tables WHERE schemaname = 'public')`).Scan(&db, &tables)
			c.Close(context.Background())
			if err != nil || db != name || tables != 0 {
				t.Errorf("%s: database %q with %d tables, %v; want %q, empty", form, db, tables, err, name)
			}
		}
	})
	if name == "" {
		t.Skip("no database was created")
	}
	c, err := pgx.ConnectConfig(context.Background(), need(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var n int
	if err := c.QueryRow(context.Background(), `SELECT count(*) FROM pg_database WHERE datname = $1`, name).Scan(&n); err != nil || n != 0 {
		t.Errorf("%s after the test: %d rows, %v; want dropped", name, n, err)
	}
}
