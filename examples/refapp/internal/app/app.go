// Package app is the reference web app's HTTP layer: login, logout, one authenticated call and
// a health check, with express-session + passport semantics on a shared session table.
package app

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"mime"
	"net/http"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/corral-pm/corral/examples/refapp/internal/session"
	"github.com/corral-pm/corral/examples/refapp/internal/store"
)

// Backend is the database: the session table and the users.
type Backend interface {
	session.Store
	UserByEmail(ctx context.Context, email string) (u store.User, passwordHash string, found bool, err error)
	UserByID(ctx context.Context, id int64) (store.User, bool, error)
	Ping(ctx context.Context) error
	Stats() any
	Kind() string
}

// Config is what the handlers need besides the backend and the session manager.
type Config struct {
	Worker      string        // NODE_APP_INSTANCE, reported by /api/health
	PID         int           // reported by /api/health
	DBTimeout   time.Duration // bound on a request's database work (pool wait included); default 3 s
	PingTimeout time.Duration // bound on /api/health's ping; default 1 s
	BcryptCost  int           // cost of the hash compared for unknown emails; default bcrypt.DefaultCost
	Logger      *slog.Logger
}

// App serves the routes.
type App struct {
	cfg   Config
	b     Backend
	sm    *session.Manager
	log   *slog.Logger
	once  sync.Once
	dummy []byte
}

// New makes the app.
func New(cfg Config, b Backend, sm *session.Manager) *App {
	if cfg.DBTimeout <= 0 {
		cfg.DBTimeout = 3 * time.Second
	}
	if cfg.PingTimeout <= 0 {
		cfg.PingTimeout = time.Second
	}
	if cfg.BcryptCost == 0 {
		cfg.BcryptCost = bcrypt.DefaultCost
	}
	a := &App{cfg: cfg, b: b, sm: sm, log: cfg.Logger}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	return a
}

// Handler routes the API. /api/health is outside every session concern: it never reads the
// cookie, never touches the session table and never sets a cookie.
func (a *App) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/health", a.health)
	mux.HandleFunc("POST /api/auth/login", a.login)
	mux.HandleFunc("POST /api/auth/logout", a.logout)
	mux.HandleFunc("GET /api/me", a.me)
	return mux
}

type credentials struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

func (a *App) login(w http.ResponseWriter, r *http.Request) {
	creds, err := readCredentials(w, r)
	if err != nil {
		a.writeJSON(w, http.StatusBadRequest, errBody(err.Error()))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.DBTimeout)
	defer cancel()
	u, hash, found, err := a.b.UserByEmail(ctx, creds.Email)
	if err != nil {
		a.dbError(w, "login: user lookup", err)
		return
	}
	if !found {
		// Same work as a wrong password, so the response time does not tell which emails exist.
		_ = bcrypt.CompareHashAndPassword(a.dummyHash(), []byte(creds.Password))
		a.writeJSON(w, http.StatusUnauthorized, errBody("invalid email or password"))
		return
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(creds.Password)) != nil {
		a.writeJSON(w, http.StatusUnauthorized, errBody("invalid email or password"))
		return
	}
	if _, err := a.sm.Login(ctx, w, r, u.ID); err != nil {
		a.dbError(w, "login: session", err)
		return
	}
	a.writeJSON(w, http.StatusOK, map[string]any{"user": u})
}

func (a *App) logout(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.DBTimeout)
	defer cancel()
	if _, err := a.sm.Logout(ctx, w, r); err != nil {
		a.dbError(w, "logout", err)
		return
	}
	a.writeJSON(w, http.StatusOK, map[string]any{"ok": true})
}

func (a *App) me(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.DBTimeout)
	defer cancel()
	s, err := a.sm.Load(ctx, r)
	if err != nil {
		a.dbError(w, "me: session load", err)
		return
	}
	if s == nil {
		a.writeJSON(w, http.StatusUnauthorized, errBody("not logged in"))
		return
	}
	// resave:false: an unmodified session only has its expire moved. Committed before the
	// response, as express-session holds the response until the store's callback.
	alive, err := a.sm.Touch(ctx, w, s)
	if err != nil {
		a.dbError(w, "me: session touch", err)
		return
	}
	id, ok := s.Data.UserID()
	if !alive || !ok {
		a.writeJSON(w, http.StatusUnauthorized, errBody("not logged in"))
		return
	}
	u, found, err := a.b.UserByID(ctx, id)
	if err != nil {
		a.dbError(w, "me: user lookup", err)
		return
	}
	if !found {
		a.writeJSON(w, http.StatusUnauthorized, errBody("not logged in"))
		return
	}
	a.writeJSON(w, http.StatusOK, map[string]any{"user": u})
}

func (a *App) health(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.PingTimeout)
	defer cancel()
	body := map[string]any{
		"status": "ok",
		"worker": a.cfg.Worker,
		"pid":    a.cfg.PID,
		"db":     a.b.Kind(),
	}
	status := http.StatusOK
	if err := a.b.Ping(ctx); err != nil {
		status = http.StatusServiceUnavailable
		body["status"] = "unavailable"
		body["error"] = err.Error()
	}
	body["pool"] = a.b.Stats()
	a.writeJSON(w, status, body)
}

func (a *App) dummyHash() []byte {
	a.once.Do(func() {
		a.dummy, _ = bcrypt.GenerateFromPassword([]byte("refapp-no-such-user"), a.cfg.BcryptCost)
	})
	return a.dummy
}

// dbError answers a failed database call: 503 when the database is unreachable or saturated
// (the client may retry), 500 otherwise.
func (a *App) dbError(w http.ResponseWriter, what string, err error) {
	if store.Unavailable(err) {
		a.log.Warn(what+": database unavailable", "err", err)
		w.Header().Set("Retry-After", "1")
		a.writeJSON(w, http.StatusServiceUnavailable, errBody("database unavailable"))
		return
	}
	a.log.Error(what, "err", err)
	a.writeJSON(w, http.StatusInternalServerError, errBody("internal error"))
}

const maxBody = 64 << 10

// readCredentials reads email and password from a JSON body or a form (urlencoded or
// multipart), as express.json() + express.urlencoded() would.
func readCredentials(w http.ResponseWriter, r *http.Request) (credentials, error) {
	var c credentials
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case mt == "application/json" || (len(mt) > 5 && mt[len(mt)-5:] == "+json"):
		if err := json.NewDecoder(r.Body).Decode(&c); err != nil {
			return c, errors.New("body is not a JSON object with email and password")
		}
	case mt == "multipart/form-data":
		if err := r.ParseMultipartForm(maxBody); err != nil {
			return c, errors.New("unreadable form")
		}
		c.Email, c.Password = r.PostFormValue("email"), r.PostFormValue("password")
	default:
		if err := r.ParseForm(); err != nil {
			return c, errors.New("unreadable form")
		}
		c.Email, c.Password = r.PostForm.Get("email"), r.PostForm.Get("password")
	}
	if c.Email == "" || c.Password == "" {
		return c, errors.New("email and password are required")
	}
	return c, nil
}

func errBody(msg string) map[string]any { return map[string]any{"error": msg} }

func (a *App) writeJSON(w http.ResponseWriter, status int, body map[string]any) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	// Every answer says who gave it, as the Node app's do: the worker (NODE_APP_INSTANCE), its
	// pid and the stack, so a client (or a test) behind corral's round-robin sees which worker
	// served it.
	if _, ok := body["worker"]; !ok {
		body["worker"] = a.cfg.Worker
	}
	if _, ok := body["pid"]; !ok {
		body["pid"] = a.cfg.PID
	}
	body["stack"] = "go"
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(body)
}
