// The diffusers-compatible models without Python: published parameter counts, strict configs,
// input checks, gradients against finite differences, the text condition's traits, and loading and
// saving a module's state (strict, non-strict, sharded, hostile indexes). Parity with diffusers
// itself is tests/models/run_parity.sh.
#include "../test_skip.hpp"
#include <diffinstruct/di_star.hpp>
#include <diffinstruct/memory/counting_allocator.hpp>
#include <diffinstruct/models/pretrained.hpp>
#include "one_step_unet.hpp"

#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <cmath>

namespace di = diffinstruct;
namespace dm = diffinstruct::models;
namespace fs = std::filesystem;

namespace {

std::string source_dir() { return fs::path(__FILE__).parent_path().string(); }

fs::path scratch(const std::string& name) {
  const fs::path p = fs::path(DIFFINSTRUCT_TEST_TMPDIR) / "models" / name;
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

/// A tiny SD-1.x-style config (2 levels, 8 groups) as JSON, with `extra` appended inside the object.
std::string tiny_json(const std::string& extra = "") {
  return R"({"_class_name": "UNet2DConditionModel", "block_out_channels": [16, 32], "layers_per_block": 1,
             "cross_attention_dim": 12, "attention_head_dim": 4, "norm_num_groups": 8,
             "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"], "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"])" +
         extra + "}";
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const c10::Error& e) {
    return e.what();
  }
  return "";
}

} // namespace

TEST_CASE("SD1.5's and SDXL's UNets and SD's VAE, built from their published configs on the meta device, have their published parameter counts",
          "[models][unet]") {
  // 859,520,964 and 2,567,463,684: what diffusers counts for these configs (checked with diffusers 0.42.1).
  const auto meta = dm::BuildOptions().device(torch::kMeta).init(dm::Init::kEmpty);
  dm::UNet2DConditionModel sd15(dm::UNet2DConditionConfig::from_file(source_dir() + "/configs/sd15_unet.json"), meta);
  CHECK(dm::count_parameters(*sd15) == 859520964);
  dm::UNet2DConditionModel sdxl(dm::UNet2DConditionConfig::from_file(source_dir() + "/configs/sdxl_unet.json"), meta);
  CHECK(dm::count_parameters(*sdxl) == 2567463684);
  CHECK(sdxl->config().text_time());
  for (const auto& p : sdxl->parameters()) REQUIRE(p.device().is_meta());
  // Names are diffusers' (a few spot checks of the SDXL layout).
  const auto names = sdxl->named_parameters();
  CHECK(names.contains("add_embedding.linear_1.weight"));
  CHECK(names["add_embedding.linear_1.weight"].sizes() == c10::IntArrayRef({1280, 2816}));
  CHECK(names.contains("down_blocks.2.attentions.1.transformer_blocks.9.ff.net.0.proj.weight"));
  CHECK(names.contains("up_blocks.0.resnets.2.conv_shortcut.weight"));
  CHECK(names.contains("down_blocks.0.downsamplers.0.conv.weight"));
  CHECK(names.contains("mid_block.attentions.0.proj_in.weight"));
  CHECK(names["mid_block.attentions.0.proj_in.weight"].dim() == 2);  // use_linear_projection
  // SD's VAE: 83,653,863 in all, 49,490,199 in the decoder half a reward needs (diffusers: the same).
  const auto vae_config = dm::AutoencoderKLConfig::from_file(source_dir() + "/configs/sd15_vae.json");
  CHECK(vae_config.scaling_factor == 0.18215);
  CHECK(dm::count_parameters(*dm::AutoencoderKL(vae_config, meta)) == 83653863);
  CHECK(dm::count_parameters(*dm::AutoencoderKL(vae_config, meta, dm::VaeParts::kDecoderOnly)) == 49490199);
}

