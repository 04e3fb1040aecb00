package supervisor

import (
	"slices"

	"github.com/corral-pm/corral/internal/spec"
)

// isStopExitCode reports whether code is one of the app's stop_exit_codes: an exit the app
// declares deliberate, which is no crash (api.Event.Crash).
func isStopExitCode(app *spec.App, code int) bool {
	return app != nil && slices.Contains(app.StopExitCodes, code)
}
