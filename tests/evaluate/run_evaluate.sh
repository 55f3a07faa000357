#!/usr/bin/env bash
# di_evaluate end to end on tiny random pipelines and reward models (ctest "example: di_evaluate ..."):
#   run_evaluate.sh PYTHON IMAGEREWARD_PYTHON EXE WORK_DIR
# PYTHON must have the oracles of tests/python_oracles.txt (else the test is skipped, exit 77);
# IMAGEREWARD_PYTHON (scripts/imagereward_venv.sh) adds ImageReward, and its check, when given.
#   1. tiny SD pipeline (make_tiny_pipelines.py), HPS, aesthetic and CLIP models (make_reward_fixtures.py),
#      ImageReward (make_image_reward_fixtures.py);
#   2. the teacher (4 DDIM steps, CFG 3) and two one-step generators (the UNet at t* 999; the teacher's
#      UNet at t* 500, named) on 5 Parti-style prompts x 3 seeds, every metric;
#   3. every score in metrics.csv against the originals' code on the PNGs (check_evaluate*.py);
#   4. a generator given as 05_text_to_image's output folder scores as the same UNet given directly;
#   5. resume: a rerun generates nothing and writes the same metrics.csv; a metric added later is
#      scored from the PNGs without generating; a removed batch is generated again, to the same scores;
#   6. refusals: other settings in --out, a prompt file that is not UTF-8, a missing generator folder,
#      a generator whose UNet does not fit the teacher's text encoders.
set -euo pipefail
py=$1 irpy=$2 exe=$3 work=$4
here=$(cd "$(dirname "$0")" && pwd)
if [ -z "$py" ] || ! "$py" -c "import diffusers, transformers, hpsv2, torchvision, safetensors, PIL" 2>/dev/null; then
  echo "SKIPPED: no Python with diffusers, transformers, hpsv2, torchvision (got '${py:-none}'); scripts/test_torch2.sh runs this test with them"
  exit 77
fi
rm -rf "$work" && mkdir -p "$work" && cd "$work"
"$py" "$here/../text2image/make_tiny_pipelines.py" models > make.log 2>&1 || { cat make.log; exit 1; }
"$py" "$here/../rewards/make_reward_fixtures.py" rewards > make_rewards.log 2>&1 || { cat make_rewards.log; exit 1; }
image_reward=()
if [ -n "$irpy" ] && "$irpy" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('ImageReward') is None)" 2>/dev/null; then
  "$irpy" "$here/../rewards/make_image_reward_fixtures.py" ir > make_ir.log 2>&1 || { cat make_ir.log; exit 1; }
  head -98 ir/vocab.txt > ir/vocab98.txt  # + [DEC], [ENC]: the tiny BERT's 100 ids
  image_reward=(--image-reward ir/ImageReward.pt --image-reward-vocab ir/vocab98.txt --med-config ir/med_config.json)
else
  echo "(no ImageReward venv: ImageReward left out)"
fi
printf 'Prompt\tCategory\tChallenge\tNote\na red cube on a table\tArtifacts\tBasic\t\na dog in the park\tAnimals\tBasic\t\nan astronaut riding a horse\tPeople\tImagination\t\na cat wearing a hat\tAnimals\tBasic\t\nthe skyline of a city at night\tArtifacts\tBasic\t\n' > prompts.tsv
models=(--teacher models/sd --teacher-steps 4 --guidance 3 --generator models/sd/unet,t=999 --generator "teacher-at-500=teacher,t=500"
        --prompts prompts.tsv --seeds 3 --batch 4)
clip_metrics=(--pickscore models/clip --clip models/clip --aesthetic rewards/aesthetic/aesthetic_head.pth --aesthetic-clip rewards/aesthetic/clip)
hps=(--hps rewards/hps/hps_tiny.pt --hps-config rewards/hps/open_clip_config.json --hps-tokenizer rewards/tokenizer)
generated() { grep -c "of 4 batches generated now" "$1" | tr -d '\n'; echo -n " models, batches generated: "; grep -o "[0-9]* of 4 batches generated now" "$1" | cut -d' ' -f1 | tr '\n' ' '; echo; }

echo "== every model, every metric"
"$exe" "${models[@]}" "${clip_metrics[@]}" "${hps[@]}" "${image_reward[@]}" --out full > full.log
tail -1 full.log
cp full/metrics.csv first_metrics.csv
for f in report.md metrics.json metrics.csv grids/animals.png grids/artifacts.png grids/people.png models/teacher_at_500/images/p00004_s002.png; do
  [ -s "full/$f" ] || { echo "missing full/$f"; exit 1; }
