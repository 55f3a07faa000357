// Three roles on one base (adapters/shared_base.hpp): named adapters on one layer (peft's in-memory
// names, saved and loaded under peft's file names, a published LoRA kept frozen), and a DI* run whose
// teacher, LoRA assistant and LoRA generator (over a frozen published LoRA) share one module gives the
// trajectory of the same run on separate copies bit for bit, with every UNet checkpointed per block,
// in float32 and in bf16, and resumes exactly; the base is held once.
#include <diffinstruct/adapters/lora.hpp>
#include <diffinstruct/adapters/lora_file.hpp>
#include <diffinstruct/adapters/shared_base.hpp>
#include <diffinstruct/di_star.hpp>
#include <diffinstruct/models/unet2d_condition.hpp>
#include "../models/one_step_unet.hpp"
#include "../models/tiny_unet.hpp"
#include "../tensor_compare.hpp"

#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <functional>
#include <unordered_set>

namespace three_roles_tests {

namespace di = diffinstruct;
namespace da = diffinstruct::adapters;
namespace dm = diffinstruct::models;
using test_models::OneStepUNet;

da::LoraOptions named(const std::string& name, int64_t rank = 2) {
  return da::LoraOptions().rank(rank).alpha(static_cast<double>(rank)).adapter_name(name);
}

OneStepUNet one_step(dm::UNet2DConditionModel unet) {
  di::DiscreteVPSchedule schedule;
  const auto t999 = torch::full({1}, 999.0);
  return OneStepUNet(std::move(unet), schedule.alpha(t999).item<double>(), schedule.sigma(t999).item<double>());
}

void copy_values(const da::Lora& to, const da::Lora& from) {
  torch::NoGradGuard no_grad;
  const auto dst = to.parameters(), src = from.parameters();
  REQUIRE(dst.size() == src.size());
  for (size_t i = 0; i < dst.size(); ++i) dst[i].copy_(src[i]);
}

using Reward = di::CallableReward<std::function<torch::Tensor(const torch::Tensor&, const dm::TextCondition&)>>;

template <class Gen, class Teacher, class Assistant>
di::DiStarTrainer<Gen, Teacher, Assistant, dm::TextCondition, di::PseudoHuberScore, di::CfgInside, Reward, di::DiscreteVPSchedule> make_trainer(
    Gen generator, Teacher teacher, Assistant assistant, bool bf16) {
  di::ConditionSource<dm::TextCondition> prompts{
      [](int64_t b, at::Generator& g) { return dm::TextCondition(at::randn({b, 3, 12}, g, torch::TensorOptions())); },
      dm::TextCondition(torch::zeros({1, 3, 12}))};
  return {std::move(generator), std::move(teacher), std::move(assistant),
          {di::PseudoHuberScore(1.0), di::CfgInside(di::GuidanceScale(3.0)),
           Reward([](const torch::Tensor& x, const dm::TextCondition&) { return -torch::tanh(x).square().mean({1, 2, 3}); }),
           di::DiscreteVPSchedule()},
          prompts, std::vector<int64_t>{4, 8, 8},
          di::DiStarTrainerOptions()
              .batch_size(2)
              .assistant_steps(2)
              .alpha_rew(0.1)
              .ema_decay(0.9)
              .seed(5)
              .precision(bf16 ? di::Precision::kBFloat16 : di::Precision::kFloat32)};
}

struct Trajectory {
  std::vector<double> losses;  // per step: generator, divergence, assistant
  std::vector<torch::Tensor> generator, assistant, ema;
};

template <class Trainer>
Trajectory run(Trainer& trainer, int steps) {
  Trajectory out;
  for (int i = 0; i < steps; ++i) {
    const auto s = trainer.step();
    out.losses.insert(out.losses.end(), {s.generator_loss, s.divergence_loss, s.assistant_loss});
  }
  out.generator = test_util::snapshot(trainer.generator_parameters());
  out.assistant = test_util::snapshot(trainer.assistant_parameters());
  for (const auto& p : trainer.ema().shadow()) out.ema.push_back(p.clone());
  return out;
}

void check_same(const Trajectory& a, const Trajectory& b) {
  REQUIRE(a.losses.size() == b.losses.size());
  for (size_t i = 0; i < a.losses.size(); ++i) {
    INFO("loss " << i);
    CHECK(a.losses[i] == b.losses[i]);  // bit for bit
  }
  CHECK(test_util::identical(a.generator, b.generator));
  CHECK(test_util::identical(a.assistant, b.assistant));
  CHECK(test_util::identical(a.ema, b.ema));
}

/// The base, the published LoRA (frozen, random B) and the initial trained LoRAs every setup starts from.
struct Start {
  dm::UNet2DConditionModel base{nullptr};
  dm::UNet2DConditionModel holder{nullptr};  // carries the reference adapters' values
  da::Lora published, assistant, generator;
};

Start start() {
  Start s;
  torch::manual_seed(3);
  s.base = dm::UNet2DConditionModel(test_models::tiny_unet_config());
  s.holder = test_models::copy_of_tiny_unet(s.base);
  s.assistant = da::add_lora(*s.holder, named("assistant"));
  s.published = da::add_lora(*s.holder, named("published", 3));
  s.generator = da::add_lora(*s.holder, named("generator"));
  torch::NoGradGuard no_grad;
  for (const auto& e : s.published.layers()) e.second->lora_B().normal_(0, 0.05);
  return s;
}

/// Teacher, assistant and generator on separate copies of the base.
template <class F>
auto separate(const Start& s, bool bf16, bool checkpointed, F&& use) {
  auto teacher = test_models::copy_of_tiny_unet(s.base), asst = test_models::copy_of_tiny_unet(s.base),
       gen = test_models::copy_of_tiny_unet(s.base);
  copy_values(da::add_lora(*asst, named("assistant")), s.assistant);
  auto published = da::add_lora(*gen, named("published", 3));
  copy_values(published, s.published);
  for (const auto& p : published.parameters()) p.requires_grad_(false);
  copy_values(da::add_lora(*gen, named("generator")), s.generator);
  for (auto* u : {&teacher, &asst, &gen}) (*u)->set_gradient_checkpointing(checkpointed);
  if (bf16) {
    for (const auto& p : teacher->parameters()) p.requires_grad_(false);
    for (auto* u : {&teacher, &asst, &gen}) da::store_base_in(torch::kBFloat16, **u);
  }
  auto trainer = make_trainer(di::Generator<OneStepUNet>(one_step(gen)), di::Denoiser<dm::UNet2DConditionModel>(teacher, "teacher"),
                              di::Denoiser<dm::UNet2DConditionModel>(asst, "assistant"), bf16);
  return use(trainer);
}

/// The three roles on one module.
template <class F>
auto shared(const Start& s, bool bf16, bool checkpointed, F&& use) {
  auto unet = test_models::copy_of_tiny_unet(s.base);
  auto asst = da::add_lora(*unet, named("assistant"));
  copy_values(asst, s.assistant);
  auto published = da::add_lora(*unet, named("published", 3));
  copy_values(published, s.published);
  for (const auto& p : published.parameters()) p.requires_grad_(false);
  auto gen = da::add_lora(*unet, named("generator"));
  copy_values(gen, s.generator);
  unet->set_gradient_checkpointing(checkpointed);
  if (bf16) da::store_base_in(torch::kBFloat16, *unet);
  auto trainer = make_trainer(da::shared_base_generator(one_step(unet), {asst}), da::shared_base_teacher<di::EpsPrediction>(unet),
                              da::shared_base_denoiser<di::EpsPrediction>(unet, {published, gen}), bf16);
  CHECK(trainer.generator_parameters().size() == gen.parameters().size());
  CHECK(trainer.assistant_parameters().size() == asst.parameters().size());
  return use(trainer);
}

}  // namespace three_roles_tests

