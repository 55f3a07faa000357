#!/usr/bin/env python3
"""bench_trainer_step: one DI* iteration, C++ library vs hand-written C++ vs plain PyTorch (Python).

Runs the C++ binary (Google Benchmark, JSON), then the same iteration in Python on the same LibTorch
(Debian's python3-torch 1.13) with the same thread count, and prints one table.

    /usr/bin/python3 benchmarks/bench_trainer_step.py build/benchmarks/bench_trainer_step [--threads N]
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time

# OpenBLAS sizes its own thread pool when it loads: set it before torch is imported (see main()).
_threads = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--threads=")), None)
if _threads is None and "--threads" in sys.argv:
    _threads = sys.argv[sys.argv.index("--threads") + 1]
os.environ.setdefault("OPENBLAS_NUM_THREADS", _threads or str(os.cpu_count()))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

ALPHA_REW, C = 0.3, 1.0


def cosine(t, s=0.008):  # diffinstruct::CosineVPSchedule
    f0 = math.cos(s / (1 + s) * math.pi / 2) ** 2
    ab = (torch.cos((t.double() + s) / (1 + s) * (math.pi / 2)) ** 2 / f0).clamp(0, 1).to(t.dtype)
    return ab.sqrt(), (1 - ab).sqrt()


class Mlp(nn.Module):
    def __init__(self, inp, out):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(inp, 128), nn.SiLU(), nn.Linear(128, 128), nn.SiLU(), nn.Linear(128, 128), nn.SiLU(),
                                 nn.Linear(128, out))

    def forward(self, x, t=None):
        if t is None:
            return self.net(x)
        return self.net(torch.cat([x, torch.sin(math.pi * t)[:, None], torch.cos(math.pi * t)[:, None]], 1))


class Conv(nn.Module):
    def __init__(self, inp):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(inp, 32, 3, padding=1), nn.SiLU(), nn.Conv2d(32, 32, 3, padding=1), nn.SiLU(),
                                 nn.Conv2d(32, 1, 3, padding=1))

    def forward(self, x, t=None):
        if t is None:
            return self.net(x)
        return self.net(torch.cat([x, t.view(-1, 1, 1, 1).expand_as(x)], 1))


ANGLES = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
MEANS = torch.stack([2 * torch.cos(ANGLES), 2 * torch.sin(ANGLES)], 1).float()


def mixture_teacher(x, t):  # exact ε̂ of the diffused 8-Gaussian ring (std 0.1)
    a, s = cosine(t)
    a, s = a[:, None], s[:, None]
    v = a * a * 0.01 + s * s
    centred = x[:, None, :] - a[:, :, None] * MEANS[None]
    r = torch.softmax(-(centred ** 2).sum(2) / (2 * v), 1)
    return s * (x - a * (r @ MEANS)) / v


def make_step(gen, asst, teacher, reward, shape):
    opt_g = torch.optim.Adam(gen.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_a = torch.optim.Adam(asst.parameters(), lr=1e-3, betas=(0.5, 0.999))
    B = shape[0]
    view = [B] + [1] * (len(shape) - 1)

    def step():
        with torch.no_grad():
            x0 = gen(torch.randn(shape))
        t = torch.rand(B) * 0.96 + 0.02
        eps = torch.randn(shape)
        a, s = cosine(t)
        x_t = a.view(view) * x0 + s.view(view) * eps
        loss = ((asst(x_t, t) - eps) ** 2).reshape(B, -1).sum(1).mean()
        opt_a.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(asst.parameters(), 1.0)
        opt_a.step()

        x0 = gen(torch.randn(shape))
        t = torch.rand(B) * 0.96 + 0.02
        eps = torch.randn(shape)
        a, s = cosine(t)
        sv = s.view(view)
        x_t = a.view(view) * x0 + sv * eps
        ea, eb = asst(x_t, t), teacher(x_t, t)
        y, g = (eb - ea) / sv, (ea - eps) / sv
        div = s ** 2 * (y * g).reshape(B, -1).sum(1) / torch.sqrt((y ** 2).reshape(B, -1).sum(1) + C * C)
        loss = (div - ALPHA_REW * reward(x0)).mean()
        params = list(gen.parameters())
        grads = torch.autograd.grad(loss, params)
        for p, gr in zip(params, grads):
            p.grad = gr
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt_g.step()
        return loss.item()

    return step


def time_python(step, min_time=2.0):
    for _ in range(3):
        step()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < min_time:
        step()
        n += 1
    return (time.perf_counter() - start) / n * 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("binary", help="path to build/benchmarks/bench_trainer_step")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="intra-op threads for both (default: every core)")
    args = ap.parse_args()
    if not os.access(args.binary, os.X_OK):
        sys.exit(f"error: expected the bench_trainer_step binary at '{args.binary}', found nothing executable")
    torch.set_num_threads(args.threads)
    out = subprocess.run([args.binary, f"--threads={args.threads}", "--benchmark_format=json"], check=True, capture_output=True, text=True)
    cpp = {b["name"].split("/")[0]: b["real_time"] for b in json.loads(out.stdout)["benchmarks"]}  # milliseconds

    torch.manual_seed(0)
    py = {
        "mlp": time_python(make_step(Mlp(2, 2), Mlp(4, 2), mixture_teacher, lambda x: torch.sigmoid(3 * x[:, 0]), [256, 2])),
    }
    teacher = Conv(2)
    for p in teacher.parameters():
        p.requires_grad_(False)
    py["conv"] = time_python(make_step(Conv(1), Conv(2), teacher, lambda x: torch.sigmoid(x.mean((1, 2, 3))), [64, 1, 16, 16]))

    print(f"one DI* iteration (K = 1), LibTorch {torch.__version__}, {args.threads} thread(s); milliseconds per step")
    print(f"{'model':<22}{'Python':>10}{'C++ hand':>10}{'C++ lib':>10}{'lib/Python':>12}{'lib/hand':>10}")
    for name, label in [("mlp", "MLP 2-D, batch 256"), ("conv", "conv 16x16, batch 64")]:
        lib, hand = cpp[f"{name}_library"], cpp[f"{name}_handwritten"]
        print(f"{label:<22}{py[name]:>10.3f}{hand:>10.3f}{lib:>10.3f}{lib / py[name]:>11.2f}x{lib / hand:>9.2f}x")


if __name__ == "__main__":
    main()
