package ecosystem

import (
	"fmt"
	"strings"

	"github.com/corral-pm/corral/internal/typo"
)

// attribute is one app attribute corral understands, under its PM2 name, with the other
// spellings PM2 accepts. camelCase forms of every name and alias are accepted as well, as
// PM2's schema generates them (maxMemoryRestart ≡ max_memory_restart).
type attribute struct {
	name    string
	aliases []string
}

// attributes lists every supported attribute. env_<name> sections are matched by prefix.
var attributes = []attribute{
	{name: "name"},
	{name: "namespace"},
	{name: "script", aliases: []string{"exec", "cmd", "command"}},
	{name: "args"},
	{name: "interpreter", aliases: []string{"exec_interpreter"}},
	{name: "interpreter_args", aliases: []string{"node_args"}},
	{name: "cwd"},
	{name: "exec_mode"},
	{name: "instances"},
	{name: "instance_var"},
	{name: "increment_var"},
	{name: "env"},
	{name: "port"},
	{name: "filter_env"},
	{name: "append_env_to_name"},
	{name: "autorestart"},
	{name: "autostart"},
	{name: "max_restarts"},
	{name: "min_uptime"},
	{name: "restart_delay"},
	{name: "exp_backoff_restart_delay"},
	{name: "stop_exit_codes"},
	{name: "max_memory_restart"},
	{name: "cron_restart", aliases: []string{"cron"}},
	{name: "watch"},
	{name: "ignore_watch"},
	{name: "watch_delay"},
	{name: "kill_timeout"},
	{name: "kill_signal"},
	{name: "shutdown_with_message"},
	{name: "wait_ready"},
	{name: "listen_timeout"},
	{name: "health_url"},
	{name: "out_file", aliases: []string{"out", "output", "out_log"}},
	{name: "error_file", aliases: []string{"error", "err", "err_file", "err_log"}},
	{name: "log_file", aliases: []string{"log"}},
	{name: "pid_file", aliases: []string{"pid"}},
	{name: "merge_logs", aliases: []string{"combine_logs"}},
	{name: "log_date_format"},
	{name: "log_type"},
	{name: "time"},
	{name: "log_max_size"},
	{name: "log_retain"},
	{name: "sched_policy"},
	{name: "listen"},
	{name: "alerts"},
	// corral's own: how `corral verify` exercises the app (asVerify).
	{name: "verify"},
	// corral's own: a command run once before the app's processes start (asBuild).
	{name: "build"},
	{name: "build_timeout"},
	{name: "pmx"},
	{name: "automation"},
}

// unsupportedPM2 are PM2 attributes corral knowingly does not implement: they get a warning of
// their own so a PM2 user knows the file was understood and the feature is simply absent.
var unsupportedPM2 = []string{
	"vizion", "source_map_support", "disable_source_map_support", "trace",
	"disable_trace", "v8", "event_loop_inspector", "deep_monitoring", "io", "windowsHide",
	"post_update", "treekill", "kill_retry_time", "disable_logs", "uid", "gid",
	"user", "username", "force", "node_version", "watch_options", "write",
	"install_url", "execute_command", "name_prefix", "instance_id", "vizion_running",
}

var (
	// canonicalName maps every accepted spelling to its PM2 name.
	canonicalName = map[string]string{}
	// unsupportedName holds every spelling of an unsupported PM2 attribute.
	unsupportedName = map[string]bool{}
	// aliasRank orders the spellings of one attribute: the PM2 name first, then aliases in
	// table order, so a conflict is always resolved the same way.
	aliasRank = map[string]int{}
)

func init() {
	for _, a := range attributes {
		for i, n := range append([]string{a.name}, a.aliases...) {
			for _, spelling := range []string{n, camelCase(n)} {
				canonicalName[spelling] = a.name
				if _, seen := aliasRank[spelling]; !seen {
					aliasRank[spelling] = i
				}
			}
		}
	}
	for _, n := range unsupportedPM2 {
		unsupportedName[n] = true
		unsupportedName[camelCase(n)] = true
	}
}

// camelCase turns snake_case into camelCase: max_memory_restart -> maxMemoryRestart.
func camelCase(s string) string {
	parts := strings.Split(s, "_")
	for i := 1; i < len(parts); i++ {
		if parts[i] != "" {
			parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
		}
	}
	return strings.Join(parts, "")
}

// attrValue is an attribute's value with the spelling the user wrote, so errors name the key
// as it appears in their file.
type attrValue struct {
	key   string
	value any
}

// attrSet is an app's attributes keyed by PM2 name (env_<name> sections under their own key).
type attrSet map[string]attrValue

func isEnvSection(key string) bool { return len(key) > len("env_") && strings.HasPrefix(key, "env_") }

// canonicalize maps an app's raw keys to PM2 names. Keys set to null or undefined count as not
// set. Unknown and unsupported keys are dropped with a warning; when two spellings of one
// attribute are both present, the PM2 name (or the earlier alias) wins, with a warning.
func canonicalize(raw map[string]any) (attrSet, []string) {
	attrs := attrSet{}
	var warnings []string
	for _, key := range sortedKeys(raw) {
		value := plain(raw[key])
		if value == nil {
			continue
		}
		if isEnvSection(key) {
			attrs[key] = attrValue{key: key, value: value}
			continue
		}
		name, known := canonicalName[key]
		switch {
		case known:
			prev, dup := attrs[name]
			if !dup {
				attrs[name] = attrValue{key: key, value: value}
				continue
			}
			winner, loser := prev, attrValue{key: key, value: value}
			if aliasRank[key] < aliasRank[prev.key] {
				winner, loser = loser, winner
			}
			attrs[name] = winner
			warnings = append(warnings, fmt.Sprintf("%q ignored: %q sets the same attribute", loser.key, winner.key))
		case unsupportedName[key]:
			warnings = append(warnings, fmt.Sprintf("PM2 attribute %q is not supported by corral; ignored", key))
		default:
			msg := fmt.Sprintf("unknown attribute %q ignored", key)
			if s := suggest(key); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			warnings = append(warnings, msg)
		}
	}
	return attrs, warnings
}

// suggest returns the accepted spelling closest to an unknown key, if it is within two edits
// (ignoring case) and the key is not so short that any two-letter change would match.
func suggest(key string) string {
	lower := strings.ToLower(key)
	best, bestDist := "", 3
	candidates := []string{}
	for _, a := range attributes {
		for _, n := range append([]string{a.name}, a.aliases...) {
			candidates = append(candidates, n, camelCase(n))
		}
	}
	for _, c := range candidates {
		d := typo.Distance(lower, strings.ToLower(c))
		if d < bestDist && d < len([]rune(key)) {
			best, bestDist = c, d
		}
	}
	return best
}
