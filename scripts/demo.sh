#!/usr/bin/env bash
# The main job: installs what is missing (apt, including Debian's dataset-fashion-mnist), builds, and
# runs the compositional text-to-image miniature (docs/compositional.md): a tokenizer, CLIP, VAE and
# UNet teacher trained here with the library's own classes on captioned Fashion-MNIST compositions, a
# one-step generator distilled from the teacher, then DI* and its rivals (DI++, SIM, DI, few-step DI*,
# reward-scale sweeps) from it, every model scored by an exact evaluator. The report, sample grids,
# plot, metrics and the diffusers/transformers folders go to out/compositional/; every stage is cached
# there, so a rerun resumes. Extra arguments go to the program (try --help): --seeds 3 gives the table
# of docs/results.md (mean ± sd over three post-training seeds; about twice as long).
# The class-label miniature with its CPU kernels pinned (the same table on every machine) is
# scripts/fashion.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
bash scripts/build.sh --target 06_compositional
exec ./build/examples/06_compositional --out out/compositional "$@"
