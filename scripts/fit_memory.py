#!/usr/bin/env python3
"""Fits docs/memory.md's memory model to bench_memory's JSON and predicts SD 1.5 / SDXL sizes.

    python3 scripts/fit_memory.py results.json [--holdout-width W]

For each configuration, the peak bytes of a whole run (three UNets, gradients, Adam's moments and one
DI* step's activations) are fitted by least squares as

    peak ≈ a·P + b·B·S²·w + c·B·S⁴      (a, b, c ≥ 0)

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

GPUS_GB = (24, 48, 80, 141)
SD15 = dict(name="SD 1.5 UNet, 64x64 latents", params=859_520_964, width=320, size=64, attn_size=64)
SDXL = dict(name="SDXL UNet, 128x128 latents", params=2_567_463_684, width=320, size=128, attn_size=64)


def features(params, width, size, batch, attn_size=None):
    attn = size if attn_size is None else attn_size
    return np.array([params, batch * size * size * width, batch * float(attn) ** 4], dtype=np.float64)


def nonnegative_fit(X, y):
    """Least squares with every coefficient >= 0 (each term is memory: none can be negative): the best
    of the fits on every subset of the features whose coefficients all come out non-negative."""
    import itertools
    scale = X.max(axis=0)
    Xs = X / scale
    best, best_res = np.zeros(X.shape[1]), np.inf
    for k in range(1, X.shape[1] + 1):
        for cols in itertools.combinations(range(X.shape[1]), k):
            c, *_ = np.linalg.lstsq(Xs[:, cols], y, rcond=None)
            if np.any(c < 0):
                continue
            full = np.zeros(X.shape[1])
            full[list(cols)] = c
            res = np.sum((Xs @ full - y) ** 2)
            if res < best_res:
                best, best_res = full, res
    return best / scale


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
        y = np.array([r["peak_bytes"] for r in fit], dtype=np.float64)
        coef = nonnegative_fit(X, y)
        errs = []
        for r in test:
            pred = features(r["params"], r["width"], r["size"], r["batch"]) @ coef
            errs.append((pred - r["peak_bytes"]) / r["peak_bytes"])
        # Refit on everything for the predictions.
        Xa = np.stack([features(r["params"], r["width"], r["size"], r["batch"]) for r in rs])
        ya = np.array([r["peak_bytes"] for r in rs], dtype=np.float64)
        ca = nonnegative_fit(Xa, ya)
        err_text = ", ".join(f"{100 * e:+.1f}%" for e in errs) if errs else "n/a"
        print(f"\n{config}: peak = {ca[0]:.2f} B/param * P + {ca[1]:.3f} B * (B S^2 w) + {ca[2]:.4f} B * (B S^4)")
        print(f"  held-out width {holdout}: prediction error {err_text}")
        for m in (SD15, SDXL):
            cells = []
            for b in (1, 2, 4, 8):
                total = features(m["params"], m["width"], m["size"], b, m["attn_size"]) @ ca
                fits = [g for g in GPUS_GB if total <= g * 1e9]
                cells.append(f"batch {b}: {total / 1e9:.1f} GB (fits {fits[0] if fits else '>141'} GB)")
            print(f"  {m['name']}: " + "; ".join(cells))

if __name__ == "__main__":
    main()