namespace tr = three_roles_tests;

TEST_CASE("#33 named adapters: several on one layer with peft's names, applied in order, found, saved and loaded by name",
          "[adapters][lora][shared_base]") {
  using Catch::Contains;
  torch::manual_seed(1);
  dm::UNet2DConditionModel unet(test_models::tiny_unet_config());
  auto a = da::add_lora(*unet, tr::named("assistant"));
  auto g = da::add_lora(*unet, tr::named("generator", 3));
  const auto names = unet->named_parameters();
  CHECK(names.contains("down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.assistant.weight"));
  CHECK(names.contains("down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_B.generator.weight"));
  CHECK(da::find_lora(*unet).size() == a.size() + g.size());
  CHECK(da::find_lora(*unet, "generator").parameter_count() == g.parameter_count());
  CHECK(da::find_lora(*unet, "").empty());
  // add_lora froze the base and left the other adapter trainable.
  for (const auto& p : a.parameters()) CHECK(p.requires_grad());
  int64_t trainable = 0;
  for (const auto& p : unet->parameters()) trainable += p.requires_grad() ? p.numel() : 0;
  CHECK(trainable == a.parameter_count() + g.parameter_count());
  // Refusals: a second adapter of the same name, an unnamed one beside named ones, a bad name.
  CHECK_THROWS_WITH(da::add_lora(*unet, tr::named("assistant")), Contains("already has an adapter named 'assistant'"));
  CHECK_THROWS_WITH(da::add_lora(*unet, da::LoraOptions()), Contains("give each a name"));
  CHECK_THROWS_WITH(da::add_lora(*unet, tr::named("a.b")), Contains("letters, digits and '_'"));
  // Both add to the layer, in order; each is switched off on its own.
  torch::NoGradGuard no_grad;
  for (const auto& l : {a, g})
    for (const auto& e : l.layers()) e.second->lora_B().normal_(0, 0.1);
  const auto x = torch::randn({1, 4, 8, 8}), t = torch::tensor({10.0});
  const dm::TextCondition c(torch::randn({1, 3, 12}));
  const auto both = unet->forward(x, t, c);
  torch::Tensor without_g, base;
  {
    da::LoraDisabledScope off(g);
    without_g = unet->forward(x, t, c);
    da::LoraDisabledScope off_a(a);
    base = unet->forward(x, t, c);
  }
  CHECK_FALSE(torch::equal(both, without_g));
  CHECK_FALSE(torch::equal(without_g, base));
  CHECK(torch::equal(da::shared_base_teacher<di::EpsPrediction>(unet).model()(x, t, c), base));
  // A file holds one adapter under peft's saved names; it loads into a named adapter, kept frozen.
  const auto dir = std::filesystem::path(DIFFINSTRUCT_TEST_TMPDIR) / "three_roles_tests";
  std::filesystem::create_directories(dir);
  const auto path = (dir / "generator_lora.safetensors").string();
  da::save_lora(g, path);
  {
    di::io::SafetensorsFile f(path);
    for (const auto& e : f.tensors()) CHECK(e.name.find("generator") == std::string::npos);
  }
  dm::UNet2DConditionModel other(test_models::tiny_unet_config());
  auto mine = da::add_lora(*other, tr::named("mine"));
  auto loaded = da::load_lora(*other, path, "unet", da::LoraLoadOptions().adapter_name("published").trainable(false));
  CHECK(loaded.size() == g.size());
  CHECK(test_util::identical(loaded.parameters(), g.parameters()));
  for (const auto& p : loaded.parameters()) CHECK_FALSE(p.requires_grad());
  for (const auto& p : mine.parameters()) CHECK(p.requires_grad());
  // A published LoRA stays float32 when the base is stored in bf16.
  da::store_base_in(torch::kBFloat16, *other);
  for (const auto& p : loaded.parameters()) CHECK(p.scalar_type() == torch::kFloat);
  CHECK(other->conv_in->weight.scalar_type() == torch::kBFloat16);
  // The passes: a pass's parameters are the module's less the adapters it switches off.
  da::SharedBasePass<dm::UNet2DConditionModel> pass(unet, {g});
  std::unordered_set<const void*> seen;
  for (const auto& [n, p] : pass.named_parameters()) seen.insert(p.unsafeGetTensorImpl());
  for (const auto& p : g.parameters()) CHECK_FALSE(seen.count(p.unsafeGetTensorImpl()));
  for (const auto& p : a.parameters()) CHECK(seen.count(p.unsafeGetTensorImpl()));
  CHECK(torch::equal(pass(x, t, c), without_g));
  CHECK_THROWS_WITH((da::SharedBasePass<dm::UNet2DConditionModel>(unet, {mine})), Contains("not on this module"));
}

