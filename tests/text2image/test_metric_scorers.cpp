// The rewards as metrics (text2image/metric_scorers.hpp): 8-bit images scored as the reward models
// score them, against the formulas on the same tiny CLIP; refusals; and the [cuda] twin. Parity with
// the originals' own evaluation code on real PNGs is tests/evaluate/run_evaluate.sh. And several
// rewards at once (text2image/prompt_rewards.hpp): the weighted sum and its gradient against the terms
// computed one by one.
#include "../test_skip.hpp"
#include "../text/tiny_vocab.hpp"
#include "tiny_parts.hpp"

#include <diffinstruct/text2image/metric_scorers.hpp>
#include <diffinstruct/text2image/prompt_rewards.hpp>

#include <catch2/catch.hpp>

namespace dm = diffinstruct::models;
namespace dt = diffinstruct::text;
namespace t2i = diffinstruct::text2image;

namespace {

dt::ClipTokenizer scorer_tokenizer() {
  return dt::ClipTokenizer(test_text::TinyVocab({"ca", "cat</w>", "do", "dog</w>"}).json(), "#version: 0.2\nc a\nca t</w>\nd o\ndo g</w>\n");
}

dm::ClipModelParts scorer_clip(const torch::Device& device) {
  torch::manual_seed(11);
  dm::ClipTextConfig c;
  c.vocab_size = 600;
  c.hidden_size = 16;
  c.intermediate_size = 32;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 2;
  c.eos_token_id = scorer_tokenizer().eos_id();
  c.bos_token_id = scorer_tokenizer().bos_id();
  c.with_projection = true;
  c.projection_dim = 8;
  dm::ClipModelParts parts;
  parts.text = dm::ClipTextModel(c);
  parts.vision = dm::ClipVisionModel(tiny_t2i::vision_config());  // 16 x 16 images, projection 8
  parts.text->to(device);
  parts.vision->to(device);
  parts.logit_scale = torch::tensor(std::log(50.0));
  return parts;
}

torch::Tensor unit_rows(const torch::Tensor& e) { return e / e.norm(2, -1, true); }

}  // namespace

TEST_CASE("metric scorers: PickScore, the CLIP score and HPS of 8-bit images are their formulas", "[unit][text2image]") {
  const std::vector<std::string> prompts = {"a cat", "a dog"};
  auto clip = scorer_clip(torch::kCPU);
  torch::manual_seed(3);
  const auto images = torch::randint(0, 256, {3, 3, 16, 16}, torch::kLong).to(torch::kByte);
  const auto index = torch::tensor({1, 0, 1}, torch::kLong);
  // At the tower's own size the PIL resize and HPS's resize-and-pad leave the image as it is, so each
  // score is the formula on the normalised 8-bit image.
  torch::NoGradGuard no_grad;
  const auto e = unit_rows(clip.vision->forward(dm::clip_normalize(images.to(torch::kFloat) / 255)).image_embeds).to(torch::kDouble);
  const auto t = unit_rows(clip.text->forward(scorer_tokenizer().batch(prompts)).text_embeds).to(torch::kDouble).index_select(0, index);
  const auto cos = (e * t).sum(-1);
  REQUIRE(cos.abs().min().item<double>() > 1e-3);
  const double tol = 1e-5;  // float32 towers on both sides, the same operations
  t2i::ClipSimilarityScorer pick(clip, scorer_tokenizer(), prompts, t2i::ClipSimilarityScorer::pickscore());
  const auto s = pick.score(images, index);
  CHECK(pick.scale() == Approx(50.0));
  CHECK((s.score - 50 * cos).abs().max().item<double>() < tol * 50);
  CHECK((s.image_embeds.to(torch::kDouble) - e).abs().max().item<double>() < tol);
  t2i::ClipSimilarityScorer score(clip, scorer_tokenizer(), prompts, t2i::ClipSimilarityScorer::clip_score());
  CHECK((score.score(images, index).score - 100 * cos.clamp_min(0)).abs().max().item<double>() < tol * 100);
  t2i::ClipSimilarityScorer hps(clip, scorer_tokenizer(), prompts, t2i::ClipSimilarityScorer::hps());
  CHECK((hps.score(images, index).score - cos).abs().max().item<double>() < tol);
  // Negative control: the prompts the other way round change the scores.
  CHECK((pick.score(images, 1 - index).score - s.score).abs().max().item<double>() > 1e-3);
  CHECK(t2i::ClipSimilarityScorer::pickscore().info.paper_factor == 0.01);
  CHECK(t2i::ClipSimilarityScorer::hps().info.paper_factor == 100);
}

TEST_CASE("metric scorers refuse what is not 8-bit images with prompt indices", "[unit][text2image]") {
  auto clip = scorer_clip(torch::kCPU);
  t2i::ClipSimilarityScorer pick(clip, scorer_tokenizer(), {"a cat", "a dog"}, t2i::ClipSimilarityScorer::pickscore());
  const auto images = torch::zeros({2, 3, 16, 16}, torch::kByte);
  CHECK_THROWS_WITH(pick.score(images.to(torch::kFloat), torch::tensor({0, 1})), Catch::Contains("expected uint8 images [B, 3, H, W] on the CPU, got Float"));
  CHECK_THROWS_WITH(pick.score(images, torch::tensor({0})), Catch::Contains("one prompt index per image (2)"));
  CHECK_THROWS_WITH(pick.score(images, torch::tensor({0, 2})), Catch::Contains("prompt indices must lie in [0, 2)"));
  CHECK_THROWS_WITH(t2i::ClipSimilarityScorer(clip, scorer_tokenizer(), {}, t2i::ClipSimilarityScorer::hps()), Catch::Contains("no prompts"));
}

