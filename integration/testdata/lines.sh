#!/bin/sh
# Prints numbered lines to stdout (LINES_OUT of them) and stderr (LINES_ERR), then idles.
i=1
while [ $i -le "${LINES_OUT:-30}" ]; do echo "out line $i"; i=$((i+1)); done
i=1
while [ $i -le "${LINES_ERR:-5}" ]; do echo "err line $i" >&2; i=$((i+1)); done
echo "all written"
trap 'exit 0' INT
while :; do sleep 0.2; done
