package alerts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/corral-pm/corral/internal/api"
	"github.com/corral-pm/corral/internal/reaper"
	"github.com/corral-pm/corral/internal/secrets"
)

// Sink kinds.
const (
	KindWebhook = "webhook"
	KindCommand = "command"
)

// CheckWebhook accepts an absolute http or https URL with a host.
func CheckWebhook(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("not an http or https URL; use one like https://hooks.slack.com/services/T000/B000/XXXX or http://127.0.0.1:9000/hook")
	}
	return nil
}

// MaskTarget renders a sink's target for display (`corral alerts`, `corral get`, the daemon
// log). Webhook URLs often are the credential (a Slack URL's path is its token), so only the
// scheme, the host and the first path segment are shown; the rest, the query and any user
// info become the mask. Commands go through the environment masking (tokens in URLs and
// key=value pairs).
func MaskTarget(kind, target string) string {
	if kind != KindWebhook {
		return secrets.MaskValue("command", target)
	}
	u, err := url.Parse(target)
	if err != nil || u.Host == "" {
		return secrets.Mask
	}
	out := u.Scheme + "://" + u.Host
	if u.User != nil {
		out = u.Scheme + "://" + secrets.Mask + "@" + u.Host
	}
	path := strings.TrimPrefix(u.EscapedPath(), "/")
	first, rest, more := strings.Cut(path, "/")
	if first != "" {
		out += "/" + first
	}
	if more && rest != "" {
		out += "/" + secrets.Mask
	}
	if u.RawQuery != "" {
		out += "?" + secrets.Mask
	}
	return out
}

// postWebhook sends a as JSON to target once, within ctx. Redirects are followed only to the
// same scheme and host: a webhook URL is a credential, and its body must not be handed to
// whatever host a redirect names. permanent reports a failure that trying again cannot fix
// (a 4xx other than 408 and 429).
func postWebhook(ctx context.Context, client *http.Client, target string, a api.Alert) (permanent bool, err error) {
	body, err := json.Marshal(a)
	if err != nil {
		return true, fmt.Errorf("encode alert: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return true, fmt.Errorf("webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "corral-alerts")
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL may hold a token: say what failed, not where
		}
		return false, fmt.Errorf("POST: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return false, nil
	}
	perm := resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != 408 && resp.StatusCode != 429
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		perm = true
		return perm, fmt.Errorf("answered %s with a redirect to another host: not followed; use the final URL", resp.Status)
	}
	return perm, fmt.Errorf("answered %s", resp.Status)
}

// newHTTPClient is the webhooks' client: no cookies, no proxy surprises beyond the
// environment's, redirects only within the same scheme and host.
func newHTTPClient() *http.Client {
	return &http.Client{
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return http.ErrUseLastResponse
			}
			if req.URL.Scheme != via[0].URL.Scheme || req.URL.Host != via[0].URL.Host {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}
}

// maxCommandOutput is how much of a command's output goes to the daemon log.
const maxCommandOutput = 4 << 10

// runCommand runs line under /bin/sh -c in dir with the alert in its environment, within ctx
// (its process group is killed when ctx ends). The environment is the daemon's, without
// corral's own variables, plus CORRAL_ALERT_*; never an app's (its secrets stay its own).
func runCommand(ctx context.Context, line, dir string, a api.Alert) (output string, err error) {
	cmd := exec.Command("/bin/sh", "-c", line)
	cmd.Dir = dir
	cmd.Env = commandEnv(a)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out limitedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// Through the reaper's registry: `corral run` as PID 1 must not collect its status.
	if err := reaper.Start(cmd); err != nil {
		return "", fmt.Errorf("start: %w", err)
	}
	done := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		reaper.Release(cmd.Process.Pid)
		done <- err
	}()
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		err = fmt.Errorf("killed: still running after its timeout")
	}
	return strings.TrimSpace(out.String()), err
}

// commandEnv is a command sink's environment (docs/alerts.md §3.2).
func commandEnv(a api.Alert) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CORRAL_") && !strings.HasPrefix(kv, "NOTIFY_SOCKET=") && !strings.HasPrefix(kv, "LISTEN_") {
			env = append(env, kv)
		}
	}
	worker := ""
	if a.ID != nil {
		worker = strconv.Itoa(*a.ID)
	}
	payload, _ := json.Marshal(a)
	return append(env,
		"CORRAL_ALERT_APP="+a.App,
		"CORRAL_ALERT_RULE="+a.Rule,
		"CORRAL_ALERT_STATE="+a.State,
		"CORRAL_ALERT_WORKER="+worker,
		"CORRAL_ALERT_VALUE="+strconv.FormatFloat(a.Value, 'f', -1, 64),
		"CORRAL_ALERT_THRESHOLD="+strconv.FormatFloat(a.Threshold, 'f', -1, 64),
		"CORRAL_ALERT_SPEC="+a.Spec,
		"CORRAL_ALERT_TIME="+a.Time.UTC().Format(time.RFC3339),
		"CORRAL_ALERT_SINCE="+a.Since.UTC().Format(time.RFC3339),
		"CORRAL_ALERT_TEXT="+a.Text,
		"CORRAL_ALERT_JSON="+string(payload),
	)
}

// limitedBuffer keeps the first maxCommandOutput bytes written to it.
type limitedBuffer struct{ bytes.Buffer }

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := maxCommandOutput - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
