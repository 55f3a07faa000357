#!/usr/bin/env python3
"""Fits docs/memory.md's memory model to bench_memory's JSON and predicts SD 1.5 / SDXL sizes.

    python3 scripts/fit_memory.py results.json [--holdout-width W]

For each configuration, the peak bytes of a whole run (three UNets, gradients, Adam's moments and one
DI* step's activations) are fitted by least squares as

    peak ≈ a·P + b·B·S²·w + c·B·S⁴

P: parameters of one UNet; B: batch; S: latent side; w: the width (block_out_channels[0]). a·P is what
scales with the weights (three copies, two gradients, four Adam moments), b·B·S²·w the feature maps
(every level's channels × pixels is proportional to S²·w), c·B·S⁴ the attention scores at the
highest-resolution attention level (S² tokens attending to S² tokens, materialised by LibTorch 1.13's
composed attention; a fused attention kernel does not keep them). The fit uses every width but
--holdout-width (default: the largest), and reports its error on that width's runs, so the model is
checked on a size it did not see before it is used to extrapolate.

Predictions (batch 1): SD 1.5 (P = 859,520,964, w = 320, S = 64) is the family the benchmark scales, so
its prediction is an extrapolation along the measured family. SDXL (P = 2,567,463,684, w = 320, S = 128)
is another architecture (no attention at the first level, 10 transformer layers at the last): its
prediction uses the same coefficients with the attention term at S/2 and is rougher; docs/memory.md says so.
"""
import argparse
import json
import sys

import numpy as np

SD15 = dict(name="SD 1.5 UNet, 64x64 latents", params=859_520_964, width=320, size=64, attn_size=64)
SDXL = dict(name="SDXL UNet, 128x128 latents", params=2_567_463_684, width=320, size=128, attn_size=64)


def features(params, width, size, batch, attn_size=None):
    attn = size if attn_size is None else attn_size
    return np.array([params, batch * size * size * width, batch * float(attn) ** 4], dtype=np.float64)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("json")
    ap.add_argument("--holdout-width", type=int, default=None)
    args = ap.parse_args()
    rows = json.load(open(args.json))
    if not rows:
        sys.exit("fit_memory: no rows")
    widths = sorted({r["width"] for r in rows})
    holdout = args.holdout_width if args.holdout_width is not None else widths[-1]
    if len(widths) < 2:
        sys.exit("fit_memory: need at least two widths (one to hold out)")
    print(f"fit on widths {[w for w in widths if w != holdout]}, checked on width {holdout}")
    for config in sorted({r["config"] for r in rows}, key=lambda c: [r["config"] for r in rows].index(c)):
        rs = [r for r in rows if r["config"] == config]
        fit = [r for r in rs if r["width"] != holdout]
        test = [r for r in rs if r["width"] == holdout]
        X = np.stack([features(r["params"], r["width"], r["size"], r["batch"]) for r in fit])
        y = np.array([r["run_peak_bytes"] for r in fit], dtype=np.float64)
        scale = X.max(axis=0)
        coef, *_ = np.linalg.lstsq(X / scale, y, rcond=None)
        coef = coef / scale
        errs = []
        for r in test:
            pred = features(r["params"], r["width"], r["size"], r["batch"]) @ coef
            errs.append((pred - r["run_peak_bytes"]) / r["run_peak_bytes"])
        # Refit on everything for the predictions.
        Xa = np.stack([features(r["params"], r["width"], r["size"], r["batch"]) for r in rs])
        ya = np.array([r["run_peak_bytes"] for r in rs], dtype=np.float64)
        sa = Xa.max(axis=0)
        ca, *_ = np.linalg.lstsq(Xa / sa, ya, rcond=None)
        ca = ca / sa
        preds = []
        for m in (SD15, SDXL):
            f = features(m["params"], m["width"], m["size"], 1, m["attn_size"])
            preds.append((m["name"], f @ ca, f[0] * ca[0]))
        err_text = ", ".join(f"{100 * e:+.1f}%" for e in errs) if errs else "n/a"
        print(f"\n{config}: peak = {ca[0]:.2f} B/param * P + {ca[1]:.3f} B * (B S^2 w) + {ca[2]:.4f} B * (B S^4)")
        print(f"  held-out width {holdout}: prediction error {err_text}")
        for name, total, weights in preds:
            print(f"  {name}: {total / 2**30:.1f} GiB predicted ({weights / 2**30:.1f} GiB of it scaling with the parameters)")


if __name__ == "__main__":
    main()
