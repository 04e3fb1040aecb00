// Package kubernetes holds the example manifests; its tests decode them strictly against the
// Kubernetes API types (an unknown or misspelt field fails), check that they agree with each
// other, with the container image's Dockerfile and with the routes a real corral daemon
// serves. The API types are test-only: they never reach the corral binary.
package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/corral-pm/corral/internal/daemon"
	"github.com/corral-pm/corral/internal/home"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// manifests decodes every YAML file of this directory strictly into its kind's type.
type manifests struct {
	deployment *appsv1.Deployment
	service    *corev1.Service
	pdb        *policyv1.PodDisruptionBudget
}

func load(t *testing.T) manifests {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	var m manifests
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var tm v1.TypeMeta
		if err := yaml.Unmarshal(b, &tm); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var obj any
		switch tm.APIVersion + " " + tm.Kind {
		case "apps/v1 Deployment":
			m.deployment = &appsv1.Deployment{}
			obj = m.deployment
		case "v1 Service":
			m.service = &corev1.Service{}
			obj = m.service
		case "policy/v1 PodDisruptionBudget":
			m.pdb = &policyv1.PodDisruptionBudget{}
			obj = m.pdb
		default:
			t.Fatalf("%s: unexpected %s %s", f, tm.APIVersion, tm.Kind)
		}
		if err := yaml.UnmarshalStrict(b, obj); err != nil {
			t.Fatalf("%s does not decode strictly as %s: %v", f, tm.Kind, err)
		}
	}
	if m.deployment == nil || m.service == nil || m.pdb == nil {
		t.Fatalf("want a Deployment, a Service and a PodDisruptionBudget, got %+v", m)
	}
	return m
}

// TestStrictDecodingCatchesTypos: the decoding the tests rely on does refuse an unknown field.
func TestStrictDecodingCatchesTypos(t *testing.T) {
	var d appsv1.Deployment
	err := yaml.UnmarshalStrict([]byte("apiVersion: apps/v1\nkind: Deployment\nspec:\n  replica: 3\n"), &d)
	if err == nil || !strings.Contains(err.Error(), "replica") {
		t.Fatalf("an unknown field was accepted: %v", err)
	}
}

func TestManifests(t *testing.T) {
	m := load(t)
	d := m.deployment
	labels := d.Spec.Template.Labels
	matches := func(what string, sel map[string]string) {
		if len(sel) == 0 {
			t.Errorf("%s: empty selector", what)
		}
		for k, v := range sel {
			if labels[k] != v {
				t.Errorf("%s: selector %s=%s does not match the pods' labels %v", what, k, v, labels)
			}
		}
	}
	if d.Spec.Selector == nil {
		t.Fatal("the Deployment has no selector")
	}
	matches("Deployment", d.Spec.Selector.MatchLabels)
	matches("Service", m.service.Spec.Selector)
	if m.pdb.Spec.Selector == nil {
		t.Fatal("the PodDisruptionBudget has no selector")
	}
	matches("PodDisruptionBudget", m.pdb.Spec.Selector.MatchLabels)
	if (m.pdb.Spec.MaxUnavailable == nil) == (m.pdb.Spec.MinAvailable == nil) {
		t.Error("the PodDisruptionBudget needs exactly one of maxUnavailable and minAvailable")
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas < 2 {
		t.Error("fewer than 2 replicas: the PodDisruptionBudget would block every drain")
	}

	if len(d.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(d.Spec.Template.Spec.Containers))
	}
	c := d.Spec.Template.Spec.Containers[0]
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	portOf := func(what string, p intstr.IntOrString) int32 {
		if p.Type == intstr.String {
			n, ok := ports[p.StrVal]
			if !ok {
				t.Errorf("%s: port %q is not a named container port (%v)", what, p.StrVal, ports)
			}
			return n
		}
		return p.IntVal
	}
	for _, sp := range m.service.Spec.Ports {
		if portOf("Service port "+sp.Name, sp.TargetPort) != ports["http"] {
			t.Errorf("the Service targets %v, not the app's port", sp.TargetPort)
		}
	}

	// The probes ask corral's listener, on the address the container gives it.
	listen := ""
	for _, e := range c.Env {
		if e.Name == "CORRAL_HTTP_LISTEN" {
			listen = e.Value
		}
	}
	_, listenPort, err := net.SplitHostPort(listen)
	if err != nil {
		t.Fatalf("CORRAL_HTTP_LISTEN %q: %v", listen, err)
	}
	probes := map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe, "startup": c.StartupProbe}
	wantPath := map[string]string{"readiness": "/readyz", "liveness": "/healthz", "startup": "/healthz"}
	paths := map[string]bool{}
	for kind, p := range probes {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("no HTTP %s probe", kind)
			continue
		}
		if p.HTTPGet.Path != wantPath[kind] {
			t.Errorf("%s probe asks %s, want %s", kind, p.HTTPGet.Path, wantPath[kind])
		}
		if got := portOf(kind+" probe", p.HTTPGet.Port); fmt.Sprint(got) != listenPort {
			t.Errorf("%s probe asks port %d, corral listens on %s", kind, got, listenPort)
		}
		paths[p.HTTPGet.Path] = true
	}
	servedRoutes(t, paths)

	// The stop fits the grace Kubernetes gives: preStop sleep, then corral's --grace.
	grace := flagDuration(t, c.Command, "--grace")
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
		t.Fatal("no preStop sleep: endpoints would still send traffic while the workers drain")
	}
	preStop := time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	tgp := d.Spec.Template.Spec.TerminationGracePeriodSeconds
	if tgp == nil {
		t.Fatal("no terminationGracePeriodSeconds")
	}
	if total := preStop + grace; total >= time.Duration(*tgp)*time.Second {
		t.Errorf("preStop %v + --grace %v = %v does not fit terminationGracePeriodSeconds %d", preStop, grace, total, *tgp)
	}
	if c.Resources.Limits.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Error("no CPU or memory limit: instances: 'max' and the memory limit follow them")
	}
	sc := d.Spec.Template.Spec.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Error("the pod does not require a non-root user")
	}

	// The command is the image's entrypoint, spelled the same.
	entry := dockerfileEntrypoint(t)
	if strings.Join(entry, " ") != strings.Join(c.Command, " ") {
		t.Errorf("the container's command %q differs from the Dockerfile's ENTRYPOINT %q", c.Command, entry)
	}
}

