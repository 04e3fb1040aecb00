package api

import (
	"encoding/json"
	"strconv"
	"time"
)

// JList renders processes in the shape of `pm2 jlist`, so scripts written for PM2 (uptime
// checks, Ansible roles, dashboards) keep working: pid, name, pm_id, monit{memory,cpu}, and a
// pm2_env object with PM2's keys, the environment under "env" and (as PM2 does) every variable
// also flattened onto pm2_env. corral's own extras sit beside them under "corral".
func JList(procs []Process) ([]byte, error) {
	out := make([]map[string]any, 0, len(procs))
	for _, p := range procs {
		out = append(out, jlistEntry(p))
	}
	return json.Marshal(out)
}

func jlistEntry(p Process) map[string]any {
	a := p.App
	env := a.Environ()
	env[a.InstanceVar] = strconv.Itoa(p.Instance)
	mode := "fork_mode"
	if a.ExecMode == "cluster" {
		mode = "cluster_mode"
	}
	args := a.Args
	if args == nil {
		args = []string{}
	}
	nodeArgs := a.InterpreterArgs
	if nodeArgs == nil {
		nodeArgs = []string{}
	}
	// PM2's watch is a boolean (the paths are in its own attributes); it stays as declared
	// after a stop.
	watch := len(a.Watch) > 0
	pm2env := map[string]any{}
	// Flattened environment first, so PM2's own keys win on a clash (as in PM2).
	for k, v := range env {
		pm2env[k] = v
	}
	for k, v := range map[string]any{
		"name":                      p.Name,
		"namespace":                 p.Namespace,
		"pm_id":                     p.ID,
		"status":                    p.Status,
		"restart_time":              p.Restarts,
		"unstable_restarts":         p.Unstable,
		"pm_uptime":                 epochMillis(p.StartedAt),
		"created_at":                epochMillis(p.CreatedAt),
		"exec_mode":                 mode,
		"instances":                 a.Instances,
		"instance_var":              a.InstanceVar,
		a.InstanceVar:               p.Instance,
		"exec_interpreter":          a.Interpreter,
		"pm_exec_path":              a.Script,
		"pm_cwd":                    a.Cwd,
		"pm_out_log_path":           p.OutLog,
		"pm_err_log_path":           p.ErrLog,
		"pm_pid_path":               p.PidFile,
		"merge_logs":                a.MergeLogs,
		"node_args":                 nodeArgs,
		"args":                      args,
		"watch":                     watch,
		"autorestart":               a.Autorestart,
		"autostart":                 a.Autostart,
		"kill_timeout":              int64(a.KillTimeout),
		"kill_signal":               a.KillSignal,
		"listen_timeout":            int64(a.ListenTimeout),
		"wait_ready":                a.WaitReady,
		"shutdown_with_message":     a.ShutdownWithMessage,
		"min_uptime":                int64(a.MinUptime),
		"max_restarts":              a.MaxRestarts,
		"restart_delay":             int64(a.RestartDelay),
		"exp_backoff_restart_delay": int64(a.ExpBackoffRestartDelay),
		"prev_restart_delay":        p.PrevRestartDelayMS,
		"treekill":                  true,
		"kill_retry_time":           100,
		"username":                  p.Username,
		"version":                   p.Version,
		"env":                       env,
		"axm_monitor":               axmMonitor(p.RequestStats()),
		"axm_actions":               []any{},
		"vizion":                    false,
		"automation":                !a.NoPMX, // PM2's attributes: corral's metrics on or off
		"pmx":                       !a.NoPMX,
	} {
		pm2env[k] = v
	}
	if p.CombinedLog != "" {
		pm2env["pm_log_path"] = p.CombinedLog
	}
	if p.Exited {
		pm2env["exit_code"] = p.ExitCode
	}
	if a.MaxMemoryRestart > 0 {
		pm2env["max_memory_restart"] = a.MaxMemoryRestart
	}
	if a.CronRestart != "" {
		pm2env["cron_restart"] = a.CronRestart
	}
	if a.Build != "" {
		pm2env["build"] = a.Build
		pm2env["build_timeout"] = int64(a.BuildTimeoutD() / time.Millisecond)
	}
	if len(a.StopExitCodes) > 0 {
		pm2env["stop_exit_codes"] = a.StopExitCodes
	}
	if a.LogDateFormat != "" {
		pm2env["log_date_format"] = a.LogDateFormat
	}
	if a.LogType != "" {
		pm2env["log_type"] = a.LogType
	}
	if a.IncrementVar != "" {
		pm2env["increment_var"] = a.IncrementVar
	}
	extras := map[string]any{
		"instance":   p.Instance,
		"cpu":        p.CPU,
		"memory":     p.Memory,
		"last_error": p.LastError,
		"ready":      p.Ready,
	}
	if len(a.Watch) > 0 {
		extras["watch_paths"] = a.Watch
	}
	if p.ExitSignal != "" {
		extras["exit_signal"] = p.ExitSignal
	}
	if p.Cluster != nil {
		extras["cluster"] = p.Cluster
	}
	if p.Requests != nil {
		extras["requests"] = p.Requests
	}
	if p.LogError != "" {
		extras["log_error"] = p.LogError
	}
	if p.LostLogLines > 0 || p.LostLogBytes > 0 {
		extras["lost_log_lines"] = p.LostLogLines
		extras["lost_log_bytes"] = p.LostLogBytes
	}
	pm2env["corral"] = extras
	return map[string]any{
		"pid":     p.PID,
		"name":    p.Name,
		"pm_id":   p.ID,
		"monit":   map[string]any{"memory": p.Memory, "cpu": roundTenth(p.CPU)},
		"pm2_env": pm2env,
	}
}

// axmMonitor fills PM2's axm_monitor (what @pm2/io metrics show in `pm2 show` and
// dashboards: each entry an object with a value and maybe a unit) from the request counters
// corral's preload reports from cluster workers. Empty when the worker reported nothing.
func axmMonitor(c *WorkerStats) map[string]any {
	out := map[string]any{}
	if c == nil || (c.Requests == 0 && c.Runtime == nil) {
		return out
	}
	out["HTTP"] = map[string]any{"value": roundTenth(c.ReqPerSec * 60), "unit": "req/min"}
	out["HTTP Requests"] = map[string]any{"value": c.Requests}
	out["HTTP 5xx"] = map[string]any{"value": c.Requests5xx}
	out["HTTP P50 Latency"] = map[string]any{"value": roundTenth(c.LatencyP50MS), "unit": "ms"}
	out["HTTP P99 Latency"] = map[string]any{"value": roundTenth(c.LatencyP99MS), "unit": "ms"}
	if rt := c.Runtime; rt != nil {
		if rt.EventLoopP99MS != nil {
			out["Event Loop Latency p99"] = map[string]any{"value": roundTenth(*rt.EventLoopP99MS), "unit": "ms"}
		}
		out["Used Heap Size"] = map[string]any{"value": roundTenth(float64(rt.HeapUsed) / (1 << 20)), "unit": "MiB"}
		out["Heap Size"] = map[string]any{"value": roundTenth(float64(rt.HeapTotal) / (1 << 20)), "unit": "MiB"}
		if rt.Handles != nil {
			out["Active handles"] = map[string]any{"value": *rt.Handles}
		}
	}
	return out
}

func roundTenth(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }

// epochMillis is PM2's time unit in jlist (0 for an unknown time).
func epochMillis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}