TEST_CASE("a config that asks for what is not implemented is refused by the key's name", "[models][config]") {
  auto refuse = [](const std::string& json, const std::string& needle) {
    const auto msg = error_of([&] { dm::UNet2DConditionConfig::from_json(json, "test config"); });
    INFO(msg);
    CHECK(msg.find(needle) != std::string::npos);
  };
  CHECK_NOTHROW(dm::UNet2DConditionConfig::from_json(tiny_json()));
  refuse(tiny_json(R"(, "class_embed_type": "timestep")"), "class_embed_type");
  refuse(tiny_json(R"(, "time_cond_proj_dim": 256)"), "time_cond_proj_dim");
  refuse(tiny_json(R"(, "only_cross_attention": true)"), "only_cross_attention");
  refuse(tiny_json(R"(, "some_future_key": 1)"), "some_future_key");
  auto with = [](const std::string& from, const std::string& to) {
    auto s = tiny_json();
    return s.replace(s.find(from), from.size(), to);
  };
  refuse(with(R"("layers_per_block": 1)", R"("layers_per_block": "two")"), "layers_per_block must be an integer or a list");
  refuse(with(R"("attention_head_dim": 4)", R"("attention_head_dim": [4, 4, 4])"), "attention_head_dim");
  refuse(with(R"("attention_head_dim": 4)", R"("attention_head_dim": 3)"), "do not split into attention_head_dim = 3");
  refuse(tiny_json(R"(, "norm_eps": 1e-5, "norm_eps": 1e-6)"), "duplicate key");
  refuse(tiny_json(R"(, "addition_embed_type": "text_image")"), "text_image");
  refuse(tiny_json(R"(, "addition_embed_type": "text_time")"), "addition_time_embed_dim");
  refuse(tiny_json(R"(, "norm_num_groups": 7)"), "norm_num_groups");
  refuse(R"({"_class_name": "AutoencoderKL"})", "not a UNet2DConditionModel");
  refuse("{\"block_out_channels\": [16, 32]", "test config");  // truncated JSON
  const auto vae_msg = error_of([] { dm::AutoencoderKLConfig::from_json(R"({"latents_mean": [0.1, 0.2]})", "vae config"); });
  CHECK(vae_msg.find("latents_mean") != std::string::npos);
  // Keys diffusers itself ignores for these block types load.
  CHECK_NOTHROW(dm::UNet2DConditionConfig::from_json(tiny_json(R"(, "resnet_skip_time_act": true, "upcast_attention": null)")));
}

TEST_CASE("the UNet's forward names what it expected when its inputs are wrong", "[models][unet]") {
  torch::manual_seed(0);
  dm::UNet2DConditionModel unet(dm::UNet2DConditionConfig::from_json(tiny_json()));
  const auto x = torch::randn({2, 4, 8, 8});
  const auto t = torch::tensor({10, 900});
  const dm::TextCondition c(torch::randn({2, 3, 12}));
  CHECK(unet->forward(x, t, c).sizes() == x.sizes());
  CHECK(unet->forward(x, torch::tensor(5), c).sizes() == x.sizes());  // a scalar timestep is broadcast
  CHECK(error_of([&] { unet->forward(torch::randn({2, 3, 8, 8}), t, c); }).find("expected sample [B, 4, H, W]") != std::string::npos);
  CHECK(error_of([&] { unet->forward(x, t, dm::TextCondition(torch::randn({2, 3, 10}))); }).find("encoder_hidden_states [2, L, 12]") !=
        std::string::npos);
  CHECK(error_of([&] { unet->forward(x, torch::tensor({1, 2, 3}), c); }).find("timestep") != std::string::npos);
  CHECK(error_of([&] { unet->forward(x, t, dm::TextCondition(c.encoder_hidden_states, torch::randn({2, 8}), torch::zeros({2, 6}))); })
            .find("no addition_embed_type = text_time") != std::string::npos);
  dm::UNet2DConditionModel xl(dm::UNet2DConditionConfig::from_json(
      tiny_json(R"(, "addition_embed_type": "text_time", "addition_time_embed_dim": 4, "projection_class_embeddings_input_dim": 32)")));
  CHECK(error_of([&] { xl->forward(x, t, c); }).find("needs text_embeds [2, 8]") != std::string::npos);
  CHECK(xl->forward(x, t, dm::TextCondition(c.encoder_hidden_states, torch::randn({2, 8}), torch::zeros({2, 6}))).sizes() == x.sizes());
  // Sizes that are not multiples of 2^(levels-1) take the skips' sizes when upsampling.
  CHECK(unet->forward(torch::randn({1, 4, 7, 9}), t.slice(0, 0, 1), dm::TextCondition(torch::randn({1, 3, 12}))).sizes() ==
        c10::IntArrayRef({1, 4, 7, 9}));
}

