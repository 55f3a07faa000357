// The reward models without Python: OpenCLIP's layout onto the native CLIP towers (a model written
// under OpenCLIP's names loads back to the same function, and a swapped q/k — the negative control —
// does not), OpenCLIP's resize-and-pad, the aesthetic head's file and chain, and DI* steps that train
// with the aesthetic reward and with HPS's form of the CLIP reward. Parity with hpsv2 and the published
// head is tests/rewards/run_parity.sh (the LibTorch 2.x pass).
#include "../models/one_step_unet.hpp"
#include "../test_files.hpp"
#include "../text2image/tiny_parts.hpp"
#include <diffinstruct/di_star.hpp>
#include <diffinstruct/io/safetensors.hpp>
#include <diffinstruct/models/image_reward.hpp>
#include <diffinstruct/models/open_clip.hpp>
#include <diffinstruct/models/pil_resize.hpp>
#include <diffinstruct/models/unet2d_condition.hpp>
#include <diffinstruct/text2image/aesthetic_reward.hpp>
#include <diffinstruct/text2image/image_reward_reward.hpp>
#include <diffinstruct/text2image/clip_reward.hpp>
#include <diffinstruct/text2image/prompt_condition.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>

namespace di = diffinstruct;
namespace dm = diffinstruct::models;
namespace t2i = diffinstruct::text2image;

namespace {

dm::OpenClipConfig tiny_open_clip() {
  return dm::OpenClipConfig::from_json(R"({"embed_dim": 8, "vision_cfg": {"image_size": 28, "layers": 2, "width": 16, "head_width": 8, "patch_size": 14},
                                           "text_cfg": {"context_length": 12, "vocab_size": 50, "width": 16, "heads": 2, "layers": 2}})");
}

/// The towers' weights under OpenCLIP's names (the inverse of map_open_clip, written out here on its
/// own): q, k, v concatenated into in_proj, projections as [width, embed] matrices. `swap_qk` writes
/// k before q (the negative control).
std::vector<std::pair<std::string, torch::Tensor>> as_open_clip(dm::ClipTextModel& text, dm::ClipVisionModel& vision, bool swap_qk = false) {
  std::map<std::string, torch::Tensor> out;
  auto blocks = [&](torch::nn::Module& m, const std::string& from, const std::string& to) {
    std::map<std::string, torch::Tensor> p;
    for (const auto& kv : m.named_parameters()) p[kv.key()] = kv.value().detach();
    for (int i = 0;; ++i) {
      const std::string f = from + std::to_string(i) + ".", t = to + std::to_string(i) + ".";
      if (!p.count(f + "layer_norm1.weight")) break;
      for (const char* wb : {"weight", "bias"}) {
        const auto q = p[f + "self_attn.q_proj." + wb], k = p[f + "self_attn.k_proj." + wb], v = p[f + "self_attn.v_proj." + wb];
        out[t + "attn.in_proj_" + wb] = swap_qk ? torch::cat({k, q, v}) : torch::cat({q, k, v});
        out[t + "attn.out_proj." + wb] = p[f + "self_attn.out_proj." + wb];
        out[t + "ln_1." + wb] = p[f + "layer_norm1." + wb];
        out[t + "ln_2." + wb] = p[f + "layer_norm2." + wb];
        out[t + "mlp.c_fc." + wb] = p[f + "mlp.fc1." + wb];
        out[t + "mlp.c_proj." + wb] = p[f + "mlp.fc2." + wb];
      }
    }
    return p;
  };
  auto tp = blocks(*text, "text_model.encoder.layers.", "transformer.resblocks.");
  out["token_embedding.weight"] = tp["text_model.embeddings.token_embedding.weight"];
  out["positional_embedding"] = tp["text_model.embeddings.position_embedding.weight"];
  out["ln_final.weight"] = tp["text_model.final_layer_norm.weight"];
  out["ln_final.bias"] = tp["text_model.final_layer_norm.bias"];
  out["text_projection"] = tp["text_projection.weight"].t().contiguous();
  auto vp = blocks(*vision, "vision_model.encoder.layers.", "visual.transformer.resblocks.");
  out["visual.class_embedding"] = vp["vision_model.embeddings.class_embedding"];
  out["visual.positional_embedding"] = vp["vision_model.embeddings.position_embedding.weight"];
  out["visual.conv1.weight"] = vp["vision_model.embeddings.patch_embedding.weight"];
  for (const char* wb : {"weight", "bias"}) {
    out[std::string("visual.ln_pre.") + wb] = vp[std::string("vision_model.pre_layrnorm.") + wb];
    out[std::string("visual.ln_post.") + wb] = vp[std::string("vision_model.post_layernorm.") + wb];
  }
  out["visual.proj"] = vp["visual_projection.weight"].t().contiguous();
  out["logit_scale"] = torch::tensor(std::log(100.0));
  return {out.begin(), out.end()};
}

