#!/usr/bin/env bash
# The compositional miniature's folders in diffusers and transformers (ctest "models: 06_compositional's folders ..."):
#   run_compositional_python.sh PYTHON EXAMPLE DI_RUN_MODEL WORK_DIR
# PYTHON must have the oracles of tests/python_oracles.txt; without them the test is skipped (exit 77).
# Runs 06_compositional --quick into WORK_DIR, then check_compositional_folders.py loads its pipeline, CLIP
# and generator folders in Python and compares every model with di_run_model on the same folders.
set -euo pipefail
py=$1 exe=$2 run_model=$3 work=$4
here=$(cd "$(dirname "$0")" && pwd)
if [ -z "$py" ] || ! "$py" -c "import diffusers, safetensors, torch, transformers" 2>/dev/null; then
  echo "SKIPPED: no Python with diffusers, transformers, safetensors and torch (got '${py:-none}'); scripts/test_torch2.sh runs this test with them"
  exit 77
fi
rm -rf "$work"
"$exe" --quick --out "$work" --threads 1 > "$work.log" 2>&1 || { cat "$work.log"; exit 1; }
"$py" "$here/check_compositional_folders.py" "$work" "$run_model"
