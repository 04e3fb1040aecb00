package ecosystem

import (
	"testing"

	"github.com/corral-pm/corral/internal/spec"
)

// TestContainerAttributes: health_url (a path or an http:// URL with a port) and
// max_memory_restart as a share of the container's memory limit.
func TestContainerAttributes(t *testing.T) {
	runAttrCases(t, []attrCase{
		{name: "health_url path", raw: map[string]any{"health_url": "/healthz"}, check: func(t *testing.T, a spec.App, _ string) {
			if a.HealthURL != "/healthz" {
				t.Errorf("health_url = %q", a.HealthURL)
			}
		}},
		{name: "health_url URL", raw: map[string]any{"healthUrl": "http://127.0.0.1:5000/api/health"}, check: func(t *testing.T, a spec.App, _ string) {
			if a.HealthURL != "http://127.0.0.1:5000/api/health" {
				t.Errorf("health_url = %q", a.HealthURL)
			}
		}},
		{name: "health_url without a port", raw: map[string]any{"health_url": "http://example.com/healthz"}, wantErr: `health_url: "http://example.com/healthz" is neither a path such as '/healthz'`},
		{name: "health_url https", raw: map[string]any{"health_url": "https://127.0.0.1:5000/"}, wantErr: `health_url: "https://127.0.0.1:5000/" is neither`},
		{name: "health_url not a string", raw: map[string]any{"health_url": 5000}, wantErr: `health_url: expected a string`},
		{name: "memory share", raw: map[string]any{"max_memory_restart": "80%"}, check: func(t *testing.T, a spec.App, _ string) {
			if a.MaxMemoryRestartPercent != 80 || a.MaxMemoryRestart != 0 {
				t.Errorf("max_memory_restart: %d bytes, %v%%", a.MaxMemoryRestart, a.MaxMemoryRestartPercent)
			}
		}},
		{name: "memory share fractional", raw: map[string]any{"max_memory_restart": " 62.5 %"}, check: func(t *testing.T, a spec.App, _ string) {
			if a.MaxMemoryRestartPercent != 62.5 {
				t.Errorf("max_memory_restart: %v%%", a.MaxMemoryRestartPercent)
			}
		}},
		{name: "memory bytes still", raw: map[string]any{"max_memory_restart": "300M"}, check: func(t *testing.T, a spec.App, _ string) {
			if a.MaxMemoryRestart != 300<<20 || a.MaxMemoryRestartPercent != 0 {
				t.Errorf("max_memory_restart: %d bytes, %v%%", a.MaxMemoryRestart, a.MaxMemoryRestartPercent)
			}
		}},
		{name: "memory share too big", raw: map[string]any{"max_memory_restart": "120%"}, wantErr: `max_memory_restart: "120%": a share of the container's memory limit must be above 0% and at most 100%, such as '80%'`},
		{name: "memory share zero", raw: map[string]any{"max_memory_restart": "0%"}, wantErr: `must be above 0%`},
		{name: "memory share garbage", raw: map[string]any{"max_memory_restart": "most%"}, wantErr: `must be above 0%`},
	})
}
