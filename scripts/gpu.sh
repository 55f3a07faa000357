#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: build the tests and the kernel benchmark with the CUDA extension
# against the LibTorch inside that machine's Python torch, run the CUDA tests, run the kernel
# benchmark, and print a short table. Needs: nvcc, a CUDA-enabled `torch` for $PYTHON (default python3),
# cmake, g++, and the folder _deps/prefix made here by scripts/gpu_deps.sh (no network needed there).
#   PYTHON                          the Python whose torch to build against
#   DIFFINSTRUCT_CUDA_ARCHITECTURES GPU architectures (default 90: H100/H200)
#   OUT                             where to copy the logs (optional)
#   DIFFINSTRUCT_T2I_TEACHER        a diffusers pipeline folder with real weights (SD-Turbo, say) and
#   DIFFINSTRUCT_T2I_REWARD         a CLIPModel folder: when both are set, a short 05_text_to_image run
#                                   on the GPU follows (bf16, LoRA generator and assistant, checkpointing)
#   DIFFINSTRUCT_EVAL_METRICS       di_evaluate's metric flags with real files (e.g. "--pickscore DIR --hps
#                                   HPS_v2.1_compressed.pt --image-reward ImageReward.pt --image-reward-vocab
#                                   vocab.txt"): with DIFFINSTRUCT_T2I_TEACHER set, di_evaluate scores the
#                                   teacher (DIFFINSTRUCT_EVAL_STEPS DDIM steps, default 50, CFG 7.5) and its
#                                   UNet as a one-step generator at t* 999 (SD-Turbo's) on the first
#                                   DIFFINSTRUCT_EVAL_PROMPTS (default 64) Parti prompts, 2 seeds, bf16
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
[ -d _deps/prefix ] || { echo "gpu.sh: _deps/prefix missing: run scripts/gpu_deps.sh on the build machine and carry _deps" >&2; exit 1; }
torch_dir=$("$python" -c 'import os, torch; print(os.path.dirname(torch.__file__))')
torch_version=$("$python" -c 'import torch; print(torch.__version__)')
cxx_std=$("$python" -c 'import torch; v = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2]); print(20 if v >= (2, 10) else 17)')
site=$(dirname "$torch_dir")
link_flags=""
for d in "$site"/nvidia/*/lib; do [ -d "$d" ] && link_flags="$link_flags -Wl,-rpath-link,$d"; done
echo "gpu.sh: LibTorch $torch_version (C++$cxx_std) at $torch_dir; nvcc $(nvcc --version | grep -o 'release [0-9.]*')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

t2i=OFF
[ -n "${DIFFINSTRUCT_T2I_TEACHER:-}" ] && [ -n "${DIFFINSTRUCT_T2I_REWARD:-}" ] && t2i=ON
export LD_LIBRARY_PATH="$PWD/_deps/prefix/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
examples=$t2i
[ -n "${DIFFINSTRUCT_T2I_TEACHER:-}" ] && [ -n "${DIFFINSTRUCT_EVAL_METRICS:-}" ] && examples=ON
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_STANDARD="$cxx_std" -DCMAKE_CUDA_STANDARD=17 \
  -DCMAKE_PREFIX_PATH="$torch_dir/share/cmake;$PWD/_deps/prefix" -DTorch_DIR="$torch_dir/share/cmake/Torch" \
  -DCMAKE_EXE_LINKER_FLAGS="$link_flags" \
  -DDIFFINSTRUCT_ENABLE_CUDA=ON -DDIFFINSTRUCT_BUILD_TESTS=ON -DDIFFINSTRUCT_BUILD_EXAMPLES="$examples" -DDIFFINSTRUCT_BUILD_BENCHMARKS=ON \
  -DDIFFINSTRUCT_CUDA_ARCHITECTURES="${DIFFINSTRUCT_CUDA_ARCHITECTURES:-90}" >/dev/null
targets=(diffinstruct_tests bench_score_loss)
[ "$t2i" = ON ] && targets+=(05_text_to_image)
[ -n "${DIFFINSTRUCT_T2I_TEACHER:-}" ] && [ -n "${DIFFINSTRUCT_EVAL_METRICS:-}" ] && targets+=(di_evaluate)
cmake --build build-gpu -j"$(nproc)" --target "${targets[@]}"
[ -f build-gpu/src/cuda/libdiffinstruct_cuda.so ] || { echo "gpu.sh: the CUDA extension was not built (is this torch CUDA-enabled?)" >&2; exit 1; }

logs=${OUT:-build-gpu}
status=0
echo "== CUDA tests"
build-gpu/tests/diffinstruct_tests "[cuda],[cuda-extension],[kernels]" --reporter compact 2>&1 | tee "$logs/gpu_tests.log" || status=1
echo "== kernel benchmark"
build-gpu/benchmarks/bench_score_loss --benchmark_filter='cuda_' --benchmark_min_time=0.2 2>&1 | tee "$logs/gpu_bench.log" || status=1
if [ "$t2i" = ON ]; then
  echo "== 05_text_to_image on real weights: $DIFFINSTRUCT_T2I_TEACHER, reward $DIFFINSTRUCT_T2I_REWARD"
  build-gpu/examples/05_text_to_image --teacher "$DIFFINSTRUCT_T2I_TEACHER" --reward "$DIFFINSTRUCT_T2I_REWARD" --device cuda \
    --precision bf16 --generator-lora 64 --assistant-lora 64 --gradient-checkpointing --batch 1 --steps 20 --eval-every 10 \
    --eval-prompts 4 --eval-seeds 2 --out "$logs/text_to_image" 2>&1 | tee "$logs/gpu_t2i.log" || status=1
else
  echo "== 05_text_to_image skipped: set DIFFINSTRUCT_T2I_TEACHER and DIFFINSTRUCT_T2I_REWARD to folders with real weights"
fi
if [ -n "${DIFFINSTRUCT_T2I_TEACHER:-}" ] && [ -n "${DIFFINSTRUCT_EVAL_METRICS:-}" ]; then
  echo "== di_evaluate on real weights: $DIFFINSTRUCT_T2I_TEACHER"
  # shellcheck disable=SC2086  # the metric flags are words on purpose
  build-gpu/examples/di_evaluate --teacher "$DIFFINSTRUCT_T2I_TEACHER" --teacher-steps "${DIFFINSTRUCT_EVAL_STEPS:-50}" --guidance 7.5 \
    --generator "one-step=teacher,t=999" --prompts data/parti/PartiPrompts.tsv --max-prompts "${DIFFINSTRUCT_EVAL_PROMPTS:-64}" --seeds 2 \
    --batch 8 --device cuda --precision bf16 $DIFFINSTRUCT_EVAL_METRICS --out "$logs/evaluate" 2>&1 | tee "$logs/gpu_evaluate.log" || status=1
  cat "$logs/evaluate/report.md" 2>/dev/null | head -12
else
  echo "== di_evaluate skipped: set DIFFINSTRUCT_T2I_TEACHER and DIFFINSTRUCT_EVAL_METRICS (real weights)"
fi
exit $status
