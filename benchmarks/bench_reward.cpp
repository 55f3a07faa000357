// The reward models at their real sizes (random weights), as the trainer uses them: a batch of
// generated images in [−1, 1] through the reward's own differentiable path (preprocessing, the
// frozen towers, the score), forward and backward to the pixels. The C++ half of
// benchmarks/real_size/rewards.sh, which runs benchmarks/bench_reward.py — the originals' own
// classes (hpsv2's OpenCLIP, transformers' CLIP, image-reward's BLIP and BERT) — beside it.
//
//   bench_reward KIND THREADS ITERS BATCH SIDE   KIND: hps | aesthetic | image_reward
// prints one JSON line: parameters, the weights' bytes and the peak bytes a forward + backward adds
// above them (exact: the counting allocator, memory/peak_memory.hpp), and the median seconds.
#include <diffinstruct/memory/peak_memory.hpp>
#include <diffinstruct/models/open_clip.hpp>
#include <diffinstruct/text2image/aesthetic_reward.hpp>
#include <diffinstruct/text2image/clip_reward.hpp>
#include <diffinstruct/text2image/image_reward_reward.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

namespace di = diffinstruct;
namespace dm = diffinstruct::models;
namespace t2i = diffinstruct::text2image;

namespace {

/// The published heads' chain (the aesthetic predictor's and ImageReward's MLP): 768 or `in` → 1.
std::vector<std::pair<int64_t, std::pair<int64_t, int64_t>>> head_chain(int64_t in) {
  return {{0, {1024, in}}, {2, {128, 1024}}, {4, {64, 128}}, {6, {16, 64}}, {7, {1, 16}}};
}

void freeze(torch::nn::Module& m) {
  m.eval();
  for (auto& p : m.parameters()) p.requires_grad_(false);
}

int64_t count(const torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: bench_reward hps|aesthetic|image_reward THREADS ITERS BATCH SIDE\n");
    return 2;
  }
  const std::string kind = argv[1];
  const int threads = std::atoi(argv[2]), iters = std::atoi(argv[3]);
  const int64_t batch = std::atoll(argv[4]), side = std::atoll(argv[5]);
  torch::set_num_threads(threads);
  torch::manual_seed(0);
  const c10::Device cpu(torch::kCPU);
  std::function<torch::Tensor(const torch::Tensor&)> reward;
  int64_t params = 0, weight_bytes = 0;
  {
    di::PeakMemoryScope weights(cpu);
    if (kind == "hps") {
      // HPSv2.1: OpenCLIP ViT-H-14, the cosine, OpenCLIP's resize-and-pad; the prompts' features are
      // computed once (the text tower runs without gradient, as the trainer's PromptEncoder does).
      const auto config = dm::OpenClipConfig::named("ViT-H-14");
      dm::ClipVisionModel vision(config.vision_config());
      dm::ClipTextModel text(config.text_config());
      freeze(*vision);
      freeze(*text);
      params = count(*vision) + count(*text);
      torch::Tensor text_embeds;
      {
        torch::NoGradGuard no_grad;
        const auto e = text->forward(torch::randint(0, 49407, {batch, 77}, torch::kLong)).text_embeds;
        text_embeds = e / e.norm(2, -1, true);
      }
      auto r = std::make_shared<t2i::ClipReward>(vision, torch::zeros({}), nullptr, t2i::hps_reward_options());
      reward = [r, text_embeds](const torch::Tensor& x) {
        t2i::PromptCondition c;
        c.reward_text_embeds = text_embeds;
        return (*r)(x, c);
      };
    } else if (kind == "aesthetic") {
      // The LAION aesthetic predictor v2: CLIP ViT-L/14 (OpenAI's) and the published head.
      dm::ClipVisionConfig v;
      v.hidden_size = 1024;
      v.intermediate_size = 4096;
      v.num_hidden_layers = 24;
      v.num_attention_heads = 16;
      v.image_size = 224;
      v.patch_size = 14;
      v.projection_dim = 768;
      v.with_projection = true;
      dm::ClipVisionModel vision(v);
      dm::AestheticHead head(head_chain(768));
      freeze(*vision);
      freeze(*head);
      params = count(*vision) + count(*head);
      auto r = std::make_shared<t2i::AestheticReward>(vision, head, nullptr);
      reward = [r](const torch::Tensor& x) { return (*r)(x, 0); };
    } else if (kind == "image_reward") {
      // ImageReward v1.0: BLIP's ViT-L/16, BERT-base with cross-attention (the published med_config's
      // values, built in), the head; prompts of 35 tokens.
      dm::ImageRewardModel model(dm::ImageRewardConfig{}, head_chain(768));
      freeze(*model);
      params = count(*model);
      std::string vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n";
      for (int i = 0; i < 200; ++i) vocab += "w" + std::to_string(i) + "\n";
      std::vector<std::string> prompts;
      for (int64_t b = 0; b < batch; ++b) {
        std::string p;
        for (int i = 0; i < 30; ++i) p += "w" + std::to_string((b * 31 + i * 7) % 200) + " ";
        prompts.push_back(p);
      }
      auto r = std::make_shared<t2i::ImageRewardReward>(model, di::text::WordPieceTokenizer(vocab), prompts, nullptr);
      reward = [r, batch](const torch::Tensor& x) {
        t2i::PromptCondition c;
        c.prompt_index = torch::arange(batch, torch::kLong);
        return (*r)(x, c);
      };
    } else {
      std::fprintf(stderr, "bench_reward: unknown kind '%s' (hps, aesthetic, image_reward)\n", kind.c_str());
      return 2;
    }
    weight_bytes = weights.peak_bytes();
  }
  const auto pixels = torch::rand({batch, 3, side, side}) * 2 - 1;
  std::vector<double> seconds;
  int64_t peak = 0;
  for (int i = 0; i < iters + 1; ++i) {
    const auto x = pixels.clone().requires_grad_(true);
    di::PeakMemoryScope scope(cpu);
    const auto t0 = std::chrono::steady_clock::now();
    const auto r = reward(x);
    const auto g = torch::autograd::grad({r.sum()}, {x})[0];
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    peak = std::max(peak, scope.peak_bytes());
    if (i >= 1) seconds.push_back(dt);  // one warm-up iteration
    if (!std::isfinite(g.abs().sum().item<double>())) {
      std::fprintf(stderr, "bench_reward: the gradient is not finite\n");
      return 1;
    }
  }
  std::sort(seconds.begin(), seconds.end());
  std::printf("{\"kind\": \"%s\", \"side\": \"c++\", \"params\": %lld, \"weight_bytes\": %lld, \"fwd_bwd_peak_bytes\": %lld, \"median_s\": %.4f}\n",
              kind.c_str(), static_cast<long long>(params), static_cast<long long>(weight_bytes), static_cast<long long>(peak),
              seconds[seconds.size() / 2]);
  return 0;
}
