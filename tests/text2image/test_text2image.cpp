// Prompts as strings, end to end, without Python: the PromptCondition's traits, the PromptEncoder
// (cache, hidden layers, SDXL's two encoders), the PromptSource (the trainer's generator, per-rank
// rows), the CLIP reward (its formula, its gradient by finite differences, what it declares), and a
// DI* run on a tiny text-conditioned UNet whose CLIP reward rises. Parity of the reward with
// transformers + diffusers is in tests/models/run_parity.sh.
#include "../test_skip.hpp"
#include "../models/one_step_unet.hpp"
#include "../text/tiny_vocab.hpp"
#include "tiny_parts.hpp"

#include <diffinstruct/di_star.hpp>
#include <diffinstruct/models/autoencoder_kl.hpp>
#include <diffinstruct/models/clip_model.hpp>
#include <diffinstruct/text/prompt_file.hpp>
#include <diffinstruct/models/scheduler_config.hpp>
#include <diffinstruct/text2image/clip_reward.hpp>
#include <diffinstruct/text2image/one_step_unet.hpp>
#include <diffinstruct/text2image/pipeline_folder.hpp>
#include <diffinstruct/text2image/prompt_source.hpp>

#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <fstream>

namespace di = diffinstruct;
namespace dm = diffinstruct::models;
namespace dt = diffinstruct::text;
namespace t2i = diffinstruct::text2image;
namespace fs = std::filesystem;

namespace {

const std::vector<std::string> kMerged = {"ca", "cat</w>", "do", "dog</w>"};
const std::string kMerges = "#version: 0.2\nc a\nca t</w>\nd o\ndo g</w>\n";

dt::ClipTokenizer tokenizer() { return dt::ClipTokenizer(test_text::TinyVocab(kMerged).json(), kMerges); }

dm::ClipTextConfig text_config(int64_t hidden, bool projection) {
  dm::ClipTextConfig c;
  c.vocab_size = 600;
  c.hidden_size = hidden;
  c.intermediate_size = 2 * hidden;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 2;
  c.eos_token_id = tokenizer().eos_id();
  c.bos_token_id = tokenizer().bos_id();
  c.with_projection = projection;
  c.projection_dim = 8;
  return c;
}

using tiny_t2i::tiny_unet_json;
using tiny_t2i::tiny_vae;
using tiny_t2i::vision_config;

/// An SD 1.x-like encoder (hidden 12 = the UNet's cross_attention_dim) with the reward's text tower.
std::shared_ptr<t2i::PromptEncoder> encoder_with_reward(dm::ClipTextModel reward_text) {
  auto enc = std::make_shared<t2i::PromptEncoder>(std::vector<t2i::UNetTextEncoder>{{tokenizer(), dm::ClipTextModel(text_config(12, false))}});
  enc->set_reward_text(tokenizer(), std::move(reward_text));
  return enc;
}

}  // namespace

TEST_CASE("text2image: a PromptCondition batches, broadcasts and slices every field", "[text2image]") {
  t2i::PromptCondition a;
  a.encoder_hidden_states = torch::randn({2, 5, 4});
  a.reward_text_embeds = torch::randn({2, 3});
  a.prompt_index = torch::tensor({7, 8});
  t2i::PromptCondition null;
  null.encoder_hidden_states = torch::zeros({1, 5, 4});
  null.reward_text_embeds = torch::zeros({1, 3});
  null.prompt_index = torch::tensor({-1});
  using T = di::ConditionTraits<t2i::PromptCondition>;
  static_assert(di::is_condition_v<t2i::PromptCondition>);
  const auto both = T::concat(a, T::broadcast(null, 2));
  CHECK(T::batch_size(both) == 4);
  CHECK(both.reward_text_embeds.size(0) == 4);
  CHECK(both.prompt_index.equal(torch::tensor({7, 8, -1, -1})));
  const auto row = T::slice(both, 1, 2);
  CHECK(row.encoder_hidden_states.equal(a.encoder_hidden_states.slice(0, 1, 2)));
  CHECK(row.reward_text_embeds.equal(a.reward_text_embeds.slice(0, 1, 2)));
  CHECK(row.prompt_index.item<int64_t>() == 8);
  t2i::PromptCondition no_reward;
  no_reward.encoder_hidden_states = torch::zeros({1, 5, 4});
  no_reward.prompt_index = torch::tensor({-1});
  CHECK_THROWS_WITH(T::concat(a, no_reward), Catch::Contains("one with reward text embeddings and one without") ||
                                                 Catch::Contains("with reward text embeddings and one without"));
}

