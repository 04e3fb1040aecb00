// Package pgpool is a small bounded pool of pgx connections: the part of pgxpool this app needs
// (MaxConns, idle and lifetime limits with jitter, a ping before reusing a connection that sat
// idle, acquire bounded by the caller's context, stats). pgxpool itself needs
// github.com/jackc/puddle/v2, which the corral module does not require; when it does, this
// package can be replaced by pgxpool with the same configuration.
package pgpool

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrClosed is returned by Acquire on a closed pool.
var ErrClosed = errors.New("pgpool: pool is closed")

// AcquireError is returned when the caller's context ended while waiting for a free connection
// (the pool is saturated): the equivalent of node-postgres' connectionTimeoutMillis.
type AcquireError struct{ Err error }

func (e *AcquireError) Error() string {
	return "pgpool: no free connection: " + e.Err.Error()
}
func (e *AcquireError) Unwrap() error { return e.Err }

// Config is the pool's configuration. Zero durations take the defaults below.
type Config struct {
	ConnConfig            *pgx.ConnConfig
	MaxConns              int           // required, >= 1
	MaxConnIdleTime       time.Duration // default 2 min: idle workers give connections back
	MaxConnLifetime       time.Duration // default 30 min
	MaxConnLifetimeJitter time.Duration // default 5 min: N workers do not reconnect in lock-step
	PingAfterIdle         time.Duration // default 1 s, as pgxpool: ping a connection idle longer than this before use
	HealthCheckPeriod     time.Duration // default 1 min: closes idle connections past their limits
}

// Stat is a snapshot of the pool.
type Stat struct {
	Acquired             int   `json:"acquired"`
	Idle                 int   `json:"idle"`
	Total                int   `json:"total"`
	Max                  int   `json:"max"`
	AcquireCount         int64 `json:"acquire_count"`
	WaitCount            int64 `json:"wait_count"`
	CanceledAcquireCount int64 `json:"canceled_acquire_count"`
	NewConnsCount        int64 `json:"new_conns_count"`
}

// Pool is a bounded set of connections. Holding a slot token is the right to hold a
// connection; idle connections hold none, and a token holder dials only when no connection is
// idle, so there are never more than MaxConns connections.
type Pool struct {
	cfg    Config
	tokens chan struct{}
	done   chan struct{}
	wg     sync.WaitGroup

	mu       sync.Mutex
	idle     []*Conn // LIFO: the least recently used ones age out
	acquired int
	closed   bool

	acquires, waits, canceled, dials atomic.Int64
}

// Conn is an acquired connection. Release it exactly once.
type Conn struct {
	*pgx.Conn
	p         *Pool
	deadline  time.Time
	idleSince time.Time
}

// New makes a pool; it does not connect.
func New(cfg Config) (*Pool, error) {
	if cfg.ConnConfig == nil {
		return nil, errors.New("pgpool: no connection config")
	}
	if cfg.MaxConns < 1 {
		return nil, fmt.Errorf("pgpool: MaxConns %d < 1", cfg.MaxConns)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.MaxConnIdleTime, 2*time.Minute)
	def(&cfg.MaxConnLifetime, 30*time.Minute)
	def(&cfg.MaxConnLifetimeJitter, 5*time.Minute)
	def(&cfg.PingAfterIdle, time.Second)
	def(&cfg.HealthCheckPeriod, time.Minute)
	p := &Pool{cfg: cfg, tokens: make(chan struct{}, cfg.MaxConns), done: make(chan struct{})}
	p.wg.Add(1)
	go p.healthLoop()
	return p, nil
}

// Config returns the effective configuration.
func (p *Pool) Config() Config { return p.cfg }

// Acquire returns a connection, waiting for a free slot until ctx is done.
func (p *Pool) Acquire(ctx context.Context) (*Conn, error) {
	p.acquires.Add(1)
	select {
	case p.tokens <- struct{}{}:
	default:
		p.waits.Add(1)
		select {
		case p.tokens <- struct{}{}:
		case <-ctx.Done():
			p.canceled.Add(1)
			return nil, &AcquireError{Err: ctx.Err()}
		case <-p.done:
			return nil, ErrClosed
		}
	}
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			<-p.tokens
			return nil, ErrClosed
		}
		p.acquired++
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			break
		}
		c := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()

		now := time.Now()
		if now.After(c.deadline) || now.Sub(c.idleSince) > p.cfg.MaxConnIdleTime {
			p.drop(c)
			continue
		}
		if now.Sub(c.idleSince) > p.cfg.PingAfterIdle {
			if err := c.Ping(ctx); err != nil {
				p.drop(c)
				if ctx.Err() != nil {
					<-p.tokens
					return nil, err
				}
				continue
			}
		}
		return c, nil
	}

	conn, err := pgx.ConnectConfig(ctx, p.cfg.ConnConfig)
	if err != nil {
		p.mu.Lock()
		p.acquired--
		p.mu.Unlock()
		<-p.tokens
		return nil, err
	}
	p.dials.Add(1)
	life := p.cfg.MaxConnLifetime + time.Duration(rand.Int64N(int64(p.cfg.MaxConnLifetimeJitter)+1))
	return &Conn{Conn: conn, p: p, deadline: time.Now().Add(life)}, nil
}

