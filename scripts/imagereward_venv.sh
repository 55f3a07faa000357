#!/usr/bin/env bash
# The venv of ImageReward's oracle (tests/python_oracles_imagereward.txt): its packages installed
# without their requirements, so that nothing here replaces the torch of the LibTorch 2.x venv
# (scripts/torch2_venv.sh, run first), whose site-packages a .pth file appends to this venv's path:
# this venv's own packages (transformers 4.x, timm 0.6) come first, torch and the rest from there.
#   DIFFINSTRUCT_IMAGEREWARD_VENV   where (default .imagereward-venv, git-ignored)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${DIFFINSTRUCT_IMAGEREWARD_VENV:-.imagereward-venv}
base=${DIFFINSTRUCT_TORCH2_VENV:-.torch2-venv}
[ -x "$base/bin/python" ] || { echo "imagereward_venv.sh: run scripts/torch2_venv.sh first (no $base)" >&2; exit 1; }
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --no-deps -r tests/python_oracles_imagereward.txt
site=$("$venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
"$base/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])" > "$site/diffinstruct_torch2_venv.pth"
"$venv/bin/python" -c "import torch, transformers, timm; assert transformers.__version__.startswith('4.'), transformers.__version__"
