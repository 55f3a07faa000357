#!/usr/bin/env bash
# The main job: installs what is missing, builds, and runs the end-to-end demo: DI* on an
# 8-Gaussian mixture with an exact teacher (docs/mixture_demo.md). Plots and metrics go to
# out/mixture/. Extra arguments go to the demo (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
bash scripts/build.sh --target 02_mixture_di_star --target 01_gaussian_exactness
exec ./build/examples/02_mixture_di_star --out out/mixture "$@"
