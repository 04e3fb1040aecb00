package session

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 678_900_000, time.UTC) // .6789 s: Date.now() truncates to .678

func TestNewSessionJSONShape(t *testing.T) {
	o := &Options{MaxAge: 24 * time.Hour}
	d := NewData(NewCookie(o, t0))
	d.SetUserID(42)
	want := `{"cookie":{"originalMaxAge":86400000,"expires":"2030-01-03T03:04:05.678Z","httpOnly":true,"path":"/"},"passport":{"user":42}}`
	if got := d.Marshal(); got != want {
		t.Errorf("new session JSON\n got %s\nwant %s", got, want)
	}
	// With every attribute configured, in Cookie#toJSON's key order.
	o = &Options{MaxAge: time.Hour, Secure: true, Domain: "example.com", SameSite: "Lax", Path: "/app"}
	d = NewData(NewCookie(o, t0))
	want = `{"cookie":{"originalMaxAge":3600000,"expires":"2030-01-02T04:04:05.678Z","secure":true,"httpOnly":true,"domain":"example.com","path":"/app","sameSite":"lax"}}`
	if got := d.Marshal(); got != want {
		t.Errorf("configured cookie JSON\n got %s\nwant %s", got, want)
	}
	// No maxAge: a browser-session cookie, as Node writes it.
	d = NewData(NewCookie(&Options{}, t0))
	want = `{"cookie":{"originalMaxAge":null,"expires":null,"httpOnly":true,"path":"/"}}`
	if got := d.Marshal(); got != want {
		t.Errorf("no-maxAge JSON\n got %s\nwant %s", got, want)
	}
}

func TestNodeSessionRoundTrip(t *testing.T) {
	// A row as express-session + connect-pg-simple + passport + connect-flash write it.
	node := `{"cookie":{"originalMaxAge":86400000,"expires":"2030-01-03T03:04:05.678Z","secure":false,"httpOnly":true,"path":"/","sameSite":"lax"},"passport":{"user":7},"flash":{"info":["Welcome <b>back</b> & hi"]},"csrfSecret":"abc","n":1.5,"nested":{"z":1,"a":[1,{"b":null}]}}`
	d, err := ParseData(node)
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Marshal(); got != node {
		t.Errorf("round trip changed the document\n got %s\nwant %s", got, node)
	}
	if id, ok := d.UserID(); !ok || id != 7 {
		t.Errorf("UserID = %d, %v", id, ok)
	}
	if d.Cookie.OriginalMaxAge == nil || *d.Cookie.OriginalMaxAge != 86400000 {
		t.Errorf("originalMaxAge = %v", d.Cookie.OriginalMaxAge)
	}
	if d.Cookie.Expires == nil || !d.Cookie.Expires.Equal(time.Date(2030, 1, 3, 3, 4, 5, 678e6, time.UTC)) {
		t.Errorf("expires = %v", d.Cookie.Expires)
	}
	// Touch + modify: unknown keys stay byte for byte, in order; a new key goes last.
	d.Cookie.ResetExpires(t0.Add(time.Hour))
	d.Set("extra", json.RawMessage(`true`))
	want := `{"cookie":{"originalMaxAge":86400000,"expires":"2030-01-03T04:04:05.678Z","secure":false,"httpOnly":true,"path":"/","sameSite":"lax"},"passport":{"user":7},"flash":{"info":["Welcome <b>back</b> & hi"]},"csrfSecret":"abc","n":1.5,"nested":{"z":1,"a":[1,{"b":null}]},"extra":true}`
	if got := d.Marshal(); got != want {
		t.Errorf("after touch+set\n got %s\nwant %s", got, want)
	}
	d.Delete("flash")
	if _, ok := d.Get("flash"); ok {
		t.Error("flash still there")
	}
}

