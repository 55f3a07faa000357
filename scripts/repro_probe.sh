#!/usr/bin/env bash
# Where does bit-determinism end? Runs a short Fashion-MNIST pipeline (examples/03_fashion_mnist,
# small budgets, every stage) once per setting below, each from an empty folder, and compares every
# metric of every row with the first run's, printing which settings change the numbers and by how
# much. The settings vary what differs between two machines of one kind: the BLAS kernels OpenBLAS
# picks for the CPU, oneDNN's instruction set, ATen's vectorised kernels, thread counts.
#   bash scripts/repro_probe.sh [out_dir]        (about 1 minute per setting on 2 cores)
# Needs the build (bash scripts/build.sh). Results: <out_dir>/probe.md (docs/reproducibility.md
# quotes one).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-out/repro_probe}
exe=build/examples/03_fashion_mnist
[ -x "$exe" ] || { echo "build first: bash scripts/build.sh" >&2; exit 1; }
mkdir -p "$out"
args=(--train-subset 6000 --teacher-steps 300 --classifier-epochs 1 --distill-steps 40 --steps 40 --batch 16
      --eval-per-class 20 --teacher-scales 3)
settings=(
  "baseline|"
  "baseline, again|"
  "2 intra-op threads|--threads 2"
  "OpenBLAS 1 thread|OPENBLAS_NUM_THREADS=1"
  "OpenBLAS Haswell kernels|OPENBLAS_CORETYPE=Haswell"
  "OpenBLAS SkylakeX kernels|OPENBLAS_CORETYPE=SkylakeX"
  "OpenBLAS Zen kernels|OPENBLAS_CORETYPE=Zen"
  "oneDNN limited to AVX2|DNNL_MAX_CPU_ISA=AVX2"
  "ATen kernels AVX512|ATEN_CPU_CAPABILITY=avx512"
  "ATen kernels without AVX|ATEN_CPU_CAPABILITY=default"
)
i=0
for s in "${settings[@]}"; do
  label=${s%%|*}
  spec=${s#*|}
  envs=() flags=()
  for w in $spec; do
    if [[ $w == --* ]] || [[ $w =~ ^[0-9]+$ ]]; then flags+=("$w"); else envs+=("$w"); fi
  done
  dir="$out/run$i"
  rm -rf "$dir"
  echo "[$i] $label: ${envs[*]:-} ${flags[*]:-}"
  t0=$(date +%s)
  env "${envs[@]}" "$exe" "${args[@]}" "${flags[@]}" --out "$dir" > "$dir.log" 2>&1 || { echo "run $i failed; see $dir.log" >&2; exit 1; }
  echo "$label" > "$dir.label"
  echo "    $(( $(date +%s) - t0 )) s"
  i=$((i + 1))
done
python3 - "$out" "$i" <<'EOF'
import json, sys, os, math
out, n = sys.argv[1], int(sys.argv[2])
def rows(k):
    d = json.load(open(os.path.join(out, f"run{k}", "metrics.json")))
    return {r["name"]: r for r in d["rows"]}, d.get("classifiers", {})
base, base_clf = rows(0)
fields = ["accuracy", "log_prob", "reward", "fd", "diversity"]
lines = ["| setting | rows identical to run 0 | largest relative difference (field, row) | classifier accuracies |",
         "|---|---|---|---|"]
for k in range(n):
    r, clf = rows(k)
    label = open(os.path.join(out, f"run{k}.label")).read().strip()
    same, worst = 0, (0.0, "", "")
    for model, row in base.items():
        other = r.get(model)
        if other is None: continue
        diffs = [(abs(other[f] - row[f]) / max(abs(row[f]), 1e-12), f) for f in fields if f in row and f in other]
        if all(d == 0 for d, _ in diffs): same += 1
        for d, f in diffs:
            if d > worst[0]: worst = (d, f, model)
    w = "none (bit-identical)" if worst[0] == 0 else f"{worst[0]:.2e} ({worst[1]}, {worst[2]})"
    acc = ", ".join(f"{k2} {v:.4f}" for k2, v in sorted(clf.items()) if isinstance(v, (int, float)))
    lines.append(f"| {label} | {same}/{len(base)} | {w} | {acc} |")
open(os.path.join(out, "probe.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
