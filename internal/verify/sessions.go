package verify

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/corral-pm/corral/internal/spec"
)

// The session check. Which worker answered a request is read from the daemon's counters, with
// no change to the app: before each request every hand-off has been answered; the request goes
// on a new connection, which the daemon hands to one worker; that worker's connection count is
// the one that grew.

// answer is one request of the session check, and who gave it.
type answer struct {
	id, pid int // -1 when the counters could not tell
	status  int
	cookies []string // name=value pairs the answer set
}

// sessionClient sends every request on a new connection.
var sessionClient = &http.Client{
	Transport: &http.Transport{DisableKeepAlives: true, DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext},
	Timeout:   15 * time.Second,
	// A redirect is an answer (a login that redirects): its status is what is checked.
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// ask sends r with the cookie and finds out which worker answered.
func (x *run) ask(ctx context.Context, r *spec.VerifyRequest, cookie string) (answer, error) {
	if err := x.waitHandoffs(ctx); err != nil {
		return answer{}, err
	}
	before, err := x.snapshot(ctx)
	if err != nil {
		return answer{}, err
	}
	var body io.Reader
	if r.Body != "" {
		body = strings.NewReader(r.Body)
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, "http://"+x.target+r.Path, body)
	if err != nil {
		return answer{}, err
	}
	if r.Body != "" {
		req.Header.Set("Content-Type", r.ContentType)
	}
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	res, err := sessionClient.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("%s %s: %w", r.Method, r.Path, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20))
	res.Body.Close()
	a := answer{id: -1, status: res.StatusCode}
	for _, c := range res.Cookies() {
		a.cookies = append(a.cookies, c.Name+"="+c.Value)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		after, err := x.snapshot(ctx)
		if err != nil {
			return a, err
		}
		var grew []int
		inFlight := 0
		for id, c := range after {
			inFlight += c.inFlight
			if b, ok := before[id]; ok && c.connections > b.connections {
				grew = append(grew, id)
			}
		}
		if len(grew) == 1 && inFlight == 0 {
			a.id, a.pid = grew[0], after[grew[0]].pid
			return a, nil
		}
		if len(grew) > 1 {
			return a, nil // someone else's requests too: this one cannot be told apart
		}
		sleep(ctx, 10*time.Millisecond)
	}
	return a, nil
}

// waitHandoffs waits until no worker has a hand-off unanswered.
func (x *run) waitHandoffs(ctx context.Context) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		now, err := x.snapshot(ctx)
		if err != nil {
			return err
		}
		n := 0
		for _, c := range now {
			n += c.inFlight
		}
		if n == 0 || time.Now().After(deadline) {
			return ctx.Err()
		}
		sleep(ctx, 10*time.Millisecond)
	}
}

// tally is what each worker answered to the check path.
type tally map[int]map[int]int // pm_id -> status -> count

func (t tally) add(id, status int) {
	if t[id] == nil {
		t[id] = map[int]int{}
	}
	t[id][status]++
}

func (t tally) String(id int) string {
	var parts []string
	var statuses []int
	for s := range t[id] {
		statuses = append(statuses, s)
	}
	sort.Ints(statuses)
	for _, s := range statuses {
		parts = append(parts, fmt.Sprintf("%d ×%d", s, t[id][s]))
	}
	if len(parts) == 0 {
		return "no answer"
	}
	return strings.Join(parts, ", ")
}

// round asks the check path at least DefaultCheckPerW × workers times, and until every worker
// has answered (at most twice that), and tallies the answers.
func (x *run) round(ctx context.Context, cookie string, pids map[int]int) (tally, int, error) {
	t := tally{}
	unknown := 0
	want := DefaultCheckPerW * len(pids)
	for i := 0; i < 2*want && ctx.Err() == nil; i++ {
		if i >= want && len(t) >= len(pids) {
			break
		}
		a, err := x.ask(ctx, x.o.CheckReq, cookie)
		if err != nil {
			return t, unknown, err
		}
		if a.id < 0 {
			unknown++
			continue
		}
		t.add(a.id, a.status)
	}
	return t, unknown, ctx.Err()
}

func (x *run) sessions(ctx context.Context) {
	c := x.rep.check(CheckSessions)
	in, chk := x.o.Login, x.o.CheckReq
	c.Threshold = fmt.Sprintf("every worker answers %s %s with %d logged in, %d logged out", chk.Method, chk.Path, chk.Status, chk.LoggedOutStatus)
	fail := func(format string, args ...any) {
		c.Status, c.Reason = Fail, fmt.Sprintf(format, args...)
	}
	procs, err := x.r.procs(ctx, x.o.App)
	if err != nil {
		fail("%v", err)
		return
	}
	pids := map[int]int{}
	for _, p := range procs {
		pids[p.ID] = p.PID
	}
	login, err := x.ask(ctx, in, "")
	if err != nil {
		fail("login failed: %v", err)
		return
	}
	where := "an unknown worker"
	if login.id >= 0 {
		where = fmt.Sprintf("worker %d (pid %d)", login.id, login.pid)
	}
	if login.status != in.Status {
		fail("the login (%s %s) answered %d, not %d: check verify.login (path, body, status)", in.Method, in.Path, login.status, in.Status)
		return
	}
	if len(login.cookies) == 0 {
		fail("the login (%s %s) on %s set no cookie: the session check follows a session cookie", in.Method, in.Path, where)
		return
	}
	cookie := strings.Join(login.cookies, "; ")
	loggedIn, unknownIn, err := x.round(ctx, cookie, pids)
	if err != nil {
		fail("asking %s %s: %v", chk.Method, chk.Path, err)
		return
	}
	var loggedOut tally
	unknownOut := 0
	var logoutStatus int
	if x.o.Logout != nil {
		out, err := x.ask(ctx, x.o.Logout, cookie)
		if err != nil {
			fail("logout failed: %v", err)
			return
		}
		logoutStatus = out.status
		if out.status != x.o.Logout.Status {
			fail("the logout (%s %s) answered %d, not %d: check verify.logout", x.o.Logout.Method, x.o.Logout.Path, out.status, x.o.Logout.Status)
			return
		}
		loggedOut, unknownOut, err = x.round(ctx, cookie, pids)
		if err != nil {
			fail("asking %s %s after the logout: %v", chk.Method, chk.Path, err)
			return
		}
	}
	var bad []string
	answered := 0
	for _, id := range sortedIDs(pids) {
		ok := true
		fig := "logged in: " + loggedIn.String(id)
		for s := range loggedIn[id] {
			if s != chk.Status {
				ok = false
				bad = append(bad, fmt.Sprintf("worker %d (pid %d) answered %d while logged in on %s", id, pids[id], s, where))
			}
		}
		if loggedIn[id] == nil {
			ok = false
			bad = append(bad, fmt.Sprintf("worker %d (pid %d) was never reached", id, pids[id]))
		}
		if loggedOut != nil {
			fig += "; logged out: " + loggedOut.String(id)
			for s := range loggedOut[id] {
				if s != chk.LoggedOutStatus {
					ok = false
					bad = append(bad, fmt.Sprintf("worker %d (pid %d) answered %d after the logout", id, pids[id], s))
				}
			}
		}
		if ok {
			answered++
		}
		c.Workers = append(c.Workers, Worker{ID: id, PID: pids[id], Figure: fig, OK: ok})
	}
	c.Figure = fmt.Sprintf("%d of %d workers answered as expected (logged in on %s)", answered, len(pids), where)
	if logoutStatus != 0 {
		c.Figure += fmt.Sprintf("; logout %d", logoutStatus)
	}
	if n := unknownIn + unknownOut; n > 0 {
		c.Figure += fmt.Sprintf("; %d answers not attributed (other traffic on the app)", n)
	}
	c.Values = map[string]float64{"workers_ok": float64(answered), "workers": float64(len(pids))}
	if len(bad) > 0 {
		c.Status = Fail
		c.Reason = strings.Join(bad, "; ")
		if strings.Contains(c.Reason, "while logged in") {
			c.Reason += ": the session made on one worker is not seen by the others; keep sessions in a shared store (connect-pg-simple, connect-redis), not in a worker's memory (express-session's default MemoryStore)"
		} else if strings.Contains(c.Reason, "after the logout") {
			c.Reason += ": a logout on one worker does not end the session on the others"
		}
		return
	}
	c.Status = Pass
}
