// One base for teacher and assistant (adapters/shared_base.hpp) and the trainer's trainable-only
// path: a DI* step with the shared-base LoRA assistant gives the gradients of the same step with
// separate copies (bit for bit) and with a separate merged copy (float32 round-off), under CFG
// inside and outside; the teacher never changes; one copy of the base in memory; a LoRA generator
// trains only its adapters and resumes exactly; sharing without an adapter is refused.
#include <diffinstruct/adapters/lora.hpp>
#include <diffinstruct/adapters/shared_base.hpp>
#include <diffinstruct/di_star.hpp>
#include <diffinstruct/memory/counting_allocator.hpp>
#include <diffinstruct/models/unet2d_condition.hpp>
#include "../models/one_step_unet.hpp"
#include "../models/tiny_unet.hpp"
#include "../tensor_compare.hpp"

#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <functional>

namespace shared_base_tests {

namespace di = diffinstruct;
namespace da = diffinstruct::adapters;
namespace dm = diffinstruct::models;

dm::UNet2DConditionConfig config() { return test_models::tiny_unet_config(); }
dm::UNet2DConditionModel copy_of(const dm::UNet2DConditionModel& src) { return test_models::copy_of_tiny_unet(src); }

// A LoRA on `unet` whose A and B are `values`' (or random B when values is empty).
da::Lora lora_on(dm::UNet2DConditionModel& unet, const std::vector<torch::Tensor>& values = {}, bool random_b = true) {
  torch::manual_seed(21);  // the same A whatever was drawn before
  auto lora = da::add_lora(*unet, da::LoraOptions().rank(4).alpha(4));
  torch::NoGradGuard no_grad;
  const auto params = lora.parameters();
  if (!values.empty()) {
    for (size_t i = 0; i < params.size(); ++i) params[i].copy_(values[i]);
  } else if (random_b) {
    for (const auto& e : lora.layers()) e.second->lora_B().normal_(0, 0.05);
  }
  return lora;
}

using Reward = di::CallableReward<std::function<torch::Tensor(const torch::Tensor&, const dm::TextCondition&)>>;
using Plain = di::Denoiser<dm::UNet2DConditionModel, di::EpsPrediction>;
using Shared = di::Denoiser<da::SharedBaseTeacher<dm::UNet2DConditionModel>, di::EpsPrediction>;
template <class Teacher, class Guidance>
using Trainer = di::DiStarTrainer<di::Generator<test_models::OneStepUNet>, Teacher, Plain, dm::TextCondition, di::PseudoHuberScore, Guidance,
                                  Reward, di::DiscreteVPSchedule>;

di::DiStarTrainerOptions options(int64_t assistant_steps) {
  return di::DiStarTrainerOptions()
      .batch_size(2)
      .assistant_steps(assistant_steps)
      .alpha_rew(0.1)
      .seed(5)
      .generator_max_grad_norm(0)  // compare the gradients themselves
      .assistant_max_grad_norm(0)
      .release_gradients(false);   // kept after the step, to be compared
}

template <class Teacher, class Guidance>
Trainer<Teacher, Guidance> make_trainer(test_models::OneStepUNet generator, Teacher teacher, Plain assistant, int64_t assistant_steps) {
  di::ConditionSource<dm::TextCondition> prompts{
      [](int64_t b, at::Generator& g) { return dm::TextCondition(at::randn({b, 3, 12}, g, torch::TensorOptions())); },
      dm::TextCondition(torch::zeros({1, 3, 12}))};
  return Trainer<Teacher, Guidance>(
      di::Generator<test_models::OneStepUNet>(generator), std::move(teacher), std::move(assistant),
      {di::PseudoHuberScore(1.0), Guidance(di::GuidanceScale(3.0)),
       Reward([](const torch::Tensor& x, const dm::TextCondition&) { return -torch::tanh(x).square().mean({1, 2, 3}); }), di::DiscreteVPSchedule()},
      prompts, std::vector<int64_t>{4, 8, 8}, options(assistant_steps));
}

test_models::OneStepUNet one_step(dm::UNet2DConditionModel unet) {
  di::DiscreteVPSchedule schedule;
  const auto t999 = torch::full({1}, 999.0);
  return test_models::OneStepUNet(std::move(unet), schedule.alpha(t999).item<double>(), schedule.sigma(t999).item<double>());
}

struct Grads {
  std::vector<torch::Tensor> generator, assistant;
};

template <class T>
Grads grads_of(T& trainer) {
  Grads g;
  for (const auto& p : trainer.generator_parameters()) g.generator.push_back(p.grad().clone());
  for (const auto& p : trainer.assistant_parameters())
    if (p.grad().defined()) g.assistant.push_back(p.grad().clone());
  return g;
}

enum class Setup { kShared, kSeparate, kSeparateMerged };

// One DI* step from the same base, LoRA and seed: `assistant_steps` assistant updates (whose first
// gradient is taken at the start), then the generator's.
template <class Guidance>
Grads first_step(Setup setup, int64_t assistant_steps, bool checkpointed = false) {
  torch::manual_seed(3);
  dm::UNet2DConditionModel base(config());
  auto generator = one_step(copy_of(base));
  // Per block: the teacher's blocks are recomputed in backward, after its pass (and the scope that
  // disabled the shared base's adapters) has ended.
  base->set_gradient_checkpointing(checkpointed);
  generator->unet->set_gradient_checkpointing(checkpointed);
  if (setup == Setup::kShared) {
    auto lora = lora_on(base);
    auto trainer = make_trainer<Shared, Guidance>(generator, da::shared_base_teacher<di::EpsPrediction>(base, lora), Plain(base, "assistant"), assistant_steps);
    trainer.step();
    return grads_of(trainer);
  }
  auto assistant = copy_of(base);
  assistant->set_gradient_checkpointing(checkpointed);
  auto lora = lora_on(assistant);
  if (setup == Setup::kSeparateMerged) {
    lora.merge();
    for (auto& p : assistant->parameters()) p.requires_grad_(true);  // a full copy: all of it trains
  }
  auto trainer = make_trainer<Plain, Guidance>(generator, Plain(base, "teacher"), Plain(assistant, "assistant"), assistant_steps);
  trainer.step();
  return grads_of(trainer);
}

template <class Guidance>
void check_shared_equals_separate(const char* name) {
  const auto shared = first_step<Guidance>(Setup::kShared, 1);
  const auto separate = first_step<Guidance>(Setup::kSeparate, 1);
  // The merged copy trains all its weights, so its assistant update differs: compare the generator's
  // gradient before any assistant update, where both differentiate the very same networks.
  const auto shared0 = first_step<Guidance>(Setup::kShared, 0);
  const auto merged = first_step<Guidance>(Setup::kSeparateMerged, 0);
  REQUIRE(shared.assistant.size() == separate.assistant.size());
  REQUIRE(shared.assistant.size() == 2 * 32);  // every adapter's A and B, nothing of the base
  const double gen_sep = test_util::relative_difference(shared.generator, separate.generator);
  const double asst_sep = test_util::relative_difference(shared.assistant, separate.assistant);
  const double gen_merged = test_util::relative_difference(shared0.generator, merged.generator);
  WARN(name << ": shared base vs separate copies, generator gradient " << gen_sep << ", assistant (adapters) " << asst_sep
            << "; vs a separate merged assistant, generator gradient " << gen_merged << " (relative)");
  // The same arithmetic on the same weights: a disabled adapter adds nothing to the base's output.
  CHECK(test_util::identical(shared.generator, separate.generator));
  CHECK(test_util::identical(shared.assistant, separate.assistant));
  // Merging rounds W + s·BA once; the generator's gradient goes through ε̂_assistant − ε̂_teacher.
  CHECK(gen_merged <= 5e-5);  // measured 7.2e-6 (CFG inside), 1.1e-6 (CFG outside)
  CHECK(gen_merged > 0);  // a merged copy is another computation: the comparison can see a difference
  // With every UNet checkpointed per block, the teacher's blocks are recomputed in backward, outside
  // its pass: the recompute must see the adapters disabled as the forward did.
  const auto shared_ckpt = first_step<Guidance>(Setup::kShared, 1, true);
  const auto separate_ckpt = first_step<Guidance>(Setup::kSeparate, 1, true);
  const double gen_ckpt = test_util::relative_difference(shared_ckpt.generator, separate_ckpt.generator);
  const double asst_ckpt = test_util::relative_difference(shared_ckpt.assistant, separate_ckpt.assistant);
  WARN(name << ", per-block checkpointing: shared base vs separate copies, generator gradient " << gen_ckpt << ", assistant " << asst_ckpt);
  CHECK(test_util::identical(shared_ckpt.generator, separate_ckpt.generator));
  CHECK(test_util::identical(shared_ckpt.assistant, separate_ckpt.assistant));
}

}  // namespace shared_base_tests