done
grep -q "| teacher-at-500 | 1 | — |" full/report.md || { echo "report.md lacks the named generator's row"; cat full/report.md; exit 1; }
grep -q "## Differences to teacher, 4 steps, CFG 3" full/report.md || { echo "report.md lacks the differences"; exit 1; }
"$py" "$here/check_evaluate.py" full models rewards 2>/dev/null
[ ${#image_reward[@]} -gt 0 ] && "$irpy" "$here/check_evaluate_image_reward.py" full ir ir/vocab98.txt 2>/dev/null

echo "== resume: the same command again"
"$exe" "${models[@]}" "${clip_metrics[@]}" "${hps[@]}" "${image_reward[@]}" --out full > again.log
generated again.log
[ "$(grep -c ": 0 of 4 batches generated now" again.log)" = 3 ] || { echo "the rerun generated images"; cat again.log; exit 1; }
cmp first_metrics.csv full/metrics.csv && echo "the same metrics.csv"

echo "== a metric added later (HPS): scored from the PNGs"
"$exe" "${models[@]}" "${clip_metrics[@]}" --out part > part1.log
"$exe" "${models[@]}" "${clip_metrics[@]}" "${hps[@]}" --out part > part2.log
generated part2.log
[ "$(grep -c ": 0 of 4 batches generated now" part2.log)" = 3 ] || { echo "adding a metric regenerated images"; cat part2.log; exit 1; }
same_scores() {  # every column of $2's metrics.csv equals $1's (45 rows)
  "$py" - "$1" "$2" <<'PY'
import csv, sys
a = list(csv.DictReader(open(sys.argv[1] + "/metrics.csv")))
b = list(csv.DictReader(open(sys.argv[2] + "/metrics.csv")))
assert len(a) == len(b) == 45, (len(a), len(b))
for x, y in zip(a, b):
    for k in y:
        assert x[k] == y[k], (k, x[k], y[k])
print(f"{sys.argv[2]}'s scores equal {sys.argv[1]}'s ({len(b)} images, {len(b[0])} columns)")
PY
}
same_scores full part

echo "== an interrupted run: one batch record removed"
rm part/models/gen_unet/batch_00002.safetensors
"$exe" "${models[@]}" "${clip_metrics[@]}" "${hps[@]}" --out part > part3.log
generated part3.log
grep -q "unet (one step, t\* 999): 1 of 4 batches generated now" part3.log || { echo "expected one batch generated again"; cat part3.log; exit 1; }
same_scores full part

echo "== a generator given as 05_text_to_image's output folder (unet/ + one_step.json)"
mkdir -p from05/generator && cp -r models/sd/unet from05/generator/unet
printf '{"t_star": 500, "prediction_type": "epsilon"}\n' > from05/generator/one_step.json
"$exe" --teacher models/sd --teacher-steps 0 --generator "teacher-at-500=from05/generator" --prompts prompts.tsv --seeds 3 --batch 4 \
  "${clip_metrics[@]}" --out from05_out > from05.log
"$py" - <<'PY'
import csv
full = [r for r in csv.DictReader(open("full/metrics.csv")) if r["model"] == "teacher-at-500"]
ours = list(csv.DictReader(open("from05_out/metrics.csv")))
assert len(full) == len(ours) == 15, (len(full), len(ours))
for a, b in zip(full, ours):
    for k in ("pickscore", "clip_score", "aesthetic"):
        assert a[k] == b[k], (k, a[k], b[k])
print("one_step.json's t* and prediction type give the scores of the same UNet named with t=500 (15 images)")
PY

echo "== refusals"
expect_error() {  # expect_error PATTERN ARGS...
  local pattern=$1; shift
  if "$exe" "$@" > refusal.log 2>&1; then echo "expected a refusal ($pattern)"; exit 1; fi
  grep -q -- "$pattern" refusal.log || { echo "expected '$pattern' in:"; cat refusal.log; exit 1; }
  echo "refused: $(grep -m1 -- "$pattern" refusal.log | cut -c1-150)"
}
expect_error "made with other settings" "${models[@]}" --seeds 2 "${clip_metrics[@]}" --out full
printf 'a caf\xe9 in Paris\n' > latin1.txt
expect_error "UTF-8" --teacher models/sd --prompts latin1.txt "${clip_metrics[@]}" --out bad
expect_error "does not exist\|not a folder\|Directory does not exist" --teacher models/sd --generator /nonexistent/unet --prompts prompts.tsv "${clip_metrics[@]}" --out bad
expect_error "mismatched models" --teacher models/sd --generator models/sdxl/unet --prompts prompts.tsv "${clip_metrics[@]}" --out bad
expect_error "no metric given" --teacher models/sd --prompts prompts.tsv --out bad
echo "di_evaluate end to end: all checks passed"
