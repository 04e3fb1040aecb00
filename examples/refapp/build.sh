#!/bin/sh
# Builds refapp into bin/refapp: the ecosystem file's `build`, which corral runs once before the
# workers start (on start, restart and reload, not when a worker crashes), its output going to
# the app's logs (and to the terminal under `corral run`).
#
# -v names each package as it compiles: on a cold Go cache, the progress of the long first
# build (pgx and the pure-Go SQLite); on a warm one, next to nothing, in seconds. The binary is
# written beside the old one and renamed over it, so a worker that starts meanwhile (a crash
# restart during a reload's build) runs a whole binary, the old or the new, and the workers
# still running keep theirs.
set -eu
cd "$(dirname "$0")"
mkdir -p bin
if [ ! -e bin/refapp ]; then
	echo "refapp: first build here: on a cold Go cache it compiles pgx and the pure-Go SQLite," \
		"half a minute to a minute on 2 cores; each package is named as it compiles," \
		"and the largest, modernc.org/sqlite/lib, is one long step without output"
fi
tmp="bin/.refapp.$$" # this build's own: two demos of one checkout building at once do not mix
trap 'rm -f "$tmp"' EXIT
go build -v -o "$tmp" . 2>&1
mv -f "$tmp" bin/refapp
