"""Checks that the folders 06_compositional writes are what diffusers and transformers read: every
component loads with no missing, unexpected or mismatched weights, and computes what the library computes.

    python check_compositional_folders.py RUN_DIR DI_RUN_MODEL

RUN_DIR is a finished 06_compositional run (--quick is enough). Checked:
  1. pipeline/ loads as a StableDiffusionPipeline and samples 32x32 images (2 DDIM steps, CFG 3): finite;
  2. the caption tokenizer (pipeline/tokenizer and the CLIP folder's copy) gives transformers' ids;
  3. the text encoder, the CLIPModel's two towers, the teacher UNet, a post-trained generator UNet and the
     VAE decoder give, on the same inputs, what di_run_model computes from the same folders (relative
     error TOL, float32 round-off).
Prints one line per check; exits 1 on a miss.
"""
import glob
import os
import shutil
import subprocess
import sys
import tempfile

import torch
from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
from safetensors.torch import load_file, save_file
from transformers import CLIPModel, CLIPTextModel, CLIPTokenizer

TOL = 1e-5
failures = []


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what)
    if not ok:
        failures.append(what)


def rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def loaded_cleanly(name, info):
    bad = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
    check(not bad, f"{name}: loads with no missing, unexpected or mismatched weights {bad if bad else ''}")


def one(pattern):
    found = sorted(glob.glob(pattern))
    if not found:
        sys.exit(f"no folder matches {pattern}")
    return found[0]


def main():
    run, run_model = sys.argv[1], sys.argv[2]
    pipe_dir, clip_dir = os.path.join(run, "pipeline"), one(os.path.join(run, "clip_*"))
    generator_dir = one(os.path.join(run, "di_star_in_" + "[0-9a-f]" * 16))  # the DI*-in run (not its K-step or sweep twins)
    work = tempfile.mkdtemp(prefix="compositional_check_")
    torch.manual_seed(0)

    def cpp(model, kind, inputs=None, text=None):
        args = [run_model, "--model", model, "--kind", kind, "--outputs", os.path.join(work, "out.safetensors")]
        if inputs is not None:
            save_file({k: v.contiguous() for k, v in inputs.items()}, os.path.join(work, "in.safetensors"))
            args += ["--inputs", os.path.join(work, "in.safetensors")]
        if text is not None:
            with open(os.path.join(work, "text.txt"), "w") as f:
                f.write("\n".join(text) + "\n")
            args += ["--text", os.path.join(work, "text.txt")]
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
        return load_file(os.path.join(work, "out.safetensors"))

    # 1. The components, one by one, then the pipeline.
    unet, info = UNet2DConditionModel.from_pretrained(pipe_dir, subfolder="unet", output_loading_info=True)
    loaded_cleanly("pipeline/unet (UNet2DConditionModel)", info)
    vae, info = AutoencoderKL.from_pretrained(pipe_dir, subfolder="vae", output_loading_info=True)
    loaded_cleanly("pipeline/vae (AutoencoderKL)", info)
    text_encoder, info = CLIPTextModel.from_pretrained(pipe_dir, subfolder="text_encoder", output_loading_info=True)
    loaded_cleanly("pipeline/text_encoder (CLIPTextModel)", info)
    clip, info = CLIPModel.from_pretrained(clip_dir, output_loading_info=True)
    loaded_cleanly(f"{os.path.basename(clip_dir)} (CLIPModel)", info)
    generator, info = UNet2DConditionModel.from_pretrained(generator_dir, output_loading_info=True)
    loaded_cleanly(f"{os.path.basename(generator_dir)} (the DI*-in generator, UNet2DConditionModel)", info)
    tokenizer = CLIPTokenizer.from_pretrained(pipe_dir, subfolder="tokenizer")
    for m in (unet, vae, text_encoder, clip, generator):
        m.eval()

    pipe = StableDiffusionPipeline.from_pretrained(pipe_dir)
    pipe.set_progress_bar_config(disable=True)
    images = pipe(["a red sneaker in the top left", "a blue bag to the right of a yellow shirt"], height=32, width=32, num_inference_steps=2,
                  guidance_scale=3.0, output_type="pt", generator=torch.Generator().manual_seed(0)).images
    check(tuple(images.shape) == (2, 3, 32, 32) and bool(torch.isfinite(images).all()),
          f"StableDiffusionPipeline.from_pretrained(pipeline) samples 32x32 images: {tuple(images.shape)}, finite")

    # 2. The tokenizer: the miniature's captions, and text it never saw.
    captions = ["a red sneaker in the top left", "there is a blue bag to the right of a yellow shirt", "top right: a green ankle boot",
                "A RED Sneaker!!  in the   TOP left", "an orange zebra on the moon", "", "a " * 40, "naïve café — 東京 🙂"]
    ids = tokenizer(captions, padding="max_length", truncation=True, max_length=tokenizer.model_max_length, return_tensors="pt").input_ids
    for folder, name in ((os.path.join(pipe_dir, "tokenizer"), "pipeline/tokenizer"), (clip_dir, "the CLIP folder's tokenizer")):
        cpp_ids = cpp(folder, "clip-tokenizer", text=captions)["input_ids"]
        check(torch.equal(cpp_ids, ids), f"{name}: di_run_model's ids equal CLIPTokenizer's on {len(captions)} captions ({tuple(ids.shape)})")

    with torch.no_grad():
        # 3. Every model on the same inputs, Python against C++.
        out = text_encoder(ids)
        c = cpp(os.path.join(pipe_dir, "text_encoder"), "clip-text", {"input_ids": ids})
        for key, ref in (("last_hidden_state", out.last_hidden_state), ("pooler_output", out.pooler_output)):
            e = rel(c[key], ref)
            check(e < TOL, f"pipeline/text_encoder {key}: relative error {e:.2e}")
        states = out.last_hidden_state

        c = cpp(clip_dir, "clip-text", {"input_ids": ids})
        ref = clip.text_projection(clip.text_model(ids).pooler_output)
        e = rel(c["text_embeds"], ref)
        check(e < TOL, f"CLIPModel text tower text_embeds: relative error {e:.2e}")
        pixels = torch.randn(3, 3, 32, 32)
        c = cpp(clip_dir, "clip-vision", {"pixel_values": pixels})
        ref = clip.visual_projection(clip.vision_model(pixel_values=pixels).pooler_output)
        e = rel(c["image_embeds"], ref)
        check(e < TOL, f"CLIPModel vision tower image_embeds: relative error {e:.2e}")

        n = ids.shape[0]
        sample, timestep = torch.randn(n, 4, 8, 8), torch.tensor([999, 999, 500, 10, 999, 250, 1, 999][:n], dtype=torch.int64)
        for model, folder, name in ((unet, os.path.join(pipe_dir, "unet"), "teacher UNet"), (generator, generator_dir, "DI*-in generator UNet")):
            ref = model(sample, timestep, states).sample
            c = cpp(folder, "unet", {"sample": sample, "timestep": timestep, "encoder_hidden_states": states})
            e = rel(c["sample"], ref)
            check(e < TOL, f"{name}: relative error {e:.2e}")

        latents = torch.randn(2, 4, 8, 8)
        ref = vae.decode(latents).sample
        e = rel(cpp(os.path.join(pipe_dir, "vae"), "vae-decoder", {"latents": latents})["sample"], ref)
        check(e < TOL, f"VAE decoder: relative error {e:.2e}")

    shutil.rmtree(work)
    if failures:
        print(f"{len(failures)} check(s) failed")
        sys.exit(1)
    print("every folder of the miniature loads in diffusers/transformers and computes what the library computes")


if __name__ == "__main__":
    main()
