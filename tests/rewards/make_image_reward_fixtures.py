"""Builds a tiny random ImageReward with ImageReward 1.5's own classes and records what it computes, for
the C++ parity test (tests/rewards/image_reward_parity.cpp). Runs in the venv of
scripts/imagereward_venv.sh (transformers 4.x, timm 0.6):

    python make_image_reward_fixtures.py OUT_DIR

ImageReward's package __init__ imports its trainer (diffusers, accelerate, datasets) and its models'
__init__ imports OpenAI's `clip`; building
BLIP_Pretrain downloads bert-base-uncased; so the package is registered without running its
__init__, and the parts are built directly from its own modules: BLIP's VisionTransformer (vit.py),
med.py's BertModel with cross-attention (its BertConfig, encoder_width overwritten by the vision
width as BLIP does), ImageReward.MLP, and ImageReward.score_gard computes the score. Writes
ImageReward.pt (torch.save of the state dict, with the unused BLIP projections, as the published file
has them), config.json (the tiny sizes), inputs and expected outputs (float32, seeded).
"""
import json
import os
import sys
import types

import torch
import torch.nn as nn
from safetensors.torch import save_file

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
import importlib.util

root = list(importlib.util.find_spec("ImageReward").submodule_search_locations)[0]
for name, folder in [("ImageReward", root), ("ImageReward.models", os.path.join(root, "models")),
                     ("ImageReward.models.BLIP", os.path.join(root, "models", "BLIP"))]:
    package = types.ModuleType(name)  # a package whose __init__ (which imports clip, diffusers, ...) is not run
    package.__path__ = [folder]
    sys.modules[name] = package
from ImageReward.ImageReward import MLP, ImageReward  # noqa: E402
from ImageReward.models.BLIP.med import BertConfig, BertModel  # noqa: E402
from ImageReward.models.BLIP.vit import VisionTransformer  # noqa: E402

torch.manual_seed(0)
vision = dict(img_size=32, patch_size=16, embed_dim=64, depth=2, num_heads=1)  # BLIP's head size, 64
med = dict(vocab_size=100, hidden_size=24, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48, max_position_embeddings=40,
           layer_norm_eps=1e-12, hidden_act="gelu", encoder_width=768, add_cross_attention=True, hidden_dropout_prob=0.1,
           attention_probs_dropout_prob=0.1, type_vocab_size=2, pad_token_id=0)


class Tiny(nn.Module):
    """What ImageReward.score_gard reads of `self`: blip.visual_encoder, blip.text_encoder, mlp, mean, std, device."""

    def __init__(self):
        super().__init__()
        self.device = "cpu"
        self.blip = nn.Module()
        self.blip.visual_encoder = VisionTransformer(**vision)
        config = BertConfig(**med)
        config.encoder_width = vision["embed_dim"]  # as BLIP_Pretrain does
        self.blip.text_encoder = BertModel(config=config, add_pooling_layer=False)
        self.blip.vision_proj = nn.Linear(vision["embed_dim"], 8)
        self.blip.text_proj = nn.Linear(med["hidden_size"], 8)
        self.mlp = MLP(med["hidden_size"])
        self.mean, self.std = 0.16717362830052426, 1.0333394966054072


model = Tiny().eval()
with torch.no_grad():  # zero-initialised parts (cls_token, pos_embed, biases, the head) made to matter
    for n, p in model.named_parameters():
        p.add_(0.05 * torch.randn_like(p))
torch.save(model.state_dict(), os.path.join(out, "ImageReward.pt"))
with open(os.path.join(out, "config.json"), "w") as f:
    json.dump({"vision": vision, "med": med}, f)
with open(os.path.join(out, "med_config.json"), "w") as f:
    json.dump(med, f)

