package store

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/corral-pm/corral/examples/refapp/internal/session"
	"github.com/corral-pm/corral/internal/pgtest"
)

// instance is one worker's view of a shared database, plus test-only raw access.
type instance interface {
	session.Store
	Migrate(ctx context.Context) error
	Seed(ctx context.Context, seeds []Seed, cost int) (SeedResult, error)
	UserByEmail(ctx context.Context, email string) (User, string, bool, error)
	Close()
}

// db is one shared database and a way to open worker instances on it.
type db struct {
	open func(t *testing.T) instance
	// raw returns the stored text and expire (Unix seconds) of sid.
	raw   func(t *testing.T, sid string) (sess string, expire int64, ok bool)
	count func(t *testing.T) int
}

func newPGDB(t *testing.T) *db {
	url := pgtest.DSN(t, pgtest.NewDB(t))
	admin := connect(t, url)
	return &db{
		open: func(t *testing.T) instance {
			s, err := OpenPG(PGOptions{URL: url, AppName: "refapp-test", MaxConns: 4})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(s.Close)
			return s
		},
		raw: func(t *testing.T, sid string) (string, int64, bool) {
			var text string
			var exp float64
			found, err := rowFound(admin.QueryRow(context.Background(), `SELECT sess::text, extract(epoch FROM expire::timestamptz) FROM "session" WHERE sid = $1`, sid).Scan(&text, &exp))
			if err != nil {
				t.Fatal(err)
			}
			return text, int64(exp), found
		},
		count: func(t *testing.T) int {
			var n int
			if err := admin.QueryRow(context.Background(), `SELECT count(*) FROM "session"`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		},
	}
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

func newSQLiteDB(t *testing.T) *db {
	path := filepath.Join(t.TempDir(), "refapp.db")
	var admin *SQLite
	d := &db{
		open: func(t *testing.T) instance {
			s, err := OpenSQLite(context.Background(), path, 4)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(s.Close)
			return s
		},
	}
	getAdmin := func(t *testing.T) *SQLite {
		if admin == nil {
			admin = d.open(t).(*SQLite)
		}
		return admin
	}
	d.raw = func(t *testing.T, sid string) (string, int64, bool) {
		var text string
		var exp int64
		err := getAdmin(t).db.QueryRow(`SELECT sess, expire FROM "session" WHERE sid = ?`, sid).Scan(&text, &exp)
		if err != nil {
			return "", 0, false
		}
		return text, exp, true
	}
	d.count = func(t *testing.T) int {
		var n int
		if err := getAdmin(t).db.QueryRow(`SELECT count(*) FROM "session"`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	return d
}

// forEach runs a test against PostgreSQL (skipped when none is reachable) and SQLite.
func forEach(t *testing.T, test func(t *testing.T, d *db)) {
	t.Run("postgres", func(t *testing.T) { test(t, newPGDB(t)) })
	t.Run("sqlite", func(t *testing.T) { test(t, newSQLiteDB(t)) })
}

// openN opens n worker instances on d.
func openN(t *testing.T, d *db, n int) []instance {
	insts := make([]instance, n)
	for i := range insts {
		insts[i] = d.open(t)
	}
	return insts
}

// atOnce calls f on every instance, each in its own goroutine, released together (as workers
// starting at the same moment), and waits for them all.
func atOnce(insts []instance, f func(i int, in instance)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, in := range insts {
		wg.Go(func() {
			<-start
			f(i, in)
		})
	}
	close(start)
	wg.Wait()
}

func migrated(t *testing.T, d *db) instance {
	s := d.open(t)
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

const (
	now      = int64(1_900_000_000) // 2030-03-17, the app clock, in Unix seconds
	nodeSess = `{"cookie":{"originalMaxAge":86400000,"expires":"2030-03-18T17:46:40.000Z","httpOnly":true,"path":"/"},"passport":{"user":1},"flash":{"info":["a < b"]}}`
)

func TestLoadIgnoresExpiredRows(t *testing.T) {
	forEach(t, func(t *testing.T, d *db) {
		s := migrated(t, d)
		ctx := context.Background()
		for sid, exp := range map[string]int64{"past": now - 1, "now": now, "future": now + 1} {
			if ok, err := s.Insert(ctx, sid, nodeSess, exp); err != nil || !ok {
				t.Fatalf("insert %s: %v %v", sid, ok, err)
			}
		}
		for sid, want := range map[string]bool{"past": false, "now": true, "future": true, "missing": false} {
			text, found, err := s.Load(ctx, sid, now)
			if err != nil {
				t.Fatal(err)
			}
			if found != want {
				t.Errorf("Load(%s) found = %v, want %v (expire >= now, as connect-pg-simple)", sid, found, want)
			}
			if found && text != nodeSess {
				t.Errorf("Load(%s) text changed:\n%s", sid, text)
			}
		}
	})
}

func TestInsertNeverOverwrites(t *testing.T) {
	forEach(t, func(t *testing.T, d *db) {
		s := migrated(t, d)
		ctx := context.Background()
		if ok, err := s.Insert(ctx, "sid", nodeSess, now+10); err != nil || !ok {
			t.Fatalf("first insert: %v %v", ok, err)
		}
		if ok, err := s.Insert(ctx, "sid", `{"cookie":{}}`, now+20); err != nil || ok {
			t.Fatalf("second insert: %v %v; want false", ok, err)
		}
		if text, exp, _ := d.raw(t, "sid"); text != nodeSess || exp != now+10 {
			t.Errorf("row changed: %s %d", text, exp)
		}
	})
}

func TestSaveAfterConcurrentDeleteDoesNotResurrect(t *testing.T) {
	forEach(t, func(t *testing.T, d *db) {
		a, b := migrated(t, d), d.open(t) // two workers
		ctx := context.Background()
		if _, err := a.Insert(ctx, "sid", nodeSess, now+100); err != nil {
			t.Fatal(err)
		}
		loaded, found, err := a.Load(ctx, "sid", now)
		if err != nil || !found {
			t.Fatal(found, err)
		}
		// Worker b logs the session out while a's request is in flight.
		if ok, err := b.Destroy(ctx, "sid"); err != nil || !ok {
			t.Fatal(ok, err)
		}
		for _, prev := range []string{loaded, ""} {
			ok, err := a.Update(ctx, "sid", `{"cookie":{},"passport":{"user":1},"x":1}`, now+200, prev)
			if err != nil || ok {
				t.Errorf("Update(prev=%q) after delete = %v, %v; want false (0 rows)", prev, ok, err)
			}
		}
		if ok, err := a.Touch(ctx, "sid", now+300); err != nil || ok {
			t.Errorf("Touch after delete = %v, %v; want false", ok, err)
		}
		if _, _, ok := d.raw(t, "sid"); ok {
			t.Fatal("the deleted session was resurrected")
		}
	})
}

func TestUpdateCompareAndSwap(t *testing.T) {
	forEach(t, func(t *testing.T, d *db) {
		a, b := migrated(t, d), d.open(t)
		ctx := context.Background()
		if _, err := a.Insert(ctx, "sid", nodeSess, now+100); err != nil {
			t.Fatal(err)
		}
		loaded, _, _ := a.Load(ctx, "sid", now)
		bText := `{"cookie":{},"b":1}`
		if ok, err := b.Update(ctx, "sid", bText, now+150, loaded); err != nil || !ok {
			t.Fatalf("b's update: %v %v", ok, err)
		}
		// a saves from the stale version: refused, b's write stays.
		if ok, err := a.Update(ctx, "sid", `{"cookie":{},"a":1}`, now+160, loaded); err != nil || ok {
			t.Fatalf("stale CAS update = %v, %v; want false", ok, err)
		}
		if text, exp, _ := d.raw(t, "sid"); text != bText || exp != now+150 {
			t.Errorf("row = %s %d; want b's write", text, exp)
		}
	})
}

func TestTouchMovesOnlyExpire(t *testing.T) {
	forEach(t, func(t *testing.T, d *db) {
		s := migrated(t, d)
		ctx := context.Background()
		// Node's own text, with spacing a Go encoder would not produce: json keeps it.
		text := `{"cookie":{"originalMaxAge":1000,"expires":"2030-01-01T00:00:00.000Z","httpOnly":true,"path":"/"}, "passport":{"user":"7"},"z":[1, 2]}`
		if _, err := s.Insert(ctx, "sid", text, now); err != nil {
			t.Fatal(err)
		}
		if ok, err := s.Touch(ctx, "sid", now+500); err != nil || !ok {
			t.Fatal(ok, err)
		}
		got, exp, _ := d.raw(t, "sid")
		if got != text {
			t.Errorf("touch rewrote sess:\n got %s\nwant %s", got, text)
		}
		if exp != now+500 {
			t.Errorf("expire = %d, want %d", exp, now+500)
		}
	})
}

func TestConcurrentPrunesOneDeletes(t *testing.T) {
	forEach(t, func(t *testing.T, d *db) {
		s := migrated(t, d)
		ctx := context.Background()
		const expired, live = 50, 5
		for i := range expired {
			if _, err := s.Insert(ctx, "old-"+string(rune('A'+i%26))+string(rune('a'+i/26)), nodeSess, now-1-int64(i)); err != nil {
				t.Fatal(err)
			}
		}
		for i := range live {
			if _, err := s.Insert(ctx, "live-"+string(rune('a'+i)), nodeSess, now+int64(i)); err != nil {
				t.Fatal(err)
			}
		}
		const workers = 8
		insts := openN(t, d, workers)
		deleted := make([]int64, workers)
		errs := make([]error, workers)
		atOnce(insts, func(i int, in instance) { deleted[i], _, errs[i] = in.Prune(ctx, now) })
		var total int64
		deleters := 0
		for i := range workers {
			if errs[i] != nil {
				t.Errorf("prune %d: %v", i, errs[i])
			}
			total += deleted[i]
			if deleted[i] > 0 {
				deleters++
			}
		}
		if total != expired || deleters != 1 {
			t.Errorf("prunes deleted %v: total %d by %d workers; want %d by exactly one", deleted, total, deleters, expired)
		}
		if n := d.count(t); n != live {
			t.Errorf("%d rows left, want the %d live ones", n, live)
		}
	})
}

func TestMigrateConcurrently(t *testing.T) {
	forEach(t, func(t *testing.T, d *db) {
		const workers = 8
		insts := openN(t, d, workers)
		errs := make([]error, workers)
		atOnce(insts, func(i int, in instance) { errs[i] = in.Migrate(context.Background()) })
		for i, err := range errs {
			if err != nil {
				t.Errorf("worker %d: %v", i, err)
			}
		}
		// Again, on existing tables.
		if err := insts[0].Migrate(context.Background()); err != nil {
			t.Error(err)
		}
	})
}

func TestSeedConcurrently(t *testing.T) {
	forEach(t, func(t *testing.T, d *db) {
		migrated(t, d)
		seeds := []Seed{{"a@x", "pw1"}, {"b@x", "pw:2"}}
		const workers = 4
		insts := openN(t, d, workers)
		created := make([]SeedResult, workers)
		errs := make([]error, workers)
		atOnce(insts, func(i int, in instance) { created[i], errs[i] = in.Seed(context.Background(), seeds, 4) })
		n := 0
		for i := range workers {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			n += len(created[i].Created)
		}
		if n != 2 {
			t.Errorf("%d users created in all, want 2: %v", n, created)
		}
		u, hash, found, err := insts[0].UserByEmail(context.Background(), "b@x")
		if err != nil || !found || u.Email != "b@x" || hash == "" {
			t.Fatalf("UserByEmail = %v %q %v %v", u, hash, found, err)
		}
		// An existing user is never changed; a different configured password is reported.
		res, err := insts[0].Seed(context.Background(), []Seed{{"a@x", "other"}}, 4)
		if err != nil || len(res.Created) != 0 || len(res.Kept) != 1 {
			t.Errorf("re-seed with another password = %+v, %v", res, err)
		}
	})
}

// N workers opening a new SQLite file at the same moment: switching it to WAL can fail with
// SQLITE_BUSY without waiting for the busy timeout, so OpenSQLite retries.
func TestSQLiteConcurrentFirstOpen(t *testing.T) {
	for round := range 20 {
		path := filepath.Join(t.TempDir(), "refapp.db")
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Go(func() {
				s, err := OpenSQLite(context.Background(), path, 2)
				if err != nil {
					t.Errorf("round %d worker %d: %v", round, i, err)
					return
				}
				defer s.Close()
				if err := s.Migrate(context.Background()); err != nil {
					t.Errorf("round %d worker %d: migrate: %v", round, i, err)
				}
			})
		}
		wg.Wait()
	}
}