namespace sb = shared_base_tests;
namespace di = diffinstruct;
namespace da = diffinstruct::adapters;
namespace dm = diffinstruct::models;

TEST_CASE("#15 shared base: a DI* step with the LoRA assistant on the teacher's base equals separate copies, CFG inside",
          "[adapters][shared_base][trainer]") {
  sb::check_shared_equals_separate<di::CfgInside>("CFG inside");
}

TEST_CASE("#15 shared base: the same under CFG outside", "[adapters][shared_base][trainer]") {
  sb::check_shared_equals_separate<di::CfgOutside>("CFG outside");
}

TEST_CASE("#15 shared base: one copy of the base, the assistant is the teacher at step 0, the teacher never changes",
          "[adapters][shared_base][trainer][memory]") {
  torch::manual_seed(3);
  // Memory: the bytes a shared-base set-up allocates against separate copies (counting allocator).
  static auto& counter = *new di::CountingCpuAllocator();
  int64_t shared_bytes = 0, separate_bytes = 0, base_bytes = 0;
  {
    di::CpuAllocationScope scope(counter);
    const int64_t start = counter.live_bytes();
    dm::UNet2DConditionModel base(sb::config());
    base_bytes = counter.live_bytes() - start;
    auto lora = sb::lora_on(base, {}, false);
    auto teacher = da::shared_base_teacher<di::EpsPrediction>(base, lora);
    shared_bytes = counter.live_bytes() - start;
    // One copy: every base tensor the teacher reads is the assistant module's own tensor.
    auto named = base->named_parameters();
    REQUIRE(teacher.read_parameters().size() + lora.parameters().size() == named.size());
    for (const auto& [n, p] : teacher.read_parameters()) CHECK(p.data_ptr() == named[n].data_ptr());
  }
  {
    di::CpuAllocationScope scope(counter);
    const int64_t start = counter.live_bytes();
    dm::UNet2DConditionModel base(sb::config());
    auto assistant = sb::copy_of(base);
    auto lora = sb::lora_on(assistant, {}, false);
    separate_bytes = counter.live_bytes() - start;
  }
  WARN("one base: " << shared_bytes << " bytes for teacher + LoRA assistant, " << separate_bytes << " with separate copies (the base is "
                    << base_bytes << " bytes)");
  CHECK(separate_bytes - shared_bytes >= base_bytes);
  CHECK(shared_bytes < base_bytes + base_bytes / 5);

  // Step 0: B = 0, so the assistant's ε̂ is the teacher's, bit for bit.
  dm::UNet2DConditionModel base(sb::config());
  auto lora = sb::lora_on(base, {}, false);
  auto teacher = da::shared_base_teacher<di::EpsPrediction>(base, lora);
  sb::Plain assistant(base, "assistant");
  const auto x = torch::randn({2, 4, 8, 8}), t = torch::tensor({50.0, 600.0});
  const auto alpha = torch::full({2}, 0.8), sigma = torch::full({2}, 0.6);
  const dm::TextCondition c(torch::randn({2, 3, 12}));
  torch::Tensor eps_teacher0;
  {
    torch::NoGradGuard ng;
    eps_teacher0 = teacher.eps(x, t, alpha, sigma, c);
    CHECK(torch::equal(assistant.eps(x, t, alpha, sigma, c), eps_teacher0));
  }
  // Train: the adapters move, the base and the teacher's output do not.
  std::vector<torch::Tensor> base_params;
  for (const auto& [n, p] : teacher.read_parameters()) base_params.push_back(p);
  const auto base_before = test_util::snapshot(base_params);
  const auto lora_before = test_util::snapshot(lora.parameters());
  auto generator = sb::one_step(sb::copy_of(base));
  auto trainer = sb::make_trainer<sb::Shared, di::CfgInside>(generator, teacher, assistant, 2);
  base->train(true);  // the assistant's mode is the user's; the teacher's pass is in evaluation mode regardless
  for (int i = 0; i < 3; ++i) REQUIRE_FALSE(trainer.step().generator_skipped);
  CHECK(base->is_training());
  CHECK(trainer.assistant_parameters().size() == lora.parameters().size());
  for (size_t i = 0; i < lora.parameters().size(); ++i) CHECK(lora.parameters()[i].data_ptr() == trainer.assistant_parameters()[i].data_ptr());
  CHECK_FALSE(test_util::identical(lora.parameters(), lora_before));
  CHECK(test_util::identical(base_params, base_before));
  torch::NoGradGuard ng;
  base->train(false);
  CHECK(torch::equal(teacher.eps(x, t, alpha, sigma, c), eps_teacher0));
  CHECK_FALSE(torch::equal(assistant.eps(x, t, alpha, sigma, c), eps_teacher0));
}

