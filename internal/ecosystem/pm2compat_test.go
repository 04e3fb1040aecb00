package ecosystem

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadPM2Extras: increment_var, log_type and deploy.<env>.env, as PM2 reads them, and
// LoadJSON for a file on stdin.
func TestLoadPM2Extras(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"app.js": "",
		"eco.json": `{
  "apps": [{"name": "web", "script": "app.js", "increment_var": "PORT", "log_type": "json",
            "env": {"PORT": "3000", "OWN": "app"}, "env_production": {"LEVEL": "prod"}}],
  "deploy": {"production": {"user": "node", "env": {"FROM_DEPLOY": "yes", "OWN": "deploy"}}}
}`,
		"bad.json": `{"apps": [{"name": "web", "script": "app.js", "log_type": "xml"}]}`,
	})
	opt := testOptions(dir)
	opt.EnvName = "production"
	res := mustLoad(t, filepath.Join(dir, "eco.json"), opt)
	a := res.Apps[0]
	if a.IncrementVar != "PORT" || a.LogType != "json" {
		t.Errorf("increment_var %q, log_type %q", a.IncrementVar, a.LogType)
	}
	for k, want := range map[string]string{"PORT": "3000", "OWN": "app", "FROM_DEPLOY": "yes", "LEVEL": "prod"} {
		if a.Env[k] != want {
			t.Errorf("env %s = %q, want %q (env: %v)", k, a.Env[k], want, a.Env)
		}
	}
	for _, w := range res.Warnings {
		if strings.Contains(w, "increment_var") || strings.Contains(w, "log_type") || strings.Contains(w, "no app declares") {
			t.Errorf("warning about a supported attribute: %s", w)
		}
	}
	// Without --env the deploy section does not apply.
	res = mustLoad(t, filepath.Join(dir, "eco.json"), testOptions(dir))
	if _, ok := res.Apps[0].Env["FROM_DEPLOY"]; ok {
		t.Errorf("deploy env applied without --env: %v", res.Apps[0].Env)
	}
	if _, err := Load(filepath.Join(dir, "bad.json"), testOptions(dir)); err == nil || !strings.Contains(err.Error(), `"xml" is not a log type`) {
		t.Errorf("log_type xml: %v", err)
	}
	res, err := LoadJSON("stdin.json", []byte(`{"apps":[{"name":"a","script":"app.js"}]}`), testOptions(dir))
	if err != nil || len(res.Apps) != 1 || res.Apps[0].Script != filepath.Join(dir, "app.js") {
		t.Fatalf("LoadJSON: %v, %+v", err, res)
	}
}
