package session

import (
	"net/http/httptest"
	"strings"
	"testing"
)

// The vectors of docs/sessions.md §2.2 (computed with Node's crypto, as cookie-signature does).
var vectors = []struct {
	sid, secret, decoded, wire string
}{
	{
		sid:     "Yq9bW0d7l3a1Pk2sZxQmT4nV8cR6uE5o",
		secret:  "keyboard cat",
		decoded: "s:Yq9bW0d7l3a1Pk2sZxQmT4nV8cR6uE5o.f8IXLlE/xm87Nz/Vd533R/ZoKQeclbTg1vCKtkR7YQk",
		wire:    "s%3AYq9bW0d7l3a1Pk2sZxQmT4nV8cR6uE5o.f8IXLlE%2Fxm87Nz%2FVd533R%2FZoKQeclbTg1vCKtkR7YQk",
	},
	{
		sid:     "Yq9bW0d7l3a1Pk2sZxQmT4nV8cR6uE5o",
		secret:  "s3cr3t-ü",
		decoded: "s:Yq9bW0d7l3a1Pk2sZxQmT4nV8cR6uE5o./LFONvzkp0woojpjMCKCq+SMX59HcsJfDo+DwHaMyOc",
		wire:    "s%3AYq9bW0d7l3a1Pk2sZxQmT4nV8cR6uE5o.%2FLFONvzkp0woojpjMCKCq%2BSMX59HcsJfDo%2BDwHaMyOc",
	},
}

func TestSignVectors(t *testing.T) {
	for _, v := range vectors {
		if got := SignedValue(v.sid, v.secret); got != v.decoded {
			t.Errorf("SignedValue(%q, %q) = %q, want %q", v.sid, v.secret, got, v.decoded)
		}
		if got := EncodeURIComponent(v.decoded); got != v.wire {
			t.Errorf("wire encoding = %q, want %q", got, v.wire)
		}
		if got, ok := ParseCookie("connect.sid="+v.wire, "connect.sid"); !ok || got != v.decoded {
			t.Errorf("ParseCookie(wire) = %q, %v; want %q", got, ok, v.decoded)
		}
		if got, ok := Unsign(strings.TrimPrefix(v.decoded, "s:"), []string{v.secret}); !ok || got != v.sid {
			t.Errorf("Unsign = %q, %v; want %q", got, ok, v.sid)
		}
	}
}

func TestUnsignRejects(t *testing.T) {
	good := strings.TrimPrefix(vectors[0].decoded, "s:")
	secrets := []string{"keyboard cat"}
	sig := good[strings.LastIndexByte(good, '.')+1:]
	flipLast := good[:len(good)-1] + string(rune(good[len(good)-1]^1))
	cases := map[string]string{
		"flipped signature char": good[:len(good)-5] + "A" + good[len(good)-4:],
		"flipped last char":      flipLast,
		// 43 base64 chars carry 258 bits for a 256-bit MAC: 'k' → 'l' decodes to the same
		// bytes. Node compares whole strings and rejects it; so must we.
		"non-canonical last char": good[:len(good)-1] + "l",
		"padded signature":        good + "=",
		"no signature":            vectors[0].sid,
		"empty":                   "",
		"signature only":          "." + sig,
		"other sid, same sig":     "Xq9bW0d7l3a1Pk2sZxQmT4nV8cR6uE5o." + sig,
	}
	for name, in := range cases {
		if got, ok := Unsign(in, secrets); ok {
			t.Errorf("%s: Unsign(%q) accepted, got %q", name, in, got)
		}
	}
	if _, ok := Unsign(good, []string{"other secret"}); ok {
		t.Error("unknown secret accepted")
	}
	if _, ok := Unsign(good, nil); ok {
		t.Error("no secrets accepted")
	}
}

