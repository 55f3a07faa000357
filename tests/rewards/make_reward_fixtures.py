"""Builds tiny random reward models with their originals' own code and records what they compute, for
the C++ parity test (tests/rewards/reward_parity.cpp):

    python make_reward_fixtures.py OUT_DIR

hps/       HPSv2's model (hpsv2's vendored OpenCLIP `CLIP`, a tiny ViT config) saved as HPS ships it:
           torch.save({"state_dict": ..., ...}) -> hps_tiny.pt; open_clip_config.json; a real PNG
           (non-square, so resized and padded) and what HPSv2's preprocess_val makes of it; float
           images and prompts with their token ids (HPSv2's tokenizer), the image and text features,
           the score as img_score.py computes it (the cosine) and its gradient with respect to the
           images through the tensor path of the same preprocessing (ResizeMaxSize, Normalize).
aesthetic/ the LAION aesthetic predictor v2: the published head (improved-aesthetic-predictor's
           MLP: Linear 1024, Dropout, Linear 128, Dropout, Linear 64, Dropout, Linear 16, Linear 1)
           on a tiny transformers CLIPModel's image embeddings, L2-normalised as its inference code
           does; head saved with torch.save(state_dict) -> aesthetic_head.pth; the CLIP as a
           transformers folder; scores and gradients with respect to images through CLIP's
           resize-crop-normalise on tensors.
Everything float32 and seeded.
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file

out = sys.argv[1]
PROMPTS = ["a photo of a corgi", "A red cube on top of a blue sphere, at night", "an astronaut riding a horse"]


def versions():
    import hpsv2
    import open_clip
    import transformers
    return {"torch": torch.__version__, "transformers": transformers.__version__, "open_clip": open_clip.__version__,
            "hpsv2": getattr(hpsv2, "__version__", "1.2.0")}


def real_png(path, h, w):
    """A deterministic RGB picture with edges and gradients (resampling differences show up on it)."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([(x * 255 // max(w - 1, 1)), (y * 255 // max(h - 1, 1)), ((x // 7 + y // 5) % 2) * 255], -1).astype(np.uint8)
    Image.fromarray(img).save(path)
    return path


def hps(folder):
    from hpsv2.src.open_clip import get_tokenizer
    from hpsv2.src.open_clip.model import CLIP
    from hpsv2.src.open_clip.transform import image_transform, ResizeMaxSize
    from hpsv2.src.open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
    from torchvision.transforms import Normalize

    os.makedirs(folder, exist_ok=True)
    torch.manual_seed(0)
    config = {"embed_dim": 16, "vision_cfg": {"image_size": 224, "layers": 2, "width": 32, "head_width": 16, "patch_size": 14},
              "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 4, "layers": 2}}
    model = CLIP(config["embed_dim"], config["vision_cfg"], config["text_cfg"], quick_gelu=False, output_dict=True).eval()
    with torch.no_grad():  # OpenCLIP initialises some of these to zero or one: make every weight matter
        for n, p in model.named_parameters():
            if "ln_" in n or n.endswith("bias") or n == "visual.class_embedding":
                p.add_(0.1 * torch.randn_like(p))
    with open(os.path.join(folder, "open_clip_config.json"), "w") as f:
        json.dump(config, f)
    torch.save({"state_dict": model.state_dict(), "epoch": 1, "name": "tiny"}, os.path.join(folder, "hps_tiny.pt"))

    # HPSv2's own preprocess_val (light_augmentation: resize_longest_max) on a real PNG.
    preprocess_val = image_transform(224, is_train=False, resize_longest_max=True)
    png = real_png(os.path.join(folder, "picture.png"), 150, 260)
    pixel_values_png = preprocess_val(Image.open(png)).unsqueeze(0)

    tokenizer = get_tokenizer("ViT-H-14")
    ids = tokenizer(PROMPTS)
    # Float images: square (256: resized, no padding), non-square (resized and padded), and the PNG as floats.
    g = torch.Generator().manual_seed(1)
    tensor_path = lambda x: Normalize(OPENAI_DATASET_MEAN, OPENAI_DATASET_STD)(ResizeMaxSize(224)(x))
    rec = {"ids": ids, "pixel_values.png": pixel_values_png}
    sets = {"square": torch.rand(3, 3, 256, 256, generator=g), "wide": torch.rand(3, 3, 120, 250, generator=g)}
    for name, images in sets.items():
        images = images.clone().requires_grad_(True)
        pixel_values = torch.stack([tensor_path(im) for im in images])  # ResizeMaxSize works on one CHW image
        outs = model(pixel_values, ids)
        score = torch.diagonal(outs["image_features"] @ outs["text_features"].T)  # img_score.py
        cot = torch.randn(score.shape, generator=g)
        (score * cot).sum().backward()
        rec.update({f"images.{name}": images.detach(), f"pixel_values.{name}": pixel_values.detach(), f"cot.{name}": cot,
                    f"image_features.{name}": outs["image_features"].detach(), f"text_features.{name}": outs["text_features"].detach(),
                    f"score.{name}": score.detach(), f"grad.{name}": images.grad})
    save_file({k: v.contiguous() for k, v in rec.items()}, os.path.join(folder, "expected.safetensors"))
    # di_run_model --kind open-clip's inputs (the square images and the prompts' ids).
    save_file({"images": rec["images.square"].contiguous(), "input_ids": ids.contiguous()}, os.path.join(folder, "inputs_run_model.safetensors"))
    with open(os.path.join(folder, "prompts.txt"), "w") as f:
        f.write("\n".join(PROMPTS) + "\n")


class AestheticMLP(nn.Module):
    """improved-aesthetic-predictor's MLP (simple_inference.py), as published: no activations."""

    def __init__(self, input_size):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(input_size, 1024), nn.Dropout(0.2), nn.Linear(1024, 128), nn.Dropout(0.2),
                                    nn.Linear(128, 64), nn.Dropout(0.1), nn.Linear(64, 16), nn.Linear(16, 1))

    def forward(self, x):
        return self.layers(x)


