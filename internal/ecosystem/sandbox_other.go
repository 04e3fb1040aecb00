//go:build !linux

package ecosystem

import (
	"os"
	"syscall"
)

func selfExecutable() string {
	if exe, err := os.Executable(); err == nil {
		return exe
	}
	return os.Args[0]
}

func childSysProcAttr() *syscall.SysProcAttr { return nil }

// limitAddressSpace does nothing: the memory limit is Linux's. The time limit still holds,
// and the GC's soft limit.
func limitAddressSpace(int64) error { return nil }
