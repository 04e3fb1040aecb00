package cpus

import (
	"os"
	"path/filepath"
	"testing"
)

// fakeRoot writes files (path -> content) under a temporary root.
func fakeRoot(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestMemoryLimit(t *testing.T) {
	v2Mount := "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n"
	v1Mount := "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
	for _, c := range []struct {
		name  string
		files map[string]string
		want  int64
		ok    bool
	}{
		{"v2 limit", map[string]string{
			"proc/self/cgroup":                          "0::/kubepods/pod1/c1\n",
			"proc/self/mountinfo":                       v2Mount,
			"sys/fs/cgroup/kubepods/pod1/c1/memory.max": "536870912\n",
		}, 512 << 20, true},
		{"v2 parent's limit caps the child's max", map[string]string{
			"proc/self/cgroup":                          "0::/kubepods/pod1/c1\n",
			"proc/self/mountinfo":                       v2Mount,
			"sys/fs/cgroup/kubepods/pod1/c1/memory.max": "max\n",
			"sys/fs/cgroup/kubepods/pod1/memory.max":    "268435456\n",
		}, 256 << 20, true},
		{"v2 no limit", map[string]string{
			"proc/self/cgroup":           "0::/a\n",
			"proc/self/mountinfo":        v2Mount,
			"sys/fs/cgroup/a/memory.max": "max\n",
		}, 0, false},
		{"v1 limit", map[string]string{
			"proc/self/cgroup":    "4:memory:/docker/abc\n1:cpu:/\n",
			"proc/self/mountinfo": v1Mount,
			"sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": "1073741824\n",
		}, 1 << 30, true},
		{"v1 unlimited", map[string]string{
			"proc/self/cgroup":                             "4:memory:/x\n",
			"proc/self/mountinfo":                          v1Mount,
			"sys/fs/cgroup/memory/x/memory.limit_in_bytes": "9223372036854771712\n",
		}, 0, false},
		{"garbage", map[string]string{
			"proc/self/cgroup":           "0::/a\n",
			"proc/self/mountinfo":        v2Mount,
			"sys/fs/cgroup/a/memory.max": "lots\n",
		}, 0, false},
		{"no cgroup file", map[string]string{}, 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, ok := memoryLimit(fakeRoot(t, c.files))
			if got != c.want || ok != c.ok {
				t.Fatalf("memoryLimit = %d, %v; want %d, %v", got, ok, c.want, c.ok)
			}
		})
	}
	// This machine: whatever it says, it must not fail.
	_, _ = MemoryLimit()
}
