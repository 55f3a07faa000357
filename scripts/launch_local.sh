#!/usr/bin/env bash
# Starts N ranks of a data-parallel program on this machine, the way torchrun would: each gets RANK,
# LOCAL_RANK, WORLD_SIZE, MASTER_ADDR (127.0.0.1) and MASTER_PORT ($MASTER_PORT, default 29500) in its
# environment, and its output lines prefixed with [rank r]. Waits for all; exits with the first
# non-zero status (a rank that loses a peer stops on its own within the program's timeout).
#   usage: scripts/launch_local.sh N program [args...]
# On several machines, start one such launcher per machine with NODE_RANK, NNODES and MASTER_ADDR
# set: ranks are NODE_RANK * N + local rank, and WORLD_SIZE is NNODES * N.
set -uo pipefail
if [ $# -lt 2 ] || ! [[ "$1" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 N program [args...]   (N = ranks on this machine, >= 1)" >&2
  exit 2
fi
n=$1
shift
nnodes=${NNODES:-1}
node=${NODE_RANK:-0}
export WORLD_SIZE=$((nnodes * n))
export MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
export MASTER_PORT=${MASTER_PORT:-29500}
pids=()
for ((local = 0; local < n; local++)); do
  (
    export RANK=$((node * n + local)) LOCAL_RANK=$local
    exec "$@" > >(sed -u "s/^/[rank $RANK] /") 2> >(sed -u "s/^/[rank $RANK] /" >&2)
  ) &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do
  wait "$pid"
  rc=$?
  if [ $rc -ne 0 ] && [ $status -eq 0 ]; then status=$rc; fi
done
exit $status
