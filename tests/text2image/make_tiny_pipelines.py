"""Writes tiny random diffusers pipeline folders and a CLIP reward folder, for 05_text_to_image's test.

    python make_tiny_pipelines.py OUT_DIR

OUT_DIR/
  sd/        StableDiffusionPipeline.save_pretrained: unet, vae, text_encoder, tokenizer, scheduler
             (epsilon prediction, DDIM's scaled_linear table), 8x8 latents, 16x16 pixels
  sd_v/      the same kind with a v_prediction scheduler (SD 2.x's)
  sdxl/      StableDiffusionXLPipeline: two text encoders (the second with a projection) and
             text_time embeddings
  clip/      a transformers CLIPModel (logit_scale log 50) with its tokenizer files beside it
  versions.json
Everything is seeded: the same packages give the same folders.
"""
import json
import os
import sys

import torch
import transformers
from diffusers import (AutoencoderKL, DDIMScheduler, EulerDiscreteScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline,
                       UNet2DConditionModel)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "text"))
import make_tokenizer_fixtures as tf  # noqa: E402
import tiny_clip  # noqa: E402

VAE = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4,
           down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"), up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
           sample_size=16, scaling_factor=0.18215)
SD_UNET = dict(block_out_channels=(16, 32), layers_per_block=1, cross_attention_dim=24, attention_head_dim=4, norm_num_groups=8,
               down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
               sample_size=8, in_channels=4, out_channels=4)
SDXL_UNET = dict(block_out_channels=(16, 32), layers_per_block=1, cross_attention_dim=32, attention_head_dim=(2, 4),
                 transformer_layers_per_block=(1, 1), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), use_linear_projection=True, addition_embed_type="text_time",
                 addition_time_embed_dim=8, projection_class_embeddings_input_dim=16 + 6 * 8, norm_num_groups=8, sample_size=8)


def tokenizer(folder):
    tf.write_folder(folder, tf.learn_merges(tf.CORPUS, 400), "<|endoftext|>")
    return transformers.CLIPTokenizer.from_pretrained(folder)


def text_encoder(tok, hidden, projection=False, seed=0):
    torch.manual_seed(seed)
    config = transformers.CLIPTextConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                                         num_attention_heads=2, max_position_embeddings=77, eos_token_id=tok.eos_token_id,
                                         bos_token_id=tok.bos_token_id, pad_token_id=tok.pad_token_id, projection_dim=16)
    cls = transformers.CLIPTextModelWithProjection if projection else transformers.CLIPTextModel
    return cls(config).eval()


def scheduler(cls, prediction):
    return cls(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", prediction_type=prediction)


def sd_pipeline(out, name, prediction, scheduler_cls, tmp):
    tok = tokenizer(os.path.join(tmp, name + "_tokenizer"))
    torch.manual_seed(1)
    unet = UNet2DConditionModel(**SD_UNET)
    torch.manual_seed(2)
    vae = AutoencoderKL(**VAE)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder(tok, 24, seed=3), tokenizer=tok, unet=unet,
                                   scheduler=scheduler(scheduler_cls, prediction), safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(os.path.join(out, name))


def sdxl_pipeline(out, tmp):
    tok = tokenizer(os.path.join(tmp, "sdxl_tokenizer"))
    torch.manual_seed(4)
    unet = UNet2DConditionModel(**SDXL_UNET)
    torch.manual_seed(5)
    vae = AutoencoderKL(**VAE)
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=text_encoder(tok, 16, seed=6), text_encoder_2=text_encoder(tok, 16, True, seed=7),
                                     tokenizer=tok, tokenizer_2=tok, unet=unet, scheduler=scheduler(EulerDiscreteScheduler, "epsilon"))
    pipe.save_pretrained(os.path.join(out, "sdxl"))


def clip_folder(out, tmp):
    folder = os.path.join(out, "clip")
    tok = tokenizer(os.path.join(tmp, "clip_tokenizer"))
    torch.manual_seed(8)
    clip = tiny_clip.tiny_clip_model(tok, image_size=16, patch_size=4)
    clip.save_pretrained(folder)
    tok.save_pretrained(folder)


def main():
    out = sys.argv[1]
    tmp = os.path.join(out, "_tmp")
    os.makedirs(tmp, exist_ok=True)
    torch.set_num_threads(1)
    sd_pipeline(out, "sd", "epsilon", DDIMScheduler, tmp)
    sd_pipeline(out, "sd_v", "v_prediction", DDIMScheduler, tmp)
    sdxl_pipeline(out, tmp)
    clip_folder(out, tmp)
    import diffusers
    import peft
    with open(os.path.join(out, "versions.json"), "w") as f:
        json.dump({"torch": torch.__version__, "diffusers": diffusers.__version__, "transformers": transformers.__version__,
                   "peft": peft.__version__}, f)


if __name__ == "__main__":
    main()
