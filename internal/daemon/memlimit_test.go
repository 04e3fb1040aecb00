package daemon

import (
	"testing"

	"github.com/corral-pm/corral/internal/cpus"
	"github.com/corral-pm/corral/internal/spec"
)

// TestMemoryRestartLimit: bytes as given; a share of the container's limit when there is one,
// off (0) when there is none.
func TestMemoryRestartLimit(t *testing.T) {
	td := newTestDaemon(t, nil)
	if got := td.d.memoryRestartLimit(&spec.App{Name: "b", MaxMemoryRestart: 300 << 20}); got != 300<<20 {
		t.Errorf("bytes: %d", got)
	}
	got := td.d.memoryRestartLimit(&spec.App{Name: "p", MaxMemoryRestartPercent: 50})
	if limit, ok := cpus.MemoryLimit(); ok {
		if got != limit/2 {
			t.Errorf("50%% of %d = %d", limit, got)
		}
	} else if got != 0 {
		t.Errorf("50%% with no limit = %d, want 0 (off)", got)
	}
}
