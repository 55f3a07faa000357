#!/usr/bin/env bash
# The levers of the library's real-size step that are not allocators or LibTorch versions: channels-last
# weights, OpenMP's wait policy, and Debian's OpenMP build of OpenBLAS — the library's side only, on
# the folders and builds that run.sh made (run it first):
#
#   bash benchmarks/real_size/levers.sh [OUT_DIR]     # OUT_DIR as given to run.sh (default out/real_size)
#
# The 2.15 runs go in two interleaved rounds, then the 1.13 runs (about 4 minutes each on 2 cores) one
# after the other; each writes OUT_DIR/levers/<run>-<precision>.json (bench_real_step's JSON).
# Environment: STEPS (3), THREADS (every core). Installs libopenblas0-openmp (Debian) if missing; it
# does not change the system's BLAS: the run points LD_LIBRARY_PATH at it.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-out/real_size}
steps=${STEPS:-3}
threads=${THREADS:-$(nproc)}
f=$out/folders
D=build-bench/benchmarks/bench_real_step
T=build-bench-torch2/benchmarks/bench_real_step
[ -x "$D" ] && [ -x "$T" ] && [ -d "$f/sd15/unet" ] || { echo "levers.sh: run benchmarks/real_size/run.sh first (builds and folders)" >&2; exit 1; }
omp=$(ls -d /usr/lib/*/openblas-openmp 2>/dev/null | head -1 || true)
if [ -z "$omp" ]; then
  apt-get install -y -qq --no-install-recommends libopenblas0-openmp >/dev/null
  omp=$(ls -d /usr/lib/*/openblas-openmp | head -1)
fi
mkdir -p "$out/levers"
run() {  # NAME PRECISION ENV... -- BINARY ARGS...
  local name=$1 prec=$2; shift 2
  local envs=(); while [ "$1" != "--" ]; do envs+=("$1"); shift; done; shift
  echo "$(date +%T) $name $prec"
  env "${envs[@]}" "$@" --teacher "$f/sd15" --reward "$f/clip" --config all --precision "$prec" --steps "$steps" --threads "$threads" \
    --json "$out/levers/$name-$prec.json" > /dev/null 2> "$out/levers/$name-$prec.log"
}
for r in 1 2; do
  run "torch2-r$r" fp32 -- "$T"
  run "torch2+channels-last-r$r" fp32 -- "$T" --channels-last
  run "torch2+passive-r$r" fp32 OMP_WAIT_POLICY=PASSIVE -- "$T"
done
run torch2 bf16 -- "$T"
run torch2+channels-last bf16 -- "$T" --channels-last
run debian fp32 -- "$D"
run debian+openblas-openmp fp32 "LD_LIBRARY_PATH=$omp" -- "$D"
run debian+passive fp32 OMP_WAIT_POLICY=PASSIVE -- "$D"
run debian+channels-last fp32 -- "$D" --channels-last
for j in "$out"/levers/*.json; do
  python3 -c "import json, sys; d = json.load(open(sys.argv[1])); print('%-45s %6.1f s/step  user %6.1f  system %5.1f  peak RSS %.2f GB' % (sys.argv[1].split('/')[-1][:-5], d['median_seconds'], d['user_seconds_per_step'], d['system_seconds_per_step'], d['peak_rss_bytes'] / 1e9))" "$j"
done
