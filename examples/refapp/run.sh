#!/bin/sh
# Starts one refapp worker: the ecosystem file's script, which corral runs once per worker. The
# binary is built already: the file's `build` (build.sh) runs once, before any worker starts.
# exec keeps the pid corral started and the channel it passed.
#
# The script is this wrapper rather than bin/refapp itself because an ecosystem file's script
# must exist when the file is loaded, and bin/refapp does not before the first build.
set -eu
cd "$(dirname "$0")"
if [ ! -x bin/refapp ]; then
	echo "refapp: bin/refapp is missing: start the app with corral, whose build (build.sh) makes it, or run ./build.sh" >&2
	exit 1
fi
exec ./bin/refapp "$@"
