#!/bin/sh
# Logs the signals it gets; SIGINT stops it.
trap 'echo "got SIGUSR1"' USR1
trap 'echo "got SIGUSR2"' USR2
trap 'echo "got SIGINT"; exit 0' INT
echo "ready pid=$$"
while :; do sleep 0.1; done