// drop closes a connection taken out of the idle list (still counted as acquired). Loop only.
func (p *Pool) drop(c *Conn) {
	p.mu.Lock()
	p.acquired--
	p.mu.Unlock()
	p.closeConn(c.Conn)
}

// closeConn closes c in the background (Close waits for it), or right away once the pool is
// closed (so that no background close starts while Close waits).
func (p *Pool) closeConn(c *pgx.Conn) {
	closeNow := func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = c.Close(ctx)
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		closeNow()
		return
	}
	p.wg.Add(1)
	p.mu.Unlock()
	go func() {
		defer p.wg.Done()
		closeNow()
	}()
}

// Release returns the connection to the pool, or closes it if it is broken, mid-transaction,
// past its lifetime, or the pool is closed.
func (c *Conn) Release() {
	p := c.p
	if p == nil {
		panic("pgpool: connection released twice")
	}
	c.p = nil
	pc := c.PgConn()
	reuse := !c.IsClosed() && !pc.IsBusy() && pc.TxStatus() == 'I' && time.Now().Before(c.deadline)
	p.mu.Lock()
	p.acquired--
	if reuse && !p.closed {
		c.idleSince = time.Now()
		p.idle = append(p.idle, &Conn{Conn: c.Conn, p: p, deadline: c.deadline, idleSince: c.idleSince})
		p.mu.Unlock()
	} else {
		p.mu.Unlock()
		p.closeConn(c.Conn)
	}
	<-p.tokens
}

func (p *Pool) healthLoop() {
	defer p.wg.Done()
	t := time.NewTicker(p.cfg.HealthCheckPeriod)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-t.C:
		}
		now := time.Now()
		var stale []*Conn
		p.mu.Lock()
		keep := p.idle[:0]
		for _, c := range p.idle {
			if now.After(c.deadline) || now.Sub(c.idleSince) > p.cfg.MaxConnIdleTime {
				stale = append(stale, c)
			} else {
				keep = append(keep, c)
			}
		}
		clear(p.idle[len(keep):])
		p.idle = keep
		p.mu.Unlock()
		for _, c := range stale {
			p.closeConn(c.Conn)
		}
	}
}

// Stat returns a snapshot of the pool.
func (p *Pool) Stat() Stat {
	p.mu.Lock()
	s := Stat{Acquired: p.acquired, Idle: len(p.idle), Max: p.cfg.MaxConns}
	p.mu.Unlock()
	s.Total = s.Acquired + s.Idle
	s.AcquireCount = p.acquires.Load()
	s.WaitCount = p.waits.Load()
	s.CanceledAcquireCount = p.canceled.Load()
	s.NewConnsCount = p.dials.Load()
	return s
}

// Close closes the idle connections and makes later Acquires fail; connections still acquired
// are closed when released. It waits for the closes it started.
func (p *Pool) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	idle := p.idle
	p.idle = nil
	close(p.done)
	p.mu.Unlock()
	for _, c := range idle {
		p.closeConn(c.Conn) // closed pool: synchronous
	}
	p.wg.Wait()
}

// WithConn runs fn with an acquired connection.
func (p *Pool) WithConn(ctx context.Context, fn func(*pgx.Conn) error) error {
	c, err := p.Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	return fn(c.Conn)
}

// Exec runs one statement.
func (p *Pool) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	c, err := p.Acquire(ctx)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	defer c.Release()
	return c.Exec(ctx, sql, args...)
}

// QueryRow runs a query returning at most one row; the connection is released by Scan.
func (p *Pool) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	c, err := p.Acquire(ctx)
	if err != nil {
		return errRow{err}
	}
	return &row{c: c, r: c.QueryRow(ctx, sql, args...)}
}

// BeginFunc runs fn in a transaction (committed if fn returns nil, rolled back otherwise).
func (p *Pool) BeginFunc(ctx context.Context, fn func(pgx.Tx) error) error {
	return p.WithConn(ctx, func(c *pgx.Conn) error { return pgx.BeginFunc(ctx, c, fn) })
}

// Ping checks that a connection to the server works.
func (p *Pool) Ping(ctx context.Context) error {
	return p.WithConn(ctx, func(c *pgx.Conn) error { return c.Ping(ctx) })
}

type row struct {
	c *Conn
	r pgx.Row
}

func (r *row) Scan(dest ...any) error {
	defer r.c.Release()
	return r.r.Scan(dest...)
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }
