package integration

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// body fetches url with a new connection and returns the body.
func body(t *testing.T, client *http.Client, url string) (string, error) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func newConnClient() *http.Client {
	return &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
}

// waitBodies waits until every process listens and url answers, then returns the bodies of n
// requests.
func waitBodies(t *testing.T, e *env, client *http.Client, url string, n int) []string {
	t.Helper()
	e.waitFor("every worker to listen", 60*time.Second, func() bool {
		for _, p := range e.jlist() {
			if c := p.Pm2Env.Corral.Cluster; c == nil || len(c.Listening) == 0 {
				return false
			}
		}
		return true
	})
	e.waitFor(url+" to answer", 60*time.Second, func() bool { _, err := body(t, client, url); return err == nil })
	var out []string
	for range n {
		b, err := body(t, client, url)
		if err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		out = append(out, strings.TrimSpace(b))
	}
	return out
}

func distinct(ss []string) int {
	m := map[string]bool{}
	for _, s := range ss {
		m[s] = true
	}
	return len(m)
}

// TestClusterListenZero: every worker's first listen(0) shares one random port, its second
// another, and server.address() reports them.
func TestClusterListenZero(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "edge_port0.js")
	e.ok("start", "edge_port0.js", "-i", "2")
	re := regexp.MustCompile(`ports (\d+) (\d+)`)
	var lines []string
	e.waitFor("both workers to report their ports", 60*time.Second, func() bool {
		lines = nil
		for _, p := range e.jlist() {
			if m := re.FindStringSubmatch(readFile(p.Pm2Env.OutLog)); m != nil {
				lines = append(lines, m[0])
			}
		}
		return len(lines) == 2
	})
	if lines[0] != lines[1] {
		t.Fatalf("workers got different ports: %v", lines)
	}
	m := re.FindStringSubmatch(lines[0])
	client := newConnClient()
	for i, port := range m[1:] {
		bodies := waitBodies(t, e, client, "http://127.0.0.1:"+port+"/", 4)
		want := []string{"a", "b"}[i]
		for _, b := range bodies {
			if !strings.HasPrefix(b, want+" ") {
				t.Fatalf("port %s answered %q, want server %s", port, b, want)
			}
		}
		if distinct(bodies) != 2 {
			t.Fatalf("port %s is not shared by both workers: %v", port, bodies)
		}
	}
}

// TestClusterTwoServersInOneWorker: each of a worker's servers gets its own socket and rotation.
func TestClusterTwoServersInOneWorker(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "edge_two_servers.js")
	p1, p2 := freePort(t), freePort(t)
	e.vars["PORT"], e.vars["PORT2"] = strconv.Itoa(p1), strconv.Itoa(p2)
	e.ok("start", "edge_two_servers.js", "-i", "2")
	client := newConnClient()
	for i, port := range []int{p1, p2} {
		bodies := waitBodies(t, e, client, fmt.Sprintf("http://127.0.0.1:%d/", port), 4)
		want := []string{"one", "two"}[i]
		for _, b := range bodies {
			if !strings.HasPrefix(b, want) {
				t.Fatalf("port %d answered %q", port, b)
			}
		}
		if distinct(bodies) != 2 {
			t.Fatalf("port %d not served by both workers: %v", port, bodies)
		}
	}
}

// TestClusterUnixSocket: listen(path) in every worker shares one unix socket owned by the daemon.
func TestClusterUnixSocket(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "edge_unix.js")
	sock := filepath.Join(e.home, "app.sock")
	e.vars["SOCK_PATH"] = sock
	e.ok("start", "edge_unix.js", "-i", "2")
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	bodies := waitBodies(t, e, client, "http://app/", 4)
	if distinct(bodies) != 2 || !strings.HasPrefix(bodies[0], "unix ") {
		t.Fatalf("unix socket not served round-robin by both workers: %v", bodies)
	}
	e.ok("stop", "all")
	e.waitFor("the socket file to go with the app", 20*time.Second, func() bool {
		_, err := os.Stat(sock)
		return os.IsNotExist(err)
	})
}

// TestClusterTLS: an HTTPS server works in every worker (the primary echoes its TLS data; a
// null would crash the worker).
func TestClusterTLS(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "edge_tls.js")
	e.vars["TLS_KEY"], e.vars["TLS_CERT"] = writeSelfSigned(t, e.dir)
	port := freePort(t)
	e.vars["PORT"] = strconv.Itoa(port)
	e.ok("start", "edge_tls.js", "-i", "2")
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
	}}
	bodies := waitBodies(t, e, client, fmt.Sprintf("https://127.0.0.1:%d/", port), 4)
	if distinct(bodies) != 2 {
		t.Fatalf("TLS not served by both workers: %v", bodies)
	}
	for _, p := range e.jlist() {
		if p.Pm2Env.RestartTime != 0 {
			t.Fatalf("a TLS worker restarted (crashed?): %+v\n%s", p.Pm2Env, readFile(p.Pm2Env.ErrLog))
		}
	}
}

func writeSelfSigned(t *testing.T, dir string) (keyPath, certPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyPath, certPath = filepath.Join(dir, "key.pem"), filepath.Join(dir, "cert.pem")
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return keyPath, certPath
}

// TestClusterRefusedConnections: workers at maxConnections answer accepted:false; a
// connection every worker refuses is closed after a bounded number of tries (Node would
// bounce it forever), and the cluster serves again once a slot frees.
func TestClusterRefusedConnections(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "edge_maxconn.js")
	port := freePort(t)
	e.vars["PORT"] = strconv.Itoa(port)
	e.ok("start", "edge_maxconn.js", "-i", "2")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	client := newConnClient()
	waitBodies(t, e, client, url, 1)

	// Occupy both workers' only slot.
	held := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := body(t, &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}, url+"?hold=4000")
			held <- err
		}()
	}
	e.waitFor("both workers busy", 30*time.Second, func() bool {
		busy := 0
		for _, p := range e.jlist() {
			if c := p.Pm2Env.Corral.Cluster; c != nil && c.Connections >= 1 {
				busy++
			}
		}
		return busy == 2
	})
	if _, err := body(t, client, url); err == nil {
		t.Fatal("a connection every worker refuses was served")
	}
	refused := uint64(0)
	for _, p := range e.jlist() {
		refused += p.Pm2Env.Corral.Cluster.Refused
	}
	if refused == 0 {
		t.Fatal("no refusal counted")
	}
	for range 2 {
		if err := <-held; err != nil {
			t.Fatalf("a held request failed: %v", err)
		}
	}
	waitBodies(t, e, client, url, 2)
}

// TestClusterBadJSONWorker: a worker writing garbage on its channel does not disturb the daemon.
func TestClusterBadJSONWorker(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "edge_badjson.js")
	port := freePort(t)
	e.vars["PORT"] = strconv.Itoa(port)
	e.ok("start", "edge_badjson.js", "-i", "2")
	bodies := waitBodies(t, e, newConnClient(), fmt.Sprintf("http://127.0.0.1:%d/", port), 4)
	if distinct(bodies) != 2 {
		t.Fatalf("not served by both workers: %v", bodies)
	}
	p := e.proc(0)
	if !strings.Contains(readFile(p.Pm2Env.ErrLog), "not JSON") {
		t.Fatalf("the bad line is not reported in the app's error log:\n%s", readFile(p.Pm2Env.ErrLog))
	}
}
