"""Scores di_evaluate's PNGs with ImageReward's own code and compares with its metrics.csv column
image_reward (tests/evaluate/run_evaluate.sh; the venv of scripts/imagereward_venv.sh):

    python check_evaluate_image_reward.py OUT IMAGE_REWARD_DIR VOCAB

The model: image-reward's BLIP VisionTransformer and BertModel with its MLP (the tiny configuration of
tests/rewards/make_image_reward_fixtures.py, from its config.json), ImageReward.pt loaded into it;
ImageReward's `_transform` on the PIL image, BertTokenizer with [DEC] and [ENC], max length 35, and
ImageReward.score_gard. Fails past a relative difference of 1e-4.
"""
import csv
import importlib.util
import json
import os
import sys
import types

import torch
import torch.nn as nn
from PIL import Image

out, folder, vocab = sys.argv[1:4]
root = list(importlib.util.find_spec("ImageReward").submodule_search_locations)[0]
for name, path in [("ImageReward", root), ("ImageReward.models", os.path.join(root, "models")), ("ImageReward.models.BLIP", os.path.join(root, "models", "BLIP"))]:
    package = types.ModuleType(name)  # its __init__ imports packages the scorer does not need
    package.__path__ = [path]
    sys.modules[name] = package
from ImageReward.ImageReward import MLP, ImageReward, _transform  # noqa: E402
from ImageReward.models.BLIP.med import BertConfig, BertModel  # noqa: E402
from ImageReward.models.BLIP.vit import VisionTransformer  # noqa: E402
from transformers import BertTokenizer  # noqa: E402

config = json.load(open(os.path.join(folder, "config.json")))
model = nn.Module()
model.device = "cpu"
model.blip = nn.Module()
model.blip.visual_encoder = VisionTransformer(**config["vision"])
bert = BertConfig(**config["med"])
bert.encoder_width = config["vision"]["embed_dim"]
model.blip.text_encoder = BertModel(config=bert, add_pooling_layer=False)
model.blip.vision_proj = nn.Linear(config["vision"]["embed_dim"], 8)
model.blip.text_proj = nn.Linear(config["med"]["hidden_size"], 8)
model.mlp = MLP(config["med"]["hidden_size"])
model.mean, model.std = 0.16717362830052426, 1.0333394966054072
model.load_state_dict(torch.load(os.path.join(folder, "ImageReward.pt"), map_location="cpu"))
model.eval()
tokenizer = BertTokenizer(vocab_file=vocab, do_lower_case=True)
tokenizer.add_special_tokens({"bos_token": "[DEC]"})
tokenizer.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
rows = list(csv.DictReader(open(os.path.join(out, "metrics.csv"), encoding="utf-8")))
preprocess = _transform(config["vision"]["img_size"])
with torch.no_grad():
    pixels = torch.stack([preprocess(Image.open(os.path.join(out, r["image"]))) for r in rows])
    t = tokenizer([r["prompt"] for r in rows], padding="max_length", truncation=True, max_length=35, return_tensors="pt")
    theirs = ImageReward.score_gard(model, t.input_ids, t.attention_mask, pixels).squeeze(-1).double()
ours = torch.tensor([float(r["image_reward"]) for r in rows], dtype=torch.float64)
err = ((ours - theirs).norm() / theirs.norm()).item()
print(f"image_reward: {len(rows)} images, relative difference {err:.2e}")
if not err <= 1e-4:
    sys.exit("di_evaluate's ImageReward scores differ from ImageReward's")
print("di_evaluate's ImageReward scores match ImageReward's")