torch::Tensor max_abs(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max(); }

}  // namespace

TEST_CASE("OpenCLIP checkpoints load onto the CLIP towers and compute the same function (q/k swapped does not)", "[rewards][open_clip]") {
  torch::manual_seed(0);
  const auto config = tiny_open_clip();
  dm::ClipTextModel text(config.text_config());
  dm::ClipVisionModel vision(config.vision_config());
  {
    torch::NoGradGuard ng;
    for (auto& p : text->parameters()) p.normal_(0, 0.3);
    for (auto& p : vision->parameters()) p.normal_(0, 0.3);
  }
  const auto path = test_util::scratch_path("rewards", "open_clip.safetensors").string();
  const auto swapped = test_util::scratch_path("rewards", "open_clip_swapped.safetensors").string();
  di::io::write_safetensors(path, as_open_clip(text, vision));
  di::io::write_safetensors(swapped, as_open_clip(text, vision, true));
  const auto ids = torch::tensor({{49 - 1, 3, 7, 45, 2, 0, 0, 0, 0, 0, 0, 0}, {49 - 1, 5, 49, 0, 0, 0, 0, 0, 0, 0, 0, 0}}, torch::kLong);
  const auto pixels = torch::randn({2, 3, 28, 28});
  torch::NoGradGuard ng;
  const auto want_text = text->forward(ids).text_embeds, want_image = vision->forward(pixels).image_embeds;
  auto loaded = dm::load_open_clip(path, config);
  CHECK(max_abs(loaded.text->forward(ids).text_embeds, want_text).item<float>() < 1e-6);
  CHECK(max_abs(loaded.vision->forward(pixels).image_embeds, want_image).item<float>() < 1e-6);
  CHECK(loaded.logit_scale.item<float>() == Approx(std::log(100.0)));
  // OpenCLIP pools the text at argmax(ids): the largest id (49, its end-of-text here), not the first 2.
  CHECK(loaded.text->config().eos_token_id == 2);
  auto wrong = dm::load_open_clip(swapped, config);
  CHECK(max_abs(wrong.text->forward(ids).text_embeds, want_text).item<float>() > 1e-3);
  CHECK(max_abs(wrong.vision->forward(pixels).image_embeds, want_image).item<float>() > 1e-3);
  // One tower only, and refusals: another width, a tensor OpenCLIP's CLIP does not have.
  CHECK_FALSE(dm::load_open_clip(path, config, {}, dm::ClipTowers::kVision).text);
  auto other = config;
  other.text.width = 32;
  CHECK_THROWS_WITH(dm::load_open_clip(path, other), Catch::Contains("text tower does not match") && Catch::Contains("nothing was loaded"));
  auto extra = as_open_clip(text, vision);
  extra.emplace_back("visual.attn_pool.query", torch::zeros({2}));
  di::io::write_safetensors(path, extra);
  CHECK_THROWS_WITH(dm::load_open_clip(path, config), Catch::Contains("visual.attn_pool.query") && Catch::Contains("not an OpenCLIP ViT checkpoint"));
  CHECK_THROWS_WITH(dm::OpenClipConfig::from_json(R"({"embed_dim": 8, "vision_cfg": {"timm_model_name": "x"}, "text_cfg": {}})"),
                    Catch::Contains("'vision_cfg.timm_model_name' is not supported"));
  CHECK_THROWS_WITH(dm::OpenClipConfig::named("RN50"), Catch::Contains("no built-in configuration 'RN50'"));
  CHECK(dm::OpenClipConfig::named("ViT-H-14").vision_config().num_attention_heads == 16);
}

