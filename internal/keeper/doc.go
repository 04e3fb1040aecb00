// Package keeper is the small process that lets corral's apps outlive the daemon (issue 8).
//
// # Why
//
// The daemon holds, for its apps, things whose last copy closing kills or cripples them: the
// listening sockets of cluster apps, the daemon's ends of Node workers' IPC channels, the
// read ends of the apps' stdout and stderr pipes. When the daemon is SIGKILLed (OOM killer,
// a bug, an operator), the kernel closes all of them and the apps die or block. The keeper is
// the daemon's parent and keeps duplicates of those fds, so that a daemon started again can
// take the apps over instead of starting them again.
//
// # The processes
//
// `corral daemon` (what the CLI starts in the background and the systemd unit runs) is the
// keeper. It takes CORRAL_HOME/keeper.lock (flock; a second keeper waits up to 2 s for one
// that is exiting, then fails with ErrRunning) and writes keeper.pid, raises its soft limit on
// open files, makes itself a child subreaper (prctl PR_SET_CHILD_SUBREAPER), and starts the
// daemon: the same binary (os.Executable at the keeper's start) with Options.DaemonArgs
// (`daemon --kept`), plus Options.FirstArgs for the first daemon only (`--resurrect`). The
// daemon gets /dev/null as stdin, the keeper's stdout and stderr (the daemon log when the CLI
// started it, the journal under systemd), the keeper's environment without NOTIFY_SOCKET,
// and its end of the channel as fd 3, named by CORRAL_KEEPER_FD=3 (EnvFD).
//
// Who reaps whom: the keeper reaps every one of its children in one loop, wait4(-1, WNOHANG)
// on each SIGCHLD, so that no two waiters race. Its children are the daemon and, since it is
// a subreaper, every process that the daemon (or an app) left behind when its parent died:
// when the daemon dies, its apps re-parent to the keeper, not to init. The end of such an
// orphan is recorded as an Exit (pid, wait status, time) and kept until the daemon says it
// handled it (ExitSeen), at most MaxExits (the oldest are then dropped, and logged). A daemon
// gets the exits recorded so far at Load, and later ones on Exits.
//
// When the daemon ends, the keeper first reads its channel to the end (see below), then:
// after Shutdown, or after a stop signal, it exits (code 0; keeper.pid removed, the lock
// freed, STOPPING=1 told to systemd); after Upgrade it re-executes itself (below); when the
// daemon exited with ExitCannotStart before it ever said Ready, the keeper exits with an
// error (starting it again would fail the same way); otherwise it starts the daemon again:
// at once when it had run at least 5 s, or had served (said Ready) for a second, else after a
// backoff that doubles from 100 ms to 5 s, so that a daemon that dies at start does not spin.
// Info tells the new daemon how many daemons were started (DaemonStarts) and how the last one
// ended (LastExit).
//
// Signals to the keeper: SIGTERM, SIGINT and SIGQUIT are passed to the daemon, and the keeper
// exits when the daemon does, without starting it again (systemd's stop: KillMode=mixed
// signals the main pid, the keeper); SIGUSR2 (reopen the logs) is passed on; SIGHUP is
// ignored. Under systemd (Type=notify, NotifyAccess=main), the keeper is the main pid and the
// only one that may notify: it sends READY=1 when the first daemon calls Ready, and
// STOPPING=1 when it stops. The daemon's environment has no NOTIFY_SOCKET.
//
// # The channel and its wire format (ProtocolVersion 1)
//
// A SOCK_SEQPACKET socketpair, made close-on-exec; a new one for every daemon. Sends are
// ordered and fire-and-forget; Client methods are safe for concurrent use (one mutex around
// each message's datagrams). Because the keeper holds its own end, what a daemon sent before
// it was SIGKILLed, fds in flight in SCM_RIGHTS included, is still in the socket: before it
// starts the next daemon, the keeper reads the old channel until EOF, so that no Put or
// Delete is lost or applied after the next daemon has loaded (it gives up after 5 s, which
// only a process that inherited the daemon's close-on-exec end could cause).
//
// Every datagram is the length of its header (4 bytes, big endian), the header (JSON: op,
// and as the op needs name, pid, size of the whole body, parts, fds), then up to 32 KiB of
// the body. A longer body continues in "parts" datagrams of op "more" that follow at once.
// The fds of a message travel in its first datagram (SCM_RIGHTS, received with
// MSG_CMSG_CLOEXEC). Ops of the daemon: put (name, meta as the body, fds), meta (name, meta),
// delete (name), load, seen (pid), ready, shutdown, upgrade. Ops of the keeper: entry (name,
// meta, fds) for each entry held, then loaded (body: {"info": Info, "exits": [{"pid",
// "status", "time"}]}) in answer to load; exit (body: one exit) for each exit after it. The
// keeper sends from a goroutine of its own with a queue: a daemon that does not read never
// blocks it. The client queues exits as well: its reader never waits for the daemon.
//
// The keeper bounds what it accepts: names of 1 to MaxNameLen bytes, MaxFilesPerEntry fds per
// entry, MaxEntries entries, MaxMetaBytes of metas together. What exceeds them, or breaks the
// format, is logged and ignored, and the fds of a rejected message are closed. A SetMeta for
// a name it does not hold is logged and ignored. Replacing or deleting an entry closes the
// keeper's copies of its fds.
//
// # Hot upgrade (handover state, HandoverVersion 1)
//
// After Upgrade, when the daemon exits (and its channel was read to its end), the keeper
// clears FD_CLOEXEC on its lock and every held fd, writes its state into a memfd (not
// close-on-exec) and executes the binary UpgradeTo named (the CLI's own, for `corral update`),
// or the one it started with:
//
//	corral keeper --resume-fd N -- daemon --kept
//
// keeping its pid (and so its children, and systemd's main pid). The state is JSON:
//
//	{"version": 1, "home": "/home/u/.corral", "exe": "/usr/bin/corral",
//	 "daemon_args": ["daemon", "--kept"], "lock_fd": 5,
//	 "info": {"keeper_pid", "keeper_started", "daemon_starts", "upgrades", "last_exit", "version"},
//	 "ready_notified": true,
//	 "entries": [{"name": "...", "meta": <the meta>, "fds": [7, 8]}],
//	 "exits": [{"pid": 123, "status": 1792, "time": <Unix ns>}]}
//
// info.upgrades counts this upgrade already; daemon_starts is unchanged. The new image
// marks every fd from 3 up close-on-exec again, reads and closes the memfd, keeps the lock fd
// open (it does not take the lock again), sets the subreaper flag again, rewrites keeper.pid
// and starts the new daemon, which Loads everything. Orphans that ended during the exec stay
// zombies until the new image reaps them: no exit is lost. A state of a version the new image
// does not know is logged, the fds stay open (nothing knows which the apps need, so none is
// closed; none reaches the daemon), and the daemon starts with nothing to adopt. To avoid
// that, a daemon runs `<binary> keeper --handover-version` (it prints Versions:
// {"keeper":1,"protocol":1,"daemon":1}) before it asks for an upgrade to it. If the exec
// itself fails, the keeper logs it and starts the daemon again from the binary it ran before.
package keeper
