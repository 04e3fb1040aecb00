// Package pgtest gives tests a throwaway PostgreSQL database on the machine's server.
//
// The server is found through REFAPP_TEST_PG (an admin connection string), else libpq's
// defaults (PGHOST, PGUSER..., the local socket) with dbname=postgres. Tests skip when no server
// answers, unless REFAPP_TEST_PG_REQUIRED=1 (for CI, where a skip would hide a broken setup).
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

var (
	once     sync.Once
	adminCfg *pgx.ConnConfig
	probeErr error
)

func admin() (*pgx.ConnConfig, error) {
	once.Do(func() {
		dsn := os.Getenv("REFAPP_TEST_PG")
		if dsn == "" {
			dsn = "dbname=postgres"
		}
		cfg, err := pgx.ParseConfig(dsn)
		if err != nil {
			probeErr = err
			return
		}
		cfg.ConnectTimeout = 3 * time.Second
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			probeErr = err
			return
		}
		_ = c.Close(ctx)
		adminCfg = cfg
	})
	return adminCfg, probeErr
}

// Admin connects to the admin database, or skips the test.
func Admin(t testing.TB) *pgx.Conn {
	t.Helper()
	cfg := need(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

func need(t testing.TB) *pgx.ConnConfig {
	t.Helper()
	cfg, err := admin()
	if err != nil {
		msg := fmt.Sprintf("PostgreSQL is not reachable (%v): start it (scripts/test does, as root) or point REFAPP_TEST_PG at an admin connection string", err)
		if os.Getenv("REFAPP_TEST_PG_REQUIRED") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return cfg
}

// NewDB creates an empty database, dropped when the test ends, and returns its connection
// string (keyword/value form). It skips the test when no server is reachable.
func NewDB(t testing.TB) string {
	t.Helper()
	cfg := need(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "refapp_test_" + hex.EncodeToString(b[:])
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
	return DSN(cfg, name)
}

// DSN renders cfg's server and credentials as a keyword/value connection string for dbname.
func DSN(cfg *pgx.ConnConfig, dbname string) string {
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