TEST_CASE("OpenCLIP's resize-and-pad: long side to the size, zeros padded before normalising, left/top half rounded down", "[rewards][open_clip]") {
  const auto ones = torch::ones({1, 3, 100, 45}, torch::requires_grad());
  const auto x = dm::clip_preprocess_pad(ones, 28);
  REQUIRE(x.sizes() == c10::IntArrayRef({1, 3, 28, 28}));
  // 45 · 0.28 = 12.6 -> 13 columns; 15 of padding: 7 left, 8 right.
  const auto mean = torch::tensor({0.48145466, 0.4578275, 0.40821073}).view({3, 1, 1}), std = torch::tensor({0.26862954, 0.26130258, 0.27577711}).view({3, 1, 1});
  CHECK(torch::allclose(x[0].slice(2, 0, 7), (-mean / std).expand({3, 28, 7})));
  CHECK(torch::allclose(x[0].slice(2, 20, 28), (-mean / std).expand({3, 28, 8})));
  CHECK(torch::allclose(x[0].slice(2, 7, 20), ((1 - mean) / std).expand({3, 28, 13}), 1e-5, 1e-5));
  x.sum().backward();
  CHECK(ones.grad().abs().sum().item<float>() > 0);
  // Python's round: half to even (2.5 -> 2): 28 / 56 · 5 = 2.5 rows.
  CHECK(torch::allclose(dm::clip_preprocess_pad(torch::ones({1, 3, 5, 56}), 28)[0][0].slice(1, 0, 1).squeeze(), torch::cat({
      torch::full({13}, -0.48145466 / 0.26862954), torch::full({2}, (1 - 0.48145466) / 0.26862954), torch::full({13}, -0.48145466 / 0.26862954)}), 1e-4, 1e-4));
  // A long side already at the size: neither resized nor padded, so it must be square.
  CHECK_THROWS_WITH(dm::clip_preprocess_pad(torch::ones({1, 3, 20, 28}), 28), Catch::Contains("must be square"));
}

TEST_CASE("the aesthetic head: sizes from the file, an affine chain, refusals", "[rewards][aesthetic]") {
  torch::manual_seed(1);
  std::map<std::string, torch::Tensor> w;
  auto write = [&] { di::io::write_safetensors(test_util::scratch_path("rewards", "head.safetensors").string(), {w.begin(), w.end()}); };
  const std::vector<std::pair<int, std::pair<int, int>>> layers = {{0, {6, 8}}, {2, {5, 6}}, {4, {4, 5}}, {6, {3, 4}}, {7, {1, 3}}};
  for (const auto& [i, s] : layers) {
    w["layers." + std::to_string(i) + ".weight"] = torch::randn({s.first, s.second});
    w["layers." + std::to_string(i) + ".bias"] = torch::randn({s.first});
  }
  const auto path = test_util::scratch_path("rewards", "head.safetensors").string();
  write();
  auto head = dm::load_aesthetic_head(path);
  const auto e = torch::randn({3, 8});
  auto want = e;
  for (const auto& [i, s] : layers) want = torch::addmm(w["layers." + std::to_string(i) + ".bias"], want, w["layers." + std::to_string(i) + ".weight"].t());
  torch::NoGradGuard ng;
  CHECK(torch::allclose(head(e), want, 1e-5, 1e-5));
  CHECK_THROWS_WITH(head(torch::randn({3, 7})), Catch::Contains("expected embeddings [B, 8]"));
  w["layers.4.weight"] = torch::randn({4, 7});
  write();
  CHECK_THROWS_WITH(dm::load_aesthetic_head(path), Catch::Contains("layer 4 takes 7 inputs but the layer before gives 5"));
  w.erase("layers.7.weight");
  w.erase("layers.7.bias");
  w["layers.4.weight"] = torch::randn({4, 5});
  write();
  CHECK_THROWS_WITH(dm::load_aesthetic_head(path), Catch::Contains("gives 3 outputs, expected 1"));
}

