package render

import (
	"testing"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/spec"
)

func TestMemoryRows(t *testing.T) {
	if got := memoryText(api.Process{Memory: 10 << 20}); got != spec.FormatSize(10<<20) {
		t.Errorf("memory without a limit = %q", got)
	}
	if got, want := memoryText(api.Process{Memory: 10 << 20, MemoryLimit: 512 << 20}), spec.FormatSize(10<<20)+" (container limit "+spec.FormatSize(512<<20)+")"; got != want {
		t.Errorf("memory with a limit = %q, want %q", got, want)
	}
	for _, c := range []struct {
		app   spec.App
		limit int64
		want  string
	}{
		{spec.App{}, 0, "N/A"},
		{spec.App{MaxMemoryRestart: 300 << 20}, 512 << 20, spec.FormatSize(300 << 20)},
		{spec.App{MaxMemoryRestartPercent: 80}, 0, "80% of the container's memory limit (none set: off)"},
		{spec.App{MaxMemoryRestartPercent: 50}, 512 << 20, "50% of " + spec.FormatSize(512<<20) + " (" + spec.FormatSize(256<<20) + ")"},
	} {
		if got := memoryRestartText(&c.app, c.limit); got != c.want {
			t.Errorf("memoryRestartText(%+v, %d) = %q, want %q", c.app, c.limit, got, c.want)
		}
	}
}
