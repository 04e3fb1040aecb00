// Package closeexec keeps file descriptors a process inherited by accident from passing on.
//
// A program started from a shell, an ssh session or a CI runner may inherit descriptors beyond
// stdin, stdout and stderr that its parent forgot to mark close-on-exec. Go opens its own files
// close-on-exec, but os/exec passes such inherited ones on to every program it starts. Left
// alone, corral's background daemon would hold its caller's pipes open for its whole life (so a
// caller that reads one to its end, `out=$(corral start app.js)` or ssh, would wait forever) and
// hand them on to every app it runs.
package closeexec

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// FromThree marks every descriptor from 3 up close-on-exec. The process keeps them open; only
// the programs it execs no longer get them. Descriptors passed to a child on purpose (os/exec's
// ExtraFiles) are unaffected: they are duplicated into place after the fork.
func FromThree() error {
	err := unix.CloseRange(3, math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("close_range: %w", err)
	}
	// Linux before 5.11: one fcntl per open descriptor.
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("list open descriptors: %w", err)
	}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd < 3 {
			continue
		}
		// The descriptor ReadDir used is closed by now: EBADF is expected for it.
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC); err != nil && !errors.Is(err, unix.EBADF) {
			return fmt.Errorf("mark descriptor %d close-on-exec: %w", fd, err)
		}
	}
	return nil
}
