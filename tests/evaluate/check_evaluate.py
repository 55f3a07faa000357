"""Scores di_evaluate's PNGs with the metrics' original code and compares with its metrics.csv
(tests/evaluate/run_evaluate.sh):

    python check_evaluate.py OUT MODELS REWARDS

pickscore   transformers' CLIPImageProcessorPil + CLIPModel: exp(logit_scale) * cos (PickScore's inference code)
clip_score  the same processor and model: 100 * max(cos, 0) (torchmetrics' CLIPScore)
hps         hpsv2's own OpenCLIP model and preprocess_val, get_tokenizer("ViT-H-14"): cos (img_score.py)
aesthetic   torchvision Resize + CenterCrop on the PIL image, CLIP image features, the head on e / |e|
Prints the largest relative difference per metric and fails past 1e-4 (float32 models on both sides).
"""
import csv
import json
import os
import sys

import torch
import torch.nn as nn
from PIL import Image

out, models, rewards = sys.argv[1:4]
rows = list(csv.DictReader(open(os.path.join(out, "metrics.csv"), encoding="utf-8")))
images = [Image.open(os.path.join(out, r["image"])).convert("RGB") for r in rows]
prompts = [r["prompt"] for r in rows]
worst = {}


def compare(name, ours, theirs):
    ours, theirs = torch.tensor(ours, dtype=torch.float64), theirs.double()
    err = ((ours - theirs).norm() / theirs.norm().clamp_min(1e-12)).item()
    worst[name] = err
    print(f"{name}: {len(ours)} images, relative difference {err:.2e}")


with torch.no_grad():
    from transformers import CLIPModel, CLIPTokenizer
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
    clip = CLIPModel.from_pretrained(os.path.join(models, "clip")).eval()
    tok = CLIPTokenizer.from_pretrained(os.path.join(models, "clip"))
    size = clip.config.vision_config.image_size
    processor = CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    feats = lambda f: f.pooler_output if hasattr(f, "pooler_output") else f
    img = feats(clip.get_image_features(pixel_values=processor(images=images, return_tensors="pt")["pixel_values"]))
    txt = feats(clip.get_text_features(**tok(prompts, padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt")))
    cos = ((img / img.norm(dim=-1, keepdim=True)) * (txt / txt.norm(dim=-1, keepdim=True))).sum(-1)
    compare("pickscore", [float(r["pickscore"]) for r in rows], clip.logit_scale.exp() * cos)
    compare("clip_score", [float(r["clip_score"]) for r in rows], 100 * cos.clamp_min(0))

    from hpsv2.src.open_clip import get_tokenizer
    from hpsv2.src.open_clip.model import CLIP
    from hpsv2.src.open_clip.transform import image_transform
    config = json.load(open(os.path.join(rewards, "hps", "open_clip_config.json")))
    hps = CLIP(config["embed_dim"], config["vision_cfg"], config["text_cfg"], quick_gelu=False, output_dict=True).eval()
    hps.load_state_dict(torch.load(os.path.join(rewards, "hps", "hps_tiny.pt"), map_location="cpu")["state_dict"])
    preprocess_val = image_transform(224, is_train=False, resize_longest_max=True)
    o = hps(torch.stack([preprocess_val(i) for i in images]), get_tokenizer("ViT-H-14")(prompts))
    compare("hps", [float(r["hps"]) for r in rows], (o["image_features"] * o["text_features"]).sum(-1))

    from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Normalize, Resize, ToTensor
    aclip = CLIPModel.from_pretrained(os.path.join(rewards, "aesthetic", "clip")).eval()
    n = aclip.config.vision_config.image_size
    tv = Compose([Resize(n, interpolation=InterpolationMode.BICUBIC), CenterCrop(n), ToTensor(),
                  Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))])
    e = feats(aclip.get_image_features(pixel_values=torch.stack([tv(i) for i in images])))
    state = torch.load(os.path.join(rewards, "aesthetic", "aesthetic_head.pth"), map_location="cpu")
    head = nn.Sequential(nn.Linear(e.shape[1], 1024), nn.Dropout(0.2), nn.Linear(1024, 128), nn.Dropout(0.2), nn.Linear(128, 64),
                         nn.Dropout(0.1), nn.Linear(64, 16), nn.Linear(16, 1)).eval()
    head.load_state_dict({k.replace("layers.", ""): v for k, v in state.items()})
    compare("aesthetic", [float(r["aesthetic"]) for r in rows], head(e / e.norm(dim=-1, keepdim=True)).squeeze(-1))

bad = {k: v for k, v in worst.items() if not v <= 1e-4}
if bad:
    sys.exit(f"di_evaluate's scores differ from the originals': {bad}")
print("di_evaluate's scores match the originals'")
