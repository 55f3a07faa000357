"""Builds tiny random diffusers models and records what they compute, for the C++ parity test.

    python make_fixtures.py OUT_DIR

For each model, OUT_DIR/<name>/ holds the diffusers folder (save_pretrained: config.json +
diffusion_pytorch_model.safetensors), inputs.safetensors (the inputs and a fixed cotangent `cot`),
and expected.safetensors: `out.*` the outputs, `grad.input.*` the gradients of sum(out * cot) with
respect to the inputs, `grad.param.<name>` with respect to every parameter. Everything is float32
and seeded: the same packages give the same files.
"""
import json
import os
import sys

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from safetensors.torch import save_file

UNETS = {
    # SD 1.x: conv projections, one head count for every level, a plain last level.
    "sd15": dict(
        block_out_channels=(32, 64), layers_per_block=2, cross_attention_dim=24, attention_head_dim=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        norm_num_groups=8, sample_size=16, in_channels=4, out_channels=4,
    ),
    # SD 2.x (768-v): linear projections, per-level head counts, upcast attention; three levels and a
    # 10x10 input, which is not a multiple of 4, so the up levels upsample to the skips' sizes.
    "sd2": dict(
        block_out_channels=(16, 32, 32), layers_per_block=1, cross_attention_dim=20, attention_head_dim=(2, 4, 4),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        use_linear_projection=True, upcast_attention=True, norm_num_groups=8, sample_size=10, flip_sin_to_cos=True,
        freq_shift=0, resnet_time_scale_shift="scale_shift",
    ),
    # SDXL: text_time additional embeddings, two transformer layers per block at the inner level.
    "sdxl": dict(
        block_out_channels=(16, 32), layers_per_block=2, cross_attention_dim=32, attention_head_dim=(2, 4),
        transformer_layers_per_block=(1, 2), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), use_linear_projection=True,
        addition_embed_type="text_time", addition_time_embed_dim=8, projection_class_embeddings_input_dim=16 + 6 * 8,
        norm_num_groups=8, sample_size=8,
    ),
}
SIZES = {"sd15": 16, "sd2": 10, "sdxl": 8}
VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=8,
    down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"), up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
    sample_size=16, scaling_factor=0.13025,
)