func TestRotation(t *testing.T) {
	oldCookie := SignedValue("sid-1", "old")
	newCookie := SignedValue("sid-1", "new")
	secrets := []string{"new", "old"}
	for _, c := range []string{oldCookie, newCookie} {
		if got, ok := Unsign(strings.TrimPrefix(c, "s:"), secrets); !ok || got != "sid-1" {
			t.Errorf("rotation: %q not accepted with %v", c, secrets)
		}
	}
	if _, ok := Unsign(strings.TrimPrefix(newCookie, "s:"), []string{"old"}); ok {
		t.Error("cookie signed with the new secret accepted by the old list")
	}
	// A re-issued cookie is signed with the first secret.
	m, err := NewManager(nil, Options{Secrets: secrets, MaxAge: 1000})
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	m.setCookieWith(w, "sid-1", &Cookie{})
	if got, want := w.Header().Get("Set-Cookie"), "connect.sid="+EncodeURIComponent(newCookie); got != want {
		t.Errorf("re-issued cookie %q, want %q", got, want)
	}
}

func TestManagerSID(t *testing.T) {
	m, err := NewManager(nil, Options{Secrets: []string{"keyboard cat"}})
	if err != nil {
		t.Fatal(err)
	}
	v := vectors[0]
	tampered := strings.Replace(v.wire, "f8IX", "f8IY", 1)
	cases := []struct {
		name    string
		headers []string
		sid     string
	}{
		{"wire form", []string{"connect.sid=" + v.wire}, v.sid},
		{"decoded form", []string{"connect.sid=" + v.decoded}, v.sid},
		{"quoted", []string{`connect.sid="` + v.wire + `"`}, v.sid},
		{"among others", []string{"a=1; connect.sid=" + v.wire + "; b=2"}, v.sid},
		{"first wins", []string{"connect.sid=" + v.wire + "; connect.sid=s%3Ax.y"}, v.sid},
		{"first wins, bad first", []string{"connect.sid=s%3Ax.y; connect.sid=" + v.wire}, ""},
		{"across headers", []string{"a=1", "connect.sid=" + v.wire}, v.sid},
		{"unsigned", []string{"connect.sid=" + v.sid}, ""},
		{"tampered", []string{"connect.sid=" + tampered}, ""},
		{"other secret", []string{"connect.sid=" + EncodeURIComponent(SignedValue(v.sid, "nope"))}, ""},
		{"bad escape", []string{"connect.sid=s%3A%ZZ"}, ""},
		{"empty", []string{"connect.sid="}, ""},
		{"none", nil, ""},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/", nil)
		for _, h := range c.headers {
			r.Header.Add("Cookie", h)
		}
		sid, ok := m.SID(r)
		if sid != c.sid || ok != (c.sid != "") {
			t.Errorf("%s: SID = %q, %v; want %q", c.name, sid, ok, c.sid)
		}
	}
}

func TestParseCookieLikeJshttp(t *testing.T) {
	cases := []struct {
		header, name, want string
		ok                 bool
	}{
		{"a=b", "a", "b", true},
		{" a = b ; c=d", "a", "b", true},
		{"\ta=\tb", "a", "b", true},
		{"a=%20b%2B", "a", " b+", true},
		{"a=b+c", "a", "b+c", true}, // '+' is not a space for decodeURIComponent
		{"a=%E0%A4%A", "a", "%E0%A4%A", true},
		{"a=%FF", "a", "%FF", true}, // invalid UTF-8: decodeURIComponent throws, raw kept
		{"novalue; a=1", "a", "1", true},
		{`a=""`, "a", "", true},
		{"b=1", "a", "", false},
		{"a=x=y", "a", "x=y", true},
	}
	for _, c := range cases {
		got, ok := ParseCookie(c.header, c.name)
		if got != c.want || ok != c.ok {
			t.Errorf("ParseCookie(%q, %q) = %q, %v; want %q, %v", c.header, c.name, got, ok, c.want, c.ok)
		}
	}
}

func TestEncodeURIComponent(t *testing.T) {
	in := "AZaz09-_.!~*'() :/+=;,é"
	want := "AZaz09-_.!~*'()%20%3A%2F%2B%3D%3B%2C%C3%A9"
	if got := EncodeURIComponent(in); got != want {
		t.Errorf("EncodeURIComponent = %q, want %q", got, want)
	}
}

func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		id := NewID()
		if len(id) != 32 || strings.ContainsAny(id, "+/=") {
			t.Fatalf("NewID %q: want 32 base64url characters", id)
		}
		if seen[id] {
			t.Fatalf("NewID repeated %q", id)
		}
		seen[id] = true
	}
}
