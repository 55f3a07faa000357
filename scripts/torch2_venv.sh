#!/usr/bin/env bash
# Installs PyPI's torch wheel (the LibTorch 2.x of scripts/test_torch2.sh) and the Python test oracles
# of tests/python_oracles.txt into a venv, skipping what is there. The wheel's version is pinned
# here, in one place.
#   DIFFINSTRUCT_TORCH2_VERSION   wheel version (default below)
#   DIFFINSTRUCT_TORCH2_VENV      where the wheel is installed (default .torch2-venv, git-ignored)
# scripts/test.sh runs this in the background while pass 1 builds: the wheel is ~3 GB to fetch.
set -euo pipefail
cd "$(dirname "$0")/.."
version=${DIFFINSTRUCT_TORCH2_VERSION:-2.15.0}
venv=${DIFFINSTRUCT_TORCH2_VENV:-.torch2-venv}
if ! "$venv/bin/python" -c "import torch, sys; sys.exit(not torch.__version__.startswith('$version'))" 2>/dev/null; then
  echo "diffinstruct: installing torch==$version from PyPI into $venv"
  if ! python3 -m venv "$venv" 2>/dev/null; then
    apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    python3 -m venv "$venv"
  fi
  "$venv/bin/pip" install -q "torch==$version"
fi
# The Python oracles the parity tests compare against (pinned in tests/python_oracles.txt).
echo "diffinstruct: the test oracles of tests/python_oracles.txt into $venv"
"$venv/bin/pip" install -q -r tests/python_oracles.txt
# hpsv2 pins protobuf<4 and more than it imports: installed without its requirements, and give its vendored OpenCLIP the
# BPE vocabulary its wheel lacks (the same file open-clip-torch ships).
"$venv/bin/pip" install -q --no-deps -r tests/python_oracles_nodeps.txt
site=$("$venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
[ -f "$site/hpsv2/src/open_clip/bpe_simple_vocab_16e6.txt.gz" ] || cp "$site/open_clip/bpe_simple_vocab_16e6.txt.gz" "$site/hpsv2/src/open_clip/"
# ImageReward's oracle needs transformers 4.x: a venv of its own beside this one (scripts/imagereward_venv.sh).
DIFFINSTRUCT_TORCH2_VENV="$venv" bash scripts/imagereward_venv.sh
