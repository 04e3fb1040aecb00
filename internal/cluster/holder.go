package cluster

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// listenFailure says why a worker's listen() failed, as a person would: "port 6103 is already
// in use (pid 812, node)" rather than an errno. The address is written as people write it.
func listenFailure(ls listenSpec, err error) string {
	addr := humanAddr(ls)
	if errors.Is(err, unix.EADDRINUSE) && ls.network == "tcp" {
		what := fmt.Sprintf("port %d is already in use", ls.port)
		if ls.address != "" {
			what = fmt.Sprintf("%s is already in use", addr)
		}
		if pid, comm := tcpPortHolder(ls.port); pid > 0 {
			if pid == os.Getpid() || pid == os.Getppid() {
				// The daemon (or its keeper, which holds copies) has it: another app's port.
				// In corral a port belongs to one app (docs/pm2-compat.md §4.5).
				return fmt.Sprintf("%s by another app of this corral (a port belongs to one app: `corral ls` shows which; scale that app, or give this one another port)", what)
			}
			return fmt.Sprintf("%s (pid %d, %s)", what, pid, comm)
		}
		return what + " (by a process corral cannot see: `ss -ltnp` names it)"
	}
	if errors.Is(err, unix.EADDRINUSE) && ls.network == "unix" {
		return fmt.Sprintf("%s is already in use by another program's socket", addr)
	}
	return fmt.Sprintf("listen on %s failed: %v", addr, err)
}

// humanAddr writes a listen address as a person does: ":6103", "127.0.0.1:6103",
// "[::1]:6103", "/run/app.sock".
func humanAddr(ls listenSpec) string {
	switch {
	case ls.network == "unix":
		return ls.address
	case strings.Contains(ls.address, ":"):
		return fmt.Sprintf("[%s]:%d", ls.address, ls.port)
	}
	return fmt.Sprintf("%s:%d", ls.address, ls.port)
}

// tcpPortHolder finds the process listening on a TCP port, from /proc: the socket's inode in
// /proc/net/tcp{,6}, then the process holding it. 0 when it cannot be told (another user's
// process, another network namespace).
func tcpPortHolder(port int) (pid int, comm string) {
	inodes := map[string]bool{}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(table)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			// sl local_address rem_address st ... inode (the 10th field)
			if len(fields) < 10 || fields[3] != "0A" { // 0A: LISTEN
				continue
			}
			_, hexPort, ok := strings.Cut(fields[1], ":")
			if p, err := strconv.ParseUint(hexPort, 16, 16); ok && err == nil && int(p) == port && fields[9] != "0" {
				inodes["socket:["+fields[9]+"]"] = true
			}
		}
		f.Close()
	}
	if len(inodes) == 0 {
		return 0, ""
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, dir := range procs {
		fds, err := os.ReadDir(filepath.Join(dir, "fd"))
		if err != nil {
			continue
		}
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(dir, "fd", fd.Name()))
			if err == nil && inodes[link] {
				pid, _ = strconv.Atoi(filepath.Base(dir))
				name, _ := os.ReadFile(filepath.Join(dir, "comm"))
				return pid, strings.TrimSpace(string(name))
			}
		}
	}
	return 0, ""
}
