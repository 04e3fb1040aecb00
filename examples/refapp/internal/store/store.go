// Package store holds the app's data: the session table (session.Store) and the users, on
// PostgreSQL (the deployment's database, shared with the Node app) or on an SQLite file (the
// demo's embedded default, shared by the workers of one host).
package store

import (
	"context"
	"database/sql"
	"errors"
	"net"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"
	"golang.org/x/crypto/bcrypt"
)

// User is a row of the users table, without its password hash.
type User struct {
	ID    int64  `json:"id"`
	Email string `json:"email"`
}

// Seed is a user to create at start if missing.
type Seed struct {
	Email, Password string
}

// SeedResult says what seeding did.
type SeedResult struct {
	Created []string // users inserted now
	Kept    []string // users that existed with another password: left as they are
}

// seedUsers creates each missing user with a bcrypt hash of its password; it never changes an
// existing user (the table may be the Node app's). Safe when N workers seed at once: the
// insert does nothing on a conflicting email. lookup is the store's UserByEmail.
func seedUsers(ctx context.Context, seeds []Seed, cost int,
	lookup func(ctx context.Context, email string) (u User, hash string, found bool, err error),
	insert func(ctx context.Context, email, hash string) (bool, error),
) (SeedResult, error) {
	var res SeedResult
	for _, s := range seeds {
		_, hash, found, err := lookup(ctx, s.Email)
		if err != nil {
			return res, err
		}
		if found {
			if bcrypt.CompareHashAndPassword([]byte(hash), []byte(s.Password)) != nil {
				res.Kept = append(res.Kept, s.Email)
			}
			continue
		}
		h, err := bcrypt.GenerateFromPassword([]byte(s.Password), cost)
		if err != nil {
			return res, err
		}
		ok, err := insert(ctx, s.Email, string(h))
		if err != nil {
			return res, err
		}
		if ok {
			res.Created = append(res.Created, s.Email)
		}
	}
	return res, nil
}

// rowFound turns the error of a single-row query (pgx's or database/sql's Scan) into whether
// the row was found: no row is not an error.
func rowFound(err error) (bool, error) {
	if errors.Is(err, pgx.ErrNoRows) || errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// Unavailable reports whether err means the database could not be reached in time (pool
// saturated, connection refused or lost, timeout, SQLite busy): the request should get a 503,
// not a 500.
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	var coded interface{ Code() int }
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		errors.Is(err, puddle.ErrClosedPool), errors.As(err, &ce),
		errors.As(err, &ne), pgconn.Timeout(err):
		return true
	case errors.As(err, &coded):
		// SQLITE_BUSY (5), SQLITE_LOCKED (6), SQLITE_IOERR (10), SQLITE_FULL (13),
		// SQLITE_CANTOPEN (14), extended codes included.
		switch coded.Code() & 0xff {
		case 5, 6, 10, 13, 14:
			return true
		}
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// Class 08 (connection exception), 53 (insufficient resources), 57P (operator
		// intervention: shutdown, cannot connect now).
		return pe.Code[:2] == "08" || pe.Code[:2] == "53" || pe.Code[:3] == "57P"
	}
	// A connection that broke mid-query; a closed database/sql handle.
	return errors.Is(err, net.ErrClosed) || errors.Is(err, sql.ErrConnDone) || err.Error() == "sql: database is closed"
}