// servedRoutes starts a real daemon with its HTTP listener and checks it serves every path.
func servedRoutes(t *testing.T, paths map[string]bool) {
	t.Helper()
	h, err := os.MkdirTemp("", "ck")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(h)
	d, err := daemon.New(daemon.Options{Paths: home.At(h), HTTPListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("daemon: %v", err)
		}
	}()
	select {
	case <-d.Ready():
	case err := <-done:
		t.Fatalf("daemon did not start: %v", err)
	}
	for p := range paths {
		resp, err := http.Get("http://" + d.HTTPAddr() + p)
		if err != nil {
			t.Fatalf("GET %s: %v", p, err)
		}
		resp.Body.Close()
		// /readyz answers 503 here (no app runs): served all the same.
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("corral answers %s with %s: the probe points at a route it does not serve", p, resp.Status)
		}
	}
}

// flagDuration reads a flag's duration from a command line.
func flagDuration(t *testing.T, cmd []string, flag string) time.Duration {
	t.Helper()
	for i, a := range cmd {
		v, ok := strings.CutPrefix(a, flag+"=")
		if !ok && a == flag && i+1 < len(cmd) {
			v, ok = cmd[i+1], true
		}
		if ok {
			d, err := time.ParseDuration(v)
			if err != nil {
				t.Fatalf("%s %q: %v", flag, v, err)
			}
			return d
		}
	}
	t.Fatalf("the command %q has no %s", cmd, flag)
	return 0
}

// dockerfileEntrypoint reads the JSON-form ENTRYPOINT of examples/container/Dockerfile.
func dockerfileEntrypoint(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../container/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var entry []string
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "ENTRYPOINT "); ok {
			if err := json.Unmarshal([]byte(rest), &entry); err != nil {
				t.Fatalf("ENTRYPOINT is not in JSON form: %v", err)
			}
		}
	}
	if len(entry) == 0 {
		t.Fatal("the Dockerfile has no ENTRYPOINT")
	}
	return entry
}

// TestAPITypesStayOutOfTheBinary: the Kubernetes packages these tests use are not linked into
// corral (its start-up time is a feature).
func TestAPITypesStayOutOfTheBinary(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "../../cmd/corral").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "k8s.io/") || strings.HasPrefix(p, "sigs.k8s.io/") {
			t.Errorf("the corral binary links %s", p)
		}
	}
}
