#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, runs every test through ctest.
# DIFFINSTRUCT_SANITIZE=1 runs it under ASan/UBSan (separate build folder).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
bash scripts/build.sh
build_dir=${DIFFINSTRUCT_BUILD_DIR:-build}
[ "${DIFFINSTRUCT_SANITIZE:-0}" = 1 ] && build_dir=${DIFFINSTRUCT_BUILD_DIR:-build-sanitize}
cd "$build_dir"
# LibTorch allocates caches it never frees: leak reports would be noise, not findings.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
ctest --output-on-failure -j"$(nproc)"
