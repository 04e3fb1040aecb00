package daemon

import (
	"slices"
	"testing"

	"github.com/corral-pm/corral/internal/cluster"
	"github.com/corral-pm/corral/internal/spec"
	"github.com/corral-pm/corral/internal/supervisor"
)

// TestHealthChecksPlan: which questions /readyz asks of an app, and whom it names: each
// worker where a way reaches it alone, the app once where none does.
func TestHealthChecksPlan(t *testing.T) {
	app := func(mutate func(s *spec.App)) *spec.App {
		s := spec.Defaults()
		s.Name = "web"
		s.Instances = 2
		s.HealthURL = "/healthz"
		s.Env = map[string]string{"PORT": "3000"}
		mutate(&s)
		return &s
	}
	type check struct{ worker, shown string }
	for _, tc := range []struct {
		name    string
		spec    *spec.App
		cluster bool // a cluster group with no key yet
		want    []check
		wantErr string
	}{
		{
			name: "fork, a port per process (increment_var)",
			spec: app(func(s *spec.App) { s.IncrementVar = "PORT" }),
			want: []check{
				{"worker 0 (pid 100)", "http://localhost:3000/healthz"},
				{"worker 1 (pid 101)", "http://localhost:3001/healthz"},
			},
		},
		{
			name: "fork, one port for every process: the app, once",
			spec: app(func(*spec.App) {}),
			want: []check{{"", "http://localhost:3000/healthz"}},
		},
		{
			name: "fork, a full URL: the app, once",
			spec: app(func(s *spec.App) { s.IncrementVar = "PORT"; s.HealthURL = "http://127.0.0.1:4000/up" }),
			want: []check{{"", "http://127.0.0.1:4000/up"}},
		},
		{
			name: "listen socket: one socket every process accepts on, the app once",
			spec: app(func(s *spec.App) {
				s.IncrementVar = "PORT"
				s.Listen = []spec.Socket{{Network: "tcp", Address: "127.0.0.1:5000"}}
			}),
			want: []check{{"", "http://localhost:5000/healthz"}},
		},
		{
			name:    "cluster without a key yet: the PORT variable, once",
			spec:    app(func(s *spec.App) { s.ExecMode = spec.ModeCluster }),
			cluster: true,
			want:    []check{{"", "http://localhost:3000/healthz"}},
		},
		{
			name:    "no port known",
			spec:    app(func(s *spec.App) { s.Env = nil }),
			wantErr: "no TCP port known for the app (give `listen`, or a full URL such as http://127.0.0.1:5000/healthz)",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := &appView{spec: tc.spec}
			if tc.cluster {
				v.group = cluster.NewGroup("web", "", t.Logf)
			}
			ready := []supervisor.Info{
				{ID: 0, Instance: 0, PID: 100, App: tc.spec},
				{ID: 1, Instance: 1, PID: 101, App: tc.spec},
			}
			checks, err := healthChecks(v, ready)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := make([]check, 0, len(checks))
			for _, c := range checks {
				got = append(got, check{c.worker, c.shown})
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("checks %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestWorkerName: the id, the instance where it differs, the pid.
func TestWorkerName(t *testing.T) {
	for _, tc := range []struct {
		info supervisor.Info
		want string
	}{
		{supervisor.Info{ID: 1, Instance: 1, PID: 4242}, "worker 1 (pid 4242)"},
		{supervisor.Info{ID: 7, Instance: 1, PID: 4242}, "worker 7 (instance 1, pid 4242)"},
	} {
		if got := workerName(tc.info); got != tc.want {
			t.Errorf("workerName(%+v) = %q, want %q", tc.info, got, tc.want)
		}
	}
}

// TestIsLocalHost: the hosts where a cluster app's own workers are.
func TestIsLocalHost(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "127.0.0.1": true, "127.0.0.2": true, "::1": true, "0.0.0.0": true, "::": true,
		"10.0.0.1": false, "example.com": false, "": false,
	} {
		if got := isLocalHost(host); got != want {
			t.Errorf("isLocalHost(%q) = %v, want %v", host, got, want)
		}
	}
}
