package nodeipc

import (
	"io"
	"net"
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
func recvmsg(conn *net.UnixConn, buf, oob []byte) (n, oobn, flags int, err error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return 0, 0, 0, err
	}
	var ioErr error
	err = rc.Read(func(fd uintptr) bool {
		n, oobn, flags, ioErr = rawRecvmsg(int(fd), buf, oob)
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

// fillMsghdr points msg at data (through iov) and oob.
func fillMsghdr(msg *unix.Msghdr, iov *unix.Iovec, data, oob []byte) {
	if len(data) > 0 {
		iov.Base = &data[0]
		iov.SetLen(len(data))
		msg.Iov = iov
		msg.Iovlen = 1
	}
	if len(oob) > 0 {
		msg.Control = &oob[0]
		msg.SetControllen(len(oob))
	}
}

func rawRecvmsg(fd int, buf, oob []byte) (n, oobn, flags int, err error) {
	var msg unix.Msghdr
	var iov unix.Iovec
	fillMsghdr(&msg, &iov, buf, oob)
	for {
		r, _, errno := unix.RawSyscall(unix.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), unix.MSG_CMSG_CLOEXEC)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return 0, 0, 0, errno
		}
		return int(r), int(msg.Controllen), int(msg.Flags), nil
	}
}

// sendmsg makes one sendmsg attempt (waiting for the socket to become writable first); it may
// write only part of line.
func sendmsg(conn *net.UnixConn, line, oob []byte) (int, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var ioErr error
	err = rc.Write(func(fd uintptr) bool {
		n, ioErr = rawSendmsg(int(fd), line, oob)
		return ioErr != unix.EAGAIN
	})
	if err == nil {
		err = ioErr
	}
	return n, err
}

func rawSendmsg(fd int, line, oob []byte) (int, error) {
	var msg unix.Msghdr
	var iov unix.Iovec
	fillMsghdr(&msg, &iov, line, oob)
	for {
		r, _, errno := unix.RawSyscall(unix.SYS_SENDMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), unix.MSG_NOSIGNAL)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return 0, errno
		}
		return int(r), nil
	}
}

// writeAll writes all of p, waiting whenever the socket is full.
func writeAll(conn *net.UnixConn, p []byte) error {
	for len(p) > 0 {
		n, err := sendmsg(conn, p, nil)
		if err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}
