"""A tiny transformers CLIPModel for the fixtures (tests/models/make_fixtures.py,
tests/text2image/make_tiny_pipelines.py): two layers of width 16 in each tower, projection 12, the
tokenizer's vocabulary and special ids, and logit_scale log(50), with the given image and patch size."""
import torch
import transformers


def tiny_clip_model(tok, image_size, patch_size):
    config = transformers.CLIPConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                         max_position_embeddings=77, eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id,
                         pad_token_id=tok.pad_token_id),
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=image_size,
                           patch_size=patch_size, hidden_act="gelu"),
        projection_dim=12)
    clip = transformers.CLIPModel(config).eval()
    with torch.no_grad():
        clip.logit_scale.fill_(float(torch.log(torch.tensor(50.0))))
    return clip