TEST_CASE("text2image: the PromptEncoder encodes each prompt once, picks hidden layers, and stacks SDXL's two encoders", "[text2image]") {
  torch::manual_seed(0);
  dm::ClipTextModel text(text_config(12, false));
  t2i::PromptEncoder enc({{tokenizer(), text}}, t2i::PromptEncoderOptions().cache_size(2));
  CHECK_FALSE(text->parameters()[0].requires_grad());  // frozen by the encoder
  const auto c = enc.encode({"a cat", "a dog", "a cat"}, {0, 1, 0});
  CHECK(c.encoder_hidden_states.sizes() == torch::IntArrayRef({3, 77, 12}));
  CHECK(c.encoder_hidden_states[0].equal(c.encoder_hidden_states[2]));
  CHECK(c.prompt_index.equal(torch::tensor({0, 1, 0})));
  CHECK_FALSE(c.text_embeds.defined());
  CHECK_FALSE(c.reward_text_embeds.defined());
  CHECK(enc.cached() == 2);
  {
    torch::NoGradGuard ng;
    const auto direct = text->forward(tokenizer().batch({"a dog"})).last_hidden_state;
    CHECK(torch::allclose(c.encoder_hidden_states[1], direct[0]));
  }
  // Three new prompts through a cache of two: every row is still its own prompt's.
  const auto d = enc.encode({"x", "y", "z", "a cat"});
  CHECK(enc.cached() == 2);
  CHECK(d.encoder_hidden_states[3].equal(c.encoder_hidden_states[0]));
  CHECK_FALSE(d.encoder_hidden_states[0].equal(d.encoder_hidden_states[1]));

  // SDXL: the penultimate layer of two encoders, concatenated; the second's projected pooled output.
  dm::ClipTextModel one(text_config(12, false)), two(text_config(20, true));
  t2i::PromptEncoder xl({{tokenizer(), one, -2}, {tokenizer(), two, -2}},
                        t2i::PromptEncoderOptions().time_ids(torch::tensor({16., 16., 0., 0., 16., 16.})));
  const auto e = xl.encode({"a cat"});
  CHECK(e.encoder_hidden_states.sizes() == torch::IntArrayRef({1, 77, 32}));
  CHECK(e.text_embeds.sizes() == torch::IntArrayRef({1, 8}));
  CHECK(e.time_ids.sizes() == torch::IntArrayRef({1, 6}));
  {
    torch::NoGradGuard ng;
    const auto out = two->forward(tokenizer().batch({"a cat"}), /*keep_hidden_states=*/true);
    CHECK(torch::allclose(e.encoder_hidden_states.slice(2, 12), out.hidden_states[out.hidden_states.size() - 2]));
    CHECK(torch::allclose(e.text_embeds, out.text_embeds));
  }
  // Refusals: a projection-less last encoder with time_ids, a hidden layer past the model, a tokenizer
  // with more tokens than the model.
  CHECK_THROWS_WITH(t2i::PromptEncoder({{tokenizer(), one}}, t2i::PromptEncoderOptions().time_ids(torch::zeros({6}))),
                    Catch::Contains("must be a CLIPTextModelWithProjection"));
  CHECK_THROWS_WITH(t2i::PromptEncoder({{tokenizer(), one, -3}}), Catch::Contains("hidden_layer -3 must be -1 (last) ... -2"));
  auto small = text_config(12, false);
  small.vocab_size = 100;
  CHECK_THROWS_WITH(t2i::PromptEncoder({{tokenizer(), dm::ClipTextModel(small)}}),
                    Catch::Contains("the text model only 100: they do not belong together"));
}

