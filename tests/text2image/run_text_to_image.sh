#!/usr/bin/env bash
# 05_text_to_image end to end on tiny random diffusers/transformers folders (ctest "example: 05_text_to_image ..."):
#   run_text_to_image.sh PYTHON EXAMPLE LAUNCH_LOCAL WORK_DIR
# PYTHON must have the oracles of tests/python_oracles.txt; without them the test is skipped (exit 77).
#   1. make_tiny_pipelines.py writes SD (epsilon), SD (v_prediction) and SDXL pipelines and a CLIP model;
#   2. three runs of 3 steps: SD with a full generator and assistant in fp32; SD-v with a LoRA generator
#      and a LoRA assistant, the three roles on the teacher's one base; SDXL in bf16 with per-block checkpointing, 2
#      micro-batches, K = 2 and the LoRA assistant;
#   3. each trained generator loads into diffusers (from_pretrained, or load_lora_weights) and gives the
#      C++ samples (check_text_to_image.py roundtrip), and is 10x further from its starting point;
#   4. resume: 2 steps, then --resume to 3, equals 3 steps straight, bit for bit (full and LoRA);
#   5. several rewards (make_reward_fixtures.py's HPS and aesthetic models): the trained reward is the
#      weighted sum, the held-out one is logged at every evaluation; all held out is refused;
#   6. data parallel: 2 ranks x batch 1 follow 1 rank x batch 2 (when the build has --data-parallel).
set -euo pipefail
py=$1 exe=$2 launch=$3 work=$4
here=$(cd "$(dirname "$0")" && pwd)
if [ -z "$py" ] || ! "$py" -c "import diffusers, peft, safetensors, torch, transformers, PIL, hpsv2" 2>/dev/null; then
  echo "SKIPPED: no Python with diffusers, transformers, peft, safetensors, torch, PIL and hpsv2 (got '${py:-none}'); scripts/test_torch2.sh runs this test with them"
  exit 77
fi
rm -rf "$work" && mkdir -p "$work"
"$py" "$here/make_tiny_pipelines.py" "$work/models" > "$work/make.log" 2>&1 || { cat "$work/make.log"; exit 1; }
cat "$work/models/versions.json"; echo
common=(--reward "$work/models/clip" --steps 3 --batch 2 --eval-every 2 --save-every 1 --lr-generator 1e-3 --seed 3)
run() {  # run NAME TEACHER [flags...]
  local name=$1 teacher=$2
  shift 2
  echo "== $name: $*"
  "$exe" --teacher "$work/models/$teacher" --out "$work/$name" "${common[@]}" "$@" | tail -2
}
check() { "$py" "$here/check_text_to_image.py" "$@" 2>/dev/null; }
lora=(--generator-lora 4 --assistant-lora 4)
xl=(--precision bf16 --gradient-checkpointing --micro-batches 2 --K 2 --assistant-lora 4)
run sd sd
run sd_v_lora sd_v "${lora[@]}"
run sdxl sdxl "${xl[@]}"
check roundtrip "$work/models/sd" "$work/sd" 1e-4
check roundtrip "$work/models/sd_v" "$work/sd_v_lora" 1e-4
check roundtrip "$work/models/sdxl" "$work/sdxl" 5e-2   # bf16 autocast in C++, float32 in Python

# Resume: the first run stops after 2 steps, the second continues from its checkpoint.
run sd_resumed sd --steps 2
run sd_resumed sd --resume
check same "$work/sd" "$work/sd_resumed" 0
run sd_v_lora_resumed sd_v "${lora[@]}" --steps 2
run sd_v_lora_resumed sd_v "${lora[@]}" --resume
check same "$work/sd_v_lora" "$work/sd_v_lora_resumed" 0

# Several rewards: the CLIP reward and HPS (weight 0.5) trained on, the aesthetic predictor held out.
"$py" "$here/../rewards/make_reward_fixtures.py" "$work/rewards" > "$work/make_rewards.log" 2>&1 || { cat "$work/make_rewards.log"; exit 1; }
r="$work/rewards"
run sd_rewards sd --hps "$r/hps/hps_tiny.pt" --hps-config "$r/hps/open_clip_config.json" --hps-tokenizer "$r/tokenizer" --hps-weight 0.5 \
  --aesthetic "$r/aesthetic/aesthetic_head.pth" --aesthetic-clip "$r/aesthetic/clip" --aesthetic-weight 0
"$py" - "$work/sd_rewards/metrics.csv" <<'PY'
import csv, math, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["eval_reward"] not in ("", "nan")]
assert [r["step"] for r in rows] == ["0", "2", "3"], [r["step"] for r in rows]
for r in rows:
    terms = {k: float(r["eval_" + k]) for k in ("clip_reward", "hps", "aesthetic")}
    assert all(math.isfinite(v) for v in terms.values()), terms
    trained = terms["clip_reward"] + 0.5 * terms["hps"]  # the aesthetic term is held out: weight 0
    assert abs(float(r["eval_reward"]) - trained) <= 1e-5 * (1 + abs(trained)), (r["eval_reward"], trained)
print(f"weighted rewards: eval_reward = clip_reward + 0.5 hps at {len(rows)} evaluations; the held-out aesthetic score logged: "
      + ", ".join(r["eval_aesthetic"] for r in rows))
PY
if "$exe" --teacher "$work/models/sd" --out "$work/bad" "${common[@]}" --reward-weight 0 > "$work/bad.log" 2>&1; then
  echo "expected a refusal: every reward held out"; exit 1
fi
grep -q "every reward has weight 0" "$work/bad.log" && echo "refused: $(tail -1 "$work/bad.log")"

if ! "$exe" --help | grep -q "not in this build" && [ -x "$launch" ]; then
  echo "== data parallel: 2 ranks x batch 1"
  MASTER_PORT=$((29600 + RANDOM % 200)) "$launch" 2 "$exe" --teacher "$work/models/sd" --out "$work/sd_dp" "${common[@]}" --batch 1 --data-parallel | tail -2
  check same "$work/sd" "$work/sd_dp" 1e-4
else
  echo "(data parallel not built: skipped that part)"
fi
echo "05_text_to_image end to end: all checks passed"
