"""Checks 05_text_to_image's outputs against diffusers: the trained generator loads in Python and gives
the samples the C++ run recorded.

    python check_text_to_image.py roundtrip TEACHER RUN_DIR TOLERANCE
        RUN_DIR/generator/unet (UNet2DConditionModel.from_pretrained) or RUN_DIR/generator_lora
        (pipeline.load_lora_weights on the teacher's pipeline) is loaded; the evaluation prompts are
        encoded by the pipeline's own encode_prompt and compared with the C++ encoding; the one-step
        x0 = f(UNet(z, t*)) is compared with RUN_DIR/eval_samples.safetensors' x0 (relative to its
        largest value); metrics.csv and the sample grids are checked for shape and finiteness.
    python check_text_to_image.py same RUN_A RUN_B TOLERANCE
        the two runs' metrics.csv losses agree, and their generators: bit for bit (TOLERANCE 0), else
        their samples on the evaluation set, relative to the largest.
"""
import csv
import json
import math
import os
import sys

import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

failures = []


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what)
    if not ok:
        failures.append(what)


def generator_tensors(run):
    lora = os.path.join(run, "generator_lora", "pytorch_lora_weights.safetensors")
    return load_file(lora if os.path.exists(lora) else os.path.join(run, "generator", "unet", "diffusion_pytorch_model.safetensors"))


def metric_rows(run):
    with open(os.path.join(run, "metrics.csv")) as f:
        return list(csv.DictReader(f))


def roundtrip(teacher, run, tol):
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline, UNet2DConditionModel

    info = json.load(open(os.path.join(run, "generator", "one_step.json")))
    sdxl = os.path.isdir(os.path.join(teacher, "text_encoder_2"))
    pipe = (StableDiffusionXLPipeline if sdxl else StableDiffusionPipeline).from_pretrained(teacher)
    start = UNet2DConditionModel.from_pretrained(os.path.join(teacher, "unet")).eval()  # where the generator began
    if info["lora"]:
        pipe.load_lora_weights(os.path.join(run, "generator_lora"))
        unet = pipe.unet
        check(any("lora" in n for n, _ in unet.named_parameters()), f"{run}: diffusers' load_lora_weights put the LoRA on the UNet")
    else:
        unet = UNet2DConditionModel.from_pretrained(os.path.join(run, "generator", "unet"))
    unet.eval()
    samples = load_file(os.path.join(run, "eval_samples.safetensors"))
    with safe_open(os.path.join(run, "eval_samples.safetensors"), "pt") as f:
        meta = f.metadata()
    prompts = [p for p in meta["prompts"].split("\n") if p]
    seeds = int(meta["seeds"])
    rows = [p for p in prompts for _ in range(seeds)]
    z = samples["z"]
    with torch.no_grad():
        if sdxl:
            embeds, _, pooled, _ = pipe.encode_prompt(rows, device="cpu", num_images_per_prompt=1, do_classifier_free_guidance=False)
            h, w = info["height"], info["width"]
            added = {"text_embeds": pooled, "time_ids": torch.tensor([[h, w, 0, 0, h, w]], dtype=torch.float32).repeat(len(rows), 1)}
        else:
            embeds, _ = pipe.encode_prompt(rows, device="cpu", num_images_per_prompt=1, do_classifier_free_guidance=False)
            added = None
        cpp_embeds = samples["encoder_hidden_states"]
        d = (embeds - cpp_embeds).abs().max().item()
        check(d <= tol * (1 + embeds.abs().max().item()), f"{run}: the prompts encode as diffusers' encode_prompt does (max diff {d:.3g})")
        t = info["t_star"]
        abar = pipe.scheduler.alphas_cumprod[t].double()
        alpha, sigma = abar.sqrt().item(), (1 - abar).sqrt().item()
        check(abs(alpha - info["alpha"]) < 1e-6 and abs(sigma - info["sigma"]) < 1e-6,
              f"{run}: alpha, sigma at t* = {t} are the scheduler's ({alpha:.6f}, {sigma:.6f})")
        def one_step(model):
            out = model(z, torch.full((z.shape[0],), t, dtype=torch.long), encoder_hidden_states=cpp_embeds, added_cond_kwargs=added).sample
            pred = info["prediction_type"]
            return (z - sigma * out) / alpha if pred == "epsilon" else alpha * z - sigma * out if pred == "v_prediction" else out
        x0, x0_start = one_step(unet), one_step(start)
    ref = samples["x0"]
    rel = ((x0 - ref).abs().max() / ref.abs().max()).item()
    check(rel <= tol, f"{run}: diffusers' one-step x0 from the saved generator matches the C++ samples (max relative diff {rel:.3g} <= {tol})")
    # The negative control: the untrained generator is far from the samples, so the match above is the training's.
    moved = ((x0_start - ref).abs().max() / ref.abs().max()).item()
    check(moved >= 10 * rel and moved > tol, f"{run}: the generator's starting point is 10x further from them (max relative diff {moved:.3g})")
    # metrics.csv: a row per step, the evaluations finite
    m = metric_rows(run)
    check([int(r["step"]) for r in m] == list(range(info["steps"] + 1)), f"{run}: metrics.csv has steps 0..{info['steps']}")
    for r in (m[0], m[-1]):
        vals = [float(r[k]) for k in ("eval_reward", "eval_clip_score", "eval_diversity")]
        check(all(math.isfinite(v) for v in vals), f"{run}: step {r['step']}'s evaluation is finite ({vals})")
    for r in m[1:]:
        check(math.isfinite(float(r["generator_loss"])) and math.isfinite(float(r["assistant_loss"])), f"{run}: step {r['step']}'s losses are finite")
    grids = sorted(os.listdir(os.path.join(run, "samples")))
    check(len(grids) >= 2 and grids[0] == "step_000000.png", f"{run}: sample grids {grids}")
    img = Image.open(os.path.join(run, "samples", grids[-1]))
    check(img.mode in ("RGB", "RGBA") and img.size[0] > 100, f"{run}: the last grid is a colour image of {img.size}")


