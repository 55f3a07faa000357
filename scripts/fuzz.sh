#!/usr/bin/env bash
# Fuzzes every reader of untrusted files with libFuzzer (clang, ASan + UBSan): the IDX reader, the
# safetensors reader, the checkpoint loader, the TorchScript loader, diffusers' config.json, the
# sharded-safetensors index, the CLIP tokenizer, the LoRA file loader and PyTorch's checkpoint files
# (whole archives, and their pickles inside valid archives), each for DIFFINSTRUCT_FUZZ_SECONDS (default 20)
# from the committed seed corpus tests/fuzz/corpus/<target>/, as many targets at once as there are cores.
# A crash, a sanitizer report, a leak-free hang past 10 s or memory past 2 GB fails the run (exit 1)
# and leaves the input that did it in build-fuzz/findings/<target>/.
#   DIFFINSTRUCT_FUZZ_TARGETS="idx safetensors"   a subset
#   DIFFINSTRUCT_FUZZ_MAKE_CORPUS=1               rewrite the seed corpus instead (then commit it)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${DIFFINSTRUCT_FUZZ_SECONDS:-20}
targets=${DIFFINSTRUCT_FUZZ_TARGETS:-idx safetensors checkpoint torchscript config index tokenizer lora pt pickle}
build=${DIFFINSTRUCT_FUZZ_BUILD_DIR:-build-fuzz}
cxx=$(command -v clang++-14 || command -v clang++ || true)
[ -n "$cxx" ] || { echo "diffinstruct: fuzzing needs clang (Debian: clang-14 libclang-rt-14-dev)" >&2; exit 1; }
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER="$cxx" \
  -DDIFFINSTRUCT_BUILD_TESTS=OFF -DDIFFINSTRUCT_BUILD_EXAMPLES=OFF -DDIFFINSTRUCT_BUILD_FUZZERS=ON >/dev/null
cmake --build "$build" --target fuzz_readers -j"$(nproc)"
exe="$build/tests/fuzz/fuzz_readers"
if [ "${DIFFINSTRUCT_FUZZ_MAKE_CORPUS:-0}" = 1 ]; then
  rm -rf tests/fuzz/corpus
  DIFFINSTRUCT_FUZZ_MAKE_CORPUS=tests/fuzz/corpus "$exe"
  exit 0
fi
# LibTorch keeps caches for the process's life: leak reports would be noise, not findings.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export OMP_NUM_THREADS=1
# One target per core at a time: each libFuzzer run is single-threaded.
fuzz_one() {
  local t=$1 work="$build/corpus/$1" findings="$build/findings/$1" scratch="$build/scratch/$1"
  rm -rf "$work" "$findings" "$scratch"
  mkdir -p "$work" "$findings" "$scratch"
  cp tests/fuzz/corpus/"$t"/* "$work"/
  # TMPDIR: the target writes each input to a file there; keep those out of /tmp.
  TMPDIR="$scratch" DIFFINSTRUCT_FUZZ_TARGET=$t "$exe" "$work" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -seed=1 -print_final_stats=1 -artifact_prefix="$findings/" > "$build/fuzz_$t.log" 2>&1
}
jobs_max=$(nproc)
declare -A pid_of
for t in $targets; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n || true; done
  echo "diffinstruct: fuzzing the $t reader for ${seconds} s"
  fuzz_one "$t" &
  pid_of[$t]=$!
done
status=0
for t in $targets; do
  if ! wait "${pid_of[$t]}"; then
    echo "diffinstruct: FUZZING FOUND A PROBLEM in the $t reader; input in $build/findings/$t/:" >&2
    tail -40 "$build/fuzz_$t.log" >&2
    status=1
  else
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb|cov:" "$build/fuzz_$t.log" | tail -3 | sed "s/^/  $t: /"
  fi
done
exit $status
