"""Prints the real-size benchmark's table (benchmarks/real_size/run.sh) from its JSON files.

    python3 report.py OUT_DIR

One table per configuration and precision: each run's median seconds per step (after the first), its
ratio to PyTorch's default run, user and system CPU seconds per step, peak RSS, and the first step's
generator and assistant losses with their relative difference from the library's (the same draws and
initial adapters: the same math agrees to float round-off).
"""
import glob
import json
import os
import statistics
import sys


def seconds(r):
    """The median seconds per step after the first (the first also allocates Adam's moments)."""
    timed = r["step_seconds"][1:] or r["step_seconds"]
    return statistics.median(timed)


def rounds(out):
    """Interleaved rounds (OUT_DIR/rounds/rN-SIDE.json, run.sh's ROUNDS): each side's per-round medians, and
    the median over rounds of the per-round ratios, which a drift of the machine's speed hits alike."""
    files = sorted(glob.glob(os.path.join(out, "rounds", "r*-*.json")))
    if not files:
        return
    by = {}
    for f in files:
        rnd, side = os.path.basename(f)[:-5].split("-", 1)
        by.setdefault(side, {})[rnd] = json.load(open(f))
    names = sorted({r for s in by.values() for r in s})
    print("\n### interleaved rounds\n")
    print("| side | " + " | ".join(names) + " | median s / step | system s / step | peak RSS GB |")
    print("|---|" + "---|" * (len(names) + 3))
    med = lambda xs: sorted(xs)[len(xs) // 2]
    for side, runs in by.items():
        secs = [seconds(runs[n]) for n in names if n in runs]
        sys_s = [runs[n]["system_seconds_per_step"] for n in names if n in runs]
        rss = max(runs[n]["peak_rss_bytes"] for n in names if n in runs)
        cells = " | ".join(f"{seconds(runs[n]):.1f}" if n in runs else "-" for n in names)
        print(f"| {side} | {cells} | {med(secs):.1f} | {med(sys_s):.1f} | {rss / 1e9:.2f} |")
    pairs = [("library-tc", "pytorch-tc"), ("library", "pytorch"), ("library-tc", "pytorch"), ("library-tc", "library"), ("pytorch-tc", "pytorch")]
    for a, b in pairs:
        if a in by and b in by:
            ratios = [seconds(by[a][n]) / seconds(by[b][n]) for n in names if n in by[a] and n in by[b]]
            print(f"\n{a} / {b}: per round " + ", ".join(f"{x:.3f}" for x in ratios) + f"; median {med(ratios):.3f}")


def main():
    out = sys.argv[1]
    rounds(out)
    for run in sorted(d for d in glob.glob(os.path.join(out, "*-*")) if os.path.isdir(d)):
        rows = {os.path.basename(f)[:-5]: json.load(open(f)) for f in sorted(glob.glob(os.path.join(run, "*.json")))}
        if not rows:
            continue
        ref = rows.get("pytorch")
        lib = next((r for k, r in rows.items() if k.startswith("library")), None)
        print(f"\n### {os.path.basename(run)}\n")
        print("| run | LibTorch | s / step | vs PyTorch | user s | system s | peak RSS GB | first loss (generator, assistant) | rel. diff |")
        print("|---|---|---|---|---|---|---|---|---|")
        for name, r in rows.items():
            f = r["first_step"]
            ratio = f"{seconds(r) / seconds(ref):.2f}x" if ref else "-"
            diff = "-"
            if lib is not None and r is not lib:
                g0, a0 = lib["first_step"]["generator_loss"], lib["first_step"]["assistant_loss"]
                diff = f"{abs(f['generator_loss'] - g0) / abs(g0):.1e}, {abs(f['assistant_loss'] - a0) / abs(a0):.1e}"
            print(f"| {name} | {r['torch']} | {seconds(r):.1f} | {ratio} | {r['user_seconds_per_step']:.1f} | "
                  f"{r['system_seconds_per_step']:.1f} | {r['peak_rss_bytes'] / 1e9:.2f} | {f['generator_loss']:.6g}, {f['assistant_loss']:.6g} | {diff} |")
        for name, r in rows.items():
            if "unet_forwards_per_step" in r:
                print(f"\n{name}: UNet forward calls per step {r['unet_forwards_per_step']} (checkpointing's recomputes are per block, not counted)")
            if "phases_seconds_per_step" in r:
                p = r["phases_seconds_per_step"]
                print(f"\n{name}: seconds per step by phase: " + ", ".join(f"{k} {v:.1f}" for k, v in p.items()))


if __name__ == "__main__":
    main()
