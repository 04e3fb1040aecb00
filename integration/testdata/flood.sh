#!/bin/sh
# Writes FLOOD_LINES numbered lines, tagged with the instance number, as fast as it can; then
# says "done" and, if FLOOD_DIR is set, creates FLOOD_DIR/done-<instance>. With FLOOD_DIR set
# it waits for FLOOD_DIR/go before writing. SIGUSR1 makes it print a "final" line.
inst="${NODE_APP_INSTANCE:-0}"
trap 'echo "flood $inst final"' USR1
trap 'exit 0' INT
if [ -n "$FLOOD_DIR" ]; then
  while [ ! -e "$FLOOD_DIR/go" ]; do sleep 0.05; done
fi
i=1
n="${FLOOD_LINES:-20000}"
while [ $i -le "$n" ]; do echo "flood $inst $i 0123456789abcdefghijklmnopqrstuvwxyz"; i=$((i+1)); done
echo "flood $inst done"
[ -n "$FLOOD_DIR" ] && touch "$FLOOD_DIR/done-$inst"
while :; do sleep 0.2; done