g = torch.Generator().manual_seed(1)
pixel_values = torch.randn(3, 3, 32, 32, generator=g).requires_grad_(True)
ids = torch.tensor([[101, 7, 8, 9, 102, 0, 0, 0, 0, 0], [101, 11, 12, 13, 14, 15, 16, 17, 18, 102], [101, 99, 102, 0, 0, 0, 0, 0, 0, 0]])
mask = (ids != 0).long()
ids = ids % med["vocab_size"]
score = ImageReward.score_gard(model, ids, mask, pixel_values).squeeze(-1)
cot = torch.randn(score.shape, generator=g)
(score * cot).sum().backward()
with torch.no_grad():
    tokens = model.blip.visual_encoder(pixel_values)
    text = model.blip.text_encoder(ids, attention_mask=mask, encoder_hidden_states=tokens,
                                   encoder_attention_mask=torch.ones(tokens.shape[:-1], dtype=torch.long), return_dict=True).last_hidden_state
save_file({"pixel_values": pixel_values.detach(), "input_ids": ids, "attention_mask": mask, "cot": cot}, os.path.join(out, "inputs.safetensors"))
save_file({"score": score.detach(), "grad.pixel_values": pixel_values.grad, "vision_tokens": tokens, "text_hidden": text},
          os.path.join(out, "expected.safetensors"))
# The tokenizer: transformers 4.x's BertTokenizer (uncased) with BLIP's [DEC] and [ENC], on a vocabulary
# made here from the Parti prompts (bert-base-uncased's cannot be downloaded): every character alone and
# as a "##" continuation, short words whole, long ones as a 4-character head and "##" chunks of 3, and
# no digit 7 (so that [UNK] happens); then the ids of every Parti prompt and hostile strings.
from transformers import BertTokenizer  # noqa: E402
from transformers.models.bert.tokenization_bert import BasicTokenizer  # noqa: E402
here = os.path.dirname(os.path.abspath(__file__))
parti = [l.split("\t")[0] for l in open(os.path.join(here, "..", "..", "data", "parti", "PartiPrompts.tsv"), encoding="utf-8").read().split("\n")[1:] if l]
hostile = ["Ünïcödé àccents, ÉCOLE naïve", "a [SEP] inside, [cls] lower, and [DEC][ENC]", "中文字符 mixed with English", "tabs\tand\u00a0nbsp\u2003em",
           "ctrl\x00\x07chars\ufffd here", "punct!?.,;:'\"()[]{}<>@#$%^&*-_=+~`|\\/", "x" * 120 + " long word", "İstanbul ǅ ß ﬁ",
           "ligne\u2028séparée", "7777 sevens 17", "", "   "]
texts = parti + hostile
basic = BasicTokenizer(do_lower_case=True)
vocab = ["[PAD]", "[unused0]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
seen = set(vocab)
def add(t):
    if t not in seen and "7" not in t:
        seen.add(t)
        vocab.append(t)
words = [w for t in texts for w in basic.tokenize(t)]
for w in words:
    for c in w:
        add(c)
        add("##" + c)
for w in words:
    if len(w) <= 5:
        add(w)
    else:
        add(w[:4])
        for i in range(4, len(w), 3):
            add("##" + w[i:i + 3])
with open(os.path.join(out, "vocab.txt"), "w", encoding="utf-8") as f:
    f.write("\n".join(vocab) + "\n")
tokenizer = BertTokenizer(vocab_file=os.path.join(out, "vocab.txt"), do_lower_case=True)
tokenizer.add_special_tokens({"bos_token": "[DEC]"})
tokenizer.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
with open(os.path.join(out, "prompts.txt"), "w", encoding="utf-8") as f:
    f.write("\n".join(texts) + "\n")
assert not any("\n" in t or "\r" in t for t in texts)
tok35 = tokenizer(texts, padding="max_length", truncation=True, max_length=35, return_tensors="pt")
tok128 = tokenizer(texts, padding="max_length", truncation=True, max_length=128, return_tensors="pt")
save_file({"input_ids.35": tok35["input_ids"], "attention_mask.35": tok35["attention_mask"], "input_ids.128": tok128["input_ids"],
           "attention_mask.128": tok128["attention_mask"]}, os.path.join(out, "tokens.safetensors"))

import transformers, timm  # noqa: E402
with open(os.path.join(out, "versions.json"), "w") as f:
    json.dump({"torch": torch.__version__, "transformers": transformers.__version__, "timm": timm.__version__, "image-reward": "1.5"}, f)
print("ImageReward fixtures written to", out)
