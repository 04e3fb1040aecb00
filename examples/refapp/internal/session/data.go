package session

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ExpiresLayout is JavaScript's Date#toISOString: UTC, milliseconds, 'Z'.
const ExpiresLayout = "2006-01-02T15:04:05.000Z"

// cookieKeys are the keys of express-session's Cookie#toJSON (its `data` getter), in its order.
// Keys whose value is undefined are left out by JSON.stringify; null is kept.
var cookieKeys = []string{"originalMaxAge", "partitioned", "priority", "expires", "secure", "httpOnly", "domain", "path", "sameSite"}

// Cookie is the "cookie" object of a stored session. OriginalMaxAge (milliseconds) and Expires
// are interpreted; the other attributes are kept as the JSON values they were stored with, so
// they are written back as they came and shape the Set-Cookie header the way Node's would.
type Cookie struct {
	OriginalMaxAge *float64   // nil: null (a browser-session cookie)
	Expires        *time.Time // nil: null
	attrs          map[string]json.RawMessage
}

// NewCookie is a fresh cookie as express-session's Cookie constructor makes it from the
// middleware's cookie options: {path:'/', httpOnly:true} plus what is configured.
func NewCookie(o *Options, now time.Time) Cookie {
	c := Cookie{attrs: map[string]json.RawMessage{}}
	if o.MaxAge > 0 {
		ms := float64(o.MaxAge.Milliseconds())
		c.OriginalMaxAge = &ms
	}
	c.ResetExpires(now)
	c.attrs["httpOnly"] = json.RawMessage("true")
	path := o.Path
	if path == "" {
		path = "/"
	}
	c.attrs["path"] = jsonString(path)
	if o.Secure {
		c.attrs["secure"] = json.RawMessage("true")
	}
	if o.Domain != "" {
		c.attrs["domain"] = jsonString(o.Domain)
	}
	if o.SameSite != "" {
		c.attrs["sameSite"] = jsonString(strings.ToLower(o.SameSite))
	}
	return c
}

// ResetExpires is express-session's Session#touch → cookie.maxAge = cookie.originalMaxAge:
// expires becomes now + originalMaxAge, or null when there is no originalMaxAge.
func (c *Cookie) ResetExpires(now time.Time) {
	if c.OriginalMaxAge == nil {
		c.Expires = nil
		return
	}
	// A JS Date holds whole milliseconds (TimeClip truncates).
	t := time.UnixMilli(now.UnixMilli() + int64(*c.OriginalMaxAge)).UTC()
	c.Expires = &t
}

func (c *Cookie) str(key string) (string, bool) {
	var s string
	if raw, ok := c.attrs[key]; ok && json.Unmarshal(raw, &s) == nil {
		return s, true
	}
	return "", false
}

func (c *Cookie) isTrue(key string) bool { return string(c.attrs[key]) == "true" }

// truthy is JavaScript truthiness of a stored attribute, which is what jshttp/cookie tests.
func (c *Cookie) truthy(key string) bool {
	switch raw := strings.TrimSpace(string(c.attrs[key])); raw {
	case "", "false", "null", "0", `""`:
		return false
	default:
		return true
	}
}

func (c *Cookie) marshal(buf *bytes.Buffer) {
	buf.WriteByte('{')
	for _, k := range cookieKeys {
		switch k {
		case "originalMaxAge":
			// Cookie#data always has originalMaxAge; with no maxAge it is null.
			writeKey(buf, k)
			if c.OriginalMaxAge == nil {
				buf.WriteString("null")
			} else {
				buf.WriteString(formatJSNumber(*c.OriginalMaxAge))
			}
		case "expires":
			// `_expires` is always set by the constructor (null without maxAge).
			writeKey(buf, k)
			if c.Expires == nil {
				buf.WriteString("null")
			} else {
				buf.Write(jsonString(c.Expires.UTC().Format(ExpiresLayout)))
			}
		default:
			if raw, ok := c.attrs[k]; ok {
				writeKey(buf, k)
				buf.Write(raw)
			}
		}
	}
	buf.WriteByte('}')
}

func parseCookie(raw json.RawMessage) (Cookie, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return Cookie{}, ErrNoCookie
	}
	c := Cookie{attrs: map[string]json.RawMessage{}}
	for _, k := range cookieKeys {
		v, ok := m[k]
		if !ok {
			continue
		}
		switch k {
		case "originalMaxAge":
			var f float64
			if json.Unmarshal(v, &f) == nil && string(v) != "null" {
				c.OriginalMaxAge = &f
			}
		case "expires":
			var s string
			if json.Unmarshal(v, &s) == nil {
				if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
					t = t.UTC()
					c.Expires = &t
				}
			}
		default:
			// Node's Cookie keeps only its known attributes (toJSON returns `data`), and so do we.
			c.attrs[k] = v
		}
	}
	return c, nil
}

// Data is a stored session document: express-session's JSON.stringify(req.session). The
// "cookie" object is interpreted; every other top-level key (passport, flash, csrf secrets...)
// is kept as its raw JSON text, in its original order, so it round-trips untouched.
type Data struct {
	Cookie Cookie
	keys   []string
	vals   map[string]json.RawMessage
}