TEST_CASE("DI* trains with the aesthetic reward, HPS's CLIP reward and ImageReward, each rising over a short run", "[rewards][trainer]") {
  const auto config = dm::UNet2DConditionConfig::from_json(tiny_t2i::tiny_unet_json());
  for (const std::string which : {"aesthetic", "hps", "image_reward"}) {
    DYNAMIC_SECTION(which) {
      torch::manual_seed(5);
      dm::UNet2DConditionModel teacher(config), assistant(config), gen_unet(config);
      {
        torch::NoGradGuard ng;
        for (auto& [dst, src] : {std::make_pair(assistant, teacher), std::make_pair(gen_unet, teacher)})
          for (const auto& p : src->named_parameters()) dst->named_parameters()[p.key()].copy_(p.value());
      }
      di::DiscreteVPSchedule schedule;
      const auto t999 = torch::full({1}, 999.0);
      test_models::OneStepUNet generator(gen_unet, schedule.alpha(t999).item<double>(), schedule.sigma(t999).item<double>());
      dm::ClipVisionModel vision(tiny_t2i::vision_config());
      auto vae = tiny_t2i::tiny_vae();
      // Conditions: text states for the UNet, and unit text embeddings for the HPS cosine; four prompts.
      t2i::PromptCondition cond;
      cond.encoder_hidden_states = torch::randn({4, 5, 12});
      cond.reward_text_embeds = torch::nn::functional::normalize(torch::randn({4, 8}), torch::nn::functional::NormalizeFuncOptions().dim(-1));
      cond.prompt_index = torch::arange(4, torch::kLong);
      auto rows = [cond](const torch::Tensor& idx) {
        t2i::PromptCondition c;
        c.encoder_hidden_states = cond.encoder_hidden_states.index_select(0, idx);
        c.reward_text_embeds = cond.reward_text_embeds.index_select(0, idx);
        c.prompt_index = idx;
        return c;
      };
      t2i::PromptCondition null_cond = rows(torch::zeros({1}, torch::kLong));
      null_cond.encoder_hidden_states = torch::zeros({1, 5, 12});
      null_cond.prompt_index = torch::full({1}, -1, torch::kLong);
      auto draw = [rows](int64_t batch, at::Generator& g) { return rows(torch::randint(0, 4, {batch}, g, torch::kLong)); };
      auto run = [&](auto reward) {
        using Reward = decltype(reward);
        using Den = di::Denoiser<dm::UNet2DConditionModel, di::EpsPrediction>;
        using Trainer = di::DiStarTrainer<di::Generator<test_models::OneStepUNet>, Den, Den, t2i::PromptCondition, di::PseudoHuberScore, di::CfgInside,
                                          Reward, di::DiscreteVPSchedule>;
        Trainer trainer(di::Generator<test_models::OneStepUNet>(generator), Den(teacher, "teacher"), Den(assistant, "assistant"),
                        {di::PseudoHuberScore(1.0), di::CfgInside(di::GuidanceScale(2.0)), reward, schedule},
                        di::ConditionSource<t2i::PromptCondition>{draw, null_cond}, std::vector<int64_t>{4, 8, 8},
                        di::DiStarTrainerOptions().batch_size(4).alpha_rew(which == "hps" ? 30.0 : 10.0).generator_adam(di::AdamSettings(1e-3)).ema_decay(0));
        const auto z = torch::randn({4, 4, 8, 8});
        auto mean_reward = [&] {
          torch::NoGradGuard ng;
          return reward(trainer.sample(z, cond), cond).mean().template item<double>();
        };
        const double before = mean_reward();
        for (int i = 0; i < 12; ++i) REQUIRE(std::isfinite(trainer.step().generator_loss));
        const double after = mean_reward();
        INFO(which << ": mean reward before " << before << ", after 12 steps " << after);
        CHECK(after > before);
        for (const auto& module : reward.modules())  // frozen by the trainer, every module the reward declares
          for (const auto& [name, p] : module.named_parameters()) CHECK_FALSE(p.requires_grad());
      };
      if (which == "aesthetic") {
        std::vector<std::pair<int64_t, std::pair<int64_t, int64_t>>> layers = {{0, {16, 8}}, {2, {8, 16}}, {4, {1, 8}}};
        run(t2i::AestheticReward(vision, dm::AestheticHead(layers), vae));
      } else if (which == "hps") {
        run(t2i::ClipReward(vision, torch::zeros({}), vae, t2i::hps_reward_options()));
      } else {
        dm::ImageRewardConfig ir;
        ir.vision.image_size = 16, ir.vision.patch_size = 8, ir.vision.hidden_size = 16, ir.vision.num_layers = 1, ir.vision.num_heads = 2;
        ir.text = dm::BertConfig::from_json(R"({"vocab_size": 12, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
            "intermediate_size": 16, "max_position_embeddings": 40})");
        const std::vector<std::pair<int64_t, std::pair<int64_t, int64_t>>> head = {{0, {8, 8}}, {2, {1, 8}}};
        dm::ImageRewardModel model(ir, head);
        const auto tok = diffinstruct::text::WordPieceTokenizer("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\nred\ncat\ndog\ntwo\n");
        run(t2i::ImageRewardReward(model, tok, {"a cat", "a dog", "a red cat", "two dogs"}, vae));
      }
    }
  }
}

