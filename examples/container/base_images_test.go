package container

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// emulatedBase starts a stage from an emulation of its FROM image. Two bases are known, the
// two the example uses; any other fails, so that a change of base is a change of this test.
//
//   - golang:<version>: the host's Go toolchain stands in for the image's. The stage's
//     environment is the image's (GOTOOLCHAIN=local, PATH with go first) with the host's
//     caches and module settings (GOCACHE, GOMODCACHE, GOPROXY...; GOENV=off, so that no
//     host go env file leaks in); its RUN commands run on the host.
//   - gcr.io/distroless/static*:nonroot: see emulateDistrolessStaticNonroot.
func emulatedBase(st stage, root, contextDir string) (*builtStage, error) {
	image, tag, _ := strings.Cut(st.base, ":")
	switch {
	case image == "golang":
		return golangBase(st, root, tag, contextDir)
	case strings.HasPrefix(image, "gcr.io/distroless/static") && strings.HasPrefix(tag, "nonroot"):
		cfg, err := emulateDistrolessStaticNonroot(root)
		if err != nil {
			return nil, fmt.Errorf("emulating %s: %w", st.base, err)
		}
		return &builtStage{root: root, config: cfg}, nil
	}
	return nil, fmt.Errorf("%s %s: this test emulates golang:<version> and gcr.io/distroless/static*:nonroot only; teach examples/container/base_images_test.go this base", st.from, st.base)
}

func golangBase(st stage, root, tag, contextDir string) (*builtStage, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return nil, fmt.Errorf("%s: the host has no go command to stand in for it: %w", st.from, err)
	}
	// The image's Go must be able to build the module: the golang images set
	// GOTOOLCHAIN=local, so a go.mod asking for a newer Go fails the build.
	imageGo := strings.SplitN(strings.TrimSuffix(strings.SplitN(tag, "-", 2)[0], "."), ".", 3)
	modGo, err := goModVersion(filepath.Join(contextDir, "go.mod"))
	if err != nil {
		return nil, err
	}
	if len(imageGo) < 2 || versionLess(imageGo, modGo) {
		return nil, fmt.Errorf("%s: go.mod asks for go %s, which %s (GOTOOLCHAIN=local) does not have", st.from, strings.Join(modGo, "."), st.base)
	}
	hostGo := strings.TrimPrefix(runtime.Version(), "go")
	if !strings.HasPrefix(hostGo+".", strings.Join(imageGo[:2], ".")+".") {
		return nil, fmt.Errorf("%s: the host's Go (%s) is not of the image's release (%s): the emulation would not build with the same compiler", st.from, hostGo, st.base)
	}
	b := &builtStage{root: root, runsOnHost: true}
	c := &b.config
	c.workdir = "/go"
	c.setEnv("PATH", filepath.Dir(goBin)+":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	c.setEnv("GOTOOLCHAIN", "local")
	c.setEnv("GOENV", "off")
	if home, err := os.UserHomeDir(); err == nil {
		c.setEnv("HOME", home)
	}
	keys := []string{"GOPATH", "GOCACHE", "GOMODCACHE", "GOPROXY", "GOSUMDB", "GOPRIVATE", "GONOPROXY", "GONOSUMDB", "GOINSECURE"}
	out, err := exec.Command(goBin, append([]string{"env"}, keys...)...).Output()
	if err != nil {
		return nil, fmt.Errorf("go env: %w", err)
	}
	values := strings.Split(string(out), "\n") // one line per key, in order
	for i, key := range keys {
		if v := values[i]; v != "" {
			c.setEnv(key, v)
		}
	}
	return b, os.MkdirAll(b.path(c.workdir), 0o755)
}

// goModVersion is go.mod's go directive, split at its dots.
func goModVersion(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading go.mod: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "go "); ok {
			return strings.Split(strings.TrimSpace(v), "."), nil
		}
	}
	return nil, fmt.Errorf("%s has no go directive", path)
}

// versionLess compares the major and minor numbers of two Go versions: a golang:1.26 image
// has the newest 1.26.x, so only those count.
func versionLess(a, b []string) bool {
	for i := 0; i < 2 && i < len(a) && i < len(b); i++ {
		x, _ := strconv.Atoi(a[i])
		y, _ := strconv.Atoi(b[i])
		if x != y {
			return x < y
		}
	}
	return false
}

