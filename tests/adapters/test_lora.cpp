// LoRA for the native layers (adapters/lora.hpp, lora_file.hpp): closed forms for Linear and Conv2d,
// an adapted model equal to its base at start, enable / disable / scale, merge and unmerge, only the
// adapters differentiated, files in diffusers' format and refusals of bad ones. The round trip with
// diffusers and peft is tests/adapters/run_lora_parity.sh.
#include "../test_skip.hpp"
#include "../models/tiny_unet.hpp"
#include "../tensor_compare.hpp"

#include <diffinstruct/adapters/lora.hpp>
#include <diffinstruct/adapters/lora_file.hpp>
#include <diffinstruct/models/clip_text.hpp>
#include <diffinstruct/models/unet2d_condition.hpp>

#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

namespace di = diffinstruct;
namespace da = diffinstruct::adapters;
namespace dm = diffinstruct::models;

namespace lora_tests {

struct OneLayerImpl : torch::nn::Module {
  torch::nn::AnyModule layer;
  template <class L>
  explicit OneLayerImpl(L l) : layer(register_module("proj", l)) {}
  torch::Tensor forward(const torch::Tensor& x) { return layer.forward(x); }
};
TORCH_MODULE(OneLayer);

using test_models::tiny_unet_config;

struct UNetInputs {
  torch::Tensor x = torch::randn({2, 4, 8, 8}), t = torch::tensor({10.0, 700.0});
  dm::TextCondition c{torch::randn({2, 5, 12})};
};

torch::Tensor run(dm::UNet2DConditionModel& unet, const UNetInputs& in) {
  torch::NoGradGuard no_grad;
  return unet->forward(in.x, in.t, in.c);
}

dm::UNet2DConditionModel copy_of(const dm::UNet2DConditionModel& src) { return test_models::copy_of_tiny_unet(src); }

void randomize_b(const da::Lora& lora, double std = 0.1) {
  torch::NoGradGuard no_grad;
  for (const auto& e : lora.layers()) e.second->lora_B().normal_(0, std);
}

std::string tmp(const std::string& name) {
  const auto dir = std::filesystem::path(DIFFINSTRUCT_TEST_TMPDIR) / "lora_tests";
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

}  // namespace lora_tests

using namespace lora_tests;

TEST_CASE("#15 LoRA on Linear and Conv2d: the base until B trains, then W x + b + s·B A x, disable, scale, merge, unmerge",
          "[adapters][lora]") {
  torch::manual_seed(1);
  const auto o = dm::BuildOptions().dtype(torch::kDouble);
  SECTION("Linear") {
    dm::Linear proj(5, 3, true, o);
    OneLayer model(proj);
    const auto x = torch::randn({4, 5}, torch::kDouble);
    const auto base = model->forward(x).detach();
    auto lora = da::add_lora(*model, da::LoraOptions().target_modules({"proj"}).rank(2).alpha(3));
    REQUIRE(lora.size() == 1);
    CHECK(lora.layers()[0].first == "proj");
    CHECK(lora.layers()[0].second->lora_A().scalar_type() == torch::kDouble);
    CHECK(torch::equal(model->forward(x), base));  // B = 0: exactly the base
    randomize_b(lora);
    const auto& l = *lora.layers()[0].second;
    const auto expected = x.mm(proj->weight.t()) + proj->bias + 1.5 * x.mm(l.lora_A().t()).mm(l.lora_B().t());
    CHECK(torch::allclose(model->forward(x), expected, 1e-12, 1e-12));
    lora.set_scale(2);
    CHECK(torch::allclose(model->forward(x), base + 2 * (expected - base), 1e-12, 1e-12));
    lora.set_scale(0);
    CHECK(torch::equal(model->forward(x), base));
    lora.set_scale(1);
    {
      da::LoraDisabledScope off(lora);
      CHECK_FALSE(lora.enabled());
      CHECK(torch::equal(model->forward(x), base));
    }
    CHECK(lora.enabled());
    // The parameter names are peft's; the base's are unchanged; the base is frozen.
    const auto names = model->named_parameters();
    CHECK(names.contains("proj.weight"));
    CHECK(names.contains("proj.lora_A.weight"));
    CHECK(names.contains("proj.lora_B.weight"));
    CHECK_FALSE(proj->weight.requires_grad());
    CHECK(l.lora_A().requires_grad());
    // Merge: the forward is unchanged, the adapter adds nothing more; unmerge restores the base.
    const auto w0 = proj->weight.clone();
    const auto adapted = model->forward(x).detach();
    lora.merge();
    CHECK(l.merged());
    CHECK(torch::allclose(proj->weight, w0 + 1.5 * l.lora_B().mm(l.lora_A()), 1e-14, 1e-14));
    CHECK(torch::allclose(model->forward(x), adapted, 1e-12, 1e-12));
    CHECK_THROWS_WITH(lora.merge(), Catch::Contains("already merged"));
    CHECK_THROWS_WITH(lora.set_scale(2), Catch::Contains("unmerge() before"));
    lora.unmerge();
    CHECK(torch::allclose(proj->weight, w0, 0, 1e-15));
    CHECK(torch::allclose(model->forward(x), adapted, 1e-12, 1e-12));
  }
  SECTION("Conv2d: A has the layer's kernel, stride and padding, B is 1x1") {
    dm::Conv2d conv(3, 4, 3, 2, 1, true, o);
    OneLayer model(conv);
    const auto x = torch::randn({2, 3, 9, 9}, torch::kDouble);
    const auto base = model->forward(x).detach();
    auto lora = da::add_lora(*model, da::LoraOptions().target_modules({"proj"}).rank(2).alpha(1));
    const auto& l = *lora.layers()[0].second;
    CHECK(l.lora_A().sizes() == c10::IntArrayRef({2, 3, 3, 3}));
    CHECK(l.lora_B().sizes() == c10::IntArrayRef({4, 2, 1, 1}));
    CHECK(torch::equal(model->forward(x), base));
    randomize_b(lora);
    // Convolution is linear in the weight: the adapter equals a conv with s·B·A folded in.
    const auto folded = torch::conv2d(x, conv->weight + l.delta_weight(), conv->bias, 2, 1);
    CHECK(torch::allclose(model->forward(x), folded, 1e-12, 1e-12));
    CHECK_FALSE(torch::allclose(folded, base, 1e-6, 1e-6));
    lora.merge();
    CHECK(torch::allclose(model->forward(x), folded, 1e-12, 1e-12));
    lora.unmerge();
    CHECK(torch::allclose(model->forward(x), folded, 1e-12, 1e-12));
  }
  SECTION("dropout acts in training mode only; gaussian init") {
    dm::Linear proj(16, 16, true, o);
    OneLayer model(proj);
    auto lora = da::add_lora(*model, da::LoraOptions().target_modules({"proj"}).rank(4).dropout(0.5).init(da::LoraInit::kGaussian));
    const auto& a = lora.layers()[0].second->lora_A();
    CHECK(std::abs(a.std().item<double>() - 0.25) < 0.08);  // N(0, 1/rank²), 64 draws
    randomize_b(lora);
    const auto x = torch::randn({8, 16}, torch::kDouble);
    model->train(true);
    CHECK_FALSE(torch::equal(model->forward(x), model->forward(x)));
    model->train(false);
    CHECK(torch::equal(model->forward(x), model->forward(x)));
  }
}

TEST_CASE("#15 LoRA on the UNet: peft's target matching, a frozen base, gradients for the adapters only, clear refusals",
          "[adapters][lora]") {
  torch::manual_seed(2);
  dm::UNet2DConditionModel unet(tiny_unet_config());
  const UNetInputs in;
  const auto base = run(unet, in);
  const auto base_params = unet->parameters();
  auto lora = da::add_lora(*unet, da::LoraOptions().rank(4).alpha(8));
  // Four transformer blocks (one down, one mid, two up: an up level has layers_per_block + 1), two
  // attentions each, four projections each.
  CHECK(lora.size() == 32);
  for (const auto& [name, layer] : lora.layers()) {
    INFO(name);
    CHECK(da::lora_target_matches(name, {"to_q", "to_k", "to_v", "to_out.0"}));
    CHECK(name.find(".attn") != std::string::npos);
  }
  CHECK(da::find_lora(*unet).size() == 32);
  CHECK(torch::equal(run(unet, in), base));
  for (const auto& p : base_params) CHECK_FALSE(p.requires_grad());
  CHECK(lora.parameter_count() > 0);
  CHECK(static_cast<int64_t>(unet->parameters().size()) == static_cast<int64_t>(base_params.size()) + 64);

  // At B = 0 only B's gradient is non-zero (A's goes through B); after B moves both are.
  for (const bool b_zero : {true, false}) {
    if (!b_zero) randomize_b(lora);
    for (auto& p : lora.parameters()) p.mutable_grad() = torch::Tensor();
    unet->forward(in.x, in.t, in.c).square().sum().backward();
    for (const auto& [name, layer] : lora.layers()) {
      INFO(name << " b_zero " << b_zero);
      REQUIRE(layer->lora_B().grad().defined());
      CHECK(layer->lora_B().grad().abs().sum().item<double>() > 0);
      CHECK((layer->lora_A().grad().abs().sum().item<double>() > 0) == !b_zero);
    }
    for (const auto& p : base_params) CHECK_FALSE(p.grad().defined());
  }
  CHECK_FALSE(torch::allclose(run(unet, in), base, 1e-4, 1e-4));
  {
    da::LoraDisabledScope off(lora);
    CHECK(torch::equal(run(unet, in), base));  // the shared-base teacher's pass
  }
  // A thrown forward still restores the adapters.
  try {
    da::LoraDisabledScope off(lora);
    throw std::runtime_error("forward failed");
  } catch (const std::runtime_error&) {
  }
  CHECK(lora.enabled());

  auto ContainsSubstring = [](const std::string& s) { return Catch::Contains(s); };
  dm::UNet2DConditionModel other(tiny_unet_config());
  CHECK_THROWS_WITH(da::add_lora(*other, da::LoraOptions().target_modules({"to_q", "nope"})), ContainsSubstring("target 'nope' matches no module"));
  CHECK_THROWS_WITH(da::add_lora(*other, da::LoraOptions().target_modules({"norm1"})), ContainsSubstring("LoRA adapts diffinstruct::models Linear and Conv2d"));
  CHECK(da::find_lora(*other).empty());  // refused before anything changed
  CHECK_THROWS_WITH(da::add_lora(*unet), ContainsSubstring("already has an adapter"));
  CHECK_THROWS_WITH(da::add_lora(*other, da::LoraOptions().rank(0)), ContainsSubstring("rank must be positive"));
  CHECK_THROWS_WITH(da::add_lora(*other, da::LoraOptions().alpha(-1)), ContainsSubstring("alpha must be positive"));
  CHECK_THROWS_WITH(da::add_lora(*other, da::LoraOptions().dropout(1)), ContainsSubstring("dropout must be in [0, 1)"));
  CHECK_THROWS_WITH(da::add_lora(*other, da::LoraOptions().target_modules({})), ContainsSubstring("at least one target"));
  // Convolutions too: the resnets' conv1/conv2 (peft's names), freeze_base off keeps the base trainable.
  auto convs = da::add_lora(*other, da::LoraOptions().target_modules({"conv1", "conv2"}).freeze_base(false));
  CHECK(convs.size() > 0);
  for (const auto& e : convs.layers()) CHECK(e.second->is_conv());
  CHECK(other->conv_in->weight.requires_grad());
}

TEST_CASE("#15 LoRA files: diffusers' names and metadata, an exact round trip, refusals that leave the model as it was",
          "[adapters][lora][io]") {
  auto ContainsSubstring = [](const std::string& s) { return Catch::Contains(s); };
  torch::manual_seed(3);
  dm::UNet2DConditionModel unet(tiny_unet_config());
  const UNetInputs in;
  auto lora = da::add_lora(*unet, da::LoraOptions().rank(4).alpha(2).target_modules({"to_q", "to_k", "to_v", "to_out.0", "proj_in", "conv1"}));
  randomize_b(lora);
  const auto adapted = run(unet, in);
  const auto path = tmp("unet_lora.safetensors");
  da::save_lora(lora, path);
  {  // Saving over an existing file replaces it whole, leaving no temporary behind.
    da::save_lora(lora, path);
    int64_t files = 0;
    for (const auto& e : std::filesystem::directory_iterator(std::filesystem::path(path).parent_path()))
      files += e.path().filename().string().rfind("unet_lora.safetensors", 0) == 0;
    CHECK(files == 1);
  }

  di::io::SafetensorsFile file(path);
  CHECK(file.tensors().size() == 2 * lora.size());
  CHECK(file.find("unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight") != nullptr);
  CHECK(file.find("unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_out.0.lora_B.weight") != nullptr);
  const auto meta = di::io::parse_json(file.metadata().at(da::kLoraMetadataKey), "metadata");
  CHECK(meta.find("unet.r")->integer() == 4);
  CHECK(meta.find("unet.lora_alpha")->number() == 2.0);
  CHECK(meta.find("unet.target_modules")->array().size() == lora.size());

  SECTION("into a fresh model with the same base: the same outputs, bit for bit") {
    auto fresh = copy_of(unet);
    auto loaded = da::load_lora(*fresh, path);
    CHECK(loaded.size() == lora.size());
    CHECK(loaded.layers()[0].second->alpha() == 2.0);
    CHECK(torch::equal(run(fresh, in), adapted));
    // Loading again fills the adapters already there.
    CHECK(da::load_lora(*fresh, path).size() == lora.size());
    CHECK(torch::equal(run(fresh, in), adapted));
  }
  SECTION("no metadata: alpha = rank, diffusers' rule") {
    std::vector<std::pair<std::string, torch::Tensor>> tensors;
    for (const auto& e : file.tensors()) tensors.emplace_back(e.name, file.read(e.name));
    const auto bare = tmp("bare.safetensors");
    di::io::write_safetensors(bare, tensors);
    auto fresh = copy_of(unet);
    CHECK(da::load_lora(*fresh, bare).layers()[0].second->alpha() == 4.0);
  }
  SECTION("bad files") {
    std::vector<std::pair<std::string, torch::Tensor>> good;
    for (const auto& e : file.tensors()) good.emplace_back(e.name, file.read(e.name));
    auto check_refused = [&](std::vector<std::pair<std::string, torch::Tensor>> tensors, const std::string& message, const std::string& prefix = "unet") {
      const auto bad = tmp("bad.safetensors");
      di::io::write_safetensors(bad, tensors);
      auto fresh = copy_of(unet);
      const auto before = test_util::snapshot(fresh->parameters());
      INFO(message);
      CHECK_THROWS_WITH(da::load_lora(*fresh, bad, prefix), ContainsSubstring(message));
      CHECK(da::find_lora(*fresh).empty());
      CHECK(test_util::identical(fresh->parameters(), before));
    };
    auto with = [&](size_t i, torch::Tensor t) {
      auto v = good;
      v[i].second = std::move(t);
      return v;
    };
    auto renamed = [&](size_t i, std::string name) {
      auto v = good;
      v[i].first = std::move(name);
      return v;
    };
    // The first attention's to_q: a Linear 16 -> 16.
    size_t q = 0;
    while (good[q].first != "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight") ++q;
    check_refused(with(q, torch::randn({4, 7})), "expected [rank, 16]");
    check_refused(with(q + 1, torch::randn({16, 3})), "expected [16, 4]");
    check_refused(with(q + 1, torch::full(good[q + 1].second.sizes(), NAN)), "non-finite");
    check_refused(with(q, good[q].second.to(torch::kInt)), "expected a floating type");
    check_refused(renamed(q, "unet.down_blocks.0.nothing_here.lora_A.weight"), "but no lora_");
    auto unknown = good;
    unknown.emplace_back("unet.down_blocks.9.to_q.lora_A.weight", torch::randn({4, 16}));
    unknown.emplace_back("unet.down_blocks.9.to_q.lora_B.weight", torch::randn({16, 4}));
    check_refused(unknown, "does not exist in the model");
    auto kohya = good;
    for (size_t i = 0; i < kohya.size(); ++i) kohya[i].first = "lora_unet_block_" + std::to_string(i) + ".lora_down.weight";
    check_refused(kohya, "files in the kohya format");
    check_refused(renamed(q, "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora.down.weight"), "not a LoRA weight in diffusers' peft format");
    check_refused(good, "no tensors under the prefix 'text_encoder'", "text_encoder");
    // A pipeline's file also holds the text encoder's adapters: those are left alone.
    auto pipeline = good;
    pipeline.emplace_back("text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight", torch::randn({4, 8}));
    {
      const auto both = tmp("pipeline.safetensors");
      di::io::write_safetensors(both, pipeline);
      auto fresh = copy_of(unet);
      CHECK(da::load_lora(*fresh, both).size() == lora.size());
    }
    auto norm = good;
    norm.emplace_back("unet.down_blocks.0.resnets.0.norm1.lora_A.weight", torch::randn({4, 16}));
    norm.emplace_back("unet.down_blocks.0.resnets.0.norm1.lora_B.weight", torch::randn({16, 4}));
    check_refused(norm, "not a diffinstruct::models Linear or Conv2d");
    // A file that is not safetensors at all.
    const auto junk = tmp("junk.safetensors");
    { std::ofstream(junk) << "not a safetensors file"; }
    auto fresh = copy_of(unet);
    CHECK_THROWS(da::load_lora(*fresh, junk));
    CHECK(da::find_lora(*fresh).empty());
    CHECK_THROWS_WITH(da::load_lora(*fresh, tmp("missing.safetensors")), ContainsSubstring("cannot open"));
  }
}

TEST_CASE("#15 LoRA files for a pipeline: the UNet's and the text encoder's adapters in one file, flat or prefixed CLIP names",
          "[adapters][lora][io]") {
  auto ContainsSubstring = [](const std::string& s) { return Catch::Contains(s); };
  torch::manual_seed(21);
  dm::UNet2DConditionModel unet(tiny_unet_config());
  dm::ClipTextConfig tc;
  tc.vocab_size = 50;
  tc.hidden_size = 12;
  tc.intermediate_size = 24;
  tc.num_hidden_layers = 2;
  tc.num_attention_heads = 2;
  tc.max_position_embeddings = 8;
  tc.eos_token_id = 2;
  tc.bos_token_id = 1;
  dm::ClipTextModel text(tc);
  auto unet_lora = da::add_lora(*unet, da::LoraOptions().rank(2).alpha(4));
  auto text_lora = da::add_lora(*text, da::LoraOptions().rank(3).alpha(3).target_modules({"q_proj", "v_proj", "fc1"}));
  randomize_b(unet_lora);
  randomize_b(text_lora);
  const auto path = tmp("pipeline_lora.safetensors");
  da::save_lora({{"unet", unet_lora}, {"text_encoder", text_lora}}, path);
  {
    di::io::SafetensorsFile file(path);
    CHECK(file.find("unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight") != nullptr);
    CHECK(file.find("text_encoder.text_model.encoder.layers.1.mlp.fc1.lora_B.weight") != nullptr);
    const auto meta = di::io::parse_json(file.metadata().at(da::kLoraMetadataKey), "metadata");
    CHECK(meta.find("unet.r")->integer() == 2);
    CHECK(meta.find("text_encoder.r")->integer() == 3);
    // The text encoder's targets without text_model.: peft finds them in flat (transformers 5) and
    // prefixed models alike.
    const auto& targets = meta.find("text_encoder.target_modules")->array();
    REQUIRE(targets.size() == 6);
    for (const auto& t : targets) CHECK(t.string().rfind("encoder.layers.", 0) == 0);
  }
  const auto ids = torch::randint(3, 48, {2, 8}, torch::kLong);
  torch::NoGradGuard no_grad;
  const auto want = text->forward(ids).last_hidden_state;
  // Each part loads onto a fresh model, the other part left alone.
  dm::ClipTextModel fresh_text(tc);
  for (const auto& p : text->named_parameters()) {
    if (p.key().find("lora_") == std::string::npos) fresh_text->named_parameters()[p.key()].copy_(p.value());
  }
  CHECK(da::load_lora(*fresh_text, path, "text_encoder").size() == 6);
  CHECK(fresh_text->forward(ids).last_hidden_state.equal(want));
  auto fresh_unet = copy_of(unet);
  CHECK(da::load_lora(*fresh_unet, path).size() == unet_lora.size());
  // A file with transformers 5's flat names (no text_model.) loads with the canonical rename.
  std::vector<std::pair<std::string, torch::Tensor>> flat;
  for (const auto& [name, t] : text_lora.named_parameters()) flat.emplace_back("text_encoder." + name.substr(std::string("text_model.").size()), t);
  const auto flat_path = tmp("flat_text_lora.safetensors");
  di::io::write_safetensors(flat_path, flat);
  dm::ClipTextModel flat_text(tc);
  for (const auto& p : fresh_text->named_parameters()) {
    if (p.key().find("lora_") == std::string::npos) flat_text->named_parameters()[p.key()].copy_(p.value());
  }
  CHECK_THROWS_WITH(da::load_lora(*flat_text, flat_path, "text_encoder"), ContainsSubstring("does not exist in the model"));
  CHECK(da::find_lora(*flat_text).empty());
  // (no metadata: alpha = rank, which this LoRA has)
  CHECK(da::load_lora(*flat_text, flat_path, "text_encoder", da::LoraLoadOptions().rename(dm::clip_text_canonical_name)).size() == 6);
  CHECK(flat_text->forward(ids).last_hidden_state.equal(want));
  CHECK_THROWS_WITH(da::save_lora({{"unet", unet_lora}, {"unet", unet_lora}}, tmp("twice.safetensors")), ContainsSubstring("given twice"));
}

TEST_CASE("[cuda] LoRA adapters live on the base layer's device and follow its dtype rules", "[adapters][lora][cuda]") {
  DIFFINSTRUCT_REQUIRE_CUDA();
  torch::manual_seed(4);
  dm::UNet2DConditionModel unet(tiny_unet_config());
  unet->to(torch::kCUDA);
  auto lora = da::add_lora(*unet, da::LoraOptions().rank(4).alpha(4));
  for (const auto& p : lora.parameters()) {
    CHECK(p.is_cuda());
    CHECK(p.scalar_type() == torch::kFloat);
  }
  randomize_b(lora);
  UNetInputs in;
  in.x = in.x.cuda();
  in.t = in.t.cuda();
  in.c = dm::TextCondition(in.c.encoder_hidden_states.cuda());
  const auto y = run(unet, in);
  auto fresh = copy_of(unet);  // on the CPU
  fresh->to(torch::kCUDA);
  const auto path = tmp("cuda_lora.safetensors");
  da::save_lora(lora, path);
  da::load_lora(*fresh, path);
  CHECK(torch::allclose(run(fresh, in), y, 1e-5, 1e-5));
}
