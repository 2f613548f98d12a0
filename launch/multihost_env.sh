#!/usr/bin/env bash
# Several hosts without a scheduler: run this on every host with the same coordinator and
# its own process id.
#   JFR_COORDINATOR=10.0.0.1:1234 JFR_NUM_PROCESSES=2 JFR_PROCESS_ID=0 \
#     launch/multihost_env.sh configs/fan.py:paper /shared/runs/fan
# Optional: JFR_INIT_TIMEOUT (s to wait for all processes, default 300), JFR_HEARTBEAT_TIMEOUT
# (s without a heartbeat before a process counts as dead and the job stops, default 100).
# The workdir must be on a file system all hosts share; each process reads the whole input
# stream and keeps its rows of every global batch (the result does not depend on the host
# count, so a job resumes on another number of hosts).
set -euo pipefail
config=${1:?usage: launch/multihost_env.sh CONFIG WORKDIR [flags...]}
workdir=${2:?usage: launch/multihost_env.sh CONFIG WORKDIR [flags...]}
shift 2
: "${JFR_COORDINATOR:?set JFR_COORDINATOR=host:port of process 0}"
: "${JFR_NUM_PROCESSES:?set JFR_NUM_PROCESSES}"
: "${JFR_PROCESS_ID:?set JFR_PROCESS_ID (0..JFR_NUM_PROCESSES-1)}"
exec python -m jfr.main --distributed \
  --coordinator_address="${JFR_COORDINATOR}" --num_processes="${JFR_NUM_PROCESSES}" \
  --process_id="${JFR_PROCESS_ID}" --initialization_timeout="${JFR_INIT_TIMEOUT:-300}" \
  --heartbeat_timeout="${JFR_HEARTBEAT_TIMEOUT:-100}" --config="${config}" --workdir="${workdir}" "$@"