func TestParseDataOddities(t *testing.T) {
	// cookie not first, unknown cookie attribute (Node's Cookie drops it), duplicate key (last
	// value wins at the first place, as JSON.parse), whitespace inside values kept.
	in := `{"a":1,"cookie":{"path":"/","bogus":1,"originalMaxAge":1000,"expires":"2030-01-02T03:04:05.678Z","httpOnly":true},"a":{ "x" : 2 }}`
	d, err := ParseData(in)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"a":{ "x" : 2 },"cookie":{"originalMaxAge":1000,"expires":"2030-01-02T03:04:05.678Z","httpOnly":true,"path":"/"}}`
	if got := d.Marshal(); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}

	for _, bad := range []string{`{"cookie":`, `not json`, `{"cookie":{}} x`} {
		if _, err := ParseData(bad); !errors.Is(err, ErrInvalidJSON) {
			t.Errorf("ParseData(%q): err = %v, want ErrInvalidJSON", bad, err)
		}
	}
	for _, noCookie := range []string{`{}`, `{"passport":{"user":1}}`, `{"cookie":null}`, `{"cookie":5}`} {
		if _, err := ParseData(noCookie); !errors.Is(err, ErrNoCookie) {
			t.Errorf("ParseData(%q): err = %v, want ErrNoCookie", noCookie, err)
		}
	}
	if _, err := ParseData(`"x"`); !errors.Is(err, ErrNotObject) {
		t.Errorf("ParseData string: err = %v", err)
	}
}

func TestUserID(t *testing.T) {
	cases := map[string]struct {
		id int64
		ok bool
	}{
		`{"user":42}`:           {42, true},
		`{"user":"42"}`:         {42, true}, // int8 ids come from node-postgres as strings
		`{"user":4.5}`:          {0, false},
		`{"user":"alice"}`:      {0, false},
		`{"user":{"id":1}}`:     {0, false},
		`{}`:                    {0, false}, // passport's logOut leaves "passport":{}
		`{"user":null}`:         {0, false},
		`{"user":123456789012}`: {123456789012, true},
	}
	for passport, want := range cases {
		d, err := ParseData(`{"cookie":{"originalMaxAge":null,"expires":null},"passport":` + passport + `}`)
		if err != nil {
			t.Fatal(err)
		}
		if id, ok := d.UserID(); id != want.id || ok != want.ok {
			t.Errorf("passport %s: UserID = %d, %v; want %d, %v", passport, id, ok, want.id, want.ok)
		}
	}
	d, _ := ParseData(`{"cookie":{}}`)
	if _, ok := d.UserID(); ok {
		t.Error("UserID without passport")
	}
}

func TestExpireSecs(t *testing.T) {
	ms := func(v float64) *float64 { return &v }
	// now = 1893553445.6789 s → Date.now() = 1893553445678 ms.
	cases := []struct {
		name string
		c    *Cookie
		ttl  time.Duration
		want int64
	}{
		{"maxAge 1 day: ceil((now_ms + 86400000)/1000)", &Cookie{OriginalMaxAge: ms(86400000)}, 0, 1893553445 + 86400 + 1},
		{"maxAge on a whole second", &Cookie{OriginalMaxAge: ms(322)}, 0, 1893553446},
		{"maxAge 321 ms", &Cookie{OriginalMaxAge: ms(321)}, 0, 1893553446},
		{"maxAge 323 ms", &Cookie{OriginalMaxAge: ms(323)}, 0, 1893553447},
		{"no maxAge: ceil(now_ms/1000 + ttl), default ttl one day", &Cookie{}, 0, 1893553446 + 86400},
		{"no maxAge, ttl 10 s", &Cookie{}, 10 * time.Second, 1893553456},
	}
	for _, c := range cases {
		if got := ExpireSecs(c.c, t0, c.ttl); got != c.want {
			t.Errorf("%s: ExpireSecs = %d, want %d", c.name, got, c.want)
		}
	}
	if got := NowSecs(t0); got != 1893553446 {
		t.Errorf("NowSecs = %d", got)
	}
	if got := NowSecs(time.UnixMilli(1893553445000)); got != 1893553445 {
		t.Errorf("NowSecs on a whole second = %d", got)
	}
}

func TestSetCookieHeader(t *testing.T) {
	v := vectors[0]
	d := NewData(NewCookie(&Options{MaxAge: 24 * time.Hour}, t0))
	got := SetCookieHeader("connect.sid", v.decoded, &d.Cookie)
	want := "connect.sid=" + v.wire + "; Path=/; Expires=Thu, 03 Jan 2030 03:04:05 GMT; HttpOnly"
	if got != want {
		t.Errorf("Set-Cookie\n got %s\nwant %s", got, want)
	}
	d = NewData(NewCookie(&Options{MaxAge: time.Hour, Secure: true, Domain: "example.com", SameSite: "strict"}, t0))
	got = SetCookieHeader("sid", "v", &d.Cookie)
	want = "sid=v; Domain=example.com; Path=/; Expires=Wed, 02 Jan 2030 04:04:05 GMT; HttpOnly; Secure; SameSite=Strict"
	if got != want {
		t.Errorf("Set-Cookie\n got %s\nwant %s", got, want)
	}
	// A Node row's attributes drive the header: sameSite true → Strict, priority.
	n, _ := ParseData(`{"cookie":{"originalMaxAge":null,"priority":"high","expires":null,"httpOnly":false,"path":"/","sameSite":true}}`)
	got = SetCookieHeader("sid", "v", &n.Cookie)
	if want := "sid=v; Path=/; Priority=High; SameSite=Strict"; got != want {
		t.Errorf("Set-Cookie\n got %s\nwant %s", got, want)
	}
	if got, want := ClearCookieHeader("connect.sid", "/", ""), "connect.sid=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT"; got != want {
		t.Errorf("clear cookie %q, want %q", got, want)
	}
}