TEST_CASE("[cuda] metric scorers with their models on the GPU match the CPU", "[text2image][cuda]") {
  DIFFINSTRUCT_REQUIRE_CUDA();
  const std::vector<std::string> prompts = {"a cat", "a dog"};
  const auto images = torch::randint(0, 256, {3, 3, 16, 16}, torch::kLong).to(torch::kByte);
  const auto index = torch::tensor({1, 0, 1}, torch::kLong);
  auto cpu = scorer_clip(torch::kCPU);
  auto gpu = scorer_clip(torch::Device(torch::kCUDA));
  for (auto kind : {t2i::ClipSimilarityScorer::pickscore(), t2i::ClipSimilarityScorer::hps()}) {
    const auto a = t2i::ClipSimilarityScorer(cpu, scorer_tokenizer(), prompts, kind).score(images, index);
    const auto b = t2i::ClipSimilarityScorer(gpu, scorer_tokenizer(), prompts, kind).score(images, index);
    CHECK(b.score.device().is_cpu());
    // TF32 may be on for CUDA matrix products: about 1e-3 relative in a tiny tower.
    CHECK((a.score - b.score).abs().max().item<double>() < 5e-3 * (1 + a.score.abs().max().item<double>()));
  }
}

TEST_CASE("PromptRewards: the weighted sum of its terms through one decode, and its gradient, held-out terms only scored",
          "[unit][text2image]") {
  const std::vector<std::string> prompts = {"a cat", "a dog", "cat dog"};
  auto clip = scorer_clip(torch::kCPU);
  auto vae = tiny_t2i::tiny_vae();
  vae->eval();
  t2i::PromptRewards rewards(vae, prompts);
  rewards.add_clip("pickscore", 0.7, clip, scorer_tokenizer(), t2i::pickscore_reward_options());
  rewards.add_clip("hps", -2.0, clip, scorer_tokenizer(), t2i::hps_reward_options());
  rewards.add_clip("clip_score", 0.0, clip, scorer_tokenizer(), t2i::clip_score_reward_options());  // held out
  torch::manual_seed(5);
  const auto x0 = torch::randn({3, 4, 2, 2}, torch::kDouble).to(torch::kFloat).requires_grad_(true);  // latents: 16 x 16 pixels
  t2i::PromptCondition c;
  c.prompt_index = torch::tensor({2, 0, 1}, torch::kLong);
  const auto r = rewards(x0, c);
  const auto g = torch::autograd::grad({r.sum()}, {x0})[0];
  // Each term on its own, with the VAE inside the reward and the text embeddings given per row.
  torch::Tensor text;
  {
    torch::NoGradGuard no_grad;
    text = unit_rows(clip.text->forward(scorer_tokenizer().batch(prompts)).text_embeds).index_select(0, c.prompt_index);
  }
  t2i::PromptCondition with_text = c;
  with_text.reward_text_embeds = text;
  const auto x = x0.detach().clone().requires_grad_(true);
  t2i::ClipReward pick(clip.vision, clip.logit_scale, vae, t2i::pickscore_reward_options());
  t2i::ClipReward hps(clip.vision, clip.logit_scale, vae, t2i::hps_reward_options());
  t2i::ClipReward score(clip.vision, clip.logit_scale, vae, t2i::clip_score_reward_options());
  const auto expected = 0.7 * pick(x, with_text) - 2.0 * hps(x, with_text);
  const auto expected_g = torch::autograd::grad({expected.sum()}, {x})[0];
  CHECK((r - expected).abs().max().item<double>() < 1e-5 * (1 + expected.abs().max().item<double>()));
  CHECK((g - expected_g).norm().item<double>() <= 1e-5 * expected_g.norm().item<double>());
  CHECK(expected_g.norm().item<double>() > 0);
  // Every term's raw score, the held-out one included.
  const auto all = rewards.scores(rewards.decode(x0.detach()), c.prompt_index);
  REQUIRE(all.size() == 3);
  CHECK(all[2].first == "clip_score");
  CHECK((all[2].second.to(torch::kDouble) - score(x.detach(), with_text).to(torch::kDouble)).abs().max().item<double>() < 1e-4);
  CHECK(rewards.weight("clip_score") == 0);
  CHECK_THAT(rewards.describe(), Catch::Contains("clip_score held out"));
  // Refusals.
  t2i::PromptCondition no_index;
  CHECK_THROWS_WITH(rewards(x0, no_index), Catch::Contains("needs a prompt_index per row"));
  c.prompt_index = torch::tensor({2, 0, 3}, torch::kLong);
  CHECK_THROWS_WITH(rewards(x0, c), Catch::Contains("must lie in [0, 3)"));
  CHECK_THROWS_WITH(rewards.add_clip("hps", 1.0, clip, scorer_tokenizer(), t2i::hps_reward_options()), Catch::Contains("two terms named 'hps'"));
  t2i::PromptRewards none(vae, prompts);
  none.add_clip("held", 0.0, clip, scorer_tokenizer(), t2i::pickscore_reward_options());
  c.prompt_index = torch::tensor({0, 1, 2}, torch::kLong);
  CHECK_THROWS_WITH(none(x0, c), Catch::Contains("no term has a weight"));
}