TEST_CASE("the CLIP reward's forms: PickScore exp(logit_scale)·cos, HPS the cosine, the CLIP score 100·max(cos, 0)", "[rewards][clip]") {
  torch::manual_seed(4);
  dm::ClipVisionModel vision(tiny_t2i::vision_config());
  const auto pixels = torch::rand({3, 3, 16, 16}) * 2 - 1;
  const auto text = torch::nn::functional::normalize(torch::randn({3, 8}), torch::nn::functional::NormalizeFuncOptions().dim(-1));
  torch::NoGradGuard ng;
  t2i::ClipReward pick(vision, torch::tensor(std::log(100.0)), nullptr, t2i::pickscore_reward_options());
  const auto image = pick.embed_pixels(pixels);
  const auto cos = (image * text).sum(-1);
  CHECK(torch::allclose(pick.reward_of_embeddings(image, text), 100 * cos, 1e-5, 1e-4));
  t2i::ClipReward hps(vision, torch::tensor(std::log(100.0)), nullptr, t2i::hps_reward_options());
  CHECK(torch::allclose(hps.reward_of_embeddings(image, text), cos));
  t2i::ClipReward score(vision, torch::tensor(0.0), nullptr, t2i::clip_score_reward_options());
  CHECK(torch::allclose(score.reward_of_embeddings(image, text), (100 * cos).clamp_min(0), 1e-5, 1e-4));
  CHECK(torch::allclose(score.reward_of_embeddings(image, -image), torch::zeros({3})));
  CHECK(score.describe().rfind("clip_score(scale 100", 0) == 0);
}

