#!/usr/bin/env bash
# The parity test of ImageReward against image-reward 1.5 (ctest "rewards: ImageReward parity ..."):
#   run_image_reward_parity.sh PYTHON IMAGE_REWARD_PARITY WORK_DIR
# PYTHON is the venv of scripts/imagereward_venv.sh (transformers 4.x, timm 0.6, image-reward). Without
# it the test is skipped (exit 77), and says so.
set -euo pipefail
py=$1 parity=$2 work=$3
here=$(cd "$(dirname "$0")" && pwd)
if [ -z "$py" ] || ! "$py" -c "import importlib.util, sys, torch, timm, fairscale, transformers; sys.exit(importlib.util.find_spec('ImageReward') is None or not transformers.__version__.startswith('4.'))" 2>/dev/null; then
  echo "SKIPPED: no Python with image-reward, transformers 4.x, timm and torch (got '${py:-none}'); scripts/imagereward_venv.sh makes one"
  exit 77
fi
rm -rf "$work" && mkdir -p "$work"
"$py" "$here/make_image_reward_fixtures.py" "$work/fixtures" 2> "$work/fixtures.log" || { cat "$work/fixtures.log"; exit 1; }
cat "$work/fixtures/versions.json"; echo
"$parity" "$work/fixtures"
