#!/usr/bin/env python3
"""Exports the models that examples/04_torchscript_models.cpp post-trains in C++, the way users bring
models from Python: a small diffusion model (the teacher, eps-prediction on the cosine VP schedule),
trained here on the 8-Gaussian ring; a one-step generator regressed onto the teacher's DDIM samples;
and a reward model. Each is saved with torch.jit.script(model).save(path).

Run with Debian's python3-torch:  /usr/bin/python3 examples/torchscript/export_models.py --out out/torchscript
"""
import argparse
import math
import os
import time

import torch


class Denoiser(torch.nn.Module):
    """eps(x_t, t) for 2-D points; t enters as (sin pi t, cos pi t)."""

    def __init__(self, hidden: int = 128):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(4, hidden), torch.nn.SiLU(), torch.nn.Linear(hidden, hidden), torch.nn.SiLU(),
            torch.nn.Linear(hidden, hidden), torch.nn.SiLU(), torch.nn.Linear(hidden, 2))

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x_t, torch.sin(math.pi * t)[:, None], torch.cos(math.pi * t)[:, None]], 1))


class Generator(torch.nn.Module):
    """x0 = g(z), one step."""

    def __init__(self, hidden: int = 128):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(2, hidden), torch.nn.SiLU(), torch.nn.Linear(hidden, hidden), torch.nn.SiLU(),
            torch.nn.Linear(hidden, 2))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class Reward(torch.nn.Module):
    """A bounded preference for the right half-plane: r(x) = sigmoid(3 x_0)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(3.0 * x[:, 0])


def alpha_sigma(t, offset=0.008):
    """The library's CosineVPSchedule (offset 0.008)."""
    f0 = math.cos(offset / (1 + offset) * math.pi / 2) ** 2
    abar = (torch.cos((t + offset) / (1 + offset) * math.pi / 2) ** 2 / f0).clamp(0, 1)
    return abar.sqrt(), (1 - abar).sqrt()


def ring(n, gen, k=8, radius=2.0, std=0.1):
    mode = torch.randint(k, (n,), generator=gen)
    angle = mode.double() * 2 * math.pi / k
    centres = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], 1)
    return (centres + std * torch.randn(n, 2, generator=gen, dtype=torch.float64)).float()


@torch.no_grad()
def ddim(teacher, z, steps=50, lo=0.0, hi=0.98):
    grid = torch.linspace(hi, lo, steps + 1)
    x = z
    for i in range(steps):
        t = torch.full((z.shape[0],), float(grid[i]))
        a, s = alpha_sigma(t)
        eps = teacher(x, t)
        x0 = (x - s[:, None] * eps) / a[:, None]
        a2, s2 = alpha_sigma(torch.full((z.shape[0],), float(grid[i + 1])))
        x = a2[:, None] * x0 + s2[:, None] * eps
    return x0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="out/torchscript")
    p.add_argument("--teacher-steps", type=int, default=3000)
    p.add_argument("--generator-steps", type=int, default=1500)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    if a.teacher_steps < 1 or a.generator_steps < 1:
        p.error("--teacher-steps and --generator-steps must be >= 1")
    os.makedirs(a.out, exist_ok=True)
    torch.manual_seed(a.seed)
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(a.seed)
    t0 = time.time()

    teacher = Denoiser()
    opt = torch.optim.Adam(teacher.parameters(), lr=1e-3)
    for step in range(a.teacher_steps):
        x0 = ring(512, gen)
        t = torch.rand(512, generator=gen) * 0.999 + 0.0005
        eps = torch.randn(512, 2, generator=gen)
        al, sg = alpha_sigma(t)
        loss = (teacher(al[:, None] * x0 + sg[:, None] * eps, t) - eps).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(f"teacher: {a.teacher_steps} steps, final loss {loss.item():.4f}")

    z = torch.randn(8192, 2, generator=gen)
    pairs = ddim(teacher, z)
    generator = Generator()
    opt = torch.optim.Adam(generator.parameters(), lr=1e-3)
    for step in range(a.generator_steps):
        idx = torch.randint(z.shape[0], (512,), generator=gen)
        loss = (generator(z[idx]) - pairs[idx]).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(f"generator: regressed onto DDIM pairs, {a.generator_steps} steps, final loss {loss.item():.4f}")

    for name, model in (("teacher", teacher), ("generator", generator), ("reward", Reward())):
        path = os.path.join(a.out, name + ".pt")
        torch.jit.script(model.eval()).save(path)
        print(f"wrote {path}")
    print(f"exported in {time.time() - t0:.1f} s with torch {torch.__version__}")


if __name__ == "__main__":
    main()