TEST_CASE("#33 three roles, one base: the trajectory of separate copies bit for bit (checkpointed, fp32 and bf16), resumed exactly",
          "[adapters][shared_base][trainer]") {
  const auto s = tr::start();
  for (const bool bf16 : {false, true}) {
    INFO((bf16 ? "bf16" : "fp32"));
    const auto reference = tr::separate(s, bf16, /*checkpointed=*/true, [](auto& t) { return tr::run(t, 3); });
    const auto one_base = tr::shared(s, bf16, /*checkpointed=*/true, [](auto& t) { return tr::run(t, 3); });
    tr::check_same(reference, one_base);
    CHECK_FALSE(test_util::identical(one_base.generator, test_util::snapshot(s.generator.parameters())));  // it trained
  }
  // Resume: two steps, save, a third; a fresh shared setup loads the checkpoint and takes the third.
  const auto dir = std::filesystem::path(DIFFINSTRUCT_TEST_TMPDIR) / "three_roles_tests";
  std::filesystem::create_directories(dir);
  const auto path = (dir / "trainer.safetensors").string();
  const auto straight = tr::shared(s, false, true, [&](auto& t) {
    tr::run(t, 2);
    t.save(path);
    return tr::run(t, 1);
  });
  const auto resumed = tr::shared(s, false, true, [&](auto& t) {
    t.load(path);
    return tr::run(t, 1);
  });
  tr::check_same(straight, resumed);
}

