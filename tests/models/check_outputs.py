"""Checks what the C++ side wrote against diffusers (run by run_parity.sh after model_parity).

    python check_outputs.py FIXTURE_DIR EXPORT_DIR RUN_DIR

1. Every exported UNet folder (EXPORT_DIR/unet_*) loads with diffusers' from_pretrained and, in
   float32, reproduces the output C++ computed from the same folder (cpp_output.safetensors).
2. The LoRA C++ saved (EXPORT_DIR/lora_cpp) loads with a pipeline's load_lora_weights onto the sd15
   UNet and reproduces the output C++ computed with it; so does the pipeline file with the text
   encoder's adapters too (EXPORT_DIR/lora_cpp_pipeline) on the text encoder.
3. di_run_model's outputs (RUN_DIR/<model>.safetensors) match diffusers' recorded outputs.
Tolerance: 1e-5 relative (‖a − b‖₂ / ‖b‖₂). Prints one table row per check; exits 1 on a miss.
"""
import os
import sys

import torch
from diffusers import UNet2DConditionModel
from safetensors.torch import load_file

TOL = 1e-5


def rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def lora_from_cpp(fixtures, exports):
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline
    from transformers import CLIPTextModel
    unet = UNet2DConditionModel.from_pretrained(os.path.join(fixtures, "sd15"), low_cpu_mem_usage=False).eval()
    pipe = StableDiffusionPipeline(vae=AutoencoderKL.from_pretrained(os.path.join(fixtures, "vae")),
                                   text_encoder=CLIPTextModel.from_pretrained(os.path.join(fixtures, "clip_text")), tokenizer=None,
                                   unet=unet, scheduler=DDIMScheduler(), safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    folder = os.path.join(exports, "lora_cpp")
    pipe.load_lora_weights(folder)
    rec = load_file(os.path.join(folder, "cpp_output.safetensors"))
    with torch.no_grad():
        out = pipe.unet(rec["input.sample"], rec["input.timestep"], rec["input.encoder_hidden_states"]).sample
        with_lora = rel(rec["sample"], out)
        pipe.unload_lora_weights()
        base = pipe.unet(rec["input.sample"], rec["input.timestep"], rec["input.encoder_hidden_states"]).sample
    # Not vacuous: without the adapter the output is another one.
    assert rel(rec["sample"], base) > 1e-3, "the LoRA changed nothing"
    return with_lora


def text_lora_from_cpp(fixtures, exports):
    """The pipeline file C++ wrote (EXPORT_DIR/lora_cpp_pipeline: the UNet's and the text encoder's
    adapters) loads with load_lora_weights onto a pipeline's UNet and transformers 5's (flat)
    CLIPTextModel, whose output is then what C++ computed with the adapters (and, unloaded, another)."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline
    from transformers import CLIPTextModel
    pipe = StableDiffusionPipeline(vae=AutoencoderKL.from_pretrained(os.path.join(fixtures, "vae")),
                                   text_encoder=CLIPTextModel.from_pretrained(os.path.join(fixtures, "clip_text")).eval(), tokenizer=None,
                                   unet=UNet2DConditionModel.from_pretrained(os.path.join(fixtures, "sd15")).eval(), scheduler=DDIMScheduler(),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    folder = os.path.join(exports, "lora_cpp_pipeline")
    rec = load_file(os.path.join(folder, "cpp_text_output.safetensors"))
    pipe.load_lora_weights(folder)
    assert any("lora" in n for n, _ in pipe.text_encoder.named_parameters()), "no adapter reached the text encoder"
    with torch.no_grad():
        out = pipe.text_encoder(rec["input_ids"])
        err = max(rel(rec["last_hidden_state"], out.last_hidden_state), rel(rec["pooler_output"], out.pooler_output))
        pipe.unload_lora_weights()
        base = pipe.text_encoder(rec["input_ids"]).last_hidden_state
    assert rel(rec["last_hidden_state"], base) > 1e-3, "the text encoder's LoRA changed nothing"
    return err


def main():
    fixtures, exports, runs = sys.argv[1:4]
    torch.set_num_threads(1)
    failed = False
    rows = []
    for name in sorted(os.listdir(exports)):
        folder = os.path.join(exports, name)
        if not name.startswith("unet_") or not os.path.exists(os.path.join(folder, "cpp_output.safetensors")):
            continue
        model = UNet2DConditionModel.from_pretrained(folder, torch_dtype=torch.float32, low_cpu_mem_usage=False).eval()
        rec = load_file(os.path.join(folder, "cpp_output.safetensors"))
        with torch.no_grad():
            out = model(rec["input.sample"], rec["input.timestep"], rec["input.encoder_hidden_states"]).sample
        rows.append((f"export {name} -> diffusers from_pretrained", rel(rec["sample"], out)))
    rows.append(("LoRA saved by C++ -> pipeline.load_lora_weights (sd15, rank 3, alpha 6)", lora_from_cpp(fixtures, exports)))
    rows.append(("text-encoder LoRA saved by C++ (a pipeline file) -> pipeline.load_lora_weights (rank 2, alpha 4)",
                 text_lora_from_cpp(fixtures, exports)))
    for model_name in ("sd15", "sdxl", "vae"):
        path = os.path.join(runs, model_name + ".safetensors")
        expected = load_file(os.path.join(fixtures, model_name, "expected.safetensors"))
        key = "out.decoded" if model_name == "vae" else "out.sample"
        rows.append((f"di_run_model --kind {'vae-decoder' if model_name == 'vae' else 'unet'} ({model_name})",
                     rel(load_file(path)["sample"], expected[key])))
    for model_name, keys in (("clip_text", ("last_hidden_state", "pooler_output")),
                             ("clip_text_proj", ("last_hidden_state", "pooler_output", "text_embeds")),
                             ("clip_vision_proj", ("last_hidden_state", "image_embeds"))):
        got = load_file(os.path.join(runs, model_name + ".safetensors"))
        expected = load_file(os.path.join(fixtures, model_name, "expected.safetensors"))
        kind = "clip-vision" if "vision" in model_name else "clip-text"
        rows.append((f"di_run_model --kind {kind} ({model_name}: {', '.join(keys)})", max(rel(got[k], expected["out." + k]) for k in keys)))
    for what, err in rows:
        ok = err <= TOL
        failed |= not ok
        print(f"| {what} | {err:.2e} | {'ok' if ok else 'FAIL'} |")
    if len(rows) < 11:
        print(f"check_outputs: expected 11 checks, ran {len(rows)}")
        failed = True
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
