"""C++ vs diffusers: forward + backward of the same UNet2DConditionModel config, same LibTorch, same
thread count, in one run (scripts/bench_unet.sh). Prints a markdown table with the ratio."""
import argparse
import json
import platform
import statistics
import subprocess
import time

import torch
from diffusers import UNet2DConditionModel


def python_median_ms(config, batch, size, seq, threads, iters):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = UNet2DConditionModel(**{k: v for k, v in config.items() if not k.startswith("_")}).train()
    x = torch.randn(batch, model.config.in_channels, size, size)
    t = torch.randint(0, 1000, (batch,))
    e = torch.randn(batch, seq, model.config.cross_attention_dim)
    times = []
    for i in range(iters + 3):
        model.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        model(x, t, e).sample.square().mean().backward()
        if i >= 3:
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), sum(p.numel() for p in model.parameters())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("config")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--seq", type=int, default=77)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    config = json.load(open(a.config))
    import diffusers
    print(f"torch {torch.__version__}, diffusers {diffusers.__version__}, {platform.processor() or platform.machine()}; "
          f"batch {a.batch}, {a.size}x{a.size} latents, {a.seq} tokens; median of {a.iters} iterations after 3 warm-up")
    print("| threads | round | C++ ms | diffusers ms | C++ / diffusers |\n|---|---|---|---|---|")
    for threads in a.threads:
        for r in range(a.rounds):  # interleaved, so that drift in the machine hits both sides
            out = subprocess.run([a.binary, a.config, str(a.batch), str(a.size), str(a.seq), str(threads), str(a.iters)],
                                 check=True, capture_output=True, text=True).stdout
            cpp = float(out.split()[1])
            py, n = python_median_ms(config, a.batch, a.size, a.seq, threads, a.iters)
            print(f"| {threads} | {r + 1} | {cpp:.1f} | {py:.1f} | {cpp / py:.3f} |")
    print(f"({n / 1e6:.2f} M parameters)")


if __name__ == "__main__":
    main()
