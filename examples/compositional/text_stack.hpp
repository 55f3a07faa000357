#pragma once
// The miniature's text side, trained here: a CLIP BPE tokenizer learnt from the captions
// (text::train_clip_bpe), and a small CLIP — the library's CLIPTextModel and CLIPVisionModel, each
// with its projection — trained contrastively on rendered scenes and their captions. CLIP is the
// reward of post-training (text2image::ClipReward reads it as it reads PickScore), and its text
// tower is the text encoder the teacher UNet is conditioned on, as Stable Diffusion's is.
#include "config.hpp"
#include "render.hpp"

#include <diffinstruct/models/clip_model.hpp>
#include <diffinstruct/models/clip_vision.hpp>
#include <diffinstruct/models/pretrained.hpp>
#include <diffinstruct/models/pretrained_save.hpp>
#include <diffinstruct/text/bpe_training.hpp>
#include <diffinstruct/text2image/clip_reward.hpp>
#include <diffinstruct/util/progress_bar.hpp>

#include <cmath>
#include <map>

namespace compositional {

namespace dm = diffinstruct::models;
namespace dtext = diffinstruct::text;

/// Trains the tokenizer on sampled captions (every combination: the words are what matters) and
/// writes it as a transformers tokenizer folder.
inline void make_tokenizer(const Config& cfg, const fs::path& dir) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(cfg.seed + 7);
  const auto captions = captions_of(sample_scenes(cfg.tokenizer_captions, gen, Combinations::kAny));
  const auto files = dtext::train_clip_bpe(captions);
  dtext::save_clip_tokenizer_folder(files, dir.string(), cfg.max_length);
  fmt::print("tokenizer: {} merges, {} tokens\n", files.merges, files.vocab_size);
}

/// The images as the CLIP reward sees them (text2image::ClipReward: [−1, 1] -> [0, 1] -> CLIP's resize and normalisation).
inline torch::Tensor clip_pixels(const torch::Tensor& x, int64_t size) {
  return dm::clip_preprocess(diffinstruct::text2image::unit_images(x), size);
}

inline dm::ClipModelParts make_clip(const Config& cfg, const dtext::ClipTokenizer& tok) {
  dm::ClipTextConfig t;
  t.vocab_size = tok.vocab_size();
  t.hidden_size = cfg.clip_width;
  t.intermediate_size = 4 * cfg.clip_width;
  t.projection_dim = cfg.clip_width;
  t.num_hidden_layers = cfg.clip_layers;
  t.num_attention_heads = 4;
  t.max_position_embeddings = cfg.max_length;
  t.bos_token_id = tok.bos_id();
  t.eos_token_id = tok.eos_id();
  t.pad_token_id = tok.pad_id();
  t.with_projection = true;
  dm::ClipVisionConfig v;
  v.hidden_size = cfg.clip_width;
  v.intermediate_size = 4 * cfg.clip_width;
  v.projection_dim = cfg.clip_width;
  v.num_hidden_layers = cfg.clip_layers;
  v.num_attention_heads = 4;
  v.image_size = kCanvas;
  v.patch_size = cfg.clip_patch;
  v.with_projection = true;
  dm::ClipModelParts parts;
  parts.text = dm::ClipTextModel(t);
  parts.vision = dm::ClipVisionModel(v);
  parts.logit_scale = torch::full({}, std::log(1 / 0.07));  // CLIP's initial temperature (the models initialise themselves)
  return parts;
}

/// Symmetric InfoNCE over a batch of rendered scenes and their captions. Two rows with the same
/// caption are both right for it (the target spreads over them), so a repeated caption is no error.
inline void train_clip(dm::ClipModelParts& clip, const dtext::ClipTokenizer& tok, const ItemBank& bank, const Config& cfg) {
  torch::manual_seed(cfg.seed + 11);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(cfg.seed + 12);
  auto logit_scale = clip.logit_scale.clone().requires_grad_(true);
  auto params = clip.text->parameters();
  for (auto& p : clip.vision->parameters()) params.push_back(p);
  params.push_back(logit_scale);
  torch::optim::AdamW opt(params, torch::optim::AdamWOptions(cfg.clip_lr).weight_decay(0.01));
  clip.text->train();
  clip.vision->train();
  diffinstruct::ProgressBar bar("clip", cfg.clip_steps);
  double smoothed = 0, acc = 0;
  for (int64_t step = 0; step < cfg.clip_steps; ++step) {
    const auto scenes = sample_scenes(cfg.clip_batch, gen, Combinations::kSeen);
    const auto captions = captions_of(scenes);
    const auto x = render(scenes, bank, gen);
    auto ie = clip.vision->forward(clip_pixels(x, kCanvas)).image_embeds;
    auto te = clip.text->forward(tok.batch(captions)).text_embeds;
    ie = ie / ie.norm(2, -1, true);
    te = te / te.norm(2, -1, true);
    const auto logits = logit_scale.clamp_max(std::log(100.0)).exp() * ie.mm(te.t());
    std::map<std::string, int64_t> caption_id;
    std::vector<int64_t> ids;
    for (const auto& c : captions) ids.push_back(caption_id.emplace(c, static_cast<int64_t>(caption_id.size())).first->second);
    const auto id = torch::tensor(ids);
    const auto same = (id.unsqueeze(1) == id.unsqueeze(0)).to(torch::kFloat);
    const auto target = same / same.sum(1, true);
    const auto loss = -0.5 * ((target * torch::log_softmax(logits, 1)).sum(1).mean() + (target * torch::log_softmax(logits.t(), 1)).sum(1).mean());
    opt.zero_grad();
    loss.backward();
    opt.step();
    const double a = (logits.argmax(1) == torch::arange(cfg.clip_batch)).to(torch::kFloat).mean().item<double>();
    smoothed = step == 0 ? loss.item<double>() : 0.98 * smoothed + 0.02 * loss.item<double>();
    acc = step == 0 ? a : 0.98 * acc + 0.02 * a;
    if (step % 10 == 0 || step + 1 == cfg.clip_steps)
      bar.update(step + 1, fmt::format("loss {:.3f}  image->caption top-1 {:.2f}  scale {:.1f}", smoothed, acc, logit_scale.exp().item<double>()));
  }
  bar.finish();
  clip.logit_scale = logit_scale.detach().clamp_max(std::log(100.0));
  clip.text->eval();
  clip.vision->eval();
}

/// Top-1 retrieval within batches of held-out test scenes (test-split items): image -> its caption,
/// for seen combinations and for held-out ones. The reward's own accuracy, reported beside the table.
inline std::pair<double, double> clip_retrieval(dm::ClipModelParts& clip, const dtext::ClipTokenizer& tok, const ItemBank& test_bank, uint64_t seed,
                                                int64_t batch = 64, int64_t batches = 4) {
  torch::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  double seen = 0, held = 0;
  for (int which = 0; which < 2; ++which) {
    double right = 0;
    for (int64_t b = 0; b < batches; ++b) {
      const auto scenes = sample_scenes(batch, gen, which == 0 ? Combinations::kSeen : Combinations::kHeldOut);
      auto ie = clip.vision->forward(clip_pixels(render(scenes, test_bank, gen), kCanvas)).image_embeds;
      auto te = clip.text->forward(tok.batch(captions_of(scenes))).text_embeds;
      right += (ie.mm((te / te.norm(2, -1, true)).t()).argmax(1) == torch::arange(batch)).sum().item<double>();
    }
    (which == 0 ? seen : held) = right / static_cast<double>(batch * batches);
  }
  return {seen, held};
}

}  // namespace compositional