TEST_CASE("text2image: the PromptSource draws with the trainer's generator, and a rank's rows are the global batch's", "[text2image]") {
  torch::manual_seed(1);
  const std::vector<std::string> prompts = {"a cat", "a dog", "a red cat", "two dogs", "a cat and a dog"};
  auto enc = encoder_with_reward(dm::ClipTextModel(text_config(10, true)));
  t2i::PromptSource source(prompts, enc);
  auto g1 = at::detail::createCPUGenerator(7), g2 = at::detail::createCPUGenerator(7);
  const auto global = source(8, g1);
  const auto again = source(8, g2);
  CHECK(global.prompt_index.equal(again.prompt_index));
  CHECK(global.encoder_hidden_states.equal(again.encoder_hidden_states));
  CHECK(global.reward_text_embeds.sizes() == torch::IntArrayRef({8, 8}));
  CHECK(torch::allclose(global.reward_text_embeds.norm(2, -1), torch::ones({8})));
  CHECK(enc->cached() <= prompts.size());
  // Rank 1 of 2 with B = 4: its rows of the global batch are what encoding its prompts gives.
  using T = di::ConditionTraits<t2i::PromptCondition>;
  const auto mine = T::slice(global, 4, 8);
  std::vector<std::string> texts;
  std::vector<int64_t> rows;
  for (int64_t i = 4; i < 8; ++i) {
    rows.push_back(global.prompt_index[i].item<int64_t>());
    texts.push_back(source.prompt(rows.back()));
  }
  const auto direct = enc->encode(texts, rows);
  CHECK(mine.encoder_hidden_states.equal(direct.encoder_hidden_states));
  CHECK(mine.reward_text_embeds.equal(direct.reward_text_embeds));
  CHECK(mine.prompt_index.equal(direct.prompt_index));
  const auto null = source.null_condition();
  CHECK(null.prompt_index.item<int64_t>() == -1);
  CHECK(source.prompt(-1).empty());
  CHECK_THROWS_WITH(source.prompt(5), Catch::Contains("prompt index 5 is outside [0, 5)"));
}

TEST_CASE("text2image: the CLIP reward is exp(logit_scale) cos(image, text) through the VAE decoder, with the right gradient", "[text2image]") {
  torch::manual_seed(2);
  const auto b = dm::BuildOptions().dtype(torch::kDouble);
  dm::ClipVisionModel vision(vision_config(), b);
  auto vae = tiny_vae(b);
  dm::ClipTextModel reward_text(text_config(10, true), b);
  auto enc = std::make_shared<t2i::PromptEncoder>(std::vector<t2i::UNetTextEncoder>{{tokenizer(), dm::ClipTextModel(text_config(12, false))}},
                                                  t2i::PromptEncoderOptions().dtype(torch::kDouble));
  enc->set_reward_text(tokenizer(), reward_text);
  const auto c = enc->encode({"a cat", "a dog"});
  const double logit_scale = std::log(30.0);
  t2i::ClipReward reward(vision, torch::tensor(logit_scale), vae);
  CHECK(reward.scale() == Approx(30.0));
  CHECK(reward.modules().size() == 2);

  const auto x0 = torch::randn({2, 4, 8, 8}, torch::kDouble).requires_grad_(true);
  const auto r = reward(x0, c);
  REQUIRE(r.sizes() == torch::IntArrayRef({2}));
  {  // the formula, step by step
    torch::NoGradGuard ng;
    const auto images = (vae->decode(x0 / 0.5) / 2 + 0.5).clamp(0, 1);
    auto img = vision->forward(dm::clip_preprocess(images, 16)).image_embeds;
    auto txt = reward_text->forward(tokenizer().batch({"a cat", "a dog"})).text_embeds;
    img = img / img.norm(2, -1, true);
    txt = txt / txt.norm(2, -1, true);
    // (the scale is exp of a float32 logit_scale, as checkpoints store it: 30 to float precision)
    CHECK(torch::allclose(r.detach(), reward.scale() * (img * txt).sum(-1), 1e-10, 1e-12));
    CHECK((r.abs() <= 30.0 + 1e-9).all().item<bool>());
  }
  // d r.sum() / d x0 against central differences along a random direction.
  const auto g = torch::autograd::grad({r.sum()}, {x0})[0];
  const auto v = torch::randn_like(x0);
  const double h = 1e-5;
  torch::NoGradGuard ng;
  const double fd = ((reward(x0 + h * v, c).sum() - reward(x0 - h * v, c).sum()) / (2 * h)).item<double>();
  const double an = (g * v).sum().item<double>();
  INFO("finite difference " << fd << ", autograd " << an);
  CHECK(std::abs(fd - an) <= 1e-6 * std::max(1.0, std::abs(an)));
  CHECK(std::abs(an) > 1e-6);  // the gradient reaches x0

  t2i::PromptCondition without;
  static_cast<dm::TextCondition&>(without) = c;
  CHECK_THROWS_WITH(reward(x0, without), Catch::Contains("has no reward_text_embeds"));
  CHECK_THROWS_WITH(reward(torch::randn({2, 3, 8, 8}, torch::kDouble), c), Catch::Contains("the VAE decodes 4-channel latents; x0 has 3"));
  CHECK_THROWS_WITH(t2i::ClipReward(dm::ClipVisionModel([] {
                                      auto v = vision_config();
                                      v.with_projection = false;
                                      return v;
                                    }()),
                                    torch::tensor(1.0)),
                    Catch::Contains("must have a projection"));
}

