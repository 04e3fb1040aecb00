#!/bin/sh
# Prints a numbered tick every 100 ms, until stopped.
trap 'exit 0' INT
i=0
while :; do echo "tick $i"; i=$((i+1)); sleep 0.1; done
