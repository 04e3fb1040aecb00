package pgpool

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/corral-pm/corral/examples/refapp/internal/pgtest"
)

func newPool(t *testing.T, cfg Config) *Pool {
	t.Helper()
	url := pgtest.NewDB(t)
	cc, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cc.RuntimeParams["application_name"] = "pgpool-test"
	cfg.ConnConfig = cc
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func backendPID(t *testing.T, c *Conn) uint32 { return c.PgConn().PID() }

func TestBoundAndWait(t *testing.T) {
	p := newPool(t, Config{MaxConns: 2})
	ctx := context.Background()
	a, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s := p.Stat(); s.Acquired != 2 || s.Total != 2 || s.Max != 2 {
		t.Errorf("stat %+v", s)
	}
	// Saturated: the caller's deadline bounds the wait.
	tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err = p.Acquire(tctx)
	cancel()
	var ae *AcquireError
	if !errors.As(err, &ae) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("saturated Acquire: %v", err)
	}
	// A waiter gets the released connection (the same backend: reuse, no new connection).
	pidA := backendPID(t, a)
	got := make(chan *Conn)
	go func() {
		c, err := p.Acquire(ctx)
		if err != nil {
			t.Error(err)
		}
		got <- c
	}()
	time.Sleep(20 * time.Millisecond)
	a.Release()
	c := <-got
	if backendPID(t, c) != pidA {
		t.Error("released connection not reused")
	}
	c.Release()
	b.Release()
	s := p.Stat()
	if s.Acquired != 0 || s.Idle != 2 || s.NewConnsCount != 2 || s.WaitCount != 2 || s.CanceledAcquireCount != 1 {
		t.Errorf("stat %+v", s)
	}
}

func TestNeverMoreThanMax(t *testing.T) {
	p := newPool(t, Config{MaxConns: 3})
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 40 {
		wg.Go(func() {
			if _, err := p.Exec(ctx, "SELECT pg_sleep(0.005)"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	var n int
	if err := p.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgpool-test'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if s := p.Stat(); n > 3 || s.NewConnsCount > 3 || s.Total > 3 {
		t.Errorf("%d server connections, stat %+v; max 3", n, s)
	}
}

func TestBrokenConnectionsAreReplaced(t *testing.T) {
	p := newPool(t, Config{MaxConns: 1, PingAfterIdle: time.Millisecond})
	ctx := context.Background()
	c, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pid := backendPID(t, c)
	c.Release()
	// The server drops the idle connection (restart, idle timeout, admin).
	admin := pgtest.Admin(t)
	if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend($1)`, int32(pid)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	// The ping before reuse catches it and a new connection is made.
	if err := p.Ping(ctx); err != nil {
		t.Fatalf("after the backend was killed: %v", err)
	}
	if s := p.Stat(); s.NewConnsCount != 2 || s.Total != 1 {
		t.Errorf("stat %+v", s)
	}
}

func TestConnectionLeftInTransactionIsClosed(t *testing.T) {
	p := newPool(t, Config{MaxConns: 1})
	ctx := context.Background()
	c, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	pid := backendPID(t, c)
	c.Release()
	if s := p.Stat(); s.Idle != 0 || s.Total != 0 {
		t.Errorf("a connection in a transaction went back to the pool: %+v", s)
	}
	c, err = p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	if backendPID(t, c) == pid || c.PgConn().TxStatus() != 'I' {
		t.Errorf("next connection: pid %d (old %d), tx status %c", backendPID(t, c), pid, c.PgConn().TxStatus())
	}
}

func TestIdleAndLifetimeLimits(t *testing.T) {
	p := newPool(t, Config{MaxConns: 1, MaxConnIdleTime: 20 * time.Millisecond, HealthCheckPeriod: 10 * time.Millisecond})
	ctx := context.Background()
	if err := p.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for p.Stat().Idle != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("idle connection not closed: %+v", p.Stat())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestClose(t *testing.T) {
	p := newPool(t, Config{MaxConns: 2})
	ctx := context.Background()
	held, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	p.Close()
	if _, err := p.Acquire(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Acquire after Close: %v", err)
	}
	held.Release() // closed, not pooled
	if s := p.Stat(); s.Total != 0 {
		t.Errorf("stat after close %+v", s)
	}
	if row := p.QueryRow(ctx, "SELECT 1"); row.Scan(new(int)) == nil {
		t.Error("QueryRow on a closed pool succeeded")
	}
}
