package spec

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestBuildRoundTrips: the saved list (dump.json) and the hand-over state to a restarted daemon
// (docs/daemon-survival.md) carry an App as this JSON, so build and build_timeout must survive
// it, and a spec saved before they existed must read as no build with the default timeout.
func TestBuildRoundTrips(t *testing.T) {
	a := Defaults()
	a.Name, a.Script, a.Cwd = "web", "/srv/web/run.sh", "/srv/web"
	a.Build, a.BuildTimeout = "go build -v -o bin/web .", 120000
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"build":"go build -v -o bin/web ."`) || !strings.Contains(string(b), `"build_timeout":120000`) {
		t.Errorf("JSON lacks the build: %s", b)
	}
	var back App
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Build != a.Build || back.BuildTimeout != a.BuildTimeout {
		t.Errorf("round trip: build %q timeout %d", back.Build, back.BuildTimeout)
	}

	var old App
	if err := json.Unmarshal([]byte(`{"name":"web","script":"/srv/web/run.sh","cwd":"/srv/web"}`), &old); err != nil {
		t.Fatal(err)
	}
	if old.Build != "" || old.BuildTimeoutD() != 15*time.Minute {
		t.Errorf("an older spec: build %q timeout %v", old.Build, old.BuildTimeoutD())
	}
	if err := (&App{Name: "web", Script: "x", Cwd: "/", ExecMode: ModeFork, BuildTimeout: -1}).Validate(); err == nil {
		t.Errorf("a negative build_timeout is valid")
	}
}
