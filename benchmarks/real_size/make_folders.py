"""Writes random-weight folders with the published SD 1.5 and CLIP ViT-L/14 configurations, for the
real-size step benchmark (benchmarks/real_size/run.sh): the same code runs on a real checkpoint.

    python make_folders.py OUT_DIR

OUT_DIR/
  sd15/   StableDiffusionPipeline.save_pretrained: SD 1.5's UNet (859.5 M parameters), VAE, CLIP ViT-L/14
          text encoder (vocabulary 49,408), PNDM scheduler (scaled_linear, epsilon), a tokenizer
  clip/   a transformers CLIPModel with CLIP ViT-L/14's configuration (the reward), its tokenizer beside it
Seeded: the same packages give the same folders. The tokenizer's merges are learned from the test
prompts (the real CLIP vocabulary is not needed for timing: the embedding tables have the real size).
"""
import os
import sys

import torch
import transformers
from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "text"))
import make_tokenizer_fixtures as tf  # noqa: E402

VOCAB = 49408
# SD 1.5's unet/config.json, vae/config.json, scheduler/scheduler_config.json (their non-default entries).
UNET = dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
            down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=768,
            attention_head_dim=8)
VAE = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512), layers_per_block=2, sample_size=512,
           down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, scaling_factor=0.18215)
SCHEDULER = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", skip_prk_steps=True,
                 set_alpha_to_one=False, steps_offset=1, prediction_type="epsilon")


def text_config(tok, **extra):  # CLIP ViT-L/14's text tower
    return dict(vocab_size=VOCAB, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                max_position_embeddings=77, hidden_act="quick_gelu", eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id,
                pad_token_id=tok.pad_token_id, **extra)


def main():
    out = sys.argv[1]
    tmp = os.path.join(out, "_tokenizer")
    tf.write_folder(tmp, tf.learn_merges(tf.CORPUS, 400), "<|endoftext|>")
    tok = transformers.CLIPTokenizer.from_pretrained(tmp)
    torch.manual_seed(1)
    unet = UNet2DConditionModel(**UNET)
    torch.manual_seed(2)
    vae = AutoencoderKL(**VAE)
    torch.manual_seed(3)
    text = transformers.CLIPTextModel(transformers.CLIPTextConfig(**text_config(tok))).eval()
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet, scheduler=PNDMScheduler(**SCHEDULER),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(os.path.join(out, "sd15"))
    del pipe, unet, vae, text
    torch.manual_seed(4)
    config = transformers.CLIPConfig(text_config=text_config(tok), projection_dim=768,
                                     vision_config=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                                                        image_size=224, patch_size=14, hidden_act="quick_gelu"))
    clip = transformers.CLIPModel(config).eval()
    clip.save_pretrained(os.path.join(out, "clip"))
    tok.save_pretrained(os.path.join(out, "clip"))
    print(f"wrote {out}/sd15 and {out}/clip")


if __name__ == "__main__":
    main()
