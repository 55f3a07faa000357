"""The PyTorch side of the real-size step benchmark (benchmarks/real_size/run.sh): one DI* iteration
written as a PyTorch user writes it, with diffusers, peft and transformers: the same models and
settings as bench_real_step (pseudo-Huber c = 1, CFG inside α_cfg 3.5, CLIP reward α_rew 1, K = 1,
Adam β = (0.5, 0.999), clipping at 1, per-block gradient checkpointing, LoRA rank 16 on the
attention projections). The LoRAs start from the library's initial adapters (its --draws run writes
them beside the draws), and the first iteration uses the library's draws, so the first losses must
agree; later iterations draw their own numbers.

The roles are three UNets, as the peers' code keeps them (DMD2: real_unet, fake_unet, generator):
sharing one base between passes that a checkpointed backward recomputes would need the adapters'
state carried into each recompute, which peft's global switch does not do.

    python pytorch_step.py --teacher sd15 --reward clip --draws draws.safetensors [--config all|full]
                           [--precision fp32|bf16] [--steps 3] [--threads N] [--json FILE]
"""
import argparse
import json
import math
import os
import resource
import statistics
import time

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, UNet2DConditionModel
from safetensors.torch import load_file
from transformers import CLIPModel, CLIPTextModel, CLIPTokenizer

C, ALPHA_CFG, ALPHA_REW, T_STAR = 1.0, 3.5, 1.0, 999


class Counter:
    """Counts a module's forward calls (recomputes under checkpointing included)."""

    def __init__(self, module):
        self.n = 0
        module.register_forward_hook(lambda *_: setattr(self, "n", self.n + 1))


