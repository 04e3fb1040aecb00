// Package pgtest gives tests a throwaway PostgreSQL database on the machine's server.
//
// The server is found through CORRAL_TEST_PG (an admin connection string), else REFAPP_TEST_PG,
// else libpq's defaults (PGHOST, PGUSER..., the local socket) with dbname=postgres. Tests skip
// when no server answers, unless CORRAL_TEST_PG_REQUIRED or REFAPP_TEST_PG_REQUIRED is set (to
// anything but "" or "0"): then they fail, for CI, where a skip would hide a broken setup
// (scripts/test sets both when it has started PostgreSQL).
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

var server struct {
	once  sync.Once
	admin *pgx.ConnConfig
	err   error
}

// admin probes the server once and returns its admin connection settings.
func admin() (*pgx.ConnConfig, error) {
	server.once.Do(func() {
		dsn := os.Getenv("CORRAL_TEST_PG")
		if dsn == "" {
			dsn = os.Getenv("REFAPP_TEST_PG")
		}
		if dsn == "" {
			dsn = "dbname=postgres"
		}
		cfg, err := pgx.ParseConfig(dsn)
		if err != nil {
			server.err = err
			return
		}
		cfg.ConnectTimeout = 5 * time.Second
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			server.err = err
			return
		}
		_ = c.Close(ctx)
		server.admin = cfg
	})
	return server.admin, server.err
}

// required reports whether a missing server fails the tests instead of skipping them.
func required() bool {
	for _, k := range []string{"CORRAL_TEST_PG_REQUIRED", "REFAPP_TEST_PG_REQUIRED"} {
		if v := os.Getenv(k); v != "" && v != "0" {
			return true
		}
	}
	return false
}

// need returns the admin settings, or skips (fails, if required) the test.
func need(t testing.TB) *pgx.ConnConfig {
	t.Helper()
	cfg, err := admin()
	if err != nil {
		msg := fmt.Sprintf("PostgreSQL is not reachable (%v): start it (scripts/test does, as root) or set CORRAL_TEST_PG to an admin connection string", err)
		if required() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return cfg
}

// NewDB creates an empty database and returns its name. The database is dropped (its
// connections cut) when the test ends, after the cleanups registered later. It skips the test
// when no server is reachable. DSN and URL render connection strings for it.
func NewDB(t testing.TB) string {
	t.Helper()
	cfg := need(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "corral_test_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Errorf("pgtest: drop %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop %s: %v", name, err)
		}
	})
	return name
}

// DSN is a keyword/value connection string to dbname on the test server, with the admin
// credentials; more key=value pairs may be appended after a space.
func DSN(t testing.TB, dbname string) string {
	t.Helper()
	return keywordDSN(need(t), dbname)
}

// URL is a postgresql:// URL to dbname on the test server, with the admin credentials, for
// clients that take only URLs (node-postgres); pgx reads it too.
func URL(t testing.TB, dbname string) string {
	t.Helper()
	return pgURL(need(t), dbname)
}

func keywordDSN(cfg *pgx.ConnConfig, dbname string) string {
	kv := []string{
		"host=" + quote(cfg.Host),
		fmt.Sprintf("port=%d", cfg.Port),
		"user=" + quote(cfg.User),
		"dbname=" + quote(dbname),
	}
	if cfg.Password != "" {
		kv = append(kv, "password="+quote(cfg.Password))
	}
	if cfg.TLSConfig == nil {
		kv = append(kv, "sslmode=disable")
	}
	return strings.Join(kv, " ")
}

func quote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// pgURL puts a unix socket directory in the host part, percent-encoded: pgx and node-postgres
// both read it.
func pgURL(cfg *pgx.ConnConfig, dbname string) string {
	host := cfg.Host
	if strings.HasPrefix(host, "/") {
		host = url.PathEscape(host)
	} else if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	user := url.User(cfg.User)
	if cfg.Password != "" {
		user = url.UserPassword(cfg.User, cfg.Password)
	}
	s := fmt.Sprintf("postgresql://%s@%s:%d/%s", user.String(), host, cfg.Port, url.PathEscape(dbname))
	if cfg.TLSConfig == nil {
		s += "?sslmode=disable"
	}
	return s
}
