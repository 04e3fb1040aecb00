#!/bin/sh
# Starts one refapp worker from source: the ecosystem file's script (corral runs one per worker,
# all at once). It builds the app, then becomes it (exec keeps the pid corral started and the
# channel it passed).
#
# The workers build one at a time, under a lock: the first one compiles (a few minutes for the
# pure-Go SQLite on a cold cache), the others then find bin/refapp up to date and only link it.
# Each worker runs its own hard link of the build, taken under the lock, so a later build (an
# edit, then `corral reload refapp`) never rewrites a binary a worker is about to start.
set -eu
cd "$(dirname "$0")"
mkdir -p bin
bin="bin/refapp-w${NODE_APP_INSTANCE:-0}"
if command -v flock >/dev/null 2>&1; then
	(
		flock 9
		go build -o bin/refapp .
		ln -f bin/refapp "$bin"
	) 9>bin/.build.lock
else
	# No flock (util-linux): every worker builds its own binary, all at once. Slower.
	echo "refapp: flock not found: the workers build at the same time" >&2
	go build -o "$bin" .
fi
exec "./$bin" "$@"
