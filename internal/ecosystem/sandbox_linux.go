package ecosystem

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"syscall"
)

// selfExecutable is the running executable: /proc/self/exe is the very file, even when it was
// replaced (an upgrade) or deleted since.
func selfExecutable() string {
	if _, err := os.Stat("/proc/self/exe"); err == nil {
		return "/proc/self/exe"
	}
	if exe, err := os.Executable(); err == nil {
		return exe
	}
	return os.Args[0]
}

// childSysProcAttr makes the evaluation process die with the CLI.
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// limitAddressSpace bounds how much this process's memory may grow, so that its resident
// size stays under budget: its address space (RLIMIT_AS) may grow by budget, less what is
// resident now and what may still become resident without growing the address space.
//
// RLIMIT_AS, because it counts memory when it is mapped, reserved or not, and the Go runtime
// reserves its heap before it uses it; RLIMIT_DATA leaves out what replaces a reservation,
// and let the heap grow past it (measured: 302 MiB under a 278 MiB limit). The limit is
// taken from the current size, which holds the address space the runtime reserved at start
// (some 1.2 GB, much more with the race detector), mostly never touched. Of it, two parts
// may become resident as the evaluation runs: the program's code, and the heap arena
// reserved at start (64 MiB on 64-bit Linux), which fills before the next one is reserved.
func limitAddressSpace(budget int64) error {
	const (
		codeMargin  = 8 << 20
		arenaMargin = 64 << 20
	)
	size, rss := memStatus()
	limit := uint64(size + max(budget-rss-codeMargin-arenaMargin, 0))
	return syscall.Setrlimit(syscall.RLIMIT_AS, &syscall.Rlimit{Cur: limit, Max: limit})
}

// memStatus reads this process's address space and resident sizes (VmSize and VmRSS in
// /proc/self/status), in bytes; 0 when unknown.
func memStatus() (size, rss int64) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, value, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(string(bytes.TrimSpace(bytes.TrimSuffix(bytes.TrimSpace(value), []byte("kB")))), 10, 64)
		if err != nil {
			continue
		}
		switch string(name) {
		case "VmSize":
			size = kb << 10
		case "VmRSS":
			rss = kb << 10
		}
	}
	return size, rss
}