def aesthetic(folder):
    from transformers import CLIPConfig, CLIPModel
    os.makedirs(folder, exist_ok=True)
    torch.manual_seed(2)
    config = CLIPConfig(text_config=dict(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                                         max_position_embeddings=16),
                        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=224,
                                           patch_size=32, hidden_act="quick_gelu"),
                        projection_dim=24)
    clip = CLIPModel(config).eval()
    clip.save_pretrained(os.path.join(folder, "clip"))
    head = AestheticMLP(24).eval()
    torch.save(head.state_dict(), os.path.join(folder, "aesthetic_head.pth"))
    g = torch.Generator().manual_seed(3)
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
    rec = {}
    for name, images in {"square": torch.rand(2, 3, 256, 256, generator=g), "tall": torch.rand(2, 3, 300, 240, generator=g)}.items():
        images = images.clone().requires_grad_(True)
        h, w = images.shape[-2:]
        scale = 224 / min(h, w)
        nh, nw = max(224, round(h * scale)), max(224, round(w * scale))
        x = F.interpolate(images, size=(nh, nw), mode="bicubic", align_corners=False, antialias=True)
        top, left = (nh - 224) // 2, (nw - 224) // 2
        x = (x[..., top:top + 224, left:left + 224] - mean) / std
        e = clip.get_image_features(pixel_values=x)
        e = e.pooler_output if hasattr(e, "pooler_output") else e
        score = head(e / e.norm(dim=-1, keepdim=True)).squeeze(-1)
        cot = torch.randn(score.shape, generator=g)
        (score * cot).sum().backward()
        rec.update({f"images.{name}": images.detach(), f"cot.{name}": cot, f"score.{name}": score.detach(), f"grad.{name}": images.grad})
    # PickScore's inference code on the same kind of CLIPModel: CLIPProcessor (PIL bicubic on the 8-bit
    # image, shortest edge 224, centre crop), then exp(logit_scale) * cos(text, image).
    from transformers import CLIPImageProcessor
    png = real_png(os.path.join(folder, "picture.png"), 200, 300)
    processor = CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224})
    pv = processor(images=Image.open(png), return_tensors="pt")["pixel_values"]
    ids = torch.tensor([[49406 % 64, 5, 9, 13, 63], [49406 % 64, 7, 11, 63, 63]])
    with torch.no_grad():
        img = clip.get_image_features(pixel_values=pv)
        img = img.pooler_output if hasattr(img, "pooler_output") else img
        txt = clip.get_text_features(input_ids=ids)
        txt = txt.pooler_output if hasattr(txt, "pooler_output") else txt
        img, txt = img / img.norm(dim=-1, keepdim=True), txt / txt.norm(dim=-1, keepdim=True)
        pick = clip.logit_scale.exp() * (txt @ img.T)[:, 0]
    save_file({"images": rec["images.square"].contiguous()}, os.path.join(folder, "inputs_run_model.safetensors"))
    rec.update({"pickscore.pixel_values": pv, "pickscore.ids": ids, "pickscore.text": txt, "pickscore.score": pick})
    save_file({k: v.contiguous() for k, v in rec.items()}, os.path.join(folder, "expected.safetensors"))


