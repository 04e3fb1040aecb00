package cpus

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// helperEnv makes the test binary, re-executed under taskset, print Usable() and exit instead
// of running the tests.
const helperEnv = "CORRAL_CPUS_PRINT_USABLE"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		os.Stdout.WriteString(strconv.Itoa(Usable()) + "\n")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestResolve(t *testing.T) {
	tests := []struct {
		name             string
		declared, usable int
		want             int
	}{
		{"explicit count", 3, 2, 3},
		{"explicit count above usable is kept", 8, 2, 8},
		{"max", 0, 4, 4},
		{"max with one cpu", 0, 1, 1},
		{"all but one", -1, 4, 3},
		{"all but one on one cpu", -1, 1, 1},
		{"negative beyond usable", -10, 4, 1},
		{"max with bogus usable", 0, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Resolve(tt.declared, tt.usable); got != tt.want {
				t.Errorf("Resolve(%d, %d) = %d, want %d", tt.declared, tt.usable, got, tt.want)
			}
		})
	}
}

func TestParseCPUMax(t *testing.T) {
	tests := []struct {
		file        string
		wantCPUs    int
		wantLimited bool
		wantErr     bool
	}{
		{"unlimited", 0, false, false},   // "max 100000"
		{"one_and_half", 2, true, false}, // "150000 100000": 1.5 CPUs rounds up
		{"half", 1, true, false},         // "50000 100000"
		{"two", 2, true, false},          // "200000 100000": exact, no rounding
		{"max_only", 0, false, false},    // "max"
		{"garbage", 0, false, true},      // "lots 100000"
		{"zero_period", 0, false, true},  // "100000 0"
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata/cpumax", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			cpus, limited, err := parseCPUMax(string(data))
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseCPUMax(%q) error = %v, want error %v", data, err, tt.wantErr)
			}
			if cpus != tt.wantCPUs || limited != tt.wantLimited {
				t.Errorf("parseCPUMax(%q) = %d, %v; want %d, %v", data, cpus, limited, tt.wantCPUs, tt.wantLimited)
			}
		})
	}
}

func TestParseCFSQuota(t *testing.T) {
	tests := []struct {
		dir         string
		wantCPUs    int
		wantLimited bool
	}{
		{"unlimited", 0, false}, // -1
		{"two", 2, true},        // 200000 / 100000
		{"half", 1, true},       // 25000 / 50000
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			cpus, limited, err := readCFSQuota(filepath.Join("testdata/cfs", tt.dir))
			if err != nil {
				t.Fatal(err)
			}
			if cpus != tt.wantCPUs || limited != tt.wantLimited {
				t.Errorf("got %d, %v; want %d, %v", cpus, limited, tt.wantCPUs, tt.wantLimited)
			}
		})
	}
	if _, _, err := parseCFSQuota("abc", "100000"); err == nil {
		t.Error(`parseCFSQuota("abc", "100000"): want error`)
	}
}

func TestParseProcCgroup(t *testing.T) {
	tests := []struct {
		root string
		want procCgroup
	}{
		{"v2_nested", procCgroup{v2: "/app.slice/web.service", hasV2: true}},
		{"v2_container", procCgroup{v2: "/", hasV2: true}},
		{"v1_docker", procCgroup{v1CPU: "/docker/4f1c", hasV1: true}},
		{"hybrid", procCgroup{v2: "/system.slice/batch", hasV2: true, v1CPU: "/system.slice/batch", hasV1: true}},
	}
	for _, tt := range tests {
		t.Run(tt.root, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata/roots", tt.root, "proc/self/cgroup"))
			if err != nil {
				t.Fatal(err)
			}
			if got := parseProcCgroup(string(data)); got != tt.want {
				t.Errorf("parseProcCgroup = %+v, want %+v", got, tt.want)
			}
		})
	}
	// A v1 "cpuacct" or "cpuset" controller alone is not the cpu controller.
	if got := parseProcCgroup("3:cpuset:/a\n2:cpuacct:/b\nnonsense\n"); got.hasV1 || got.hasV2 {
		t.Errorf("cpuset/cpuacct lines: got %+v, want nothing", got)
	}
}

func TestParseMountinfo(t *testing.T) {
	data, err := os.ReadFile("testdata/roots/hybrid/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	want := []mount{
		{root: "/", point: "/sys/fs/cgroup/unified", fstype: "cgroup2", superOpts: "rw"},
		{root: "/", point: "/sys/fs/cgroup/cpu,cpuacct", fstype: "cgroup", superOpts: "rw,cpu,cpuacct"},
		{root: "/", point: "/sys/fs/cgroup/memory", fstype: "cgroup", superOpts: "rw,memory"},
	}
	got := parseMountinfo(string(data))
	if len(got) != len(want) {
		t.Fatalf("parseMountinfo = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("mount %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if got := unescapeMountinfo(`/a\040b\134c\12`); got != `/a b\c\12` {
		t.Errorf("unescapeMountinfo = %q", got)
	}
}

func TestCgroupLimit(t *testing.T) {
	tests := []struct {
		root   string
		want   int
		wantOK bool
	}{
		{"v2_nested", 3, true},          // web.service "max", parent app.slice 3 CPUs
		{"v2_child_stricter", 1, true},  // a: 4 CPUs, a/b: 0.5 CPU
		{"v2_container", 2, true},       // namespace root cpu.max 1.5 CPUs
		{"v2_unlimited", 0, false},      // "max" everywhere
		{"v1_docker", 2, true},          // mount root is the container's cgroup
		{"hybrid", 3, true},             // v2 has no cpu.max; v1 batch 2.5 CPUs
		{"escaped_mountpoint", 1, true}, // mount point "/cg root"
		{"no_mountinfo", 1, true},       // /sys/fs/cgroup assumed
		{"foreign_ns", 0, false},        // "/../../other" must not read our mount's top
		{"empty", 0, false},             // nothing readable
		{"does_not_exist", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.root, func(t *testing.T) {
			got, ok := cgroupLimit(filepath.Join("testdata/roots", tt.root))
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("cgroupLimit = %d, %v; want %d, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestUsableWithinBounds(t *testing.T) {
	n := Usable()
	if n < 1 || n > runtime.NumCPU() {
		t.Errorf("Usable() = %d, want 1..%d (runtime.NumCPU)", n, runtime.NumCPU())
	}
	t.Logf("Usable() = %d, runtime.NumCPU() = %d", n, runtime.NumCPU())
}

// TestUsableUnderTaskset re-executes this test binary pinned to CPU 0: whatever the machine and
// its cgroup limits, the affinity mask then holds one CPU.
func TestUsableUnderTaskset(t *testing.T) {
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		t.Skip("taskset not installed")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(taskset, "-c", "0", self)
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("taskset -c 0 %s: %v\n%s", self, err, stderr.Bytes())
	}
	if got := strings.TrimSpace(string(out)); got != "1" {
		t.Errorf("Usable() under taskset -c 0 = %q, want 1", got)
	}
}