var (
	// ErrNoCookie: the document has no "cookie" object. Node's express-session throws on such a
	// row (a 500 on every request of that user); Go treats it as no session.
	ErrNoCookie = errors.New("session: stored session has no cookie object")
	// ErrNotObject: the document is not a JSON object.
	ErrNotObject = errors.New("session: stored session is not a JSON object")
	// ErrInvalidJSON: the document does not parse (JSON.parse would throw).
	ErrInvalidJSON = errors.New("session: stored session is not valid JSON")
)

// NewData is a new session holding only its cookie, as express-session's generate() makes it.
func NewData(c Cookie) *Data {
	return &Data{Cookie: c, keys: []string{"cookie"}, vals: map[string]json.RawMessage{}}
}

// ParseData reads a stored session. Text that does not parse gives ErrInvalidJSON
// (connect-pg-simple destroys those rows); a document without a cookie object gives ErrNoCookie.
func ParseData(text string) (*Data, error) {
	if !json.Valid([]byte(text)) {
		return nil, ErrInvalidJSON
	}
	dec := json.NewDecoder(strings.NewReader(text))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if tok != json.Delim('{') {
		return nil, ErrNotObject
	}
	d := &Data{vals: map[string]json.RawMessage{}}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		// JSON.parse keeps the last value of a repeated key, at the place of the first.
		if _, seen := d.vals[key]; !seen {
			d.keys = append(d.keys, key)
		}
		d.vals[key] = raw
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	raw, ok := d.vals["cookie"]
	if !ok {
		return nil, ErrNoCookie
	}
	if d.Cookie, err = parseCookie(raw); err != nil {
		return nil, err
	}
	return d, nil
}

// Get returns the raw JSON of a top-level key.
func (d *Data) Get(key string) (json.RawMessage, bool) {
	if key == "cookie" {
		return nil, false
	}
	v, ok := d.vals[key]
	return v, ok
}

// Set stores raw JSON under a top-level key (appended at the end when new, as a JS property
// assignment would). It panics on "cookie", which is the Cookie field.
func (d *Data) Set(key string, raw json.RawMessage) {
	if key == "cookie" {
		panic("session: set the Cookie field, not the cookie key")
	}
	if _, ok := d.vals[key]; !ok {
		d.keys = append(d.keys, key)
	}
	d.vals[key] = raw
}

// Delete removes a top-level key.
func (d *Data) Delete(key string) {
	if _, ok := d.vals[key]; !ok || key == "cookie" {
		return
	}
	delete(d.vals, key)
	if i := slices.Index(d.keys, key); i >= 0 {
		d.keys = slices.Delete(d.keys, i, i+1)
	}
}

// UserID reads passport's req.session.passport.user as a numeric user ID: a JSON number, or a
// string of digits (what node-postgres gives for int8 columns, if serializeUser passed it on).
func (d *Data) UserID() (int64, bool) {
	raw, ok := d.vals["passport"]
	if !ok {
		return 0, false
	}
	var p struct {
		User json.RawMessage `json:"user"`
	}
	if json.Unmarshal(raw, &p) != nil || len(p.User) == 0 {
		return 0, false
	}
	var n json.Number
	if json.Unmarshal(p.User, &n) == nil {
		if id, err := n.Int64(); err == nil {
			return id, true
		}
		return 0, false
	}
	var s string
	if json.Unmarshal(p.User, &s) == nil {
		if id, err := strconv.ParseInt(s, 10, 64); err == nil {
			return id, true
		}
	}
	return 0, false
}

// SetUserID is passport's logIn after serializeUser(user) → user.id: passport = {"user": id}.
func (d *Data) SetUserID(id int64) {
	d.Set("passport", json.RawMessage(`{"user":`+strconv.FormatInt(id, 10)+`}`))
}

// Marshal renders the document as JSON.stringify(req.session) would: the keys in order (cookie
// first for a new session), the cookie in Cookie#toJSON's key order. NewData and ParseData
// both put "cookie" among the keys, and Set and Delete leave it there.
func (d *Data) Marshal() string {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for _, k := range d.keys {
		writeKey(&buf, k)
		if k == "cookie" {
			d.Cookie.marshal(&buf)
		} else {
			buf.Write(d.vals[k])
		}
	}
	buf.WriteByte('}')
	return buf.String()
}

// writeKey writes `"k":` as the next member of the JSON object buf is building: after a comma
// unless it is the object's first member (buf then ends with the '{' that opened it, which no
// JSON value ends with).
func writeKey(buf *bytes.Buffer, k string) {
	if b := buf.Bytes(); b[len(b)-1] != '{' {
		buf.WriteByte(',')
	}
	buf.Write(jsonString(k))
	buf.WriteByte(':')
}

// jsonString encodes s as JSON.stringify does (no HTML escaping of <, >, &).
func jsonString(s string) json.RawMessage {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return bytes.TrimRight(buf.Bytes(), "\n")
}

// formatJSNumber writes a number as JavaScript's Number#toString does for the values a maxAge
// takes (integers print without a fraction or exponent).
func formatJSNumber(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e21 {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}
