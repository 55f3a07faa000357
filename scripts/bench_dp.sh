#!/usr/bin/env bash
# Data-parallel benchmark: the benchmark models on 1 and 2 ranks (1 thread each, loopback Gloo),
# steps per second and the share of time in collectives. Usage: bash scripts/bench_dp.sh [steps]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DDIFFINSTRUCT_BUILD_BENCHMARKS=ON >/dev/null
cmake --build build -j"$(nproc)" --target bench_data_parallel
export GLOO_SOCKET_IFNAME=${GLOO_SOCKET_IFNAME:-lo} OMP_NUM_THREADS=1 MASTER_PORT=${MASTER_PORT:-29700}
for ranks in 1 2; do
  bash scripts/launch_local.sh "$ranks" ./build/benchmarks/bench_data_parallel "${1:-200}"
done
