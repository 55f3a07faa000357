#!/usr/bin/env bash
# The compositional miniature's folders in diffusers and transformers (ctest "models: 06_compositional's folders ..."):
#   run_compositional_python.sh PYTHON DI_RUN_MODEL WORK_DIR EXAMPLE [EXAMPLE ...]
# PYTHON must have the oracles of tests/python_oracles.txt; without them the test is skipped (exit 77).
# EXAMPLE: the first 06_compositional that exists (the LibTorch 2.x pass does not build the examples
# pass 1 built and tested; it runs pass 1's, which writes the same folders). Runs it with --quick into WORK_DIR, then check_compositional_folders.py loads its pipeline, CLIP
# and generator folders in Python and compares every model with di_run_model on the same folders.
set -euo pipefail
py=$1 run_model=$2 work=$3
shift 3
exe=
for candidate in "$@"; do
  if [ -x "$candidate" ]; then exe=$candidate; break; fi
done
here=$(cd "$(dirname "$0")" && pwd)
if [ -z "$py" ] || ! "$py" -c "import diffusers, safetensors, torch, transformers" 2>/dev/null; then
  echo "SKIPPED: no Python with diffusers, transformers, safetensors and torch (got '${py:-none}'); scripts/test_torch2.sh runs this test with them"
  exit 77
fi
[ -n "$exe" ] || { echo "no 06_compositional among: $*"; exit 1; }
echo "writing the folders with $exe"
rm -rf "$work"
"$exe" --quick --out "$work" --threads 1 > "$work.log" 2>&1 || { cat "$work.log"; exit 1; }
"$py" "$here/check_compositional_folders.py" "$work" "$run_model"
