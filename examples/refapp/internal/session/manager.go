package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"
)

// Store is the session table. Times are Unix seconds computed from the app's clock, as
// connect-pg-simple does; implementations compare and store them, and never read a clock.
type Store interface {
	// Load returns the stored JSON of sid if its row exists and expire >= nowSecs
	// (connect-pg-simple's get).
	Load(ctx context.Context, sid string, nowSecs int64) (sess string, found bool, err error)
	// Insert writes a new row and never overwrites one (ON CONFLICT DO NOTHING); false when
	// the sid exists.
	Insert(ctx context.Context, sid, sess string, expireSecs int64) (bool, error)
	// Update rewrites an existing row (UPDATE, never an upsert, so a concurrently deleted
	// session stays deleted). A non-empty prev makes it a compare-and-swap against the text
	// that was loaded. False when no row matched.
	Update(ctx context.Context, sid, sess string, expireSecs int64, prev string) (bool, error)
	// Touch moves only the expire column (connect-pg-simple's touch). False when no row.
	Touch(ctx context.Context, sid string, expireSecs int64) (bool, error)
	// Destroy deletes the row. False when there was none.
	Destroy(ctx context.Context, sid string) (bool, error)
	// Prune deletes the rows with expire < nowSecs, one caller at a time across all workers;
	// ran is false when another worker was pruning at that moment.
	Prune(ctx context.Context, nowSecs int64) (deleted int64, ran bool, err error)
}

// Options are express-session's middleware options that matter here.
type Options struct {
	Name     string        // cookie name; default "connect.sid"
	Secrets  []string      // the first signs, all verify
	MaxAge   time.Duration // cookie.maxAge; 0 = a browser-session cookie (expire from TTL)
	Path     string        // cookie.path; default "/"
	Domain   string        // cookie.domain
	Secure   bool          // cookie.secure
	SameSite string        // cookie.sameSite: "", "lax", "strict" or "none"
	Rolling  bool          // Set-Cookie on every response of a session, not only when it changed
	TTL      time.Duration // connect-pg-simple's ttl, for cookies without maxAge; default 1 day
	Now      func() time.Time
	Logger   *slog.Logger
}

// Manager runs express-session's request life cycle against a Store, with passport's
// conventions for login and logout. Handlers call it explicitly, and every store write is
// committed before the handler writes its response, as express-session holds the response
// until the store's callback.
type Manager struct {
	opt   Options
	store Store
	now   func() time.Time
	log   *slog.Logger
}

// Session is a loaded (or just created) session.
type Session struct {
	ID     string
	Data   *Data
	loaded string // the stored text it was loaded from / last saved as
}