TEST_CASE("UNet and VAE gradients match central finite differences in float64", "[models][grad]") {
  torch::manual_seed(1);
  const auto f64 = dm::BuildOptions().dtype(torch::kDouble);
  dm::UNet2DConditionModel unet(dm::UNet2DConditionConfig::from_json(tiny_json(R"(, "use_linear_projection": true)")), f64);
  const auto x = torch::randn({1, 4, 4, 4}, torch::kDouble).requires_grad_(true);
  const auto e = torch::randn({1, 3, 12}, torch::kDouble).requires_grad_(true);
  const auto t = torch::tensor({321});
  const auto cot = torch::randn({1, 4, 4, 4}, torch::kDouble);
  auto loss = [&](const torch::Tensor& xx, const torch::Tensor& ee) { return (unet->forward(xx, t, dm::TextCondition(ee)) * cot).sum(); };
  loss(x, e).backward();
  // One parameter, the inputs: the directional derivative along random directions.
  torch::Tensor w = unet->named_parameters()["down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight"];  // shares the storage
  const auto gw = w.grad().clone();
  torch::NoGradGuard ng;
  const double h = 1e-6;
  const auto vx = torch::randn_like(x), ve = torch::randn_like(e), vw = torch::randn_like(w);
  const double fd_in = ((loss(x + h * vx, e + h * ve) - loss(x - h * vx, e - h * ve)) / (2 * h)).item<double>();
  const double an_in = ((x.grad() * vx).sum() + (e.grad() * ve).sum()).item<double>();
  CHECK(fd_in == Approx(an_in).epsilon(1e-6));
  w.add_(h * vw);
  const double up = loss(x, e).item<double>();
  w.sub_(2 * h * vw);
  const double down = loss(x, e).item<double>();
  w.add_(h * vw);
  CHECK((up - down) / (2 * h) == Approx((gw * vw).sum().item<double>()).epsilon(1e-6));

  // The VAE decoder: a pixel-space reward's gradient reaches the latents.
  dm::AutoencoderKL vae(dm::AutoencoderKLConfig::from_json(R"({"block_out_channels": [8, 16], "norm_num_groups": 4,
      "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"], "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"]})"),
                        f64, dm::VaeParts::kDecoderOnly);
  const auto z = torch::randn({1, 4, 3, 3}, torch::kDouble);
  const auto vz = torch::randn_like(z);
  const auto pix = torch::randn({1, 3, 6, 6}, torch::kDouble);
  torch::Tensor gz;
  {
    torch::AutoGradMode on(true);
    auto zz = z.clone().requires_grad_(true);
    (vae->decode_latents(zz) * pix).sum().backward();
    gz = zz.grad();
  }
  const double fd = (((vae->decode_latents(z + h * vz) - vae->decode_latents(z - h * vz)) * pix).sum() / (2 * h)).item<double>();
  CHECK(fd == Approx((gz * vz).sum().item<double>()).epsilon(1e-6));
  CHECK(error_of([&] { vae->encode(torch::zeros({1, 3, 8, 8}, torch::kDouble)); }).find("kDecoderOnly") != std::string::npos);
}

