package daemon

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"

	"github.com/corral-pm/corral/internal/sdnotify"
)

// roleVar makes the test binary, re-executed by a test daemon as an app, play a small
// program instead of running the tests (the way cloudflare/tableflip tests itself): it starts
// in milliseconds, where a shell or Python helper would cost a fork of its own interpreter.
const roleVar = "CORRAL_DAEMON_TEST_ROLE"

// roleNotify: a server that says READY=1 on its NOTIFY_SOCKET (sd_notify) at once, then runs
// until SIGINT or SIGTERM, and exits 0.
const roleNotify = "notify"

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && (os.Args[1] == keptDaemonArg || os.Args[1] == "keeper") {
		os.Exit(keptMain(os.Args[1:])) // kept_test.go: the keeper, and the daemon it runs
	}
	switch os.Getenv(roleVar) {
	case "":
		os.Exit(m.Run())
	case roleNotify:
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
		if _, err := sdnotify.Notify("READY=1"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		<-sigs
		os.Exit(0)
	default:
		fmt.Fprintf(os.Stderr, "unknown %s %q\n", roleVar, os.Getenv(roleVar))
		os.Exit(2)
	}
}
