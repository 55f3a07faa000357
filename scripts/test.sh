#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, and runs
#   1. every test through ctest against Debian's LibTorch 1.13 (C++17);
#   2. the unit tests again, built with ASan + UBSan (build-sanitize/);
#   3. the libFuzzer targets of every reader of untrusted files, 20 s each (scripts/fuzz.sh);
#   4. every test against LibTorch 2.x from PyPI's torch wheel (C++20; scripts/test_torch2.sh),
#      including the parity tests against diffusers (Python oracles pinned in tests/python_oracles.txt).
# DIFFINSTRUCT_SANITIZE_PASS=0, DIFFINSTRUCT_FUZZ=0, DIFFINSTRUCT_TORCH2=0 skip passes 2, 3, 4.
# DIFFINSTRUCT_SANITIZE=1 runs the whole of pass 1 under ASan/UBSan instead (and skips 2 and 4).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
start=$(date +%s)
stamp() { echo "diffinstruct: $1 done after $(( $(date +%s) - start )) s"; }
torch2=0
[ "${DIFFINSTRUCT_TORCH2:-1}" != 0 ] && [ "${DIFFINSTRUCT_SANITIZE:-0}" != 1 ] && torch2=1
if [ "$torch2" = 1 ]; then
  # Pass 4's torch wheel (~3 GB) and Python oracles download while passes 1-3 build and run.
  mkdir -p build
  bash scripts/torch2_venv.sh > build/torch2_venv.log 2>&1 &
  venv_job=$!
fi
bash scripts/build.sh
build_dir=${DIFFINSTRUCT_BUILD_DIR:-build}
[ "${DIFFINSTRUCT_SANITIZE:-0}" = 1 ] && build_dir=${DIFFINSTRUCT_BUILD_DIR:-build-sanitize}
# LibTorch allocates caches it never frees: leak reports would be noise, not findings.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
(cd "$build_dir" && ctest --output-on-failure -j"$(nproc)")
stamp "pass 1 (LibTorch 1.13)"
if [ "${DIFFINSTRUCT_SANITIZE:-0}" != 1 ] && [ "${DIFFINSTRUCT_SANITIZE_PASS:-1}" != 0 ]; then
  DIFFINSTRUCT_SANITIZE=1 DIFFINSTRUCT_BUILD_DIR=build-sanitize bash scripts/build.sh --target diffinstruct_tests checkpoint_worker
  # The 8-Gaussian learning runs (hundreds of steps of the code the short tests already run under
  # the sanitizers) and the trainer-checkpointing comparisons (several DI* steps on three UNets,
  # whose checkpoint function and UNet blocks the short tests run under the sanitizers) are left to
  # pass 1: under ASan they would cost minutes and find nothing new.
  (cd build-sanitize && ctest --output-on-failure -j"$(nproc)" -R '^unit \|' -E '8-Gaussian|checkpointing options')
  stamp "pass 2 (unit tests under ASan + UBSan)"
fi
if [ "${DIFFINSTRUCT_FUZZ:-1}" != 0 ]; then
  bash scripts/fuzz.sh
  stamp "pass 3 (fuzzing)"
fi
if [ "$torch2" = 1 ]; then
  if ! wait "$venv_job"; then
    echo "diffinstruct: installing the torch wheel and the test oracles failed (scripts/torch2_venv.sh):" >&2
    tail -40 build/torch2_venv.log >&2
    exit 1
  fi
  stamp "the torch wheel and the oracles (installed in the background)"
  bash scripts/test_torch2.sh
  stamp "pass 4 (LibTorch 2.x)"
fi
