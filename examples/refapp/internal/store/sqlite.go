package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	_ "modernc.org/sqlite" // database/sql driver "sqlite"
)

// The SQLite schema mirrors the PostgreSQL one; expire holds Unix seconds (SQLite has no
// timestamp type, and integers have no time zone to get wrong).
var sqliteSchema = []string{
	`CREATE TABLE IF NOT EXISTS "session" (
  "sid" TEXT NOT NULL PRIMARY KEY,
  "sess" TEXT NOT NULL,
  "expire" INTEGER NOT NULL
)`,
	`CREATE INDEX IF NOT EXISTS "IDX_session_expire" ON "session" ("expire")`,
	`CREATE TABLE IF NOT EXISTS users (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  email TEXT NOT NULL UNIQUE,
  password_hash TEXT NOT NULL
)`,
}

// SQLite is the store on one SQLite file, shared by the workers of one host: WAL (readers do
// not block the writer), a busy timeout (writers wait for each other instead of failing), and
// BEGIN IMMEDIATE transactions (a transaction takes the write lock up front, so it cannot fail
// on upgrading a read lock).
type SQLite struct {
	db   *sql.DB
	path string
}

// OpenSQLite opens (creating if needed) the database file at path and puts it in WAL mode.
func OpenSQLite(ctx context.Context, path string, maxConns int) (*SQLite, error) {
	if strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("SQLite path %q: '?' is not allowed in the path", path)
	}
	if maxConns < 1 {
		maxConns = 1
	}
	// journal_mode is not set per connection: switching a new file to WAL while other
	// processes open it can fail with SQLITE_BUSY without waiting for the busy timeout.
	// WAL is persistent, so it is set once below, with retries.
	db, err := sql.Open("sqlite", path+"?_busy_timeout=10000&_synchronous=NORMAL&_txlock=immediate")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	db.SetConnMaxIdleTime(2 * time.Minute)
	s := &SQLite{db: db, path: path}
	if err := s.setWAL(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("SQLite %s: setting WAL mode: %w", path, err)
	}
	return s, nil
}

func (s *SQLite) setWAL(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for delay := 5 * time.Millisecond; ; delay = min(2*delay, 200*time.Millisecond) {
		var mode string
		err := s.db.QueryRowContext(ctx, `PRAGMA journal_mode = WAL`).Scan(&mode)
		if err == nil && strings.EqualFold(mode, "wal") {
			return nil
		}
		if err == nil {
			return fmt.Errorf("journal_mode is %q", mode)
		}
		if !Unavailable(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
	}
}

// DB is the database handle.
func (s *SQLite) DB() *sql.DB { return s.db }

// Close closes the database.
func (s *SQLite) Close() { _ = s.db.Close() }

// Kind names the backend.
func (s *SQLite) Kind() string { return "sqlite" }

// Ping checks the database file.
func (s *SQLite) Ping(ctx context.Context) error {
	var one int
	return s.db.QueryRowContext(ctx, `SELECT 1`).Scan(&one)
}

// SQLiteStats is database/sql's pool snapshot.
type SQLiteStats struct {
	Acquired int    `json:"acquired"`
	Idle     int    `json:"idle"`
	Total    int    `json:"total"`
	Max      int    `json:"max"`
	Wait     int64  `json:"wait_count"`
	Path     string `json:"path"`
}

// Stats is the pool's snapshot, for /api/health.
func (s *SQLite) Stats() any {
	st := s.db.Stats()
	return SQLiteStats{Acquired: st.InUse, Idle: st.Idle, Total: st.OpenConnections, Max: st.MaxOpenConnections, Wait: st.WaitCount, Path: s.path}
}

// Migrate creates the tables and index if missing (inside one BEGIN IMMEDIATE: one worker at
// a time).
func (s *SQLite) Migrate(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, q := range sqliteSchema {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// Seed creates the missing users.
func (s *SQLite) Seed(ctx context.Context, seeds []Seed, cost int) (SeedResult, error) {
	return seedUsers(ctx, seeds, cost,
		s.UserByEmail,
		func(ctx context.Context, email, hash string) (bool, error) {
			return affected(s.db.ExecContext(ctx, `INSERT INTO users (email, password_hash) VALUES (?, ?) ON CONFLICT (email) DO NOTHING`, email, hash))
		})
}

// UserByEmail returns the user and its password hash.
func (s *SQLite) UserByEmail(ctx context.Context, email string) (User, string, bool, error) {
	var u User
	var h string
	found, err := rowFound(s.db.QueryRowContext(ctx, `SELECT id, email, password_hash FROM users WHERE email = ?`, email).Scan(&u.ID, &u.Email, &h))
	return u, h, found, err
}

// UserByID returns a user.
func (s *SQLite) UserByID(ctx context.Context, id int64) (User, bool, error) {
	var u User
	found, err := rowFound(s.db.QueryRowContext(ctx, `SELECT id, email FROM users WHERE id = ?`, id).Scan(&u.ID, &u.Email))
	return u, found, err
}

// Load implements session.Store.
func (s *SQLite) Load(ctx context.Context, sid string, nowSecs int64) (string, bool, error) {
	var text string
	found, err := rowFound(s.db.QueryRowContext(ctx, `SELECT sess FROM "session" WHERE sid = ? AND expire >= ?`, sid, nowSecs).Scan(&text))
	return text, found, err
}

// Insert implements session.Store.
func (s *SQLite) Insert(ctx context.Context, sid, sess string, expireSecs int64) (bool, error) {
	return affected(s.db.ExecContext(ctx, `INSERT INTO "session" (sess, expire, sid) VALUES (?, ?, ?) ON CONFLICT (sid) DO NOTHING`, sess, expireSecs, sid))
}

// Update implements session.Store.
func (s *SQLite) Update(ctx context.Context, sid, sess string, expireSecs int64, prev string) (bool, error) {
	if prev == "" {
		return affected(s.db.ExecContext(ctx, `UPDATE "session" SET sess = ?, expire = ? WHERE sid = ?`, sess, expireSecs, sid))
	}
	return affected(s.db.ExecContext(ctx, `UPDATE "session" SET sess = ?, expire = ? WHERE sid = ? AND sess = ?`, sess, expireSecs, sid, prev))
}

// Touch implements session.Store.
func (s *SQLite) Touch(ctx context.Context, sid string, expireSecs int64) (bool, error) {
	return affected(s.db.ExecContext(ctx, `UPDATE "session" SET expire = ? WHERE sid = ?`, expireSecs, sid))
}

// Destroy implements session.Store.
func (s *SQLite) Destroy(ctx context.Context, sid string) (bool, error) {
	return affected(s.db.ExecContext(ctx, `DELETE FROM "session" WHERE sid = ?`, sid))
}

// Prune implements session.Store. SQLite has one writer at a time, so concurrent prunes run
// one after the other; the first deletes, the others find nothing left.
func (s *SQLite) Prune(ctx context.Context, nowSecs int64) (int64, bool, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, false, err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `DELETE FROM "session" WHERE expire < ?`, nowSecs)
	if err != nil {
		return 0, false, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, false, err
	}
	return n, true, tx.Commit()
}

func affected(res sql.Result, err error) (bool, error) {
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return err == nil && n > 0, err
}
