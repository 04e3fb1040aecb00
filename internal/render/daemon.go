package render

import (
	"fmt"
	"strings"
	"time"

	"github.com/corral-pm/corral/internal/api"
)

// Daemon is the line under `ls` and `describe` about the daemon itself: its pid and uptime,
// how often it was restarted (after a crash or kill -9) and upgraded under its keeper, and
// whether the apps survive it at all.
func Daemon(v api.Version, now time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "corral daemon %s: pid %d, up %s", v.Version, v.PID, FormatUptime(now.Sub(v.Started)))
	k := v.Keeper
	if k == nil {
		b.WriteString("; no keeper: the apps end with the daemon\n")
		return b.String()
	}
	fmt.Fprintf(&b, "; restarted %s, upgraded %s", times(k.Restarts), times(k.Upgrades))
	if k.LastExit != "" && k.Restarts+k.Upgrades > 0 {
		fmt.Fprintf(&b, " (the previous one: %s)", k.LastExit)
	}
	fmt.Fprintf(&b, "; apps kept by pid %d\n", k.PID)
	if k.Unadoptable != "" {
		fmt.Fprintf(&b, "warning: %s\n", k.Unadoptable)
	}
	return b.String()
}

func times(n int) string {
	switch n {
	case 0:
		return "never"
	case 1:
		return "once"
	}
	return fmt.Sprintf("%d times", n)
}