TEST_CASE("TextCondition batches, broadcasts and slices all of its fields together", "[models][condition]") {
  using T = di::ConditionTraits<dm::TextCondition>;
  static_assert(di::is_condition_v<dm::TextCondition>);
  static_assert(di::detail::has_condition_slice<dm::TextCondition>::value);
  const dm::TextCondition a(torch::randn({2, 3, 4}), torch::randn({2, 5}), torch::randn({2, 6}));
  const dm::TextCondition null(torch::zeros({1, 3, 4}), torch::zeros({1, 5}), torch::zeros({1, 6}));
  const auto both = T::concat(a, T::broadcast(null, 2));
  CHECK(T::batch_size(both) == 4);
  CHECK(both.text_embeds.sizes() == c10::IntArrayRef({4, 5}));
  CHECK(torch::equal(T::slice(both, 0, 2).time_ids, a.time_ids));
  CHECK(torch::equal(T::slice(both, 2, 4).encoder_hidden_states, torch::zeros({2, 3, 4})));
  CHECK(error_of([&] { T::concat(a, dm::TextCondition(torch::zeros({1, 3, 4}))); }).find("text_embeds/time_ids") != std::string::npos);
  std::vector<torch::jit::IValue> args;
  T::append_ivalues(a, args);
  CHECK(args.size() == 3);
}

TEST_CASE("module state: strict loads refuse before copying, non-strict loads report, dtypes convert, shards round-trip",
          "[models][io]") {
  const auto dir = scratch("state");
  torch::manual_seed(2);
  dm::UNet2DConditionModel a(dm::UNet2DConditionConfig::from_json(tiny_json()));
  dm::UNet2DConditionModel b(dm::UNet2DConditionConfig::from_json(tiny_json()));
  const auto file = (dir / "a.safetensors").string();
  di::io::save_safetensors(*a, file);

  // A file without one tensor and with a foreign one: strict refuses and copies nothing.
  std::vector<std::pair<std::string, torch::Tensor>> edited;
  for (const auto& p : a->named_parameters())
    if (p.key() != "conv_out.bias") edited.emplace_back(p.key(), p.value().detach());
  edited.emplace_back("lora.up.weight", torch::zeros({2, 2}));
  edited[0].second = torch::zeros({3, 3});  // mis-shaped conv_in.weight
  di::io::write_safetensors((dir / "edited.safetensors").string(), edited);
  const auto before = b->named_parameters()["time_embedding.linear_1.weight"].clone();
  const auto msg = error_of([&] { di::io::load_safetensors(*b, (dir / "edited.safetensors").string()); });
  INFO(msg);
  CHECK(msg.find("nothing was loaded") != std::string::npos);
  CHECK(msg.find("conv_out.bias") != std::string::npos);
  CHECK(msg.find("lora.up.weight") != std::string::npos);
  CHECK(msg.find("conv_in.weight: file [3, 3]") != std::string::npos);
  CHECK(torch::equal(before, b->named_parameters()["time_embedding.linear_1.weight"]));
  const auto report = di::io::load_safetensors(*b, (dir / "edited.safetensors").string(), di::io::LoadOptions().strict(false));
  CHECK(report.missing == std::vector<std::string>{"conv_out.bias"});
  CHECK(report.unexpected == std::vector<std::string>{"lora.up.weight"});
  CHECK(report.mismatched.size() == 1);
  CHECK(torch::equal(a->named_parameters()["time_embedding.linear_1.weight"], b->named_parameters()["time_embedding.linear_1.weight"]));

  // fp16 on disk, loaded into a float32 model: the values are the fp16-rounded ones.
  di::io::SaveOptions half;
  half.dtype = torch::kHalf;
  di::io::save_safetensors(*a, (dir / "half.safetensors").string(), half);
  CHECK(di::io::SafetensorsFile((dir / "half.safetensors").string()).at("conv_in.weight").dtype == torch::kHalf);
  CHECK(di::io::load_safetensors(*b, (dir / "half.safetensors").string()).clean());
  CHECK(torch::equal(b->conv_in->weight, a->conv_in->weight.to(torch::kHalf).to(torch::kFloat)));

  // Sharded: 64 kB shards plus an index; load_unet reads the folder the same as a single file.
  dm::save_pretrained(a, (dir / "sharded").string(), c10::nullopt, 64 << 10);
  CHECK(fs::exists(dir / "sharded" / "diffusion_pytorch_model.safetensors.index.json"));
  CHECK(di::io::SafetensorsCheckpoint((dir / "sharded" / "diffusion_pytorch_model.safetensors.index.json").string()).num_files() > 2);
  auto back = dm::load_unet((dir / "sharded").string());
  for (const auto& p : a->named_parameters()) CHECK(torch::equal(p.value(), back->named_parameters()[p.key()]));
  CHECK_FALSE(back->is_training());
}

