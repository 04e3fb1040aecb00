package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/render"
	"github.com/spf13/cobra"
)

// processes lists every process, or those targets select (the daemon resolves them).
func (c *cli) processes(ctx context.Context, reveal bool, targets ...string) ([]api.Process, error) {
	return request(ctx, c, func(cl *api.Client) ([]api.Process, error) { return cl.Processes(ctx, reveal, targets...) })
}

func (c *cli) listCommand() *cobra.Command {
	var sortBy string
	var mini bool
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls", "l", "ps", "status"},
		Short:   "list every process",
		GroupID: "info",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			procs, err := c.processes(cmd.Context(), false)
			if err != nil {
				return err
			}
			if err := sortProcesses(procs, sortBy); err != nil {
				return err
			}
			if mini {
				fmt.Fprint(c.stdout, render.MiniList(procs, c.renderOptions()))
				return nil
			}
			fmt.Fprint(c.stdout, render.Table(procs, c.renderOptions()))
			c.printDaemon(cmd.Context())
			return nil
		},
	}
	cmd.Flags().StringVar(&sortBy, "sort", "", "sort by name, namespace, pid, id, cpu, memory, uptime, status or restarts, optionally :asc or :desc")
	cmd.Flags().BoolVarP(&mini, "mini-list", "m", false, "key/value blocks instead of a table")
	return cmd
}

// printDaemon prints the line about the daemon itself (uptime, restarts, upgrades, keeper).
// It is extra information: a failure to get it is not the command's.
func (c *cli) printDaemon(ctx context.Context) {
	if v, err := c.client.Version(ctx); err == nil {
		fmt.Fprint(c.stdout, render.Daemon(v, time.Now()))
	}
}

// sortProcesses implements `ls --sort field[:asc|desc]`.
func sortProcesses(procs []api.Process, by string) error {
	if by == "" {
		return nil
	}
	field, order, _ := strings.Cut(by, ":")
	less := map[string]func(a, b api.Process) bool{
		"name":      func(a, b api.Process) bool { return a.Name < b.Name },
		"namespace": func(a, b api.Process) bool { return a.Namespace < b.Namespace },
		"pid":       func(a, b api.Process) bool { return a.PID < b.PID },
		"id":        func(a, b api.Process) bool { return a.ID < b.ID },
		"cpu":       func(a, b api.Process) bool { return a.CPU < b.CPU },
		"memory":    func(a, b api.Process) bool { return a.Memory < b.Memory },
		"uptime":    func(a, b api.Process) bool { return a.StartedAt.After(b.StartedAt) },
		"status":    func(a, b api.Process) bool { return a.Status < b.Status },
		"restarts":  func(a, b api.Process) bool { return a.Restarts < b.Restarts },
	}[field]
	if less == nil {
		return fmt.Errorf("cannot sort by %q: use name, namespace, pid, id, cpu, memory, uptime, status or restarts", field)
	}
	switch order {
	case "", "asc":
		sort.SliceStable(procs, func(i, j int) bool { return less(procs[i], procs[j]) })
	case "desc":
		sort.SliceStable(procs, func(i, j int) bool { return less(procs[j], procs[i]) })
	default:
		return fmt.Errorf("sort order %q: use asc or desc", order)
	}
	return nil
}

func (c *cli) jlistCommand() *cobra.Command {
	return c.jsonListCommand("jlist", "print every process as JSON, in pm2 jlist's shape (secrets masked)", false)
}

// prettylistCommand is PM2's prettylist: jlist, indented for people.
func (c *cli) prettylistCommand() *cobra.Command {
	return c.jsonListCommand("prettylist", "print every process as indented JSON (jlist for people)", true)
}

