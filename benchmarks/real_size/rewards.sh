#!/usr/bin/env bash
# Each reward model at its real size (random weights): forward + backward to the pixels of a batch of
# generated images, C++ (bench_reward, the counting allocator's exact bytes) beside the original's
# Python classes (bench_reward.py) on the same LibTorch, one kind after the other (docs/performance.md).
#   benchmarks/real_size/rewards.sh [BATCH] [SIDE] [ITERS]      (defaults 1, 512, 3)
# Needs build-bench-torch2/benchmarks/bench_reward (cmake -DDIFFINSTRUCT_BUILD_BENCHMARKS=ON against
# .torch2-venv's torch; scripts/bench.sh shows how), .torch2-venv (hpsv2, transformers) and
# .imagereward-venv (image-reward). Optional: build-bench/benchmarks/bench_reward (Debian's 1.13).
set -euo pipefail
cd "$(dirname "$0")/../.."
batch=${1:-1} side=${2:-512} iters=${3:-3} threads=$(nproc)
out=${OUT:-build-bench-torch2/rewards.jsonl}
: > "$out"
for kind in hps aesthetic image_reward; do
  py=.torch2-venv/bin/python
  [ "$kind" = image_reward ] && py=.imagereward-venv/bin/python
  echo "== $kind (batch $batch, ${side}x$side, $threads threads)" >&2
  build-bench-torch2/benchmarks/bench_reward "$kind" "$threads" "$iters" "$batch" "$side" | sed 's/"side": "c++"/"side": "c++ 2.x"/' | tee -a "$out"
  "$py" benchmarks/bench_reward.py "$kind" "$threads" "$iters" "$batch" "$side" 2>/dev/null | tee -a "$out"
  if [ -x build-bench/benchmarks/bench_reward ]; then
    build-bench/benchmarks/bench_reward "$kind" "$threads" "$iters" "$batch" "$side" | sed 's/"side": "c++"/"side": "c++ 1.13"/' | tee -a "$out"
  fi
done
python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {}
for r in rows:
    by.setdefault(r["kind"], {})[r["side"]] = r
print("| reward | parameters | weights (C++) | fwd+bwd peak above the weights (C++) | C++ 2.x s | PyTorch s | C++ / PyTorch | C++ 1.13 s |")
print("|---|---|---|---|---|---|---|---|")
for kind, s in by.items():
    c, p, old = s.get("c++ 2.x"), s.get("python"), s.get("c++ 1.13")
    print(f"| {kind} | {c['params'] / 1e6:.0f} M (Python {p['params'] / 1e6:.0f} M) | {c['weight_bytes'] / 1e9:.2f} GB | "
          f"{c['fwd_bwd_peak_bytes'] / 1e9:.2f} GB | {c['median_s']:.2f} | {p['median_s']:.2f} | {c['median_s'] / p['median_s']:.2f} | "
          f"{old['median_s'] if old else '—'} |")
PY