TEST_CASE("hostile sharded indexes are refused by name", "[models][io][hostile]") {
  const auto dir = scratch("hostile_index");
  di::io::write_safetensors((dir / "s1.safetensors").string(), {{"w", torch::ones({2})}, {"v", torch::ones({1})}});
  auto refuse = [&](const std::string& index, const std::string& needle) {
    const auto path = (dir / "model.safetensors.index.json").string();
    std::ofstream(path) << index;
    const auto msg = error_of([&] { di::io::SafetensorsCheckpoint ck(path); });
    INFO(msg);
    CHECK(msg.find(needle) != std::string::npos);
  };
  refuse(R"({"weight_map": {"w": "../s1.safetensors"}})", "plain file names");
  refuse(R"({"weight_map": {"w": "/etc/passwd"}})", "plain file names");
  refuse(R"({"weight_map": {"w": "s2.safetensors"}})", "cannot open");
  refuse(R"({"weight_map": {"w": "s1.safetensors", "x": "s1.safetensors"}})", "'x' is not in its shard");
  refuse(R"({"weight_map": {"w": "s1.safetensors"}})", "holds tensor 'v', which the weight_map does not list");
  refuse(R"({"weight_map": ["s1.safetensors"]})", "no weight_map object");
  refuse(R"({"weight_map": {"w": 3}})", "not a file name");
  refuse(R"({"weight_map": {"w": "s1.safetensors")", "index");
  CHECK(error_of([&] { dm::load_unet(dir.string()); }).find("config.json") != std::string::npos);
}

using test_models::OneStepUNet;

TEST_CASE("a DI* trainer runs on diffusers-style UNets with text conditions and CFG: only the generator and assistant move",
          "[models][trainer]") {
  torch::manual_seed(3);
  const auto config = dm::UNet2DConditionConfig::from_json(tiny_json());
  dm::UNet2DConditionModel teacher(config), assistant(config), gen_unet(config);
  {  // the assistant and generator start from the teacher, as in DI*
    torch::NoGradGuard ng;
    for (auto& [dst, src] : {std::make_pair(assistant, teacher), std::make_pair(gen_unet, teacher)})
      for (const auto& p : src->named_parameters()) dst->named_parameters()[p.key()].copy_(p.value());
  }
  di::DiscreteVPSchedule schedule;
  const auto t999 = torch::full({1}, 999.0);
  OneStepUNet generator(gen_unet, schedule.alpha(t999).item<double>(), schedule.sigma(t999).item<double>());
  using Reward = di::CallableReward<std::function<torch::Tensor(const torch::Tensor&, const dm::TextCondition&)>>;
  using Trainer = di::DiStarTrainer<di::Generator<OneStepUNet>, di::Denoiser<dm::UNet2DConditionModel, di::EpsPrediction>,
                                    di::Denoiser<dm::UNet2DConditionModel, di::EpsPrediction>, dm::TextCondition, di::PseudoHuberScore,
                                    di::CfgInside, Reward, di::DiscreteVPSchedule>;
  di::ConditionSource<dm::TextCondition> prompts{
      [](int64_t b, at::Generator& g) { return dm::TextCondition(at::randn({b, 3, 12}, g, torch::TensorOptions())); },
      dm::TextCondition(torch::zeros({1, 3, 12}))};
  const auto teacher_before = teacher->conv_out->weight.clone();
  const auto gen_before = gen_unet->conv_out->weight.clone();
  Trainer trainer(di::Generator<OneStepUNet>(generator), di::Denoiser<dm::UNet2DConditionModel, di::EpsPrediction>(teacher, "teacher"),
                  di::Denoiser<dm::UNet2DConditionModel, di::EpsPrediction>(assistant, "assistant"),
                  {di::PseudoHuberScore(1.0), di::CfgInside(di::GuidanceScale(3.0)),
                   Reward([](const torch::Tensor& x, const dm::TextCondition&) { return -x.square().mean({1, 2, 3}); }), schedule},
                  prompts, std::vector<int64_t>{4, 8, 8}, di::DiStarTrainerOptions().batch_size(2).alpha_rew(0.1));
  for (int i = 0; i < 2; ++i) {
    const auto s = trainer.step();
    CHECK(std::isfinite(s.generator_loss));
    CHECK(std::isfinite(s.assistant_loss));
  }
  CHECK(torch::equal(teacher_before, teacher->conv_out->weight));
  CHECK_FALSE(torch::equal(gen_before, gen_unet->conv_out->weight));
  CHECK_FALSE(teacher->is_training());
}

