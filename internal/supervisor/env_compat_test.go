package supervisor

import (
	"testing"

	"github.com/corral-pm/corral/internal/spec"
)

// TestIncrementVar: PM2's increment_var adds the instance number to a numeric variable and
// leaves any other value as it is.
func TestIncrementVar(t *testing.T) {
	app := spec.Defaults()
	app.Name = "web"
	app.IncrementVar = "PORT"
	app.Env = map[string]string{"PORT": "3000"}
	for instance, want := range map[int]string{0: "3000", 1: "3001", 5: "3005"} {
		if got := processEnv(&app, 10+instance, instance)["PORT"]; got != want {
			t.Errorf("instance %d: PORT %s, want %s", instance, got, want)
		}
	}
	app.Env["PORT"] = "/run/web.sock"
	if got := processEnv(&app, 1, 1)["PORT"]; got != "/run/web.sock" {
		t.Errorf("a value that is not a number became %q", got)
	}
}
