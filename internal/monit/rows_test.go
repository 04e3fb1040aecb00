package monit

import (
	"slices"
	"testing"

	"github.com/corral-pm/corral/internal/api"
)

// TestBuildRows: each app, in the order of its first process, then its processes; an app's
// row targets the app, a process's row its id.
func TestBuildRows(t *testing.T) {
	rows := buildRows([]api.Process{{ID: 0, Name: "web"}, {ID: 1, Name: "worker"}, {ID: 2, Name: "web"}})
	var got []string
	for _, r := range rows {
		got = append(got, r.label()+"→"+r.target())
	}
	want := []string{"web→web", "web[0]→0", "web[2]→2", "worker→worker", "worker[1]→1"}
	if !slices.Equal(got, want) {
		t.Errorf("rows %v, want %v", got, want)
	}
	if n := len(appProcs(rows, "web")); n != 2 {
		t.Errorf("web has %d processes, want 2", n)
	}
}
