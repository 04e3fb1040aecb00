package cli

import (
	"fmt"
	"os"
	"testing"

	"github.com/corral-pm/corral/internal/listenexec"
)

// TestMain lets the test binary play the two roles the real binary plays for the daemon it
// runs in this process, before any test runs:
//   - the exec shim of apps with inherited sockets (`corral __listen-exec`): the daemon
//     re-executes its own binary for them, which here is this test binary;
//   - never a background daemon: a CLI that finds no daemon spawns `<its binary> daemon`,
//     and the tests must not leave one behind. Started so, this binary refuses at once (the
//     CLI then reports a daemon that exited at start, which one test checks).
//
// With keptVar set (TestKeptDaemon), the binary is corral itself instead: `daemon` runs the
// keeper, which starts this binary again as `daemon --kept`, the real daemon.
func TestMain(m *testing.M) {
	listenexec.MaybeRun(os.Args)
	if os.Getenv(keptVar) != "" {
		os.Exit(Main(os.Args[1:], newDaemon))
	}
	if len(os.Args) > 1 && os.Args[1] == "daemon" {
		fmt.Fprintln(os.Stderr, refusedDaemon)
		os.Exit(3)
	}
	os.Exit(m.Run())
}

// keptVar makes the test binary run as corral (see TestMain).
const keptVar = "CORRAL_CLI_TEST_KEPT"

// refusedDaemon is what the test binary prints when the CLI under test tries to start it as
// a background daemon.
const refusedDaemon = "cli.test: not starting a background daemon from a test"