TEST_CASE("ImageReward: the checkpoint's names load back, BLIP's unused parts skipped, padding masked, refusals", "[rewards][image_reward]") {
  torch::manual_seed(6);
  dm::ImageRewardConfig config;
  config.vision.image_size = 32, config.vision.patch_size = 16, config.vision.hidden_size = 16, config.vision.num_layers = 1, config.vision.num_heads = 2;
  config.text = dm::BertConfig::from_json(R"({"vocab_size": 50, "hidden_size": 12, "num_hidden_layers": 2, "num_attention_heads": 3,
      "intermediate_size": 24, "max_position_embeddings": 20, "encoder_width": 768, "add_cross_attention": true, "hidden_act": "gelu",
      "layer_norm_eps": 1e-12, "hidden_dropout_prob": 0.1, "type_vocab_size": 2})");
  const std::vector<std::pair<int64_t, std::pair<int64_t, int64_t>>> head = {{0, {8, 12}}, {2, {1, 8}}};
  dm::ImageRewardModel model(config, head);
  {
    torch::NoGradGuard ng;
    for (auto& p : model->parameters()) p.normal_(0, 0.2);
  }
  CHECK(model->text_encoder->config().encoder_width == 16);  // overwritten by the vision width, as BLIP does
  std::vector<std::pair<std::string, torch::Tensor>> file;
  for (const auto& p : model->named_parameters()) file.emplace_back(p.key(), p.value().detach());
  file.emplace_back("blip.text_encoder.embeddings.position_ids", torch::arange(20).unsqueeze(0));
  file.emplace_back("blip.vision_proj.weight", torch::zeros({4, 16}));
  file.emplace_back("blip.text_proj.bias", torch::zeros({4}));
  const auto path = test_util::scratch_path("rewards", "image_reward.safetensors").string();
  di::io::write_safetensors(path, file);
  auto loaded = dm::load_image_reward(path, config);
  const auto pixels = torch::randn({2, 3, 32, 32});
  const auto ids = torch::tensor({{1, 5, 7, 2, 0, 0}, {1, 9, 2, 0, 0, 0}}, torch::kLong);
  const auto mask = (ids != 0).to(torch::kLong);
  torch::NoGradGuard ng;
  const auto score = model->forward(pixels, ids, mask);
  CHECK(torch::equal(loaded->forward(pixels, ids, mask), score));
  // Padding is masked out: the first row's score is the same with its padding cut off.
  const auto trimmed = model->forward(pixels.slice(0, 0, 1), ids.slice(0, 0, 1).slice(1, 0, 4), mask.slice(0, 0, 1).slice(1, 0, 4));
  CHECK(torch::allclose(trimmed, score.slice(0, 0, 1), 1e-5, 1e-6));
  // ... and unmasked padding would change it (the mask matters).
  CHECK_FALSE(torch::allclose(model->forward(pixels, ids, torch::ones_like(mask)), score, 1e-4, 1e-4));
  file.emplace_back("blip.visual_encoder.extra", torch::zeros({1}));
  di::io::write_safetensors(path, file);
  CHECK_THROWS_WITH(dm::load_image_reward(path, config), Catch::Contains("nothing was loaded") && Catch::Contains("blip.visual_encoder.extra"));
  file.pop_back();
  file.erase(std::remove_if(file.begin(), file.end(), [](const auto& f) { return f.first == "blip.text_encoder.embeddings.LayerNorm.weight"; }), file.end());
  di::io::write_safetensors(path, file);
  CHECK_THROWS_WITH(dm::load_image_reward(path, config), Catch::Contains("1 missing: blip.text_encoder.embeddings.LayerNorm.weight"));
  CHECK_THROWS_WITH(dm::BertConfig::from_json(R"({"hidden_act": "relu"})"), Catch::Contains("hidden_act must be \"gelu\""));
  CHECK_THROWS_WITH(dm::BertConfig::from_json(R"({"is_decoder": true})"), Catch::Contains("'is_decoder' is not a key"));
  CHECK_THROWS_WITH(model->forward(pixels, ids + 100, mask), Catch::Contains("token ids must lie in [0, 50)"));
}

TEST_CASE("PIL's bicubic resize: a constant stays constant, sizes and crops as the originals compute them", "[rewards][pil_resize]") {
  // Bit-exactness against PIL itself is in tests/rewards/run_parity.sh; here, what holds without Python.
  const auto flat = torch::full({1, 3, 37, 53}, 200, torch::kUInt8);
  CHECK(torch::equal(dm::pil_resize_bicubic(flat, 20, 31), torch::full({1, 3, 20, 31}, 200, torch::kUInt8)));
  CHECK(torch::equal(dm::pil_resize_bicubic(flat, 111, 160), torch::full({1, 3, 111, 160}, 200, torch::kUInt8)));
  const auto noise = torch::randint(0, 256, {2, 3, 9, 7}, torch::kUInt8);
  CHECK(torch::equal(dm::pil_resize_bicubic(noise, 9, 7), noise));
  // Overshoot of the bicubic kernel is clipped to 8 bits: an edge upsampled stays within [0, 255].
  auto edge = torch::zeros({1, 1, 4, 8}, torch::kUInt8);
  edge.slice(3, 4, 8).fill_(255);
  const auto up = dm::pil_resize_bicubic(edge, 4, 32);
  CHECK(up.min().item<int>() == 0);
  CHECK(up.max().item<int>() == 255);
  // 200×301: short side 224, long side int(224 · 301 / 200) = 337; crop offsets 56 (floor) and 56 (half-even of 56.5).
  const auto pv = dm::clip_preprocess_pil(torch::full({1, 3, 200, 301}, 128, torch::kUInt8), 224, dm::CropRounding::kFloor);
  CHECK(pv.sizes() == c10::IntArrayRef({1, 3, 224, 224}));
  CHECK(pv[0][0][0][0].item<float>() == Approx((128.0 / 255 - 0.48145466) / 0.26862954).epsilon(1e-5));
  CHECK_THROWS_WITH(dm::pil_resize_bicubic(torch::zeros({1, 3, 4, 4}), 2, 2), Catch::Contains("expected uint8 images"));
}
