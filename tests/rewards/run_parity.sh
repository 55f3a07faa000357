#!/usr/bin/env bash
# The parity test of the reward models against their Python originals (ctest "rewards: parity ..."):
#   run_parity.sh PYTHON REWARD_PARITY WORK_DIR
# PYTHON must have the oracles of tests/python_oracles.txt and hpsv2 (scripts/torch2_venv.sh installs
# them into the LibTorch 2.x venv). Without them the test is skipped (exit 77), and says so.
set -euo pipefail
py=$1 parity=$2 work=$3
here=$(cd "$(dirname "$0")" && pwd)
if [ -z "$py" ] || ! "$py" -c "import hpsv2.src.open_clip, open_clip, safetensors, torch, torchvision, transformers" 2>/dev/null; then
  echo "SKIPPED: no Python with hpsv2, open_clip, transformers, safetensors and torch (got '${py:-none}'); scripts/test_torch2.sh runs this test with them"
  exit 77
fi
rm -rf "$work" && mkdir -p "$work"
"$py" "$here/make_reward_fixtures.py" "$work/fixtures" 2> "$work/fixtures.log" || { cat "$work/fixtures.log"; exit 1; }
cat "$work/fixtures/versions.json"; echo
"$parity" "$work/fixtures"
