#!/usr/bin/env bash
# The real-size DI* step, the library against PyTorch, interleaved, in one command:
#
#   bash benchmarks/real_size/run.sh [OUT_DIR]
#
# 1. writes random-weight SD 1.5 / CLIP ViT-L/14 folders with the published configurations
#    (make_folders.py, in the venv of scripts/torch2_venv.sh: diffusers, transformers, torch 2.15);
# 2. builds bench_real_step against Debian's LibTorch 1.13 (the README's build, ./build-bench) and
#    against the wheel's LibTorch 2.15 (./build-bench-torch2);
# 3. for each configuration and precision, runs the library's step (each build, each allocator) and the
#    PyTorch step (pytorch_step.py) one after the other, the PyTorch side on the library's first
#    draws and initial adapters, so that the first losses must agree;
# 4. prints the tables (report.py) and writes them to OUT_DIR (tables.txt).
# 5. runs the float32 `all` comparison again in ROUNDS interleaved rounds (library on 2.15 and PyTorch,
#    each with and without tcmalloc): one run per side is within this machine's run-to-run noise.
# Environment: STEPS (3), THREADS (every core), CONFIGS ("all full"), PRECISIONS ("fp32 bf16"),
# LEVERS: which library runs (default "debian debian+tcmalloc torch2 torch2+tcmalloc"), ROUNDS (3).
# Needs about 17 GB of memory (the PyTorch side's `full` run) and, on 2 cores, about two hours.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-out/real_size}
steps=${STEPS:-3}
threads=${THREADS:-$(nproc)}
configs=${CONFIGS:-"all full"}
precisions=${PRECISIONS:-"fp32 bf16"}
levers=${LEVERS:-"debian debian+tcmalloc torch2 torch2+tcmalloc"}
venv=${DIFFINSTRUCT_TORCH2_VENV:-.torch2-venv}
mkdir -p "$out"

bash scripts/install_deps.sh >/dev/null
bash scripts/torch2_venv.sh >/dev/null
tcmalloc=$(ls /usr/lib/*/libtcmalloc_minimal.so.4 2>/dev/null | head -1 || true)
if [ -z "$tcmalloc" ] && [[ "$levers" == *tcmalloc* ]]; then
  echo "real_size: installing libtcmalloc-minimal4 (Debian) for the allocator lever"
  apt-get install -y -qq --no-install-recommends libtcmalloc-minimal4 >/dev/null
  tcmalloc=$(ls /usr/lib/*/libtcmalloc_minimal.so.4 | head -1)
fi
[ -d "$out/folders/sd15/unet" ] || "$venv/bin/python" benchmarks/real_size/make_folders.py "$out/folders"

cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DDIFFINSTRUCT_BUILD_BENCHMARKS=ON >/dev/null
cmake --build build-bench -j"$(nproc)" --target bench_real_step >/dev/null
if [[ "$levers" == *torch2* ]]; then
  torch_dir=$("$venv/bin/python" -c 'import os, torch; print(os.path.dirname(torch.__file__))')
  link_flags=""
  for d in "$(dirname "$torch_dir")"/nvidia/*/lib; do link_flags="$link_flags -Wl,-rpath-link,$d"; done
  cmake -S . -B build-bench-torch2 -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_STANDARD=20 -DTorch_DIR="$torch_dir/share/cmake/Torch" \
    -DCMAKE_PREFIX_PATH="$torch_dir/share/cmake" -DCMAKE_EXE_LINKER_FLAGS="$link_flags" -DDIFFINSTRUCT_BUILD_TESTS=OFF \
    -DDIFFINSTRUCT_BUILD_EXAMPLES=OFF -DDIFFINSTRUCT_BUILD_BENCHMARKS=ON >/dev/null
  cmake --build build-bench-torch2 -j"$(nproc)" --target bench_real_step >/dev/null
fi

folders="$out/folders"
for config in $configs; do
  for precision in $precisions; do
    run="$out/$config-$precision"
    mkdir -p "$run"
    for lever in $levers; do
      bin=build-bench/benchmarks/bench_real_step
      [[ "$lever" == torch2* ]] && bin=build-bench-torch2/benchmarks/bench_real_step
      preload=""
      [[ "$lever" == *tcmalloc ]] && preload="$tcmalloc"
      draws=()
      [ -f "$run/draws.safetensors" ] || draws=(--draws "$run/draws.safetensors")
      echo "real_size: $config $precision, library ($lever)"
      LD_PRELOAD="$preload" "$bin" --teacher "$folders/sd15" --reward "$folders/clip" --config "$config" --precision "$precision" \
        --steps "$steps" --threads "$threads" "${draws[@]}" --json "$run/library-$lever.json" >/dev/null 2>"$run/library-$lever.log"
    done
    for lever in pytorch pytorch+tcmalloc; do
      [[ "$levers" != *tcmalloc* && "$lever" == *tcmalloc ]] && continue
      preload=""
      [[ "$lever" == *tcmalloc ]] && preload="$tcmalloc"
      echo "real_size: $config $precision, $lever"
      LD_PRELOAD="$preload" "$venv/bin/python" benchmarks/real_size/pytorch_step.py --teacher "$folders/sd15" --reward "$folders/clip" \
        --draws "$run/draws.safetensors" --config "$config" --precision "$precision" --steps "$steps" --threads "$threads" \
        --json "$run/$lever.json" >"$run/$lever.log" 2>&1
    done
  done
done
# The headline comparison again, interleaved: ROUNDS rounds of the library (LibTorch 2.15) and PyTorch,
# with and without tcmalloc, float32 `all`, on the first draws; report.py takes the median of the
# per-round ratios.
if [[ "$levers" == *torch2* ]]; then
  mkdir -p "$out/rounds"
  for round in $(seq 1 "${ROUNDS:-3}"); do
    for side in library-tc pytorch-tc library pytorch; do
      preload=""
      [[ "$side" == *-tc ]] && preload="$tcmalloc"
      echo "real_size: round $round, $side"
      if [[ "$side" == library* ]]; then
        LD_PRELOAD="$preload" build-bench-torch2/benchmarks/bench_real_step --teacher "$folders/sd15" --reward "$folders/clip" --config all \
          --steps "$steps" --threads "$threads" --json "$out/rounds/r$round-$side.json" >/dev/null 2>"$out/rounds/r$round-$side.log"
      else
        LD_PRELOAD="$preload" "$venv/bin/python" benchmarks/real_size/pytorch_step.py --teacher "$folders/sd15" --reward "$folders/clip" \
          --draws "$out/all-fp32/draws.safetensors" --config all --steps "$steps" --threads "$threads" \
          --json "$out/rounds/r$round-$side.json" >"$out/rounds/r$round-$side.log" 2>&1
      fi
    done
  done
fi
python3 benchmarks/real_size/report.py "$out" | tee "$out/tables.txt"
