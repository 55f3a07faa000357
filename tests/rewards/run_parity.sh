#!/usr/bin/env bash
# The parity test of the reward models against their Python originals (ctest "rewards: parity ..."):
#   run_parity.sh PYTHON REWARD_PARITY DI_RUN_MODEL WORK_DIR
# PYTHON must have the oracles of tests/python_oracles.txt and hpsv2 (scripts/torch2_venv.sh installs
# them into the LibTorch 2.x venv). Without them the test is skipped (exit 77), and says so.
set -euo pipefail
py=$1 parity=$2 run_model=$3 work=$4
here=$(cd "$(dirname "$0")" && pwd)
if [ -z "$py" ] || ! "$py" -c "import hpsv2.src.open_clip, open_clip, safetensors, torch, torchvision, transformers" 2>/dev/null; then
  echo "SKIPPED: no Python with hpsv2, open_clip, transformers, safetensors and torch (got '${py:-none}'); scripts/test_torch2.sh runs this test with them"
  exit 77
fi
# The work folder is removed first: never the folder that holds the programs (they sit beside it).
[ "$work" != "$(dirname "$parity")" ] && [ ! -f "$work" ] || { echo "work folder '$work' is not a fresh folder" >&2; exit 1; }
rm -rf "$work" && mkdir -p "$work"
"$py" "$here/make_reward_fixtures.py" "$work/fixtures" 2> "$work/fixtures.log" || { cat "$work/fixtures.log"; exit 1; }
cat "$work/fixtures/versions.json"; echo
"$parity" "$work/fixtures"
# di_run_model's reward kinds on the same files, against the originals' scores.
"$run_model" --model "$work/fixtures/hps/hps_tiny.pt" --kind open-clip --open-clip-config "$work/fixtures/hps/open_clip_config.json" \
  --inputs "$work/fixtures/hps/inputs_run_model.safetensors" --outputs "$work/hps_run_model.safetensors"
"$run_model" --model "$work/fixtures/aesthetic/clip" --kind aesthetic --head "$work/fixtures/aesthetic/aesthetic_head.pth" \
  --inputs "$work/fixtures/aesthetic/inputs_run_model.safetensors" --outputs "$work/aesthetic_run_model.safetensors"
"$py" - "$work" <<'PY'
import sys
from safetensors.torch import load_file
work = sys.argv[1]
for name, got, want, key in [("open-clip (HPS)", "hps_run_model", "fixtures/hps/expected", "score.square"),
                             ("aesthetic", "aesthetic_run_model", "fixtures/aesthetic/expected", "score.square")]:
    g, w = load_file(f"{work}/{got}.safetensors")["score"], load_file(f"{work}/{want}.safetensors")[key]
    err = ((g.double() - w.double()).norm() / w.double().norm()).item()
    print(f"di_run_model --kind {name}: score relative error {err:.2e} (bound 1e-5)")
    if not err <= 1e-5:
        sys.exit(1)
PY
# HPSv2's tokenization: the CLIP tokenizer with OpenCLIP's cleaning against hpsv2's own tokenizer, on
# every Parti prompt and hostile strings (ids up to the end-of-text token; OpenCLIP pads with 0).
"$run_model" --model "$work/fixtures/tokenizer" --kind clip-tokenizer --open-clip-cleaning --text "$work/fixtures/tokenizer/prompts.txt" \
  --outputs "$work/tokenizer_run_model.safetensors"
"$run_model" --model "$work/fixtures/tokenizer" --kind clip-tokenizer --text "$work/fixtures/tokenizer/prompts.txt" \
  --outputs "$work/tokenizer_run_model_plain.safetensors"
"$py" - "$work" <<'PY'
import sys
from safetensors.torch import load_file
work = sys.argv[1]
want = load_file(f"{work}/fixtures/tokenizer/expected.safetensors")["input_ids"]
def differing(path):
    got = load_file(path)["input_ids"]
    n = 0
    for g, w in zip(got.tolist(), want.tolist()):
        end = w.index(49407) + 1
        n += g[:end] != w[:end]
    return n
cleaned, plain = differing(f"{work}/tokenizer_run_model.safetensors"), differing(f"{work}/tokenizer_run_model_plain.safetensors")
print(f"HPSv2's tokenization of {len(want)} texts (1,632 Parti prompts + hostile strings): {cleaned} differ with OpenCLIP's cleaning, "
      f"{plain} without (the negative control)")
if cleaned != 0 or plain == 0:
    sys.exit(1)
PY
echo "rewards parity: all checks passed"