TEST_CASE("loading a checkpoint holds one copy of the model: peak CPU memory = the model + its largest tensor in the file's dtype",
          "[models][memory]") {
  const auto dir = scratch("memory");
  const auto config = dm::UNet2DConditionConfig::from_json(tiny_json());
  torch::manual_seed(4);
  dm::save_pretrained(dm::UNet2DConditionModel(config), (dir / "unet").string(), torch::kHalf);  // fp16 on disk, fp32 in memory
  int64_t model_bytes = 0, largest_half = 0;
  {
    dm::UNet2DConditionModel probe(config, dm::BuildOptions().device(torch::kMeta));
    for (const auto& p : probe->parameters()) {
      model_bytes += p.numel() * 4;
      largest_half = std::max<int64_t>(largest_half, p.numel() * 2);
    }
  }
  di::CountingCpuAllocator counter;
  dm::UNet2DConditionModel loaded{nullptr};
  {
    di::CpuAllocationScope scope(counter);
    loaded = dm::load_unet((dir / "unet").string());
  }
  INFO("model " << model_bytes << " B, largest fp16 tensor " << largest_half << " B, peak " << counter.peak_bytes() << " B");
  CHECK(counter.peak_bytes() >= model_bytes);
  CHECK(counter.peak_bytes() <= model_bytes + largest_half + 4096);
}

TEST_CASE("[cuda] models load onto the GPU in float32 and bfloat16 and match the CPU", "[models][cuda]") {
  DIFFINSTRUCT_REQUIRE_CUDA();
  at::globalContext().setAllowTF32CuDNN(false);  // float32 convolutions, so that 1e-4 is a fair tolerance
  at::globalContext().setAllowTF32CuBLAS(false);
  const auto dir = scratch("cuda");
  torch::manual_seed(5);
  dm::UNet2DConditionModel cpu(dm::UNet2DConditionConfig::from_json(tiny_json()));
  dm::save_pretrained(cpu, (dir / "unet").string());
  const auto x = torch::randn({2, 4, 8, 8});
  const auto t = torch::tensor({3, 700});
  const dm::TextCondition c(torch::randn({2, 3, 12}));
  const auto want = cpu->forward(x, t, c).detach();
  for (const auto dtype : {torch::kFloat, torch::kBFloat16}) {
    auto gpu = dm::load_unet((dir / "unet").string(), dm::PretrainedOptions().device(torch::kCUDA).dtype(dtype));
    for (const auto& p : gpu->parameters()) REQUIRE((p.is_cuda() && p.scalar_type() == dtype));
    const auto xg = x.to(torch::kCUDA, dtype).requires_grad_(true);
    const auto out = gpu->forward(xg, t.to(torch::kCUDA), dm::TextCondition(c.encoder_hidden_states.to(torch::kCUDA, dtype)));
    CHECK(out.is_cuda());
    const double err = ((out.to(torch::kCPU, torch::kFloat) - want).norm() / want.norm()).item<double>();
    CHECK(err <= (dtype == torch::kFloat ? 1e-4 : 3e-2));
    out.to(torch::kFloat).square().mean().backward();
    CHECK(xg.grad().defined());
    CHECK(torch::isfinite(xg.grad()).all().item<bool>());
  }
}

