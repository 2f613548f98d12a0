#!/usr/bin/env bash
# One host, all its devices (GPUs, or CPU cores faked as devices with FAKE_DEVICES=N).
#   launch/local.sh configs/fan.py /tmp/fan [--config.batch_size=12 ...]
set -euo pipefail
config=${1:?usage: launch/local.sh CONFIG WORKDIR [flags...]}
workdir=${2:?usage: launch/local.sh CONFIG WORKDIR [flags...]}
shift 2
if [[ -n "${FAKE_DEVICES:-}" ]]; then
  export XLA_FLAGS="${XLA_FLAGS:-} --xla_force_host_platform_device_count=${FAKE_DEVICES}"
fi
exec python -m jfr.main --config="${config}" --workdir="${workdir}" "$@"