def log_alpha_bar(n=1000, beta_start=0.00085, beta_end=0.012):  # scaled_linear, as the library's DiscreteVPSchedule
    betas = torch.linspace(math.sqrt(beta_start), math.sqrt(beta_end), n, dtype=torch.float64) ** 2
    return torch.log1p(-betas).cumsum(0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--reward", required=True)
    ap.add_argument("--draws", required=True)
    ap.add_argument("--config", default="all", choices=["all", "full"])
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    dtype = torch.bfloat16 if a.precision == "bf16" else torch.float32
    draws = load_file(a.draws)
    prompt = "a photograph of an astronaut riding a horse"  # bench_real_step's

    # The models: a frozen teacher and VAE in the compute dtype, trained weights in float32.
    unet_dir = os.path.join(a.teacher, "unet")
    teacher = UNet2DConditionModel.from_pretrained(unet_dir, torch_dtype=dtype).requires_grad_(False).eval()
    here = os.path.dirname(os.path.abspath(a.draws))

    def with_lora(unet, name):  # the library's initial adapters (rank 16, alpha 16, diffusers' format), trained in float32
        unet.load_lora_adapter(os.path.join(here, name), prefix="unet", adapter_name="default")
        for n, p in unet.named_parameters():
            p.requires_grad_("lora_" in n)
            if "lora_" in n:
                p.data = p.data.float()
        return unet

    assistant = with_lora(UNet2DConditionModel.from_pretrained(unet_dir, torch_dtype=dtype), "assistant_lora.safetensors")
    gen_dtype = dtype if a.config == "all" else torch.float32
    generator = UNet2DConditionModel.from_pretrained(unet_dir, torch_dtype=gen_dtype)
    if a.config == "all":
        with_lora(generator, "generator_lora.safetensors")
    for u in (teacher, assistant, generator):
        u.enable_gradient_checkpointing()
    vae = AutoencoderKL.from_pretrained(os.path.join(a.teacher, "vae"), torch_dtype=dtype).requires_grad_(False).eval()
    tok = CLIPTokenizer.from_pretrained(os.path.join(a.teacher, "tokenizer"))
    text = CLIPTextModel.from_pretrained(os.path.join(a.teacher, "text_encoder")).eval()
    clip = CLIPModel.from_pretrained(a.reward, torch_dtype=dtype).requires_grad_(False).eval()
    clip_tok = CLIPTokenizer.from_pretrained(a.reward)
    counts = {name: Counter(u) for name, u in (("teacher", teacher), ("assistant", assistant), ("generator", generator))}

    with torch.no_grad():
        ids = lambda p: tok([p], padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
        cond, null = text(ids(prompt)).last_hidden_state, text(ids("")).last_hidden_state
        t_ids = clip_tok([prompt], padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
        text_embeds = clip.get_text_features(input_ids=t_ids).pooler_output.float()  # transformers 5: projected, in pooler_output
        text_embeds = text_embeds / text_embeds.norm(dim=-1, keepdim=True)
    table = log_alpha_bar()

    def alpha_sigma(t):
        ab = table[t.long()].exp().float()
        return ab.sqrt(), (1 - ab).sqrt()

    a_star, s_star = (v.item() for v in alpha_sigma(torch.tensor([T_STAR])))
    g_params = [p for p in generator.parameters() if p.requires_grad]
    a_params = [p for p in assistant.parameters() if p.requires_grad]
    opt_g = torch.optim.Adam(g_params, lr=1e-4 if a.config == "all" else 1e-5, betas=(0.5, 0.999), eps=1e-8)
    opt_a = torch.optim.Adam(a_params, lr=1e-4, betas=(0.5, 0.999), eps=1e-8)
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.precision == "bf16")

    def generate(z):
        with autocast:
            eps = generator(z.to(gen_dtype), torch.full((z.shape[0],), T_STAR), encoder_hidden_states=cond).sample.float()
        return (z - s_star * eps) / a_star

    def reward(x0):
        with autocast:
            pixels = vae.decode((x0 / vae.config.scaling_factor).to(dtype)).sample.float()
            images = (pixels / 2 + 0.5).clamp(0, 1)
            images = F.interpolate(images, size=(224, 224), mode="bicubic", align_corners=False, antialias=True)
            e = clip.get_image_features(pixel_values=((images - mean) / std).to(dtype)).pooler_output.float()
        e = e / e.norm(dim=-1, keepdim=True)
        return clip.logit_scale.exp().float() * (e * text_embeds).sum(-1)

    def draw(phase, step):
        if step == 0:
            return draws[phase + ".z"], draws[phase + ".t"], draws[phase + ".eps"]
        lo, hi = (0, 999) if phase == "assistant" else (20, 980)
        return torch.randn(1, 4, 32, 32), torch.randint(lo, hi + 1, (1,)).float(), torch.randn(1, 4, 32, 32)

    def step(i):
        # The assistant: denoising score matching on the generator's detached samples (λ = 1).
        z, t, eps = draw("assistant", i)
        with torch.no_grad():
            x0 = generate(z)
        al, si = alpha_sigma(t)
        x_t = al.view(-1, 1, 1, 1) * x0 + si.view(-1, 1, 1, 1) * eps
        with autocast:
            pred = assistant(x_t.to(dtype), t, encoder_hidden_states=cond).sample.float()
        loss_a = ((pred - eps) ** 2).sum((1, 2, 3)).mean()
        opt_a.zero_grad(set_to_none=True)
        loss_a.backward()
        torch.nn.utils.clip_grad_norm_(a_params, 1.0)
        opt_a.step()
        opt_a.zero_grad(set_to_none=True)
        # The generator: pseudo-Huber score divergence to the CFG-guided teacher, plus the reward.
        z, t, eps = draw("generator", i)
        x0 = generate(z)
        al, si = alpha_sigma(t)
        s4 = si.view(-1, 1, 1, 1)
        x_t = al.view(-1, 1, 1, 1) * x0 + s4 * eps
        for p in a_params:
            p.requires_grad_(False)
        with autocast:
            ea = assistant(x_t.to(dtype), t, encoder_hidden_states=cond).sample.float()
            both = teacher(torch.cat([x_t, x_t]).to(dtype), torch.cat([t, t]), encoder_hidden_states=torch.cat([cond, null])).sample.float()
        ec, eu = both.chunk(2)
        b = ec + ALPHA_CFG * (ec - eu)
        y, g = (b - ea) / s4, (ea - eps) / s4
        div = si ** 2 * (y * g).sum((1, 2, 3)) / torch.sqrt((y * y).sum((1, 2, 3)) + C * C)
        r = reward(x0)
        loss_g = (div - ALPHA_REW * r).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        for p in a_params:
            p.requires_grad_(True)
        torch.nn.utils.clip_grad_norm_(g_params, 1.0)
        opt_g.step()
        opt_g.zero_grad(set_to_none=True)
        return dict(generator_loss=loss_g.item(), divergence_loss=div.mean().item(), reward_loss=-ALPHA_REW * r.mean().item(),
                    mean_reward=r.mean().item(), assistant_loss=loss_a.item())

    seconds, first = [], None
    for i in range(a.steps):
        if i == 1 or a.steps == 1:
            before = resource.getrusage(resource.RUSAGE_SELF)
            counts_before = {k: c.n for k, c in counts.items()}
        t0 = time.perf_counter()
        s = step(i)
        seconds.append(time.perf_counter() - t0)
        first = first or s
        print(f"step {i + 1}: {seconds[-1]:.2f} s, loss {s['generator_loss']:.6g}", flush=True)
    after = resource.getrusage(resource.RUSAGE_SELF)
    timed = sorted(seconds[1:] if a.steps > 1 else seconds)
    n = len(timed)
    out = dict(side="pytorch", torch=torch.__version__, config=a.config, precision=a.precision, threads=torch.get_num_threads(), steps=a.steps,
               step_seconds=seconds, median_seconds=statistics.median(timed), user_seconds_per_step=(after.ru_utime - before.ru_utime) / n,
               system_seconds_per_step=(after.ru_stime - before.ru_stime) / n, peak_rss_bytes=after.ru_maxrss * 1024,
               unet_forwards_per_step={k: (c.n - counts_before[k]) / n for k, c in counts.items()}, first_step=first,
               trained_parameters=dict(generator=sum(p.numel() for p in g_params), assistant=sum(p.numel() for p in a_params)))
    print(json.dumps(out))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f)


if __name__ == "__main__":
    main()