TEST_CASE("a config.json asking for a model its weights do not hold is refused before anything is allocated", "[models][hostile]") {
  const auto dir = scratch("huge_config");
  torch::manual_seed(6);
  dm::save_pretrained(dm::UNet2DConditionModel(dm::UNet2DConditionConfig::from_json(tiny_json())), (dir / "unet").string());
  // The same weights under a config of about 30 G parameters (120 GB in float32).
  auto huge = tiny_json();
  huge.replace(huge.find("[16, 32]"), 8, "[16384, 32768]");
  std::ofstream((dir / "unet" / "config.json").string()) << huge;
  di::CountingCpuAllocator counter;
  std::string msg;
  {
    di::CpuAllocationScope scope(counter);
    msg = error_of([&] { dm::load_unet((dir / "unet").string()); });
  }
  INFO(msg);
  CHECK(msg.find("does not hold the model its config.json describes (nothing was allocated or loaded)") != std::string::npos);
  CHECK(msg.find("mis-shaped") != std::string::npos);
  CHECK(counter.peak_bytes() < (1 << 20));
}

TEST_CASE("CLIP text encoders of SD1.5 and SDXL from their published configs have their published parameter counts, names are transformers'",
          "[models][clip]") {
  const auto meta = dm::BuildOptions().device(torch::kMeta).init(dm::Init::kEmpty);
  dm::ClipTextModel sd15(dm::ClipTextConfig::from_file(source_dir() + "/configs/sd15_text_encoder.json"), meta);
  CHECK(dm::count_parameters(*sd15) == 123060480);  // CLIP ViT-L/14's text model (transformers counts the same)
  dm::ClipTextModel xl2(dm::ClipTextConfig::from_file(source_dir() + "/configs/sdxl_text_encoder_2.json"), meta);
  CHECK(dm::count_parameters(*xl2) == 694659840);  // OpenCLIP ViT-bigG's text model with projection
  const auto names = xl2->named_parameters();
  CHECK(names.contains("text_model.embeddings.token_embedding.weight"));
  CHECK(names.contains("text_model.encoder.layers.31.mlp.fc2.bias"));
  CHECK(names.contains("text_model.final_layer_norm.weight"));
  CHECK(names["text_projection.weight"].sizes() == c10::IntArrayRef({1280, 1280}));
  CHECK(dm::clip_text_canonical_name("encoder.layers.0.mlp.fc1.weight") == "text_model.encoder.layers.0.mlp.fc1.weight");
  CHECK(dm::clip_text_canonical_name("text_projection.weight") == "text_projection.weight");
  auto refuse = [](const std::string& json, const std::string& needle) {
    const auto msg = error_of([&] { dm::ClipTextConfig::from_json(json, "clip config"); });
    INFO(msg);
    CHECK(msg.find(needle) != std::string::npos);
  };
  refuse(R"({"architectures": ["CLIPModel"]})", "not a CLIPTextModel");
  refuse(R"({"hidden_act": "relu"})", "hidden_act 'relu'");
  refuse(R"({"hidden_size": 30, "num_attention_heads": 4})", "does not split into 4 heads");
  refuse(R"({"rope_theta": 10000})", "rope_theta");
  const auto vmsg = error_of([] { dm::ClipVisionConfig::from_json(R"({"image_size": 30, "patch_size": 7})", "vision config"); });
  CHECK(vmsg.find("not a positive multiple of patch_size") != std::string::npos);
}

