#!/usr/bin/env bash
# Builds and runs the benchmarks: the fused-kernel benchmark and the trainer-step comparison with a
# plain PyTorch loop (installs Debian's python3-torch for it). Usage: bash scripts/bench.sh [threads]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
if ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  apt-get install -y -qq --no-install-recommends python3-torch
fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DDIFFINSTRUCT_BUILD_BENCHMARKS=ON >/dev/null
cmake --build build -j"$(nproc)" --target bench_score_loss bench_trainer_step
threads=${1:-$(nproc)}
OMP_NUM_THREADS=$threads ./build/benchmarks/bench_score_loss --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
/usr/bin/python3 benchmarks/bench_trainer_step.py build/benchmarks/bench_trainer_step --threads "$threads"
