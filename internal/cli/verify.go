package cli

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/spec"
	"github.com/corral-pm/corral/internal/verify"
	"github.com/spf13/cobra"
)

// verifyCommand is `corral verify <app>`: the production checklist against a running app
// (internal/verify). It exits 1 when a check fails.
func (c *cli) verifyCommand() *cobra.Command {
	var (
		o                                         verify.Options
		slope, jsonOut, htmlOut                   string
		skip                                      []string
		loginMethod, loginPath, loginBody         string
		checkPath                                 string
		logoutMethod, logoutPath                  string
		loginStatus, checkStatus, loggedOutStatus int
		logoutStatus                              int
	)
	cmd := &cobra.Command{
		Use:   "verify <app>",
		Short: "run the production checklist against a running app: load, distribution, sessions, reload, rollback, memory, saved, alerts",
		Long: `verify runs the production checklist against a running cluster-mode app (meant for staging):
a load on the app's port with per-worker shares, a session followed over every worker, a
rolling reload and scaling to 1 worker and back under load, memory growth, the saved process
list and the alerts. It changes the app only through corral's own zero-downtime operations,
says so before it starts, and leaves the app with its worker count even on failure or Ctrl-C.

It prints the checklist (✔ passed, ✗ failed, – skipped, with the figure behind each), exits 1
if a check fails, writes --json for CI and --report for people (one HTML file, charts inline).
Defaults come from the app's 'verify' section in its ecosystem file; flags override them.`,
		Example: `  corral verify web
  corral verify web --duration 30s --concurrency 32 --scaling --report verify.html --json verify.json
  corral verify web --login-path /api/auth/login --login-body '{"email":"a@b.c","password":"x"}' \
      --check-path /api/me --logout-path /api/auth/logout`,
		GroupID: "info",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("verify takes one app's name, got %d argument(s): `corral verify web`", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			o.App = args[0]
			flags := cmd.Flags()
			if flags.Changed("memory-slope") {
				n, err := spec.ParseSlope(slope)
				if err != nil {
					return fmt.Errorf("--memory-slope: %w", err)
				}
				if n <= 0 {
					return fmt.Errorf("--memory-slope must be above 0, e.g. 1MB/min")
				}
				o.MemorySlope = n
			}
			if flags.Changed("min-share") && !(o.MinShare > 0 && o.MinShare <= 1) {
				return fmt.Errorf("--min-share %g: use the least part of a fair share a worker may get, above 0 and at most 1 (0.8: within ±20 %%)", o.MinShare)
			}
			if flags.Changed("duration") && o.Duration < time.Second {
				return fmt.Errorf("--duration %s is too short to measure anything: use at least 1s", o.Duration)
			}
			if o.Path != "" && !strings.HasPrefix(o.Path, "/") {
				return fmt.Errorf("--path %q: a request path starts with / (e.g. /api/health)", o.Path)
			}
			o.Skip = map[string]bool{}
			for _, s := range skip {
				for _, id := range strings.Split(s, ",") {
					if id = strings.TrimSpace(id); id != "" {
						o.Skip[id] = true
					}
				}
			}
			if loginPath != "" {
				o.Login = &spec.VerifyRequest{Method: strings.ToUpper(loginMethod), Path: loginPath, Body: loginBody, Status: loginStatus}
			}
			if checkPath != "" {
				o.CheckReq = &spec.VerifyRequest{Method: "GET", Path: checkPath, Status: checkStatus, LoggedOutStatus: loggedOutStatus}
			}
			if logoutPath != "" {
				o.Logout = &spec.VerifyRequest{Method: strings.ToUpper(logoutMethod), Path: logoutPath, Status: logoutStatus}
			}
			if err := c.connect(ctx, false); err != nil {
				return err
			}
			procs, err := request(ctx, c, func(cl *api.Client) ([]api.Process, error) { return cl.Processes(ctx, false, o.App) })
			if err != nil {
				return err
			}
			var sv *spec.Verify
			for _, p := range procs {
				if p.Name == o.App {
					sv = p.App.Verify
					break
				}
			}
			o.Configure(sv)
			if err := o.Validate(); err != nil {
				return err
			}
			if err := verify.Fit(o, procs); err != nil {
				return err
			}
			for _, path := range []string{jsonOut, htmlOut} {
				if path != "" && path != "-" {
					if err := writableFile(path); err != nil {
						return err
					}
				}
			}
			if !c.silent {
				fmt.Fprintf(c.stderr, "[corral] %s\n", verify.Plan(o, len(procs)))
			}
			r := &verify.Runner{D: verify.ClientDaemon{C: c.client}, Alerts: verify.NewAlertsSource(c.client), DumpPath: c.paths.Dump}
			if !c.silent {
				r.Progress = c.stderr
			}
			rep, runErr := r.Run(ctx, o)
			if rep == nil {
				return runErr
			}
			if jsonOut != "-" {
				verify.WriteText(c.stdout, rep, c.color())
			}
			if err := c.writeReports(rep, o, jsonOut, htmlOut); err != nil {
				return err
			}
			if runErr != nil {
				return runErr
			}
			if !rep.Passed {
				return silentExit(1)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.DurationVar(&o.Duration, "duration", 0, "length of each load phase (default 10s)")
	f.IntVar(&o.Concurrency, "concurrency", 0, "load clients (default 16)")
	f.Float64Var(&o.Rate, "rate", 0, "requests per second over all clients (default: as fast as the app answers)")
	f.BoolVar(&o.KeepAlive, "keep-alive", false, "reuse connections (default: a new connection per request)")
	f.StringVar(&o.Path, "path", "", "what the load requests, GET; must answer 2xx without a session (default /)")
	f.StringVar(&o.Target, "target", "", "host:port to load: loopback or one of the app's own addresses (default 127.0.0.1:<the app's port>)")
	f.Float64Var(&o.MinShare, "min-share", 0, "least part of a fair share a worker may get, of the requests and of the CPU (default 0.8: ±20 %)")
	f.StringVar(&slope, "memory-slope", "", "most RSS a worker may gain per minute after warm-up (default 1MB/min)")
	f.BoolVar(&o.Scaling, "scaling", false, "also measure 1 worker against all under the same load (the scaling factor)")
	f.BoolVar(&o.SendTest, "send-test", false, "fire a test notification through the app's alert sinks")
	f.StringSliceVar(&skip, "skip", nil, "checks not to run: "+strings.Join(verify.CheckIDs, ", "))
	f.StringVar(&jsonOut, "json", "", "write the report as JSON to this file (- for stdout, instead of the checklist)")
	f.StringVar(&htmlOut, "report", "", "write the HTML report (self-contained, with charts) to this file")
	f.StringVar(&loginPath, "login-path", "", "session check: the login path")
	f.StringVar(&loginMethod, "login-method", "POST", "session check: the login method")
	f.StringVar(&loginBody, "login-body", "", "session check: the login body (JSON)")
	f.IntVar(&loginStatus, "login-status", 200, "session check: the login's status")
	f.StringVar(&checkPath, "check-path", "", "session check: the path every worker is asked (GET)")
	f.IntVar(&checkStatus, "check-status", 200, "session check: its status when logged in")
	f.IntVar(&loggedOutStatus, "logged-out-status", 401, "session check: its status once logged out")
	f.StringVar(&logoutPath, "logout-path", "", "session check: the logout path")
	f.StringVar(&logoutMethod, "logout-method", "POST", "session check: the logout method")
	f.IntVar(&logoutStatus, "logout-status", 200, "session check: the logout's status")
	return cmd
}

// writableFile fails early, before a run of a minute, when a report could not be written.
func writableFile(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("cannot write the report: %w", err)
	}
	return f.Close()
}

// writeReports writes the JSON and HTML reports.
func (c *cli) writeReports(rep *verify.Report, o verify.Options, jsonOut, htmlOut string) error {
	var errs []error
	if jsonOut != "" {
		var b bytes.Buffer
		if err := verify.WriteJSON(&b, rep); err != nil {
			errs = append(errs, err)
		} else if jsonOut == "-" {
			_, _ = c.stdout.Write(b.Bytes())
		} else if err := os.WriteFile(jsonOut, b.Bytes(), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("write the JSON report: %w", err))
		} else if !c.silent {
			fmt.Fprintf(c.stderr, "[corral] JSON report: %s\n", jsonOut)
		}
	}
	if htmlOut != "" {
		var b bytes.Buffer
		if err := verify.WriteHTML(&b, rep, o.MinShare); err != nil {
			errs = append(errs, fmt.Errorf("render the HTML report: %w", err))
		} else if err := os.WriteFile(htmlOut, b.Bytes(), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("write the HTML report: %w", err))
		} else if !c.silent {
			fmt.Fprintf(c.stderr, "[corral] HTML report: %s\n", htmlOut)
		}
	}
	return errors.Join(errs...)
}
