// The rewards as metrics (text2image/metric_scorers.hpp): 8-bit images scored as the reward models
// score them, against the formulas on the same tiny CLIP; refusals; and the [cuda] twin. Parity with
// the originals' own evaluation code on real PNGs is tests/evaluate/run_evaluate.sh.
#include "../test_skip.hpp"
#include "../text/tiny_vocab.hpp"
#include "tiny_parts.hpp"

#include <diffinstruct/text2image/metric_scorers.hpp>

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
