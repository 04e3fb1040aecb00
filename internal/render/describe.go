package render

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/spec"
)

// Describe renders `corral describe` for one process: PM2's key/value table with corral's
// extra facts (restart policy, memory, last exit), the app's declared environment (masked
// unless revealed), and for cluster apps the per-worker distribution of connections.
func Describe(p api.Process, o Options, revealed bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, " Describing process with id %d - name %s\n", p.ID, o.paint(ansiBold, p.Name))
	na := func(s string) string {
		if s == "" {
			return "N/A"
		}
		return s
	}
	uptime := "0"
	if p.Status == "online" && !p.StartedAt.IsZero() {
		uptime = FormatUptime(o.Now.Sub(p.StartedAt))
	}
	a := p.App
	rows := [][]cell{
		{{text: "status"}, {text: p.Status, color: statusColor(p.Status)}},
		{{text: "name"}, {text: p.Name}},
		{{text: "namespace"}, {text: p.Namespace}},
		{{text: "version"}, {text: p.Version}},
		{{text: "restarts"}, {text: strconv.Itoa(p.Restarts)}},
		{{text: "uptime"}, {text: uptime}},
		{{text: "pid"}, {text: strconv.Itoa(p.PID)}},
		{{text: "script path"}, {text: a.Script}},
		{{text: "script args"}, {text: na(strings.Join(a.Args, " "))}},
		{{text: "error log path"}, {text: p.ErrLog}},
		{{text: "out log path"}, {text: p.OutLog}},
	}
	if p.CombinedLog != "" {
		rows = append(rows, []cell{{text: "log path"}, {text: p.CombinedLog}})
	}
	rows = append(rows,
		[]cell{{text: "pid path"}, {text: na(p.PidFile)}},
		[]cell{{text: "interpreter"}, {text: na(a.Interpreter)}},
		[]cell{{text: "interpreter args"}, {text: na(strings.Join(a.InterpreterArgs, " "))}},
		[]cell{{text: "script id"}, {text: strconv.Itoa(p.ID)}},
		[]cell{{text: "instance"}, {text: fmt.Sprintf("%s=%d", a.InstanceVar, p.Instance)}},
		[]cell{{text: "exec cwd"}, {text: a.Cwd}},
		[]cell{{text: "exec mode"}, {text: a.ExecMode + "_mode"}},
		[]cell{{text: "node env"}, {text: na(a.Environ()["NODE_ENV"])}},
		[]cell{{text: "watch & reload"}, {text: yesNo(len(a.Watch) > 0, "✔", "✘")}},
		[]cell{{text: "cpu"}, {text: FormatCPU(p.CPU)}},
		[]cell{{text: "memory"}, {text: memoryText(p)}},
		[]cell{{text: "stop"}, {text: stopSummary(a)}},
		[]cell{{text: "restart policy"}, {text: restartSummary(a)}},
		[]cell{{text: "max memory restart"}, {text: memoryRestartText(&a, p.MemoryLimit)}},
		[]cell{{text: "cron restart"}, {text: na(a.CronRestart)}},
		[]cell{{text: "unstable restarts"}, {text: strconv.Itoa(p.Unstable)}},
		[]cell{{text: "last exit"}, {text: lastExit(p)}},
		[]cell{{text: "created at"}, {text: p.CreatedAt.UTC().Format("2006-01-02T15:04:05.000Z")}},
	)
	if a.Build != "" {
		rows = append(rows, []cell{{text: "build"}, {text: fmt.Sprintf("%s (at most %v)", a.Build, a.BuildTimeoutD())}})
	}
	if c := p.Cluster; c != nil {
		listening := "not yet"
		if len(c.Listening) > 0 {
			listening = strings.Join(c.Listening, ", ")
		}
		rows = append(rows,
			[]cell{{text: "node cluster.worker.id"}, {text: fmt.Sprintf("%d (this run's; NODE_APP_INSTANCE is %d)", c.WorkerID, p.Instance)}},
			[]cell{{text: "listening on"}, {text: listening}},
			[]cell{{text: "connections"}, {text: fmt.Sprintf("%d (%.1f/s)", c.Connections, c.ConnPerSec)}},
			[]cell{{text: "in flight"}, {text: strconv.Itoa(c.InFlight)}},
			[]cell{{text: "refused"}, {text: strconv.FormatUint(c.Refused, 10)}},
		)
	}
	if c := p.RequestStats(); c != nil {
		if c.Requests > 0 || c.Runtime != nil {
			rows = append(rows,
				[]cell{{text: "requests"}, {text: fmt.Sprintf("%d (%.1f/s), 4xx %d, 5xx %d", c.Requests, c.ReqPerSec, c.RequestsByClass[3], c.RequestsByClass[4])}},
				[]cell{{text: "latency"}, {text: fmt.Sprintf("p50 %s, p99 %s", formatMS(c.LatencyP50MS), formatMS(c.LatencyP99MS))}},
			)
		}
		if rt := c.Runtime; rt != nil {
			if rt.EventLoopP50MS != nil && rt.EventLoopP99MS != nil && rt.EventLoopMaxMS != nil {
				rows = append(rows, []cell{{text: "event loop delay"}, {text: fmt.Sprintf("p50 %s, p99 %s, max %s", formatMS(*rt.EventLoopP50MS), formatMS(*rt.EventLoopP99MS), formatMS(*rt.EventLoopMaxMS))}})
			}
			rows = append(rows, []cell{{text: "heap"}, {text: fmt.Sprintf("%s used of %s", spec.FormatSize(int64(rt.HeapUsed)), spec.FormatSize(int64(rt.HeapTotal)))}})
		}
	}
	if p.LastError != "" {
		rows = append(rows, []cell{{text: "last error"}, {text: p.LastError, color: ansiRed}})
	}
	if p.LogError != "" {
		rows = append(rows, []cell{{text: "log error"}, {text: p.LogError, color: ansiRed}})
	}
	if p.LostLogLines > 0 || p.LostLogBytes > 0 {
		rows = append(rows, []cell{{text: "lost log lines"}, {text: fmt.Sprintf("%d (%s), not in the log files", p.LostLogLines, spec.FormatSize(int64(p.LostLogBytes))), color: ansiRed}})
	}
	b.WriteString(boxNoHeader(o, rows))

	if len(a.Env) > 0 {
		title := " Environment declared by the app (secrets masked: --reveal shows them)"
		if revealed {
			title = " Environment declared by the app"
		}
		b.WriteString(title + "\n")
		keys := make([]string, 0, len(a.Env))
		for k := range a.Env {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		env := make([][]cell, 0, len(keys))
		for _, k := range keys {
			env = append(env, []cell{{text: k}, {text: a.Env[k]}})
		}
		b.WriteString(boxNoHeader(o, env))
	}
	return b.String()
}

