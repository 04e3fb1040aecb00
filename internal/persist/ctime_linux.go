package persist

import (
	"io/fs"
	"syscall"
	"time"
)

// changeTime returns the inode change time. It, not the modification time, tells how long a
// temporary file has existed: a hard link made for a backup keeps the original file's old
// modification time, but linking updates the change time.
func changeTime(fi fs.FileInfo) time.Time {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return time.Unix(st.Ctim.Unix())
	}
	return fi.ModTime()
}
