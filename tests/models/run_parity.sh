#!/usr/bin/env bash
# The parity test against diffusers (ctest "models: parity with diffusers"):
#   run_parity.sh PYTHON MODEL_PARITY DI_RUN_MODEL WORK_DIR
# PYTHON must have the oracles of tests/python_oracles.txt (scripts/test_torch2.sh installs them into
# its venv). Without them the test is skipped (exit 77), and says so.
set -euo pipefail
py=$1 parity=$2 run_model=$3 work=$4
here=$(cd "$(dirname "$0")" && pwd)
if [ -z "$py" ] || ! "$py" -c "import diffusers, safetensors, torch, transformers" 2>/dev/null; then
  echo "SKIPPED: no Python with diffusers, transformers, safetensors and torch (got '${py:-none}'); scripts/test_torch2.sh runs this test with them"
  exit 77
fi
rm -rf "$work" && mkdir -p "$work/runs"
"$py" "$here/make_fixtures.py" "$work/fixtures"
mkdir -p "$work/fixtures/roundtrip" && "$py" "$here/safetensors_roundtrip.py" write "$work/fixtures/roundtrip"
cat "$work/fixtures/versions.json"; echo
"$parity" "$work/fixtures" "$work/export"
for m in sd15 sdxl; do
  "$run_model" --model "$work/fixtures/$m" --kind unet --inputs "$work/fixtures/$m/inputs.safetensors" --outputs "$work/runs/$m.safetensors"
done
for m in clip_text clip_text_proj; do
  "$run_model" --model "$work/fixtures/$m" --kind clip-text --inputs "$work/fixtures/$m/inputs.safetensors" --outputs "$work/runs/$m.safetensors"
done
"$run_model" --model "$work/fixtures/clip_vision_proj" --kind clip-vision --inputs "$work/fixtures/clip_vision_proj/inputs.safetensors" \
  --outputs "$work/runs/clip_vision_proj.safetensors"
"$run_model" --model "$work/fixtures/vae" --kind vae-decoder --inputs "$work/fixtures/vae/inputs.safetensors" --outputs "$work/runs/vae.safetensors"
"$py" "$here/safetensors_roundtrip.py" check "$work/fixtures/roundtrip"
"$py" "$here/check_outputs.py" "$work/fixtures" "$work/export" "$work/runs"
echo "parity with diffusers: all checks passed"