HOSTILE = ["Broken text&hellip; it&#x2019;s ﬂubberiﬁc!", "ＬＯＵＤ　ＮＯＩＳＥＳ", "&lt;tag&gt; and <b>&amp;lt;</b>", "P&EACUTE;REZ &ntilde; &NTILDE; &nTILDE;",
           "BUNDESSTRA&SZLIG;E &amp &ampfoo; &notit; &notin;", "&#0;x&#128;z&#x110000;&#xD800;&#65535;&#99999999999999999999;", "&#;&#x;& a&b&c;d",
           "\x1b[31mred\x1b[0m tab\tsep\x07bell\ufeffbom", "“quoted” ‘single’ ʼmod \u0092 c1", "café é e\u0301 combining",
           "&Jscr;ohn &HilbertSpace;ancock &checkmark;", "  spaces  ", "Ｈｅｌｌｏ，ｗｏｒｌｄ！ ﬀ ﬁ ﬂ ﬃ ﬄ ﬅ ﬆ", "&amp;amp;amp; &#x2019;&#8217;&#X41;",
           "日本語のテキスト &copy; 2024", "emoji 😀 &#x1F600; ǅ Ǆ ǆ", "x\u2028y\u2029z\x85w"]


def tokenizer(folder):
    """The real CLIP vocabulary from open-clip-torch's BPE file, as a transformers tokenizer folder, and
    the ids HPSv2's own tokenizer (OpenCLIP's SimpleTokenizer: ftfy, html.unescape) gives the Parti
    prompts and hostile strings (one per line: none holds a line break)."""
    import gzip
    import open_clip
    from hpsv2.src.open_clip import get_tokenizer
    from hpsv2.src.open_clip.tokenizer import bytes_to_unicode
    os.makedirs(folder, exist_ok=True)
    bpe = os.path.join(os.path.dirname(open_clip.__file__), "bpe_simple_vocab_16e6.txt.gz")
    merges = gzip.open(bpe).read().decode("utf-8").split("\n")[1:49152 - 256 - 2 + 1]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab] + ["".join(m.split()) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({t: i for i, t in enumerate(vocab)}, f, ensure_ascii=False)
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump({"model_max_length": 77, "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
                   "pad_token": "<|endoftext|>"}, f)
    here = os.path.dirname(os.path.abspath(__file__))
    rows = [l.split("\t")[0] for l in open(os.path.join(here, "..", "..", "data", "parti", "PartiPrompts.tsv"), encoding="utf-8").read().split("\n")[1:] if l]
    texts = rows + HOSTILE
    assert not any("\n" in t or "\r" in t for t in texts)
    with open(os.path.join(folder, "prompts.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(texts) + "\n")
    save_file({"input_ids": get_tokenizer("ViT-H-14")(texts)}, os.path.join(folder, "expected.safetensors"))


def resampling(folder):
    """PIL's bicubic resize on 8-bit images of several shapes (down and up, each axis alone), and the
    metric preprocessing as the originals run it on a real PNG: transformers' CLIPImageProcessor with
    its PIL backend (PickScore's processor as transformers 4.x ran it) and torchvision's Resize +
    CenterCrop on a PIL image (the aesthetic predictor's and ImageReward's)."""
    from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Normalize, Resize, ToTensor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
    os.makedirs(folder, exist_ok=True)
    g = np.random.default_rng(5)
    rec = {}
    for i, (h, w, oh, ow) in enumerate([(37, 53, 20, 31), (64, 48, 224, 168), (300, 200, 224, 149), (50, 50, 50, 23), (41, 77, 97, 77), (256, 256, 224, 224)]):
        img = g.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        rec[f"in.{i}"] = torch.from_numpy(img).permute(2, 0, 1).unsqueeze(0).contiguous()
        rec[f"out.{i}"] = torch.from_numpy(np.asarray(Image.fromarray(img).resize((ow, oh), Image.BICUBIC))).permute(2, 0, 1).unsqueeze(0).contiguous()
    png = real_png(os.path.join(folder, "picture.png"), 200, 301)
    rec["processor"] = CLIPImageProcessorPil()(images=Image.open(png), return_tensors="pt")["pixel_values"]
    tv = Compose([Resize(224, interpolation=InterpolationMode.BICUBIC), CenterCrop(224), ToTensor(),
                  Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))])
    rec["torchvision"] = tv(Image.open(png).convert("RGB")).unsqueeze(0)
    save_file(rec, os.path.join(folder, "expected.safetensors"))


os.makedirs(out, exist_ok=True)
resampling(os.path.join(out, "resampling"))
tokenizer(os.path.join(out, "tokenizer"))
hps(os.path.join(out, "hps"))
aesthetic(os.path.join(out, "aesthetic"))
with open(os.path.join(out, "versions.json"), "w") as f:
    json.dump(versions(), f)
print("reward fixtures written to", out)