TEST_CASE("#15 trainable-only: a LoRA generator trains its adapters alone, checkpoints small and resumes exactly, sharing is refused",
          "[adapters][shared_base][trainer]") {
  auto build = [] {
    torch::manual_seed(3);
    dm::UNet2DConditionModel base(sb::config());
    auto gen_unet = sb::copy_of(base);
    auto gen_lora = da::add_lora(*gen_unet, da::LoraOptions().rank(2).alpha(2));
    auto lora = sb::lora_on(base, {}, false);
    auto generator = sb::one_step(gen_unet);
    auto trainer = sb::make_trainer<sb::Shared, di::CfgOutside>(generator, da::shared_base_teacher<di::EpsPrediction>(base, lora),
                                                                sb::Plain(base, "assistant"), 1);
    return std::make_tuple(std::move(trainer), gen_unet, gen_lora);
  };
  auto [trainer, gen_unet, gen_lora] = build();
  CHECK(trainer.generator_parameters().size() == gen_lora.parameters().size());
  const auto frozen_before = [&] {
    std::vector<torch::Tensor> out;
    for (const auto& p : gen_unet->parameters())
      if (!p.requires_grad()) out.push_back(p.detach().clone());
    return out;
  }();
  trainer.step();
  trainer.step();
  const auto dir = std::filesystem::path(DIFFINSTRUCT_TEST_TMPDIR) / "shared_base_tests";
  std::filesystem::create_directories(dir);
  const auto path = (dir / "lora_run.safetensors").string();
  trainer.save(path);
  trainer.step();
  std::vector<torch::Tensor> frozen_after;
  for (const auto& p : gen_unet->parameters())
    if (!p.requires_grad()) frozen_after.push_back(p);
  CHECK(test_util::identical(frozen_after, frozen_before));  // the generator's base never moved
  // The checkpoint holds the adapters (and their Adam moments), not the bases.
  int64_t base_bytes = 0;
  for (const auto& p : gen_unet->parameters()) base_bytes += p.numel() * 4;
  CHECK(static_cast<int64_t>(std::filesystem::file_size(path)) < base_bytes / 2);
  {
    di::io::SafetensorsFile f(path);
    for (const auto& e : f.tensors()) {
      INFO(e.name);
      const bool adapter = e.name.find("lora_") != std::string::npos;
      CHECK((adapter || e.name.rfind("generator/", 0) != 0));
      CHECK((adapter || e.name.rfind("assistant/", 0) != 0));
    }
  }
  const auto after = test_util::snapshot(trainer.generator_parameters());
  const auto asst_after = test_util::snapshot(trainer.assistant_parameters());
  auto [resumed, gen_unet2, gen_lora2] = build();
  resumed.load(path);
  resumed.step();
  CHECK(test_util::identical(resumed.generator_parameters(), after));
  CHECK(test_util::identical(resumed.assistant_parameters(), asst_after));

  // Refusals.
  using Catch::Contains;
  torch::manual_seed(4);
  dm::UNet2DConditionModel base(sb::config());
  auto generator = sb::one_step(sb::copy_of(base));
  // The same module as teacher and assistant, no adapter: the assistant would train the teacher.
  CHECK_THROWS_WITH((sb::make_trainer<sb::Plain, di::CfgInside>(generator, sb::Plain(base, "teacher"), sb::Plain(base, "assistant"), 1)),
                    Contains("trained parameter tensor(s) of the assistant are also the teacher or reward's") && Contains("docs/lora.md"));
  auto lora = sb::lora_on(base, {}, false);
  // With an adapter but the plain module as teacher: the trainer would freeze the adapters.
  CHECK_THROWS_WITH((sb::make_trainer<sb::Plain, di::CfgInside>(generator, sb::Plain(base, "teacher"), sb::Plain(base, "assistant"), 1)),
                    Contains("trained parameter tensor(s) of the assistant are also the teacher or reward's"));
  // A base left trainable cannot be shared.
  dm::UNet2DConditionModel open(sb::config());
  auto open_lora = da::add_lora(*open, da::LoraOptions().freeze_base(false));
  CHECK_THROWS_WITH(da::shared_base_teacher<di::EpsPrediction>(open, open_lora), Contains("requires grad; the base the teacher reads must be frozen"));
  // Nothing trainable at all.
  auto frozen_gen = sb::one_step(sb::copy_of(base));
  for (auto& p : frozen_gen->parameters()) p.requires_grad_(false);
  CHECK_THROWS_WITH((sb::make_trainer<sb::Shared, di::CfgInside>(frozen_gen, da::shared_base_teacher<di::EpsPrediction>(base, lora),
                                                                 sb::Plain(base, "assistant"), 1)),
                    Contains("the generator has no trainable parameters"));
}
