"""How far the differentiable clip_preprocess (resize the short side, bicubic with antialiasing;
centre crop; normalise) is from transformers' PIL-based CLIPImageProcessor, which is what a Python
reward sees when it scores saved 8-bit images.

    python benchmarks/clip_preprocess_vs_pil.py

The torch twin below is the exact computation of the C++ models::clip_preprocess (the parity test
checks the C++ reward against it to 1e-7). Images are smooth random RGB fields with sharp-edged
shapes (both kinds of content matter to resampling), at SD 1.5's 512², SDXL's 1024², a 768x512
landscape and a 64² toy generator's size; each goes through both paths from the same 8-bit values.
Differences are in 8-bit levels of the image (|Δ pixel_values| · std · 255).
"""
import math

import numpy as np
import torch
import torch.nn.functional as F
import transformers
from PIL import Image
from transformers import CLIPImageProcessor


def torch_twin(images, size=224):  # images [B, 3, H, W] in [0, 1]
    h, w = images.shape[-2:]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    x = images
    if (nh, nw) != (h, w):
        x = F.interpolate(x, size=(nh, nw), mode="bicubic", align_corners=False, antialias=True)
    top, left = (nh - size) // 2, (nw - size) // 2
    x = x[:, :, top:top + size, left:left + size]
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
    return (x - mean) / std


def test_image(h, w, rng):
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.zeros((h, w, 3))
    for c in range(3):
        for _ in range(6):
            fx, fy, ph = rng.uniform(0.5, 12, 2).tolist() + [rng.uniform(0, 2 * math.pi)]
            img[..., c] += rng.uniform(0.05, 0.2) * np.sin(2 * math.pi * (fx * xx + fy * yy) + ph)
    for _ in range(5):  # sharp-edged rectangles
        y0, x0 = rng.integers(0, h - h // 4), rng.integers(0, w - w // 4)
        img[y0:y0 + h // 5, x0:x0 + w // 5] += rng.uniform(-0.5, 0.5, 3)
    return (np.clip(img + 0.5, 0, 1) * 255).round().astype(np.uint8)


def main():
    torch.set_num_threads(1)
    proc = CLIPImageProcessor()
    rng = np.random.default_rng(0)
    std = torch.tensor(proc.image_std).view(1, 3, 1, 1)
    print(f"transformers {transformers.__version__}, torch {torch.__version__}, processor {type(proc).__name__}")
    print("| image size | images | mean abs Δ (8-bit levels) | 99th percentile | max | relative L2 of pixel_values |")
    print("|---|---|---|---|---|---|")
    for h, w in ((512, 512), (1024, 1024), (512, 768), (64, 64)):
        imgs = [test_image(h, w, rng) for _ in range(8)]
        pil = proc(images=[Image.fromarray(i) for i in imgs], return_tensors="pt").pixel_values
        ours = torch_twin(torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float() / 255)
        levels = ((ours - pil) * std * 255).abs()
        rel = ((ours - pil).norm() / pil.norm()).item()
        print(f"| {h}x{w} | {len(imgs)} | {levels.mean():.3f} | {levels.flatten().quantile(0.99):.2f} | {levels.max():.2f} | {rel:.2e} |")


if __name__ == "__main__":
    main()
