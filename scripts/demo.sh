#!/usr/bin/env bash
# The main job: installs what is missing, builds, and runs the end-to-end demo.
# Today that is the Gaussian exactness proof: every divergence's surrogate gradient beside the
# exact gradient (MATH.md §5). Extra arguments go to the demo (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
bash scripts/build.sh --target 01_gaussian_exactness
exec ./build/examples/01_gaussian_exactness "$@"