def same(a, b, tol):
    ta, tb = generator_tensors(a), generator_tensors(b)
    check(ta.keys() == tb.keys(), f"{a} vs {b}: the same generator tensors")
    worst = max(((ta[k] - tb[k]).abs().max() / (ta[k].abs().max() + 1e-30)).item() for k in ta)
    exact = all(torch.equal(ta[k], tb[k]) for k in ta)
    if tol == 0:
        check(exact, f"{a} vs {b}: the generators agree bit for bit" + ("" if exact else f" (max relative diff {worst:.3g})"))
    else:
        # Not the weights: Adam turns round-off in a near-zero gradient into a full step of either sign,
        # so weights agree only to the learning rate; what the generator computes agrees to round-off.
        xa, xb = (load_file(os.path.join(r, "eval_samples.safetensors"))["x0"] for r in (a, b))
        rel = ((xa - xb).abs().max() / xa.abs().max()).item()
        check(rel <= tol, f"{a} vs {b}: the generators' samples agree (max relative diff {rel:.3g} <= {tol}; weights {worst:.3g})")
    ma, mb = metric_rows(a), metric_rows(b)
    check(len(ma) == len(mb), f"{a} vs {b}: metrics.csv has the same steps")
    for ra, rb in zip(ma[1:], mb[1:]):
        for k in ("generator_loss", "assistant_loss", "batch_reward"):
            x, y = float(ra[k]), float(rb[k])
            ok = x == y if tol == 0 else abs(x - y) <= max(tol, 1e-4) * (1 + abs(x))
            check(ok, f"{a} vs {b}: step {ra['step']} {k} {x} vs {y}")


def main():
    mode = sys.argv[1]
    if mode == "roundtrip":
        roundtrip(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    elif mode == "same":
        same(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    else:
        sys.exit(f"unknown mode {mode}")
    if failures:
        print(f"{len(failures)} check(s) failed")
        sys.exit(1)


if __name__ == "__main__":
    main()
