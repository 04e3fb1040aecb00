package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// savedSlot is what resurrect must bring back for one process.
type savedSlot struct {
	ID       int
	Name     string
	Instance int
	Status   string
}

func savedSlots(ps []jproc) []savedSlot {
	out := make([]savedSlot, 0, len(ps))
	for _, p := range ps {
		out = append(out, savedSlot{p.ID, p.Name, p.Pm2Env.Corral.Instance, p.Pm2Env.Status})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

const (
	testSecret   = "keyboard-cat-0c9f"
	testPassword = "s3cret-pw-77"
	testDBURL    = "postgres://app:" + testPassword + "@db.internal:5432/app"
	testToken    = "tok-declared-5150"
)

// TestSaveKillResurrect: save, kill, resurrect brings back the same ids, names, instance
// numbers and statuses (a stopped app stays stopped); a second resurrect duplicates nothing;
// the saved file holds no secret in clear, yet the resurrected processes get the real values;
// the home, the socket and the saved list are private to their owner.
func TestSaveKillResurrect(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sleeper.sh")
	// A home created by someone else with loose permissions is tightened by the daemon.
	if err := os.Chmod(e.home, 0o755); err != nil {
		t.Fatal(err)
	}
	e.vars["SESSION_SECRET"] = testSecret
	e.vars["DATABASE_URL"] = testDBURL
	// One secret declared by an ecosystem file rather than inherited from the shell.
	e.write("ecosystem.config.js", `module.exports = { apps: [{ name: 'api', script: './sleeper.sh', env: { API_TOKEN: '`+testToken+`' } }] }`)
	e.ok("start", "ecosystem.config.js")
	e.ok("start", "sleeper.sh", "--name", "multi", "-i", "2")
	e.ok("start", "sleeper.sh", "--name", "idle")
	for id := 0; id < 4; id++ {
		e.waitStatus(id, "online", 20*time.Second)
	}
	e.ok("stop", "idle")
	before := e.jlist()
	for _, p := range before {
		if p.Name == "multi" && p.Pm2Env.ExecMode != "fork_mode" {
			t.Fatalf("a shell script with -i 2 runs in %s, want fork_mode", p.Pm2Env.ExecMode)
		}
	}
	want := savedSlots(before)
	if fmt.Sprint(want) != "[{0 api 0 online} {1 multi 0 online} {2 multi 1 online} {3 idle 0 stopped}]" {
		t.Fatalf("unexpected starting point: %v", want)
	}

	r := e.ok("save")
	if !strings.Contains(r.stdout, "3 apps (4 processes)") {
		t.Fatalf("save does not say what it saved:\n%s", r)
	}
	dump := filepath.Join(e.home, "dump.json")
	sock := filepath.Join(e.home, "corral.sock")
	if m := permOf(t, e.home); m != 0o700 {
		t.Errorf("CORRAL_HOME has mode %v, want 0700", m)
	}
	if m := permOf(t, sock); m != 0o600 {
		t.Errorf("the control socket has mode %v, want 0600", m)
	}
	if m := permOf(t, dump); m != 0o600 {
		t.Errorf("dump.json has mode %v, want 0600", m)
	}
	if m := permOf(t, filepath.Join(e.home, "secret.key")); m != 0o600 {
		t.Errorf("secret.key has mode %v, want 0600", m)
	}
	// Saved twice, so there is a backup too; neither holds a secret in clear.
	e.ok("save")
	if m := permOf(t, dump+".bak"); m != 0o600 {
		t.Errorf("dump.json.bak has mode %v, want 0600", m)
	}
	for _, f := range []string{dump, dump + ".bak"} {
		content := readFile(f)
		if !strings.Contains(content, `"SESSION_SECRET"`) || !strings.Contains(content, `"DATABASE_URL"`) || !strings.Contains(content, `"API_TOKEN"`) {
			t.Fatalf("%s does not save the secret variables at all:\n%.2000s", f, content)
		}
		for _, secret := range []string{testSecret, testPassword, testToken} {
			if strings.Contains(content, secret) {
				t.Errorf("%s contains the secret %q in clear", f, secret)
			}
		}
	}

	oldPIDs := map[int]int{}
	for _, p := range before {
		oldPIDs[p.ID] = p.PID
	}
	e.ok("kill")
	if pathExists(sock) {
		t.Fatal("the socket is still there after kill")
	}
	for id, pid := range oldPIDs {
		if alive(pid) {
			t.Fatalf("process %d (pid %d) survived kill", id, pid)
		}
	}

	// Resurrect from a shell without the secrets, and without the old log files: whatever the
	// apps print now comes from the saved list and this run.
	delete(e.vars, "SESSION_SECRET")
	delete(e.vars, "DATABASE_URL")
	logs, _ := filepath.Glob(filepath.Join(e.home, "logs", "*"))
	for _, f := range logs {
		os.Remove(f)
	}
	r = e.ok("resurrect")
	for _, name := range []string{"api", "multi", "idle"} {
		if !strings.Contains(r.stdout, "Resurrected "+name) {
			t.Errorf("resurrect does not say it resurrected %s:\n%s", name, r)
		}
	}
	for _, s := range want {
		if s.Status == "online" {
			e.waitStatus(s.ID, "online", 20*time.Second)
		}
	}
	after := e.jlist()
	if got := savedSlots(after); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("resurrected %v, want %v", got, want)
	}
	for _, p := range after {
		if p.Name == "idle" {
			if p.PID != 0 {
				t.Fatalf("the stopped app runs after resurrect (pid %d)", p.PID)
			}
			continue
		}
		if p.PID == oldPIDs[p.ID] {
			t.Fatalf("process %d has its old pid %d", p.ID, p.PID)
		}
		line := fmt.Sprintf("started instance=%d pm_id=%d DATABASE_URL=%s SESSION_SECRET=%s", p.Pm2Env.Corral.Instance, p.ID, testDBURL, testSecret)
		e.waitFor("the real secrets in "+p.Pm2Env.OutLog, 20*time.Second, func() bool {
			return strings.Contains(readFile(p.Pm2Env.OutLog), line)
		})
	}
	if r := e.ok("env", "0", "--reveal"); !strings.Contains(r.stdout, "API_TOKEN: "+testToken) {
		t.Fatalf("the declared secret did not come back:\n%s", r.stdout)
	}
	if strings.Contains(readFile(filepath.Join(e.home, "logs", "idle-out.log")), "started") {
		t.Fatal("the stopped app ran during resurrect")
	}

	// Again: nothing is duplicated, nothing is restarted.
	r = e.ok("resurrect")
	if !strings.Contains(r.stdout, "already exists") {
		t.Errorf("a second resurrect does not say the apps exist:\n%s", r)
	}
	again := e.jlist()
	if fmt.Sprint(savedSlots(again)) != fmt.Sprint(want) {
		t.Fatalf("after a second resurrect: %v, want %v", savedSlots(again), want)
	}
	for i := range again {
		if again[i].PID != after[i].PID {
			t.Fatalf("a second resurrect restarted %s[%d] (pid %d -> %d)", again[i].Name, again[i].ID, after[i].PID, again[i].PID)
		}
	}
}

// TestSaveNothing: saving an empty list is refused with a clear message unless --force (it
// would make the next boot restore nothing), and the saved list is left as it was.
func TestSaveNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sleeper.sh")
	dump := filepath.Join(e.home, "dump.json")
	r := e.fails("save")
	if r.code != 1 || !strings.Contains(r.stderr, "nothing to save") || !strings.Contains(r.stderr, "--force") {
		t.Fatalf("save of nothing: want exit 1 saying there is nothing to save and how to force it, got:\n%s", r)
	}
	if pathExists(dump) {
		t.Fatal("a refused save wrote dump.json")
	}
	// With a saved list, a refused empty save keeps it.
	e.ok("start", "sleeper.sh", "--name", "keep")
	e.ok("save")
	saved := readFile(dump)
	e.ok("delete", "all")
	e.fails("save")
	if readFile(dump) != saved {
		t.Fatal("a refused save changed dump.json")
	}
	e.ok("save", "--force")
	e.ok("kill")
	e.ok("resurrect")
	if n := len(e.jlist()); n != 0 {
		t.Fatalf("resurrect of a forced empty save started %d processes", n)
	}
}

