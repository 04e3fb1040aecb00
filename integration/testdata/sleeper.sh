#!/bin/sh
# Runs until stopped; says which instance it is and what it inherited.
echo "started instance=$NODE_APP_INSTANCE pm_id=$pm_id DATABASE_URL=$DATABASE_URL SESSION_SECRET=$SESSION_SECRET NODE_OPTIONS=$NODE_OPTIONS APP_MODE=$APP_MODE"
echo "to stderr" >&2
trap 'echo "got SIGINT"; exit 0' INT
while :; do sleep 0.2; done
