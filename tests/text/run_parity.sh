#!/usr/bin/env bash
# The parity test of the text side against transformers (ctest "text: CLIP tokenizer parity ..."):
#   run_parity.sh PYTHON DI_RUN_MODEL WORK_DIR
# PYTHON must have the oracles of tests/python_oracles.txt (scripts/test_torch2.sh installs them into
# its venv). Without them the test is skipped (exit 77), and says so.
set -euo pipefail
py=$1 run_model=$2 work=$3
here=$(cd "$(dirname "$0")" && pwd)
if [ -z "$py" ] || ! "$py" -c "import regex, safetensors, tokenizers, torch, transformers" 2>/dev/null; then
  echo "SKIPPED: no Python with transformers, tokenizers, safetensors and torch (got '${py:-none}'); scripts/test_torch2.sh runs this test with them"
  exit 77
fi
rm -rf "$work" && mkdir -p "$work/runs"
"$py" "$here/make_tokenizer_fixtures.py" "$work/fixtures"
cat "$work/fixtures/versions.json"; echo
for t in clip clip_pad_bang; do
  "$run_model" --model "$work/fixtures/$t" --kind clip-tokenizer --text "$work/fixtures/prompts.txt" --outputs "$work/runs/$t.safetensors" \
    --decoded "$work/runs/$t.decoded.json"
done
"$py" "$here/check_tokenizer.py" "$work/fixtures" "$work/runs"
echo "text parity with transformers: all checks passed"
