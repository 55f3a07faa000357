"""The Python twin of benchmarks/bench_reward.cpp: the same reward at its real size (random weights)
built with the original's own classes, the same path (images in [-1, 1] to [0, 1], the original's
tensor preprocessing, the frozen model, the score), forward and backward to the pixels.

    python bench_reward.py hps|aesthetic|image_reward THREADS ITERS BATCH SIDE

hps           hpsv2's vendored OpenCLIP `CLIP` with ViT-H-14's configuration; ResizeMaxSize + Normalize
              on the tensor; the cosine with precomputed text features (torch2 venv)
aesthetic     transformers' CLIPVisionModelWithProjection (ViT-L/14) and improved-aesthetic-predictor's
              MLP; bicubic antialiased resize, centre crop, normalise (torch2 venv)
image_reward  image-reward's BLIP VisionTransformer (ViT-L/16) and BertModel (bert-base, cross-attention,
              its med_config's values) and MLP; ImageReward.score_gard (the imagereward venv)
Prints one JSON line with the median seconds (the first iteration is a warm-up).
"""
import json
import os
import sys
import time
import types

import torch
import torch.nn as nn
import torch.nn.functional as F

kind, threads, iters, batch, side = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(threads)
torch.manual_seed(0)
MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
STD = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)


def resize_crop(x, size):
    h, w = x.shape[-2:]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    x = F.interpolate(x, size=(nh, nw), mode="bicubic", align_corners=False, antialias=True)
    top, left = (nh - size) // 2, (nw - size) // 2
    return (x[..., top:top + size, left:left + size] - MEAN) / STD


def freeze(m):
    m.eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m


if kind == "hps":
    from hpsv2.src.open_clip.model import CLIP
    from hpsv2.src.open_clip.transform import ResizeMaxSize
    model = freeze(CLIP(1024, {"image_size": 224, "layers": 32, "width": 1280, "head_width": 80, "patch_size": 14},
                        {"context_length": 77, "vocab_size": 49408, "width": 1024, "heads": 16, "layers": 24}, output_dict=True))
    params = sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        text = model.encode_text(torch.randint(0, 49407, (batch, 77)), normalize=True)
    resize = ResizeMaxSize(224)

    def reward(x):
        images = (x / 2 + 0.5).clamp(0, 1)
        img = model.encode_image((torch.stack([resize(i) for i in images]) - MEAN) / STD, normalize=True)  # ResizeMaxSize takes one image
        return (img * text).sum(-1)
elif kind == "aesthetic":
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection
    clip = freeze(CLIPVisionModelWithProjection(CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                                                                 num_attention_heads=16, image_size=224, patch_size=14, projection_dim=768)))
    head = freeze(nn.Sequential(nn.Linear(768, 1024), nn.Dropout(0.2), nn.Linear(1024, 128), nn.Dropout(0.2), nn.Linear(128, 64),
                                nn.Dropout(0.1), nn.Linear(64, 16), nn.Linear(16, 1)))
    params = sum(p.numel() for p in clip.parameters()) + sum(p.numel() for p in head.parameters())

    def reward(x):
        e = clip(pixel_values=resize_crop((x / 2 + 0.5).clamp(0, 1), 224)).image_embeds
        return head(e / e.norm(dim=-1, keepdim=True)).squeeze(-1)
elif kind == "image_reward":
    import importlib.util
    root = list(importlib.util.find_spec("ImageReward").submodule_search_locations)[0]
    for name, path in [("ImageReward", root), ("ImageReward.models", os.path.join(root, "models")),
                       ("ImageReward.models.BLIP", os.path.join(root, "models", "BLIP"))]:
        package = types.ModuleType(name)  # its __init__ imports packages the model does not need
        package.__path__ = [path]
        sys.modules[name] = package
    from ImageReward.ImageReward import MLP, ImageReward
    from ImageReward.models.BLIP.med import BertConfig, BertModel
    from ImageReward.models.BLIP.vit import VisionTransformer
    med = json.load(open(os.path.join(root, "models", "BLIP", "med_config.json"))) if os.path.exists(
        os.path.join(root, "models", "BLIP", "med_config.json")) else dict(
        architectures=["BertModel"], attention_probs_dropout_prob=0.1, hidden_act="gelu", hidden_dropout_prob=0.1, hidden_size=768,
        initializer_range=0.02, intermediate_size=3072, layer_norm_eps=1e-12, max_position_embeddings=512, model_type="bert",
        num_attention_heads=12, num_hidden_layers=12, pad_token_id=0, type_vocab_size=2, vocab_size=30524, encoder_width=768,
        add_cross_attention=True)
    model = nn.Module()
    model.device = "cpu"
    model.blip = nn.Module()
    model.blip.visual_encoder = VisionTransformer(img_size=224, patch_size=16, embed_dim=1024, depth=24, num_heads=16)
    config = BertConfig(**med)
    config.encoder_width = 1024
    model.blip.text_encoder = BertModel(config=config, add_pooling_layer=False)
    model.mlp = MLP(768)
    model.mean, model.std = 0.16717362830052426, 1.0333394966054072
    freeze(model)
    params = sum(p.numel() for p in model.parameters())
    ids = torch.randint(5, 205, (batch, 35))
    ids[:, 0], ids[:, -1] = 101, 102
    mask = torch.ones_like(ids)

    def reward(x):
        return ImageReward.score_gard(model, ids, mask, resize_crop((x / 2 + 0.5).clamp(0, 1), 224)).squeeze(-1)
else:
    sys.exit(f"unknown kind {kind}")

pixels = torch.rand(batch, 3, side, side) * 2 - 1
seconds = []
for i in range(iters + 1):
    x = pixels.clone().requires_grad_(True)
    t0 = time.perf_counter()
    g, = torch.autograd.grad(reward(x).sum(), x)
    dt = time.perf_counter() - t0
    assert torch.isfinite(g).all()
    if i >= 1:
        seconds.append(dt)
seconds.sort()
print(json.dumps({"kind": kind, "side": "python", "params": params, "median_s": round(seconds[len(seconds) // 2], 4),
                  "torch": torch.__version__}))