// jsonListCommand prints the daemon's jlist as it comes, or indented.
func (c *cli) jsonListCommand(use, short string, indent bool) *cobra.Command {
	var reveal bool
	cmd := &cobra.Command{
		Use:     use,
		Short:   short,
		GroupID: "info",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			out, err := request(ctx, c, func(cl *api.Client) ([]byte, error) { return cl.JList(ctx, reveal) })
			if err != nil {
				return err
			}
			if indent {
				var buf bytes.Buffer
				if err := json.Indent(&buf, out, "", "  "); err != nil {
					return fmt.Errorf("indent the daemon's list: %w", err)
				}
				out = buf.Bytes()
			}
			fmt.Fprintf(c.stdout, "%s\n", out)
			return nil
		},
	}
	cmd.Flags().BoolVar(&reveal, "reveal", false, "print secret values in clear")
	return cmd
}

func (c *cli) describeCommand() *cobra.Command {
	var reveal bool
	cmd := &cobra.Command{
		Use:     "describe <name|id>",
		Aliases: []string{"desc", "info", "show"},
		Short:   "describe processes in detail",
		GroupID: "info",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			// The daemon selects, with its actions' grammar: what `describe x` shows is what
			// `stop x` stops.
			procs, err := c.processes(ctx, reveal, args[0])
			if err != nil {
				return err
			}
			if len(procs) == 0 { // "all" with nothing running
				return fmt.Errorf("process or namespace %q not found: `corral ls` lists what runs", args[0])
			}
			o := c.renderOptions()
			for _, p := range procs {
				fmt.Fprint(c.stdout, render.Describe(p, o, reveal))
			}
			// The per-worker distribution of the apps described, all their workers.
			var apps []string
			for _, p := range procs {
				if !slices.Contains(apps, p.Name) {
					apps = append(apps, p.Name)
				}
			}
			workers, err := c.processes(ctx, reveal, apps...)
			if err != nil {
				return err
			}
			fmt.Fprint(c.stdout, render.Distribution(workers, o))
			c.printDaemon(ctx)
			return nil
		},
	}
	cmd.Flags().BoolVar(&reveal, "reveal", false, "print secret values in clear")
	return cmd
}

func (c *cli) envCommand() *cobra.Command {
	var reveal bool
	cmd := &cobra.Command{
		Use:     "env <id|name>",
		Short:   "print the environment a process runs with (secrets masked)",
		GroupID: "info",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if err := c.connect(ctx, true); err != nil {
				return err
			}
			envs, err := request(ctx, c, func(cl *api.Client) ([]api.EnvResponse, error) { return cl.Env(ctx, args[0], reveal) })
			if err != nil {
				return err
			}
			for i, e := range envs {
				if len(envs) > 1 {
					if i > 0 {
						fmt.Fprintln(c.stdout)
					}
					fmt.Fprintf(c.stdout, "# process %d\n", e.ID)
				}
				keys := make([]string, 0, len(e.Env))
				for k := range e.Env {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				for _, k := range keys {
					fmt.Fprintf(c.stdout, "%s: %s\n", k, e.Env[k])
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&reveal, "reveal", false, "print secret values in clear")
	return cmd
}

func (c *cli) pidCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "pid [name|id]",
		Short:   "print process ids (PIDs), one per line",
		GroupID: "info",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			target := "all"
			if len(args) == 1 {
				target = args[0]
			}
			procs, err := c.processes(cmd.Context(), false)
			if err != nil {
				return err
			}
			for _, p := range procs {
				if target == "all" || p.Name == target || strconv.Itoa(p.ID) == target {
					if p.PID > 0 {
						fmt.Fprintln(c.stdout, p.PID)
					}
				}
			}
			return nil
		},
	}
}

func (c *cli) idCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "id <name>",
		Short:   "print the ids of an app's processes",
		GroupID: "info",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			procs, err := c.processes(cmd.Context(), false)
			if err != nil {
				return err
			}
			var ids []string
			for _, p := range procs {
				if p.Name == args[0] {
					ids = append(ids, strconv.Itoa(p.ID))
				}
			}
			if len(ids) == 0 {
				fmt.Fprintln(c.stdout, "[]")
				return nil
			}
			fmt.Fprintf(c.stdout, "[ %s ]\n", strings.Join(ids, ", "))
			return nil
		},
	}
}
