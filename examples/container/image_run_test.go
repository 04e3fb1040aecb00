package container

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/corral-pm/corral/internal/testutil"
)

// TestImageRun proves the example image without a container engine, everything but the base
// images themselves: it carries out examples/container/Dockerfile as written (the build
// stage on the host's Go toolchain, the runtime stage on an emulated distroless root
// filesystem: buildImage), checks that the image holds only static binaries, then runs it as
// a container runtime does (startContainer) and checks what Docker and Kubernetes would see:
// the probes on the corral HTTP port, the app on its port, the HEALTHCHECK command, JSON log
// lines, and the stop on STOPSIGNAL within the grace, with exit code 0 and no process left.
//
// It needs root (namespaces, chroot, mknod, changing uid). CI runs as root; where the
// namespaces cannot be made, it skips, saying why, unless scripts/test has seen them work
// (CORRAL_TEST_NAMESPACES_REQUIRED).
func TestImageRun(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: no image build and run")
	}
	if os.Getuid() != 0 {
		t.Skip("needs root: the container is made of PID, mount and network namespaces, a chroot and a change of uid")
	}
	if err := namespacesWork(); err != nil {
		// scripts/test sets this once it has seen them work: then they must.
		if os.Getenv("CORRAL_TEST_NAMESPACES_REQUIRED") != "" {
			t.Fatalf("new PID, mount, network, UTS and IPC namespaces: %v", err)
		}
		t.Skipf("cannot make new PID, mount, network, UTS and IPC namespaces here: %v", err)
	}
	contextDir, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	work := tempDirWithoutMounts(t)
	ctx := context.Background()

	started := time.Now()
	built, err := buildImage(ctx, "Dockerfile", contextDir, work, t.Logf)
	if err != nil {
		t.Fatalf("carrying out the Dockerfile: %v", err)
	}
	t.Logf("the build took %s", time.Since(started).Round(time.Millisecond))
	image := built[len(built)-1]

	// Only static executables: the runtime image has no libc and no loader, and no shell.
	elfs, problems, err := checkStaticTree(image.root)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("the image holds a binary that is not static: %s", p)
	}
	if !slices.Contains(elfs, image.config.entrypoint[0]) {
		t.Fatalf("the ENTRYPOINT %s is not an executable of the image (it holds %v)", image.config.entrypoint[0], elfs)
	}
	t.Logf("the image's executables: %v", elfs)

	c := startContainer(t, image)
	client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DialContext: c.dial, DisableKeepAlives: true}}
	get := func(url string) (int, string) {
		resp, err := client.Get(url)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// waitFor polls cond until it holds; state says where things stand, for the message when
	// it does not happen in time or the container exits first.
	waitFor := func(what string, timeout time.Duration, cond func() (ok bool, state string)) {
		t.Helper()
		var ok bool
		var state string
		testutil.Eventually(timeout, 100*time.Millisecond, func() bool {
			ok, state = cond()
			return ok || c.exited()
		})
		switch {
		case ok:
		case c.exited():
			t.Fatalf("waiting for %s: the container exited (code %d); last: %s\nstdout:\n%s\nstderr:\n%s", what, c.exitCode, state, c.stdout, c.stderr)
		default:
			t.Fatalf("%s did not happen within %s; last: %s\nstdout:\n%s\nstderr:\n%s", what, timeout, state, c.stdout, c.stderr)
		}
	}
	answers := func(url string) func() (bool, string) {
		return func() (bool, string) {
			code, body := get(url)
			return code == 200, fmt.Sprintf("%d %s", code, strings.TrimSpace(body))
		}
	}

	// The probes, on the corral HTTP listener CORRAL_HTTP_LISTEN names.
	_, corralPort, err := net.SplitHostPort(envValue(c.env, "CORRAL_HTTP_LISTEN"))
	if err != nil {
		t.Fatalf("CORRAL_HTTP_LISTEN %q: %v", envValue(c.env, "CORRAL_HTTP_LISTEN"), err)
	}
	probe := "http://" + net.JoinHostPort("127.0.0.1", corralPort)
	started = time.Now()
	waitFor("/healthz to answer 200", 60*time.Second, answers(probe+"/healthz"))
	waitFor("/readyz to answer 200", 60*time.Second, answers(probe+"/readyz"))
	t.Logf("ready %s after the start", time.Since(started).Round(time.Millisecond))

	// Every EXPOSEd port accepts connections, on every address of the container: the probes
	// and the Service come to the pod's address, not to its loopback (which is all this
	// namespace has), so the listening socket must be on the wildcard address.
	var appPorts []string
	for _, p := range image.config.exposed {
		port, proto, _ := strings.Cut(p, "/")
		if proto != "" && proto != "tcp" {
			continue
		}
		conn, err := c.dial(ctx, "tcp", net.JoinHostPort("127.0.0.1", port))
		if err != nil {
			t.Errorf("EXPOSEd port %s: nothing accepts connections: %v", p, err)
			continue
		}
		conn.Close()
		n, _ := strconv.Atoi(port)
		addrs, err := c.listenAddrs(n)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(addrs, func(a string) bool { return strings.Trim(a, "0") == "" }) {
			t.Errorf("EXPOSEd port %s listens on %v only (hex, as /proc/net/tcp has them), not on every address: unreachable from outside the container", p, addrs)
		}
		if port != corralPort {
			appPorts = append(appPorts, port)
		}
	}
	if len(appPorts) != 1 {
		t.Fatalf("EXPOSE %v: want the app's port and corral's (%s)", image.config.exposed, corralPort)
	}
	if code, body := get("http://" + net.JoinHostPort("127.0.0.1", appPorts[0]) + "/api/health"); code != 200 {
		t.Errorf("the app's /api/health on port %s: %d %s", appPorts[0], code, body)
	}

	// Docker's HEALTHCHECK: the command, in the container, as its user, within its timeout.
	h := image.config.health
	if h.cmd == nil {
		t.Fatal("the image has no HEALTHCHECK")
	}
	hctx, cancel := context.WithTimeout(ctx, h.timeout)
	out, errOut, code, err := c.exec(hctx, h.cmd...)
	cancel()
	if err != nil || code != 0 {
		t.Errorf("HEALTHCHECK %q: exit %d, %v\nstdout: %s\nstderr: %s", h.cmd, code, err, out, errOut)
	}

	// The ecosystem file's max_memory_restart (a share of the container's memory limit) is
	// taken: describe, in the container, shows it.
	out, errOut, code, err = c.exec(ctx, image.config.entrypoint[0], "describe", "refapp")
	if err != nil || code != 0 || !strings.Contains(out, "max memory restart") {
		t.Errorf("describe refapp: exit %d, %v; want a max memory restart row\nstdout: %s\nstderr: %s", code, err, out, errOut)
	}

	// Every process of the container runs as the image's user; corral is PID 1.
	procs := c.processes()
	if len(procs) < 2 {
		t.Errorf("the container has processes %v: want corral and its workers", procs)
	}
	for _, pid := range procs {
		st, err := procStatus(pid)
		uids, gids := st["Uid"], st["Gid"]
		if err != nil || len(uids) < 2 || len(gids) < 2 {
			continue // gone meanwhile
		}
		if uids[0] != fmt.Sprint(c.uid) || uids[1] != fmt.Sprint(c.uid) || gids[0] != fmt.Sprint(c.gid) {
			t.Errorf("process %d (%s) runs as uid %v gid %v, want %d:%d", pid, cmdline(pid), uids, gids, c.uid, c.gid)
		}
	}
	st, err := procStatus(c.pid)
	if ns := st["NSpid"]; err != nil || len(ns) == 0 || ns[len(ns)-1] != "1" {
		t.Errorf("the entrypoint's pids (NSpid, outermost first) are %v, want 1 in its own namespace (%v)", ns, err)
	}

	// The stop: STOPSIGNAL, as `docker stop` and the kubelet send it.
	grace := 10 * time.Second // docker stop's default
	if i := slices.Index(image.config.entrypoint, "--grace"); i >= 0 && i+1 < len(image.config.entrypoint) {
		if grace, err = time.ParseDuration(image.config.entrypoint[i+1]); err != nil {
			t.Fatalf("ENTRYPOINT --grace: %v", err)
		}
	}
	if image.config.stopSignal == 0 {
		t.Fatal("the image has no STOPSIGNAL")
	}
	sig := unix.SignalName(image.config.stopSignal)
	stopped := time.Now()
	if err := c.cmd.Process.Signal(image.config.stopSignal); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.done:
	case <-time.After(grace + 10*time.Second):
		t.Fatalf("the container did not stop within the grace (%s) on %s\nstderr:\n%s", grace, sig, c.stderr)
	}
	took := time.Since(stopped)
	t.Logf("stopped on %s in %s (grace %s)", sig, took.Round(time.Millisecond), grace)
	if c.exitCode != 0 || took > grace {
		t.Errorf("on %s: exit code %d after %s, want 0 within the grace (%s)\nstderr:\n%s", sig, c.exitCode, took, grace, c.stderr)
	}
	var left []int
	if !testutil.Eventually(10*time.Second, 50*time.Millisecond, func() bool { left = c.processes(); return len(left) == 0 }) {
		t.Fatalf("processes of the container left after it stopped: %v", left)
	}

	// --log-format json: every line on stdout and stderr is one JSON object.
	checkJSONLines(t, "stdout", c.stdout.all())
	checkJSONLines(t, "stderr", c.stderr.all())
	appLines := 0
	for _, l := range append(c.stdout.all(), c.stderr.all()...) {
		var j struct{ Stream string }
		if json.Unmarshal([]byte(l), &j) == nil && (j.Stream == "stdout" || j.Stream == "stderr") {
			appLines++
		}
	}
	if appLines == 0 {
		t.Error("no line of the app's own output came through corral")
	}
}