// boxNoHeader draws a two-column key/value table.
func boxNoHeader(o Options, rows [][]cell) string {
	full := box(o, []string{"", ""}, rows)
	// Drop the empty header row and its separator: lines 2 and 3.
	lines := strings.SplitAfter(full, "\n")
	return lines[0] + strings.Join(lines[3:], "")
}

func stopSummary(a spec.App) string {
	how := a.KillSignal
	if a.ShutdownWithMessage {
		how = "'shutdown' message"
	}
	return fmt.Sprintf("%s, SIGKILL after %v", how, a.KillTimeout.D())
}

func restartSummary(a spec.App) string {
	if !a.Autorestart {
		return "no autorestart"
	}
	parts := []string{fmt.Sprintf("max %d unstable (min_uptime %v)", a.MaxRestarts, a.MinUptime.D())}
	if a.ExpBackoffRestartDelay > 0 {
		parts = append(parts, fmt.Sprintf("backoff from %v", a.ExpBackoffRestartDelay.D()))
	} else if a.RestartDelay > 0 {
		parts = append(parts, fmt.Sprintf("delay %v", a.RestartDelay.D()))
	}
	if len(a.StopExitCodes) > 0 {
		codes := make([]string, len(a.StopExitCodes))
		for i, c := range a.StopExitCodes {
			codes[i] = strconv.Itoa(c)
		}
		parts = append(parts, "not on exit "+strings.Join(codes, ","))
	}
	return strings.Join(parts, ", ")
}

func sizeOrNA(n int64) string {
	if n <= 0 {
		return "N/A"
	}
	return spec.FormatSize(n)
}

func lastExit(p api.Process) string {
	switch {
	case !p.Exited:
		return "N/A"
	case p.ExitSignal != "":
		return "killed by " + p.ExitSignal
	default:
		return "code " + strconv.Itoa(p.ExitCode)
	}
}

// memoryText is the memory row of describe: the process tree's, and the container's limit
// when there is one.
func memoryText(p api.Process) string {
	if p.MemoryLimit > 0 {
		return fmt.Sprintf("%s (container limit %s)", spec.FormatSize(p.Memory), spec.FormatSize(p.MemoryLimit))
	}
	return spec.FormatSize(p.Memory)
}

// memoryRestartText is max_memory_restart: a size, or a share of the container's limit and
// what that is now.
func memoryRestartText(a *spec.App, limit int64) string {
	if a.MaxMemoryRestartPercent <= 0 {
		return sizeOrNA(a.MaxMemoryRestart)
	}
	pct := strconv.FormatFloat(a.MaxMemoryRestartPercent, 'f', -1, 64) + "%"
	if limit <= 0 {
		return pct + " of the container's memory limit (none set: off)"
	}
	return fmt.Sprintf("%s of %s (%s)", pct, spec.FormatSize(limit), spec.FormatSize(int64(float64(limit)*a.MaxMemoryRestartPercent/100)))
}