TEST_CASE("#33 three roles, one base: the base is held once", "[adapters][shared_base]") {
  const auto s = tr::start();
  auto bytes_of = [](const std::vector<torch::Tensor>& params) {
    std::unordered_set<const void*> storages;
    int64_t n = 0;
    for (const auto& p : params)
      if (storages.insert(p.storage().unsafeGetStorageImpl()).second) n += static_cast<int64_t>(p.storage().nbytes());
    return n;
  };
  int64_t base_bytes = 0;
  for (const auto& p : s.base->parameters()) base_bytes += p.numel() * 4;
  auto held = [&](auto& trainer) {
    std::vector<torch::Tensor> all = trainer.generator().parameters();
    for (const auto& p : trainer.assistant().parameters()) all.push_back(p);
    for (const auto& [n, p] : trainer.teacher().read_parameters()) all.push_back(p);
    for (const auto& p : trainer.teacher().parameters()) all.push_back(p);
    return bytes_of(all);
  };
  const int64_t one = tr::shared(s, false, false, held);
  const int64_t three = tr::separate(s, false, false, held);
  WARN("three roles: " << one << " bytes of parameters on one base, " << three << " on separate copies (a base is " << base_bytes << ")");
  CHECK(three - one == 2 * base_bytes);
}

TEST_CASE("#33 StepStats::phases: every pass of a step is timed, within the phases' wall time", "[trainer][stats]") {
  const auto s = tr::start();
  tr::shared(s, false, true, [](auto& trainer) {
    const auto stats = trainer.step();
    const auto& p = stats.phases;
    for (double ms : {p.generator_forward, p.assistant_forward, p.teacher_forward, p.reward, p.backward, p.update}) CHECK(ms > 0);
    // The passes run inside the two phases (nested intervals of one clock): their sum cannot exceed them.
    CHECK(p.generator_forward + p.assistant_forward + p.teacher_forward + p.reward + p.backward + p.update <=
          stats.assistant_ms + stats.generator_ms);
    return 0;
  });
}