def param_grads(model):
    return {f"grad.param.{n}": p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def unet_fixture(name, config, out_dir, batch=2, seq=5):
    torch.manual_seed(0)
    model = UNet2DConditionModel(**config).eval()
    folder = os.path.join(out_dir, name)
    model.save_pretrained(folder)
    gen = torch.Generator().manual_seed(1)
    size = SIZES[name]
    inputs = {
        "sample": torch.randn(batch, config.get("in_channels", 4), size, size, generator=gen),
        "timestep": torch.tensor([17, 640], dtype=torch.int64),
        "encoder_hidden_states": torch.randn(batch, seq, config["cross_attention_dim"], generator=gen),
    }
    if config.get("addition_embed_type") == "text_time":
        inputs["text_embeds"] = torch.randn(batch, 16, generator=gen)
        inputs["time_ids"] = torch.tensor([[64.0, 64.0, 0.0, 0.0, 64.0, 64.0], [48.0, 80.0, 4.0, 2.0, 64.0, 64.0]])
    differentiable = [k for k in ("sample", "encoder_hidden_states", "text_embeds") if k in inputs]
    leaves = {k: v.clone().requires_grad_(k in differentiable) for k, v in inputs.items()}
    added = {k: leaves[k] for k in ("text_embeds", "time_ids") if k in leaves} or None
    out = model(leaves["sample"], leaves["timestep"], leaves["encoder_hidden_states"], added_cond_kwargs=added).sample
    cot = torch.randn(out.shape, generator=gen)
    (out * cot).sum().backward()
    expected = {"out.sample": out.detach()}
    expected.update({f"grad.input.{k}": leaves[k].grad for k in differentiable})
    expected.update(param_grads(model))
    save_file({**inputs, "cot": cot}, os.path.join(folder, "inputs.safetensors"))
    save_file({k: v.contiguous() for k, v in expected.items()}, os.path.join(folder, "expected.safetensors"))
    return sum(p.numel() for p in model.parameters())


def vae_fixture(out_dir, batch=2):
    torch.manual_seed(0)
    model = AutoencoderKL(**VAE).eval()
    folder = os.path.join(out_dir, "vae")
    model.save_pretrained(folder)
    gen = torch.Generator().manual_seed(1)
    latents = torch.randn(batch, VAE["latent_channels"], 8, 8, generator=gen).requires_grad_(True)
    image = torch.randn(batch, VAE["in_channels"], 16, 16, generator=gen).requires_grad_(True)
    decoded = model.decode(latents).sample
    dist = model.encode(image).latent_dist
    cot = torch.randn(decoded.shape, generator=gen)
    cot_mean = torch.randn(dist.mean.shape, generator=gen)
    cot_logvar = torch.randn(dist.logvar.shape, generator=gen)
    ((decoded * cot).sum() + (dist.mean * cot_mean).sum() + (dist.logvar * cot_logvar).sum()).backward()
    expected = {
        "out.decoded": decoded.detach(), "out.mean": dist.mean.detach(), "out.logvar": dist.logvar.detach(),
        "grad.input.latents": latents.grad, "grad.input.image": image.grad,
    }
    expected.update(param_grads(model))
    save_file({"latents": latents.detach(), "image": image.detach(), "cot": cot, "cot_mean": cot_mean, "cot_logvar": cot_logvar},
              os.path.join(folder, "inputs.safetensors"))
    save_file({k: v.contiguous() for k, v in expected.items()}, os.path.join(folder, "expected.safetensors"))
    return sum(p.numel() for p in model.parameters())


CLIP_TEXT = {
    # A plain CLIPTextModel with the legacy eos_token_id = 2 (pooled token = argmax of the ids) and gelu.
    "clip_text": dict(cls="CLIPTextModel", vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                      num_attention_heads=4, max_position_embeddings=16, hidden_act="gelu", eos_token_id=2, bos_token_id=0,
                      pad_token_id=1),
    # CLIPTextModelWithProjection (SDXL's second encoder's kind): CLIP's own vocabulary size and ids, quick_gelu.
    "clip_text_proj": dict(cls="CLIPTextModelWithProjection", vocab_size=49408, hidden_size=16, intermediate_size=48,
                           num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=12, projection_dim=8),
}


def clip_text_fixture(name, spec, out_dir, batch=2):
    import transformers
    spec = dict(spec)
    cls = getattr(transformers, spec.pop("cls"))
    torch.manual_seed(0)
    config = transformers.CLIPTextConfig(**spec)
    model = cls(config).eval()
    folder = os.path.join(out_dir, name)
    model.save_pretrained(folder)
    gen = torch.Generator().manual_seed(1)
    length = spec["max_position_embeddings"]
    ids = torch.randint(3, spec["vocab_size"] - 2, (batch, length), generator=gen)
    eos = config.eos_token_id
    ids[0, 5] = eos  # an end-of-text token, then padding with it (as SD's tokenizers pad)
    ids[0, 6:] = eos
    ids[1, length - 1] = eos
    ids[:, 0] = config.bos_token_id
    out = model(ids, output_hidden_states=True)
    outputs = {"last_hidden_state": out.last_hidden_state, "penultimate": out.hidden_states[-2]}
    if isinstance(model, transformers.CLIPTextModelWithProjection):
        outputs["pooler_output"] = model.text_model(ids).pooler_output  # the same tokens' states, a second graph
        outputs["text_embeds"] = out.text_embeds
    else:
        outputs["pooler_output"] = out.pooler_output
    cots = {k: torch.randn(v.shape, generator=gen) for k, v in outputs.items()}
    sum((outputs[k] * cots[k]).sum() for k in outputs).backward()
    expected = {f"out.{k}": v.detach().contiguous() for k, v in outputs.items()}
    expected.update(param_grads(model))
    save_file({"input_ids": ids, **{f"cot.{k}": v for k, v in cots.items()}}, os.path.join(folder, "inputs.safetensors"))
    save_file(expected, os.path.join(folder, "expected.safetensors"))
    return sum(p.numel() for p in model.parameters())


CLIP_VISION = {
    "clip_vision": dict(cls="CLIPVisionModel", hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                        image_size=32, patch_size=8, hidden_act="gelu"),
    "clip_vision_proj": dict(cls="CLIPVisionModelWithProjection", hidden_size=24, intermediate_size=48, num_hidden_layers=2,
                             num_attention_heads=2, image_size=28, patch_size=7, projection_dim=12),
}


def clip_vision_fixture(name, spec, out_dir, batch=2):
    import transformers
    spec = dict(spec)
    cls = getattr(transformers, spec.pop("cls"))
    torch.manual_seed(0)
    model = cls(transformers.CLIPVisionConfig(**spec)).eval()
    folder = os.path.join(out_dir, name)
    model.save_pretrained(folder)
    gen = torch.Generator().manual_seed(1)
    pixels = torch.randn(batch, 3, spec["image_size"], spec["image_size"], generator=gen).requires_grad_(True)
    out = model(pixels)
    outputs = {"last_hidden_state": out.last_hidden_state}
    if isinstance(model, transformers.CLIPVisionModelWithProjection):
        outputs["image_embeds"] = out.image_embeds
    else:
        outputs["pooler_output"] = out.pooler_output
    cots = {k: torch.randn(v.shape, generator=gen) for k, v in outputs.items()}
    sum((outputs[k] * cots[k]).sum() for k in outputs).backward()
    expected = {f"out.{k}": v.detach().contiguous() for k, v in outputs.items()}
    expected["grad.input.pixel_values"] = pixels.grad
    expected.update(param_grads(model))
    save_file({"pixel_values": pixels.detach(), **{f"cot.{k}": v for k, v in cots.items()}}, os.path.join(folder, "inputs.safetensors"))
    save_file(expected, os.path.join(folder, "expected.safetensors"))
    return sum(p.numel() for p in model.parameters())


def main():
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(1)
    counts = {name: unet_fixture(name, cfg, out_dir) for name, cfg in UNETS.items()}
    counts["vae"] = vae_fixture(out_dir)
    for name, spec in CLIP_TEXT.items():
        counts[name] = clip_text_fixture(name, spec, out_dir)
    for name, spec in CLIP_VISION.items():
        counts[name] = clip_vision_fixture(name, spec, out_dir)
    import diffusers
    import transformers
    import safetensors
    with open(os.path.join(out_dir, "versions.json"), "w") as f:
        json.dump({"torch": torch.__version__, "diffusers": diffusers.__version__, "transformers": transformers.__version__, "safetensors": safetensors.__version__,
                   "parameters": counts}, f, indent=1)
    print("fixtures:", ", ".join(f"{k} ({v} parameters)" for k, v in counts.items()))


if __name__ == "__main__":
    main()
