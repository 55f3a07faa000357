#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, runs every test through ctest — first
# against Debian's LibTorch 1.13 (C++17), then against LibTorch 2.x from PyPI's torch wheel (C++20;
# scripts/test_torch2.sh, version pinned there). DIFFINSTRUCT_TORCH2=0 skips the second.
# DIFFINSTRUCT_SANITIZE=1 runs the first under ASan/UBSan (separate build folder).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
bash scripts/build.sh
build_dir=${DIFFINSTRUCT_BUILD_DIR:-build}
[ "${DIFFINSTRUCT_SANITIZE:-0}" = 1 ] && build_dir=${DIFFINSTRUCT_BUILD_DIR:-build-sanitize}
# LibTorch allocates caches it never frees: leak reports would be noise, not findings.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
(cd "$build_dir" && ctest --output-on-failure -j"$(nproc)")
if [ "${DIFFINSTRUCT_TORCH2:-1}" != 0 ] && [ "${DIFFINSTRUCT_SANITIZE:-0}" != 1 ]; then
  bash scripts/test_torch2.sh
fi
