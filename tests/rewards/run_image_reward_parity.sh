#!/usr/bin/env bash
# The parity test of ImageReward against image-reward 1.5 (ctest "rewards: ImageReward parity ..."):
#   run_image_reward_parity.sh PYTHON IMAGE_REWARD_PARITY DI_RUN_MODEL WORK_DIR
# PYTHON is the venv of scripts/imagereward_venv.sh (transformers 4.x, timm 0.6, image-reward). Without
# it the test is skipped (exit 77), and says so.
set -euo pipefail
py=$1 parity=$2 run_model=$3 work=$4
here=$(cd "$(dirname "$0")" && pwd)
if [ -z "$py" ] || ! "$py" -c "import importlib.util, sys, torch, timm, fairscale, transformers; sys.exit(importlib.util.find_spec('ImageReward') is None or not transformers.__version__.startswith('4.'))" 2>/dev/null; then
  echo "SKIPPED: no Python with image-reward, transformers 4.x, timm and torch (got '${py:-none}'); scripts/imagereward_venv.sh makes one"
  exit 77
fi
# The work folder is removed first: never the folder that holds the programs (they sit beside it).
[ "$work" != "$(dirname "$parity")" ] && [ ! -f "$work" ] || { echo "work folder '$work' is not a fresh folder" >&2; exit 1; }
rm -rf "$work" && mkdir -p "$work"
"$py" "$here/make_image_reward_fixtures.py" "$work/fixtures" 2> "$work/fixtures.log" || { cat "$work/fixtures.log"; exit 1; }
cat "$work/fixtures/versions.json"; echo
"$parity" "$work/fixtures"
# di_run_model's kinds on the same files: the tokenizer's ids and the score, against the originals'.
"$run_model" --model "$work/fixtures/vocab.txt" --kind wordpiece-tokenizer --text "$work/fixtures/prompts.txt" --outputs "$work/tokens_run_model.safetensors"
"$run_model" --model "$work/fixtures/ImageReward.pt" --kind image-reward --med-config "$work/fixtures/med_config.json" \
  --inputs "$work/fixtures/inputs.safetensors" --outputs "$work/score_run_model.safetensors"
"$py" - "$work" <<'PY'
import sys
from safetensors.torch import load_file
work = sys.argv[1]
got, want = load_file(f"{work}/tokens_run_model.safetensors"), load_file(f"{work}/fixtures/tokens.safetensors")
ok = bool((got["input_ids"] == want["input_ids.35"]).all() and (got["attention_mask"] == want["attention_mask.35"]).all())
print(f"di_run_model --kind wordpiece-tokenizer: ids and masks {'equal' if ok else 'DIFFER'}")
g, w = load_file(f"{work}/score_run_model.safetensors")["score"], load_file(f"{work}/fixtures/expected.safetensors")["score"]
err = ((g.double() - w.double()).norm() / w.double().norm()).item()
print(f"di_run_model --kind image-reward: score relative error {err:.2e} (bound 1e-5)")
sys.exit(0 if ok and err <= 1e-5 else 1)
PY
echo "ImageReward parity: all checks passed"