// TestResurrectFallsBackToBackup: a corrupt dump.json is replaced by dump.json.bak (the list
// saved before), and resurrect says so; with both corrupt it fails clearly; with no saved list
// it says to save first.
func TestResurrectFallsBackToBackup(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sleeper.sh")
	dump := filepath.Join(e.home, "dump.json")
	r := e.fails("resurrect")
	if r.code != 1 || !strings.Contains(r.stderr, "corral save") {
		t.Fatalf("resurrect with no saved list: want exit 1 pointing at save, got:\n%s", r)
	}
	e.ok("start", "sleeper.sh", "--name", "first")
	e.ok("save")
	e.ok("start", "sleeper.sh", "--name", "second")
	e.ok("save") // dump.json: first, second; dump.json.bak: first
	e.ok("kill")
	if err := os.WriteFile(dump, []byte("{\"format\": 1, \"apps\": [ garbage\x00\xff"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = e.ok("resurrect")
	if !strings.Contains(r.stderr, "dump.json") || !strings.Contains(r.stderr, "backup") {
		t.Fatalf("resurrect does not say it used the backup:\n%s", r)
	}
	e.waitStatus(0, "online", 20*time.Second)
	if got := savedSlots(e.jlist()); fmt.Sprint(got) != "[{0 first 0 online}]" {
		t.Fatalf("resurrected %v from the backup, want only first", got)
	}

	e.ok("kill")
	for _, f := range []string{dump, dump + ".bak"} {
		if err := os.WriteFile(f, []byte("garbage"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r = e.fails("resurrect")
	if r.code != 1 || !strings.Contains(r.stderr, dump) {
		t.Fatalf("resurrect with both files corrupt: want exit 1 naming the file, got:\n%s", r)
	}
	if n := len(e.jlist()); n != 0 {
		t.Fatalf("%d processes started from corrupt files", n)
	}
}
