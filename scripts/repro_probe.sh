#!/usr/bin/env bash
# Where does bit-determinism end? Runs a short Fashion-MNIST pipeline (examples/03_fashion_mnist,
# small budgets, every stage) once per setting below, each from an empty folder, and compares every
# metric of every row with a reference run, printing which settings change the numbers and by how
# much. The settings vary what differs between two machines of one kind: the GEMM kernels OpenBLAS
# picks for the CPU, oneDNN's instruction set, ATen's vectorised kernels, thread counts; then the
# pinned settings of scripts/fashion.sh.
#   bash scripts/repro_probe.sh [out_dir]        (1.5 to 2 minutes per setting on 2 cores)
# Needs the build (bash scripts/build.sh). Writes <out_dir>/probe.md (docs/results.md quotes it).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-out/repro_probe}
exe=build/examples/03_fashion_mnist
[ -x "$exe" ] || { echo "build first: bash scripts/build.sh" >&2; exit 1; }
mkdir -p "$out"
args=(--train-subset 6000 --teacher-steps 300 --classifier-epochs 1 --distill-steps 40 --steps 40 --batch 16
      --eval-per-class 20 --teacher-scales 3)
# label | index of the run to compare with | environment and flags
pins="OPENBLAS_CORETYPE=Haswell ATEN_CPU_CAPABILITY=avx2 DNNL_MAX_CPU_ISA=AVX2 OPENBLAS_NUM_THREADS=1 --kernels=pinned"
portable="OPENBLAS_CORETYPE=Haswell ATEN_CPU_CAPABILITY=avx2 OPENBLAS_NUM_THREADS=1 --kernels=portable"
settings=(
  "baseline (the CPU's own kernels)|0|"
  "baseline, again|0|"
  "2 intra-op threads|0|--threads 2"
  "OpenBLAS 1 thread|0|OPENBLAS_NUM_THREADS=1"
  "OpenBLAS Haswell kernels|0|OPENBLAS_CORETYPE=Haswell"
  "OpenBLAS SkylakeX kernels|0|OPENBLAS_CORETYPE=SkylakeX"
  "OpenBLAS Zen kernels|0|OPENBLAS_CORETYPE=Zen"
  "oneDNN limited to AVX2|0|DNNL_MAX_CPU_ISA=AVX2"
  "ATen kernels AVX512|0|ATEN_CPU_CAPABILITY=avx512"
  "ATen kernels without AVX|0|ATEN_CPU_CAPABILITY=default"
  "pinned (scripts/fashion.sh's settings)|10|$pins"
  "pinned, again|10|$pins"
  "pinned against the baseline|0|$pins"
  "portable (pinned, oneDNN off)|13|$portable"
  "portable, oneDNN allowed AVX512 (it is off)|13|$portable DNNL_MAX_CPU_ISA=AVX512_CORE"
)
first=${DIFFINSTRUCT_PROBE_FIRST:-0}  # resume: skip runs already done
i=0
for s in "${settings[@]}"; do
  label=${s%%|*}
  rest=${s#*|}
  ref=${rest%%|*}
  spec=${rest#*|}
  envs=() flags=()
  for w in $spec; do
    if [[ $w == --* ]] || [[ $w =~ ^[0-9]+$ ]]; then flags+=("$w"); else envs+=("$w"); fi
  done
  dir="$out/run$i"
  if [ "$i" -ge "$first" ]; then
    rm -rf "$dir"
    echo "[$i] $label: ${envs[*]:-} ${flags[*]:-}"
    t0=$(date +%s)
    env "${envs[@]}" "$exe" "${args[@]}" "${flags[@]}" --out "$dir" > "$dir.log" 2>&1 || { echo "run $i failed; see $dir.log" >&2; exit 1; }
    echo "$(( $(date +%s) - t0 ))" > "$dir.seconds"
  fi
  echo "$label" > "$dir.label"
  echo "$ref" > "$dir.ref"
  i=$((i + 1))
done
python3 - "$out" "$i" <<'PY'
import json, sys, os
out, n = sys.argv[1], int(sys.argv[2])
def rows(k):
    d = json.load(open(os.path.join(out, f"run{k}", "metrics.json")))
    return {r["name"]: r for r in d["rows"]}
fields = ["accuracy", "log_prob", "reward", "fd", "diversity"]
lines = ["| run | setting | compared with | rows bit-identical | largest relative difference (field, row) | seconds |",
         "|---|---|---|---|---|---|"]
# (seconds are wall time of that run; only comparable between runs made on an otherwise idle machine)
for k in range(n):
    label = open(os.path.join(out, f"run{k}.label")).read().strip()
    ref = int(open(os.path.join(out, f"run{k}.ref")).read().strip())
    secs = open(os.path.join(out, f"run{k}.seconds")).read().strip()
    base, r = rows(ref), rows(k)
    same, worst = 0, (0.0, "", "")
    for model, row in base.items():
        other = r.get(model)
        if other is None:
            continue
        diffs = [(abs(other[f] - row[f]) / max(abs(row[f]), 1e-12), f) for f in fields]
        if all(d == 0 for d, _ in diffs):
            same += 1
        for d, f in diffs:
            if d > worst[0]:
                worst = (d, f, model)
    w = "none" if worst[0] == 0 else f"{worst[0]:.1e} ({worst[1]}, {worst[2]})"
    lines.append(f"| {k} | {label} | run {ref} | {same}/{len(base)} | {w} | {secs} |")
open(os.path.join(out, "probe.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