// checkJSONLines checks that each line is a JSON object with the fields of docs/containers.md §7.
func checkJSONLines(t *testing.T, stream string, lines []string) {
	t.Helper()
	for _, l := range lines {
		var j map[string]any
		if err := json.Unmarshal([]byte(l), &j); err != nil {
			t.Errorf("a line on %s is not a JSON object: %q", stream, l)
			continue
		}
		for _, field := range []string{"time", "app", "stream", "message"} {
			if _, ok := j[field]; !ok {
				t.Errorf("a line on %s has no %q: %s", stream, field, l)
			}
		}
	}
	t.Logf("%s: %d JSON lines", stream, len(lines))
}

// tempDirWithoutMounts is t.TempDir for a directory that namespaces mount on: when the test
// ends it removes the directory only if the host sees no mount under it (the container's
// mounts are private to its mount namespace; removing through a leaked bind mount would
// remove what it shows).
func tempDirWithoutMounts(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "corral-image-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f, err := os.Open("/proc/self/mountinfo")
		if err != nil {
			t.Errorf("not removing %s: %v", dir, err)
			return
		}
		defer f.Close()
		s := bufio.NewScanner(f)
		for s.Scan() {
			if fields := strings.Fields(s.Text()); len(fields) > 4 && strings.HasPrefix(fields[4], dir) {
				t.Errorf("not removing %s: the host sees a mount under it: %s", dir, s.Text())
				return
			}
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("removing %s: %v", dir, err)
		}
	})
	return dir
}

// cmdline is a process's command line, for messages.
func cmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}
