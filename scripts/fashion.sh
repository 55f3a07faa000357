#!/usr/bin/env bash
# The paper in miniature on class labels (the README's main job before the compositional miniature,
# scripts/demo.sh, took its place): installs what is missing (apt, including Debian's
# dataset-fashion-mnist), builds, and runs it on class-conditional Fashion-MNIST: teacher -> one-step generator ->
# DI* and its rivals -> evaluation by a held-out classifier (docs/results.md). The report, sample
# grids, plot and metrics go to out/fashion/; every stage is cached there, so a rerun resumes.
# Extra arguments go to the program (try --help; --full for the longer preset). The smaller
# 8-Gaussian demo with an exact teacher (docs/mixture_demo.md) is ./build/examples/02_mixture_di_star.
# The CPU kernels are pinned (OpenBLAS Haswell, ATen AVX2, oneDNN AVX2, one thread: --kernels pinned),
# so the numbers do not depend on which CPU model the machine has (docs/results.md#reproducibility);
# DIFFINSTRUCT_NATIVE_KERNELS=1 lets the libraries pick the CPU's own kernels instead (about 20% faster).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
bash scripts/build.sh --target 03_fashion_mnist --target 02_mixture_di_star --target 01_gaussian_exactness
if [ "${DIFFINSTRUCT_NATIVE_KERNELS:-0}" = 1 ]; then
  exec ./build/examples/03_fashion_mnist --out out/fashion "$@"
fi
export OPENBLAS_CORETYPE=Haswell ATEN_CPU_CAPABILITY=avx2 DNNL_MAX_CPU_ISA=AVX2 OPENBLAS_NUM_THREADS=1
exec ./build/examples/03_fashion_mnist --out out/fashion --kernels pinned --threads 1 "$@"
