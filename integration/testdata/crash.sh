#!/bin/sh
echo "crashing now"
exit 1
