#!/usr/bin/env bash
# Configures and builds diffinstruct's tests and examples into ./build (or $DIFFINSTRUCT_BUILD_DIR).
# DIFFINSTRUCT_SANITIZE=1 builds with ASan/UBSan into ./build-sanitize instead, whose unit tests run
# on one thread (pass 1's on two: scripts/test.sh runs both).
set -euo pipefail
cd "$(dirname "$0")/.."
sanitize=${DIFFINSTRUCT_SANITIZE:-0}
default_dir=build
[ "$sanitize" = 1 ] && default_dir=build-sanitize
build_dir=${DIFFINSTRUCT_BUILD_DIR:-$default_dir}
build_type=Release
[ "$sanitize" = 1 ] && build_type=Sanitize  # -O1 -g1 (CMakeLists.txt)
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE="$build_type" \
  -DDIFFINSTRUCT_BUILD_TESTS=ON -DDIFFINSTRUCT_BUILD_EXAMPLES=ON -DDIFFINSTRUCT_ENABLE_CUDA=ON \
  -DDIFFINSTRUCT_SANITIZE=$([ "$sanitize" = 1 ] && echo ON || echo OFF) \
  -DDIFFINSTRUCT_TEST_THREADS=$([ "$sanitize" = 1 ] && echo 1 || echo 2) >/dev/null
cmake --build "$build_dir" -j"$(nproc)" "$@"