TEST_CASE("text2image: DI* trains a tiny text-conditioned UNet with the CLIP reward from string prompts, the reward rises",
          "[text2image][trainer]") {
  torch::manual_seed(3);
  const auto dir = fs::path(DIFFINSTRUCT_TEST_TMPDIR) / "text2image";
  fs::create_directories(dir);
  std::ofstream(dir / "prompts.txt") << "a cat\na dog\n\na red cat\ntwo dogs\n";
  const auto prompts = dt::read_prompt_file((dir / "prompts.txt").string());
  REQUIRE(prompts.size() == 4);

  const auto config = dm::UNet2DConditionConfig::from_json(tiny_unet_json());
  dm::UNet2DConditionModel teacher(config), assistant(config), gen_unet(config);
  {
    torch::NoGradGuard ng;
    for (auto& [dst, src] : {std::make_pair(assistant, teacher), std::make_pair(gen_unet, teacher)})
      for (const auto& p : src->named_parameters()) dst->named_parameters()[p.key()].copy_(p.value());
  }
  di::DiscreteVPSchedule schedule;
  const auto t999 = torch::full({1}, 999.0);
  test_models::OneStepUNet generator(gen_unet, schedule.alpha(t999).item<double>(), schedule.sigma(t999).item<double>());

  dm::ClipVisionModel vision(vision_config());
  auto vae = tiny_vae();
  auto enc = encoder_with_reward(dm::ClipTextModel(text_config(10, true)));
  t2i::PromptSource source(prompts, enc);
  t2i::ClipReward reward(vision, torch::tensor(std::log(100.0)), vae);

  using Den = di::Denoiser<dm::UNet2DConditionModel, di::EpsPrediction>;
  using Trainer = di::DiStarTrainer<di::Generator<test_models::OneStepUNet>, Den, Den, t2i::PromptCondition, di::PseudoHuberScore,
                                    di::CfgInside, t2i::ClipReward, di::DiscreteVPSchedule>;
  // The reward dominates (α_rew large against a divergence that starts at zero: generator = teacher),
  // so the generator climbs the reward; a first-order step on a smooth reward raises it.
  Trainer trainer(di::Generator<test_models::OneStepUNet>(generator), Den(teacher, "teacher"), Den(assistant, "assistant"),
                  {di::PseudoHuberScore(1.0), di::CfgInside(di::GuidanceScale(2.0)), reward, schedule},
                  di::ConditionSource<t2i::PromptCondition>{source, source.null_condition()}, std::vector<int64_t>{4, 8, 8},
                  di::DiStarTrainerOptions().batch_size(4).alpha_rew(10.0).generator_adam(di::AdamSettings(1e-3)).ema_decay(0));

  // The reward on fixed noise and every prompt, before and after.
  const auto z = torch::randn({4, 4, 8, 8});
  const auto all = enc->encode(prompts, {0, 1, 2, 3});
  auto mean_reward = [&] {
    torch::NoGradGuard ng;
    return reward(trainer.sample(z, all), all).mean().item<double>();
  };
  CHECK_FALSE(vision->is_training());  // frozen when the trainer took it
  const double before = mean_reward();
  for (int i = 0; i < 15; ++i) {
    const auto s = trainer.step();
    REQUIRE(std::isfinite(s.generator_loss));
    REQUIRE(std::isfinite(s.assistant_loss));
  }
  const double after = mean_reward();
  INFO("mean CLIP reward before " << before << ", after 15 steps " << after);
  CHECK(after > before + 0.5);
  CHECK_FALSE(vision->parameters()[0].requires_grad());
}