TEST_CASE("CLIP text: pooling at the end-of-text token (new and legacy ids), input checks, gradients to the embeddings", "[models][clip]") {
  torch::manual_seed(7);
  auto cfg = dm::ClipTextConfig::from_json(R"({"architectures": ["CLIPTextModelWithProjection"], "vocab_size": 60, "hidden_size": 16,
      "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "max_position_embeddings": 8, "projection_dim": 4,
      "eos_token_id": 59, "bos_token_id": 58})");
  dm::ClipTextModel clip(cfg, dm::BuildOptions().dtype(torch::kDouble));
  auto ids = torch::tensor({58, 5, 6, 59, 59, 59, 59, 59, 58, 7, 8, 9, 10, 11, 12, 59}, torch::kLong).view({2, 8});
  const auto out = clip->forward(ids, true);
  CHECK(out.hidden_states.size() == 3);
  CHECK(torch::equal(out.pooler_output[0], out.last_hidden_state[0][3]));  // the first end-of-text token
  CHECK(torch::equal(out.pooler_output[1], out.last_hidden_state[1][7]));
  CHECK(out.text_embeds.sizes() == c10::IntArrayRef({2, 4}));
  // Causal: the states before a token do not depend on it.
  auto changed = ids.clone();
  changed[0][5] = 3;
  CHECK(torch::allclose(clip->forward(changed).last_hidden_state.slice(1, 0, 5)[0], out.last_hidden_state.slice(1, 0, 5)[0]));
  CHECK(error_of([&] { clip->forward(ids.to(torch::kInt)); }).find("int64") != std::string::npos);
  CHECK(error_of([&] { clip->forward(torch::zeros({1, 9}, torch::kLong)); }).find("at most 8") != std::string::npos);
  CHECK(error_of([&] { clip->forward(torch::full({1, 3}, 60, torch::kLong)); }).find("[0, 60)") != std::string::npos);
  // Legacy configs (eos_token_id = 2): the pooled token is the largest id.
  cfg.eos_token_id = 2;
  dm::ClipTextModel legacy(cfg, dm::BuildOptions().dtype(torch::kDouble));
  const auto lo = legacy->forward(torch::tensor({{58, 59, 3, 3}}, torch::kLong));
  CHECK(torch::equal(lo.pooler_output[0], lo.last_hidden_state[0][1]));
  // Gradients reach the token embeddings of the tokens used, and only those.
  const auto e = legacy->forward(torch::tensor({{58, 4, 59}}, torch::kLong)).text_embeds.sum();
  e.backward();
  const auto g = legacy->token_embedding.grad();
  CHECK(g[4].abs().sum().item<double>() > 0);
  CHECK(g[5].abs().sum().item<double>() == 0);
}

TEST_CASE("CLIP vision and clip_preprocess: shapes, normalisation, gradients to pixels", "[models][clip]") {
  torch::manual_seed(8);
  dm::ClipVisionModel clip(dm::ClipVisionConfig::from_json(R"({"architectures": ["CLIPVisionModelWithProjection"], "hidden_size": 16,
      "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "image_size": 16, "patch_size": 4, "projection_dim": 6})"));
  const auto images = torch::rand({2, 3, 24, 32}).requires_grad_(true);
  const auto pixels = dm::clip_preprocess(images, 16);
  CHECK(pixels.sizes() == c10::IntArrayRef({2, 3, 16, 16}));
  // A grey image at CLIP's mean maps to zero.
  const auto mean = torch::tensor({0.48145466, 0.4578275, 0.40821073}).view({1, 3, 1, 1}).expand({1, 3, 20, 20});
  CHECK(dm::clip_preprocess(mean.contiguous(), 16).abs().max().item<double>() < 1e-5);
  const auto out = clip->forward(pixels);
  CHECK(out.last_hidden_state.sizes() == c10::IntArrayRef({2, 17, 16}));
  CHECK(out.image_embeds.sizes() == c10::IntArrayRef({2, 6}));
  out.image_embeds.square().sum().backward();
  CHECK(images.grad().abs().sum().item<double>() > 0);
  CHECK(error_of([&] { clip->forward(torch::zeros({1, 3, 20, 20})); }).find("run clip_preprocess first") != std::string::npos);
}
