package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// moduleRoot finds the corral module's directory (the bench is run from inside it).
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run the bench from inside the corral module (go run ./bench/cmd/bench)")
	}
	raw, err := os.ReadFile(gomod)
	if err != nil {
		return "", err
	}
	if !bytes.HasPrefix(raw, []byte("module github.com/corral-pm/corral\n")) {
		return "", fmt.Errorf("%s is not corral's go.mod", gomod)
	}
	return filepath.Dir(gomod), nil
}

// buildCorral builds ./cmd/corral into dir the way the README says to install it (a static
// binary: CGO_ENABLED=0) and returns the binary's path.
func buildCorral(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "corral")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "./cmd/corral")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/corral: %w\n%s", err, out)
	}
	return bin, nil
}

// pm2Major is the PM2 release line users would pick today.
const pm2Major = "7"

// installPM2 installs pm2@7 with npm into dir (reusing an install already there) and returns
// the path of its CLI and its version. dir gets a package.json of its own so that npm installs
// there and not into some package.json further up.
func installPM2(ctx context.Context, dir string, logf func(string, ...any)) (bin, version string, err error) {
	bin = filepath.Join(dir, "node_modules", ".bin", "pm2")
	if v, err := pm2Version(dir); err == nil && strings.HasPrefix(v, pm2Major+".") {
		if _, err := os.Stat(bin); err == nil {
			logf("reusing PM2 %s in %s", v, dir)
			return bin, v, nil
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	pkg := filepath.Join(dir, "package.json")
	if _, err := os.Stat(pkg); err != nil {
		if err := os.WriteFile(pkg, []byte(`{"private": true, "description": "PM2 for corral's benchmark"}`+"\n"), 0o644); err != nil {
			return "", "", err
		}
	}
	logf("installing pm2@%s with npm into %s", pm2Major, dir)
	start := time.Now()
	cmd := exec.CommandContext(ctx, "npm", "install", "--no-audit", "--no-fund", "--prefix", dir, "pm2@"+pm2Major)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("npm install pm2@%s: %w\n%s", pm2Major, err, out)
	}
	v, err := pm2Version(dir)
	if err != nil {
		return "", "", err
	}
	logf("installed PM2 %s in %.1f s", v, time.Since(start).Seconds())
	return bin, v, nil
}

func pm2Version(dir string) (string, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "node_modules", "pm2", "package.json"))
	if err != nil {
		return "", err
	}
	var pkg struct {
		Version string `json:"version"`
	}
	if err := json.Unmarshal(raw, &pkg); err != nil || pkg.Version == "" {
		return "", fmt.Errorf("read PM2's version from its package.json: %v", err)
	}
	return pkg.Version, nil
}

// Host is what the figures depend on: they mean little without it.
type Host struct {
	Date         string  `json:"date"`
	CPUs         int     `json:"cpus"`
	CPUModel     string  `json:"cpu_model,omitempty"`
	MemTotalMB   float64 `json:"mem_total_mb,omitempty"`
	Kernel       string  `json:"kernel,omitempty"`
	LoadStart    string  `json:"loadavg_start,omitempty"`
	LoadEnd      string  `json:"loadavg_end,omitempty"`
	Go           string  `json:"go"`
	Node         string  `json:"node,omitempty"`
	NodeStartMS  float64 `json:"node_startup_ms,omitempty"` // median wall time of `node -e 0`
	ExecMS       float64 `json:"exec_true_ms,omitempty"`    // median wall time of `true`: the floor of any command
	Corral       string  `json:"corral,omitempty"`
	CorralCommit string  `json:"corral_commit,omitempty"`
	PM2          string  `json:"pm2,omitempty"`
}

func hostFacts(ctx context.Context, root string) Host {
	h := Host{Date: time.Now().Format(time.RFC3339), CPUs: runtime.NumCPU(), LoadStart: loadavg()}
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				h.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if raw, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				if f := strings.Fields(rest); len(f) > 0 {
					if kb, err := strconv.Atoi(f[0]); err == nil {
						h.MemTotalMB = float64(kb) / 1024
					}
				}
			}
		}
	}
	if raw, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		h.Kernel = strings.TrimSpace(string(raw))
	}
	h.Go = commandLine(ctx, root, "go", "env", "GOVERSION")
	h.Node = commandLine(ctx, root, "node", "--version")
	if h.Node != "" {
		h.NodeStartMS = medianRun(ctx, 10, "node", "-e", "0")
	}
	h.ExecMS = medianRun(ctx, 10, "true")
	if c := commandLine(ctx, root, "git", "rev-parse", "--short", "HEAD"); c != "" {
		h.CorralCommit = c
		if commandLine(ctx, root, "git", "status", "--porcelain") != "" {
			h.CorralCommit += " (work tree has uncommitted changes)"
		}
	}
	return h
}

// medianRun returns the median wall time in ms of n runs of a command (0 if it fails).
func medianRun(ctx context.Context, n int, name string, args ...string) float64 {
	var samples []float64
	for i := 0; i < n; i++ {
		start := time.Now()
		if exec.CommandContext(ctx, name, args...).Run() != nil {
			return 0
		}
		samples = append(samples, ms(time.Since(start)))
	}
	return Summarize(samples).Median
}

// commandLine runs a command and returns its trimmed output, or "" if it failed.
func commandLine(ctx context.Context, dir, name string, args ...string) string {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func loadavg() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(raw))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