// distroless's nonroot user and its account files, as the distroless static images define
// them.
const (
	nonrootUID = 65532
	etcPasswd  = "root:x:0:0:root:/root:/sbin/nologin\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
		"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
	etcGroup = "root:x:0:\nnobody:x:65534:\ntty:x:5:\nstaff:x:50:\nnonroot:x:65532:\n"
)

// emulateDistrolessStaticNonroot lays out in root the parts of
// gcr.io/distroless/static-debian12:nonroot that a static program can notice, and returns the
// image's configuration:
//
//   - /etc/passwd and /etc/group with root, nobody and nonroot (65532), /etc/nsswitch.conf;
//   - /home/nonroot (65532:65532, 0700), /root (0700), /tmp (1777);
//   - the CA certificates, /etc/ssl/certs/ca-certificates.crt, copied from the host's bundle
//     when it has one (the image's is Debian's too);
//   - no shell, no libc, no package manager: nothing else.
//
// Not emulated: the time zone database (/usr/share/zoneinfo), /etc/os-release and the dpkg
// status files. The configuration: USER 65532, WORKDIR /home/nonroot, PATH, SSL_CERT_FILE.
func emulateDistrolessStaticNonroot(root string) (imageConfig, error) {
	cfg := imageConfig{user: strconv.Itoa(nonrootUID), workdir: "/home/nonroot"}
	cfg.setEnv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	cfg.setEnv("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt")
	dirs := []struct {
		path     string
		mode     os.FileMode
		uid, gid int
	}{
		{"etc/ssl/certs", 0o755, 0, 0},
		{"home/nonroot", 0o700, nonrootUID, nonrootUID},
		{"root", 0o700, 0, 0},
		{"tmp", 0o1777, 0, 0},
	}
	for _, d := range dirs {
		p := filepath.Join(root, d.path)
		if err := os.MkdirAll(p, 0o755); err != nil {
			return cfg, err
		}
		if err := os.Chmod(p, d.mode); err != nil {
			return cfg, err
		}
		if err := os.Chown(p, d.uid, d.gid); err != nil {
			return cfg, err
		}
	}
	files := map[string]string{
		"etc/passwd":        etcPasswd,
		"etc/group":         etcGroup,
		"etc/nsswitch.conf": "hosts: files dns\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(text), 0o644); err != nil {
			return cfg, err
		}
	}
	if b, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt"); err == nil {
		if err := os.WriteFile(filepath.Join(root, "etc/ssl/certs/ca-certificates.crt"), b, 0o644); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// lookupUser resolves USER (name or uid, with an optional :group) against the image's
// /etc/passwd and /etc/group, as a runtime does, and returns the uid and gid to run as and
// the home directory (HOME, when the image does not set it).
func lookupUser(root, user string) (uid, gid int, home string, err error) {
	name, group, hasGroup := strings.Cut(user, ":")
	passwd, _ := os.ReadFile(filepath.Join(root, "etc/passwd"))
	uid, gid, home = -1, -1, "/"
	for _, line := range strings.Split(string(passwd), "\n") {
		f := strings.Split(line, ":")
		if len(f) < 7 || (f[0] != name && f[2] != name) {
			continue
		}
		uid, _ = strconv.Atoi(f[2])
		gid, _ = strconv.Atoi(f[3])
		home = f[5]
		break
	}
	if uid < 0 {
		if uid, err = strconv.Atoi(name); err != nil {
			return 0, 0, "", fmt.Errorf("USER %s: no such user in the image's /etc/passwd", user)
		}
		gid = uid
	}
	if hasGroup {
		groups, _ := os.ReadFile(filepath.Join(root, "etc/group"))
		found := false
		for _, line := range strings.Split(string(groups), "\n") {
			if f := strings.Split(line, ":"); len(f) >= 3 && (f[0] == group || f[2] == group) {
				gid, _ = strconv.Atoi(f[2])
				found = true
			}
		}
		if !found {
			if gid, err = strconv.Atoi(group); err != nil {
				return 0, 0, "", fmt.Errorf("USER %s: no such group in the image's /etc/group", user)
			}
		}
	}
	return uid, gid, home, nil
}