TEST_CASE("[cuda] prompts encode onto the GPU and the CLIP reward there matches the CPU, in float32 and bfloat16", "[text2image][cuda]") {
  DIFFINSTRUCT_REQUIRE_CUDA();
  at::globalContext().setAllowTF32CuDNN(false);  // float32 convolutions, so that the float32 tolerance is fair
  at::globalContext().setAllowTF32CuBLAS(false);
  torch::manual_seed(4);
  dm::ClipVisionModel vision(vision_config());
  auto vae = tiny_vae();
  dm::ClipTextModel unet_text(text_config(12, false)), reward_text(text_config(10, true));
  t2i::PromptEncoder cpu_enc({{tokenizer(), unet_text}});
  cpu_enc.set_reward_text(tokenizer(), reward_text);
  const auto c_cpu = cpu_enc.encode({"a cat", "a dog"});
  const auto x0 = torch::randn({2, 4, 8, 8});
  t2i::ClipReward cpu_reward(vision, torch::tensor(std::log(100.0)), vae);
  const auto r_cpu = cpu_reward(x0, c_cpu);
  for (const auto dtype : {torch::kFloat, torch::kBFloat16}) {
    // The text models stay where they are; the encoder moves the condition to the GPU.
    t2i::PromptEncoder enc({{tokenizer(), unet_text}}, t2i::PromptEncoderOptions().device(torch::kCUDA).dtype(dtype));
    enc.set_reward_text(tokenizer(), reward_text);
    const auto c = enc.encode({"a cat", "a dog"});
    REQUIRE((c.encoder_hidden_states.is_cuda() && c.reward_text_embeds.is_cuda() && c.encoder_hidden_states.scalar_type() == dtype));
    CHECK(c.prompt_index.device().is_cpu());
    dm::ClipVisionModel gv(vision_config());
    auto gvae = tiny_vae();
    {
      torch::NoGradGuard ng;
      for (auto& [dst, src] : {std::make_pair(static_cast<torch::nn::Module*>(gv.get()), static_cast<torch::nn::Module*>(vision.get())),
                               std::make_pair(static_cast<torch::nn::Module*>(gvae.get()), static_cast<torch::nn::Module*>(vae.get()))})
        for (const auto& p : src->named_parameters()) dst->named_parameters()[p.key()].copy_(p.value());
    }
    gv->to(torch::kCUDA, dtype);
    gvae->to(torch::kCUDA, dtype);
    t2i::ClipReward reward(gv, torch::tensor(std::log(100.0)), gvae);
    const auto x = x0.to(torch::kCUDA).requires_grad_(true);
    const auto r = reward(x, c);
    CHECK(r.is_cuda());
    CHECK(r.scalar_type() == torch::kFloat);  // the similarity is float32 whatever the models' dtype
    const double tol = dtype == torch::kFloat ? 1e-4 : 5e-2;
    INFO("dtype " << dtype << ": GPU " << r.cpu() << " CPU " << r_cpu);
    CHECK(((r.detach().cpu() - r_cpu.detach()).abs() <= tol * 100).all().item<bool>());
    r.sum().backward();
    CHECK(x.grad().defined());
    CHECK(torch::isfinite(x.grad()).all().item<bool>());
  }
}
