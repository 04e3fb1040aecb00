package ecosystem

import (
	"path/filepath"
	"testing"
)

func TestVerifySection(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"app.js": "",
		"ecosystem.config.js": `module.exports = { apps: [{ name: 'web', script: 'app.js', instances: 2, exec_mode: 'cluster',
  verify: { path: '/api/health', duration: '3s', concurrency: 8, keepAlive: true, min_share: 0.7, memory_slope: '2MB/min',
    login: { path: '/api/auth/login', body: { email: 'a@b', password: 'pw' } },
    check: { path: '/api/me', status: 200, logged_out_status: 401 },
    logout: { method: 'post', path: '/api/auth/logout' } } }] };`,
	})
	res := mustLoad(t, filepath.Join(dir, "ecosystem.config.js"), testOptions(dir))
	v := appNamed(t, res.Apps, "web").Verify
	if v == nil {
		t.Fatal("no verify section")
	}
	if v.Path != "/api/health" || v.Duration != 3000 || v.Concurrency != 8 || v.KeepAlive == nil || !*v.KeepAlive ||
		v.MinShare != 0.7 || v.MemorySlope != 2<<20 {
		t.Errorf("verify %+v", *v)
	}
	if v.Login == nil || v.Login.Path != "/api/auth/login" || v.Login.Body != `{"email":"a@b","password":"pw"}` {
		t.Errorf("login %+v", v.Login)
	}
	if v.Check == nil || v.Check.Status != 200 || v.Check.LoggedOutStatus != 401 || v.Logout == nil || v.Logout.Method != "POST" {
		t.Errorf("check %+v logout %+v", v.Check, v.Logout)
	}
}

func TestVerifySectionErrors(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"app.js": "",
		"ecosystem.config.js": `module.exports = { apps: [{ name: 'web', script: 'app.js',
  verify: { path: 'health', duration: '10ms', min_share: 1.5, memory_slope: '1MB/week', colour: 'red',
    login: { path: '/login', status: 99 } } }] };`,
	})
	file := filepath.Join(dir, "ecosystem.config.js")
	_, err := Load(file, testOptions(dir))
	wantErrorLines(t, err,
		file+`: app "web" (apps[0]): verify: `,
		`path: "health" is not a request path: start it with /`,
		`duration: 10ms is too short`,
		`min_share: expected the least part of a fair share`,
		`memory_slope: "1MB/week": the rate is per s, min or h`,
		`colour: unknown key: verify takes path, duration`,
		`login.status: 99 is not an HTTP status: use 100 to 599`,
	)
	writeFiles(t, dir, map[string]string{"ecosystem.config.js": `module.exports = { apps: [{ name: 'web', script: 'app.js',
  verify: { login: { path: '/login' } } }] };`})
	_, err = Load(file, testOptions(dir))
	wantErrorLines(t, err, "verify: login and logout need check too")
}

// The Go reference app's ecosystem file carries a verify section for `corral verify refapp`.
func TestVerifySectionOfTheReferenceApp(t *testing.T) {
	dir, err := filepath.Abs(filepath.Join("..", "..", "examples", "refapp"))
	if err != nil {
		t.Fatal(err)
	}
	res := mustLoad(t, filepath.Join(dir, "ecosystem.config.js"), testOptions(dir))
	v := appNamed(t, res.Apps, "refapp").Verify
	if v == nil || v.Path != "/api/health" || v.Login == nil || v.Check == nil || v.Logout == nil ||
		v.Login.Body != `{"email":"demo@example.com","password":"demo-password"}` {
		t.Errorf("verify %+v", v)
	}
}
