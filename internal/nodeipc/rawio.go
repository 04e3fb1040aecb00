package nodeipc

import (
	"io"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The channel's socket is non-blocking, so its reads and writes never block in the kernel. They
// go through the poller (RawConn) to wait, and through RawSyscall to run: a regular syscall
// tells the runtime the goroutine may block, and its monitor then hands the goroutine's P to
// another thread whenever a call is slow (every syscall is, in some VMs). At thousands of
// connection hand-offs a second those thread hand-offs cost more than the I/O itself.

// recvmsg reads once, waiting for data; MSG_CMSG_CLOEXEC so a received fd never leaks into a
// child spawned before its owner closes it. n == 0 without control data is EOF.
func recvmsg(rc syscall.RawConn, buf, oob []byte) (n, oobn, flags int, err error) {
	var ioErr error
	err = rc.Read(func(fd uintptr) bool {
		n, oobn, flags, ioErr = rawmsg(unix.SYS_RECVMSG, fd, buf, oob, unix.MSG_CMSG_CLOEXEC)
		return ioErr != unix.EAGAIN
	})
	if err == nil {
		err = ioErr
	}
	if err == nil && n == 0 && oobn == 0 {
		err = io.EOF
	}
	return n, oobn, flags, err
}

// sendmsg makes one sendmsg attempt (waiting for the socket to become writable first); it may
// write only part of line.
func sendmsg(rc syscall.RawConn, line, oob []byte) (int, error) {
	var n int
	var ioErr error
	err := rc.Write(func(fd uintptr) bool {
		n, _, _, ioErr = rawmsg(unix.SYS_SENDMSG, fd, line, oob, unix.MSG_NOSIGNAL)
		return ioErr != unix.EAGAIN
	})
	if err == nil {
		err = ioErr
	}
	return n, err
}

// trySendmsg makes one sendmsg attempt without waiting: EAGAIN when the socket is full.
func trySendmsg(rc syscall.RawConn, line, oob []byte) (int, error) {
	var n int
	var ioErr error
	if err := rc.Control(func(fd uintptr) {
		n, _, _, ioErr = rawmsg(unix.SYS_SENDMSG, fd, line, oob, unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT)
	}); err != nil {
		return 0, err
	}
	return n, ioErr
}

// rawmsg makes one recvmsg or sendmsg (trap) on fd with data and oob, retrying on EINTR. It
// returns the bytes moved and, for recvmsg, the control data's length and the message flags.
func rawmsg(trap, fd uintptr, data, oob []byte, flags int) (n, oobn, msgFlags int, err error) {
	var msg unix.Msghdr
	var iov unix.Iovec
	if len(data) > 0 {
		iov.Base = &data[0]
		iov.SetLen(len(data))
		msg.Iov = &iov
		msg.Iovlen = 1
	}
	if len(oob) > 0 {
		msg.Control = &oob[0]
		msg.SetControllen(len(oob))
	}
	for {
		r, _, errno := unix.RawSyscall(trap, fd, uintptr(unsafe.Pointer(&msg)), uintptr(flags))
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return 0, 0, 0, errno
		}
		return int(r), int(msg.Controllen), int(msg.Flags), nil
	}
}

// writeAll writes all of p, waiting whenever the socket is full.
func writeAll(rc syscall.RawConn, p []byte) error {
	for len(p) > 0 {
		n, err := sendmsg(rc, p, nil)
		if err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}