// NewManager checks the options and fills in the defaults.
func NewManager(store Store, o Options) (*Manager, error) {
	if len(o.Secrets) == 0 {
		return nil, errors.New("session: at least one secret is needed")
	}
	for _, s := range o.Secrets {
		if s == "" {
			return nil, errors.New("session: a secret is empty")
		}
	}
	if o.MaxAge < 0 {
		return nil, errors.New("session: negative max age")
	}
	switch strings.ToLower(o.SameSite) {
	case "", "lax", "strict", "none":
	default:
		return nil, fmt.Errorf("session: sameSite %q is not lax, strict or none", o.SameSite)
	}
	if o.Name == "" {
		o.Name = "connect.sid"
	}
	if o.Path == "" {
		o.Path = "/"
	}
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	m := &Manager{opt: o, store: store, now: o.Now, log: o.Logger}
	if m.now == nil {
		m.now = time.Now
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	return m, nil
}

// SID returns the session ID of r's signed cookie: the first cookie of that name, "s:" prefix,
// a signature by one of the secrets. Anything else means no session (never an error), as in
// express-session.
func (m *Manager) SID(r *http.Request) (string, bool) {
	raw, ok := requestCookie(r, m.opt.Name)
	if !ok || !strings.HasPrefix(raw, "s:") {
		return "", false
	}
	return Unsign(raw[2:], m.opt.Secrets)
}

// Load returns r's session, or nil when r has no valid cookie or its row is missing or
// expired. An error is a store failure.
func (m *Manager) Load(ctx context.Context, r *http.Request) (*Session, error) {
	sid, ok := m.SID(r)
	if !ok {
		return nil, nil
	}
	text, found, err := m.store.Load(ctx, sid, NowSecs(m.now()))
	if err != nil || !found {
		return nil, err
	}
	d, err := ParseData(text)
	if err != nil {
		if errors.Is(err, ErrInvalidJSON) {
			// connect-pg-simple destroys a session whose JSON does not parse.
			m.log.Warn("session: stored JSON does not parse; destroying it", "err", err)
			if _, err := m.store.Destroy(ctx, sid); err != nil {
				return nil, err
			}
			return nil, nil
		}
		m.log.Warn("session: stored session ignored", "err", err)
		return nil, nil
	}
	return &Session{ID: sid, Data: d, loaded: text}, nil
}

// Login is passport's req.logIn: regenerate (the old row, if r carried a valid cookie, is
// deleted, and a new ID is made, with no data kept), store passport.user, save before
// responding, and set the new cookie.
func (m *Manager) Login(ctx context.Context, w http.ResponseWriter, r *http.Request, userID int64) (*Session, error) {
	if old, ok := m.SID(r); ok {
		if _, err := m.store.Destroy(ctx, old); err != nil {
			return nil, err
		}
	}
	now := m.now()
	d := NewData(NewCookie(&m.opt, now))
	d.SetUserID(userID)
	text := d.Marshal()
	exp := ExpireSecs(&d.Cookie, now, m.opt.TTL)
	for range 3 {
		sid := NewID()
		ok, err := m.store.Insert(ctx, sid, text, exp)
		if err != nil {
			return nil, err
		}
		if ok {
			s := &Session{ID: sid, Data: d, loaded: text}
			m.setCookie(w, s)
			return s, nil
		}
	}
	return nil, errors.New("session: could not find a free session ID")
}

// Touch is express-session's touch path for an unmodified session (resave:false): only the
// row's expire moves, to now + originalMaxAge; the stored JSON is not rewritten. False means
// the row is gone (logged out meanwhile): treat the request as anonymous. With Rolling, the
// cookie is re-sent with the new expiry.
func (m *Manager) Touch(ctx context.Context, w http.ResponseWriter, s *Session) (bool, error) {
	now := m.now()
	ok, err := m.store.Touch(ctx, s.ID, ExpireSecs(&s.Data.Cookie, now, m.opt.TTL))
	if err != nil || !ok {
		return false, err
	}
	if m.opt.Rolling {
		c := s.Data.Cookie
		c.ResetExpires(now)
		m.setCookieWith(w, s.ID, &c)
	}
	return true, nil
}

// Save writes a modified session back: the cookie is touched (expires = now + originalMaxAge)
// and the whole document is written with an UPDATE that only succeeds if the row still holds
// what was loaded. False means the session was deleted or changed by another request
// meanwhile; nothing was written (no resurrection, no silent lost update).
func (m *Manager) Save(ctx context.Context, w http.ResponseWriter, s *Session) (bool, error) {
	now := m.now()
	next := *s.Data
	next.Cookie.ResetExpires(now)
	text := next.Marshal()
	ok, err := m.store.Update(ctx, s.ID, text, ExpireSecs(&next.Cookie, now, m.opt.TTL), s.loaded)
	if err != nil || !ok {
		return false, err
	}
	*s.Data = next
	s.loaded = text
	// express-session: Set-Cookie for a modified session whose cookie has an expiry.
	if m.opt.Rolling || s.Data.Cookie.Expires != nil {
		m.setCookie(w, s)
	}
	return true, nil
}

// Logout deletes r's session row (when r has a valid cookie) and clears the cookie. It reports
// whether a row was deleted.
func (m *Manager) Logout(ctx context.Context, w http.ResponseWriter, r *http.Request) (bool, error) {
	deleted := false
	if sid, ok := m.SID(r); ok {
		var err error
		if deleted, err = m.store.Destroy(ctx, sid); err != nil {
			return false, err
		}
	}
	w.Header().Add("Set-Cookie", ClearCookieHeader(m.opt.Name, m.opt.Path, m.opt.Domain))
	return deleted, nil
}

func (m *Manager) setCookie(w http.ResponseWriter, s *Session) {
	m.setCookieWith(w, s.ID, &s.Data.Cookie)
}

func (m *Manager) setCookieWith(w http.ResponseWriter, sid string, c *Cookie) {
	w.Header().Add("Set-Cookie", SetCookieHeader(m.opt.Name, SignedValue(sid, m.opt.Secrets[0]), c))
}

// Prune deletes expired rows now (see Store.Prune).
func (m *Manager) Prune(ctx context.Context) (int64, bool, error) {
	return m.store.Prune(ctx, NowSecs(m.now()))
}

// RunPruner prunes until ctx is done, at connect-pg-simple's randomized interval: each delay
// is 50 %–150 % of interval, so workers that started together do not prune together. Failures
// are logged and retried at the next interval.
func (m *Manager) RunPruner(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		return
	}
	for {
		delay := interval/2 + time.Duration(rand.Int64N(int64(interval)))
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		n, ran, err := m.Prune(pctx)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil:
			m.log.Error("Failed to prune sessions", "err", err)
		case ran && n > 0:
			m.log.Info("pruned expired sessions", "deleted", n)
		}
	}
}
