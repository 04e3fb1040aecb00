package daemon

import (
	"testing"

	"github.com/corral-pm/corral/internal/spec"
)

// TestClosest: a target that is a likely typo of an app name gets a suggestion; a different
// word does not.
func TestClosest(t *testing.T) {
	var apps []*app
	for _, n := range []string{"web", "worker", "api"} {
		s := spec.Defaults()
		s.Name = n
		a := newApp(&s, nil)
		apps = append(apps, a)
	}
	for target, want := range map[string]string{"wbe": "web", "wrker": "worker", "apo": "api", "x": "", "database": "", "default": "default"} {
		if got := closest(target, apps); got != want {
			t.Errorf("closest(%q) = %q, want %q", target, got, want)
		}
	}
}

// TestForkRollbackProblem: only a switch from cluster to fork mode with several instances and
// no increment_var is refused, and only for an app that serves a port.
func TestForkRollbackProblem(t *testing.T) {
	cluster, fork := spec.Defaults(), spec.Defaults()
	cluster.ExecMode = spec.ModeCluster
	if err := forkRollbackProblem(&cluster, &fork, 2, nil); err != nil {
		t.Errorf("an app with no primary (no port): %v", err)
	}
	if err := forkRollbackProblem(&fork, &fork, 4, nil); err != nil {
		t.Errorf("fork to fork: %v", err)
	}
	if err := forkRollbackProblem(&cluster, &fork, 1, nil); err != nil {
		t.Errorf("one instance: %v", err)
	}
}
