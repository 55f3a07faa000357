#!/usr/bin/env bash
# The C++ UNet2DConditionModel against diffusers', forward + backward, on the same LibTorch (the
# torch wheel of scripts/test_torch2.sh) and thread counts, side by side in one run.
# Usage: bash scripts/bench_unet.sh [extra arguments of benchmarks/bench_unet.py]
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${DIFFINSTRUCT_TORCH2_VENV:-.torch2-venv}
[ -x "$venv/bin/python" ] || bash scripts/test_torch2.sh  # makes the venv (torch + oracles)
"$venv/bin/pip" install -q -r tests/python_oracles.txt
torch_dir=$("$venv/bin/python" -c 'import os, torch; print(os.path.dirname(torch.__file__))')
link_flags=""
for d in "$(dirname "$torch_dir")"/nvidia/*/lib; do link_flags="$link_flags -Wl,-rpath-link,$d"; done
cmake -S . -B build-bench-torch2 -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_STANDARD=20 -DCMAKE_PREFIX_PATH="$torch_dir/share/cmake" -DTorch_DIR="$torch_dir/share/cmake/Torch" \
  -DCMAKE_EXE_LINKER_FLAGS="$link_flags" -DDIFFINSTRUCT_BUILD_TESTS=OFF -DDIFFINSTRUCT_BUILD_EXAMPLES=OFF \
  -DDIFFINSTRUCT_BUILD_BENCHMARKS=ON >/dev/null
cmake --build build-bench-torch2 -j"$(nproc)" --target bench_unet
"$venv/bin/python" benchmarks/bench_unet.py build-bench-torch2/benchmarks/bench_unet benchmarks/unet_small.json "$@"
