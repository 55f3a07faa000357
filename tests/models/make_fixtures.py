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
from safetensors.torch import load_file, save_file

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


def clip_reward_fixture(out_dir, batch=2):
    """The CLIP-similarity reward as a user would compute it in Python: transformers' CLIPModel on
    diffusers' VAE-decoded latents, prompts through transformers' CLIPTokenizer. clip_reward/ holds
    tokenizer/ and clip/ (a CLIPModel folder, logit_scale set to log 50), prompts.txt, inputs
    (latents 10x12, which the preprocessing resizes and crops, and a cotangent), and expected
    (reward and its gradient w.r.t. the latents). The VAE is the `vae` fixture's."""
    import torch.nn.functional as F
    import transformers
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "text"))
    import make_tokenizer_fixtures as tf
    import tiny_clip

    folder = os.path.join(out_dir, "clip_reward")
    tf.write_folder(os.path.join(folder, "tokenizer"), tf.learn_merges(tf.CORPUS, 400), "<|endoftext|>")
    tok = transformers.CLIPTokenizer.from_pretrained(os.path.join(folder, "tokenizer"))
    torch.manual_seed(0)
    clip = tiny_clip.tiny_clip_model(tok, image_size=28, patch_size=7)
    clip.save_pretrained(os.path.join(folder, "clip"))
    # The same model as transformers 4.x wrote its config: every generation default in each sub-config
    # (PickScore_v1's config.json looks like this).
    import shutil
    shutil.copytree(os.path.join(folder, "clip"), os.path.join(folder, "clip_v4_config"))
    with open(os.path.join(folder, "clip", "config.json")) as f:
        v4 = json.load(f)
    generation = {"bad_words_ids": None, "begin_suppress_tokens": None, "chunk_size_feed_forward": 0, "cross_attention_hidden_size": None,
                  "decoder_start_token_id": None, "diversity_penalty": 0.0, "do_sample": False, "early_stopping": False,
                  "encoder_no_repeat_ngram_size": 0, "exponential_decay_length_penalty": None, "finetuning_task": None,
                  "forced_bos_token_id": None, "forced_eos_token_id": None, "is_decoder": False, "is_encoder_decoder": False,
                  "length_penalty": 1.0, "max_length": 20, "min_length": 0, "no_repeat_ngram_size": 0, "num_beam_groups": 1,
                  "num_beams": 1, "num_return_sequences": 1, "output_scores": False, "remove_invalid_values": False,
                  "repetition_penalty": 1.0, "return_dict_in_generate": False, "sep_token_id": None, "suppress_tokens": None,
                  "task_specific_params": None, "temperature": 1.0, "tf_legacy_loss": False, "tie_encoder_decoder": False,
                  "tie_word_embeddings": True, "top_k": 50, "top_p": 1.0, "torch_dtype": None, "torchscript": False,
                  "typical_p": 1.0, "use_bfloat16": False, "architectures": None, "transformers_version": "4.25.1"}
    for sub in ("text_config", "vision_config"):
        v4[sub].update(generation)
    v4["text_config_dict"] = None
    v4["vision_config_dict"] = None
    with open(os.path.join(folder, "clip_v4_config", "config.json"), "w") as f:
        json.dump(v4, f, indent=2)
    vae = AutoencoderKL.from_pretrained(os.path.join(out_dir, "vae")).eval()
    prompts = ["a photo of a cat", "An astronaut riding a horse, 8k"][:batch]
    with open(os.path.join(folder, "prompts.txt"), "w", encoding="utf-8") as f:
        f.write("".join(p + "\n" for p in prompts))

    gen = torch.Generator().manual_seed(1)
    latents = torch.randn(batch, VAE["latent_channels"], 10, 12, generator=gen).requires_grad_(True)
    images = (vae.decode(latents / vae.config.scaling_factor).sample / 2 + 0.5).clamp(0, 1)
    # CLIP's preprocessing as differentiable tensor operations (the C++ clip_preprocess); the mean and
    # std are transformers' CLIPImageProcessor's.
    proc = transformers.CLIPImageProcessor()
    size = clip.config.vision_config.image_size
    h, w = images.shape[-2:]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    x = F.interpolate(images, size=(nh, nw), mode="bicubic", align_corners=False, antialias=True)
    top, left = (nh - size) // 2, (nw - size) // 2
    x = x[:, :, top:top + size, left:left + size]
    pixel_values = (x - torch.tensor(proc.image_mean).view(1, 3, 1, 1)) / torch.tensor(proc.image_std).view(1, 3, 1, 1)
    ids = tok(prompts, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    reward = clip(input_ids=ids, pixel_values=pixel_values).logits_per_image.diagonal()
    cot = torch.randn(reward.shape, generator=gen)
    (reward * cot).sum().backward()
    save_file({"latents": latents.detach(), "cot": cot}, os.path.join(folder, "inputs.safetensors"))
    save_file({"out.reward": reward.detach().contiguous(), "grad.input.latents": latents.grad.contiguous(),
               "logit_scale": clip.logit_scale.detach().reshape(())}, os.path.join(folder, "expected.safetensors"))
    return sum(p.numel() for p in clip.parameters())


LORA = dict(r=4, lora_alpha=8, target_modules=["to_q", "to_k", "to_v", "to_out.0", "proj_in", "conv1"])
# The text encoder's: attention projections (diffusers' default for text-encoder LoRAs) and the MLP's fc1, rank 2.
TEXT_LORA = dict(r=2, lora_alpha=3, target_modules=["q_proj", "k_proj", "v_proj", "out_proj", "fc1"])


def lora_fixture(out_dir):
    """A peft LoRA on the sd15 UNet and one on the clip_text text encoder (random A and B), saved
    together with diffusers' save_lora_weights, and what the adapted models compute: outputs, the
    UNet's input gradients and every adapter's gradients."""
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet = UNet2DConditionModel.from_pretrained(os.path.join(out_dir, "sd15")).eval()
    unet.requires_grad_(False)
    unet.add_adapter(LoraConfig(**LORA, init_lora_weights="gaussian"))
    torch.manual_seed(5)
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)  # B starts at zero; a trained one does not
    folder = os.path.join(out_dir, "lora_py")
    # The text encoder's adapters go into the same file, under "text_encoder.", as a pipeline's do.
    # peft injects them itself: transformers 5.24's own add_adapter wants peft >= 0.22, which PyPI
    # does not have yet. transformers 5's CLIPTextModel is flat (no text_model. prefix), so the file's
    # names are too, as a LoRA trained with it today would be.
    import transformers
    from peft import inject_adapter_in_model
    text = transformers.CLIPTextModel.from_pretrained(os.path.join(out_dir, "clip_text")).eval()
    text.requires_grad_(False)
    text_config = LoraConfig(**TEXT_LORA, init_lora_weights="gaussian")
    inject_adapter_in_model(text_config, text)
    torch.manual_seed(6)
    with torch.no_grad():
        for name, p in text.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    text_layers = {n.replace(".default", ""): p.detach() for n, p in text.named_parameters() if "lora_" in n}
    StableDiffusionPipeline.save_lora_weights(folder, unet_lora_layers=get_peft_model_state_dict(unet),
                                              text_encoder_lora_layers=text_layers,
                                              unet_lora_adapter_metadata=unet.peft_config["default"].to_dict(),
                                              text_encoder_lora_adapter_metadata=text_config.to_dict())
    text_in = load_file(os.path.join(out_dir, "clip_text", "inputs.safetensors"))
    out = text(text_in["input_ids"])
    outputs = {"last_hidden_state": out.last_hidden_state, "pooler_output": out.pooler_output}
    sum((outputs[k] * text_in[f"cot.{k}"]).sum() for k in outputs).backward()
    text_expected = {f"out.{k}": v.detach().contiguous() for k, v in outputs.items()}
    text_expected.update({f"grad.param.{n.replace('.default', '')}": p.grad for n, p in text.named_parameters() if p.grad is not None})
    save_file(text_expected, os.path.join(folder, "expected_text_encoder.safetensors"))
    inputs = load_file(os.path.join(out_dir, "sd15", "inputs.safetensors"))
    sample = inputs["sample"].clone().requires_grad_(True)
    out = unet(sample, inputs["timestep"], inputs["encoder_hidden_states"]).sample
    (out * inputs["cot"]).sum().backward()
    expected = {"out.sample": out.detach(), "grad.input.sample": sample.grad}
    expected.update({f"grad.param.{n.replace('.default', '')}": p.grad for n, p in unet.named_parameters() if p.grad is not None})
    save_file(expected, os.path.join(folder, "expected.safetensors"))
    return sum(p.numel() for n, p in unet.named_parameters() if "lora_" in n) + sum(p.numel() for n, p in text.named_parameters() if "lora_" in n)


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
    counts["clip_reward"] = clip_reward_fixture(out_dir)
    counts["lora_py"] = lora_fixture(out_dir)
    import diffusers
    import transformers
    import safetensors
    with open(os.path.join(out_dir, "versions.json"), "w") as f:
        json.dump({"torch": torch.__version__, "diffusers": diffusers.__version__, "transformers": transformers.__version__, "safetensors": safetensors.__version__,
                   "parameters": counts}, f, indent=1)
    print("fixtures:", ", ".join(f"{k} ({v} parameters)" for k, v in counts.items()))


if __name__ == "__main__":
    main()
