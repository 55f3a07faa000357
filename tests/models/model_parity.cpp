// Parity of the C++ UNet2DConditionModel and AutoencoderKL with diffusers, on the folders and
// recordings that make_fixtures.py writes; then the export of a trained UNet for check_export.py.
//
//   model_parity FIXTURE_DIR EXPORT_DIR
//
// For every model: the forward outputs must match to 1e-5 and the gradients of sum(out · cot) with
// respect to every input and every parameter to 1e-4, relative: ‖c++ − diffusers‖₂ / ‖diffusers‖₂
// per tensor. Prints the table docs/models.md quotes; exits 1 on any miss.
#include <diffinstruct/adapters/lora_file.hpp>
#include <diffinstruct/core/roles.hpp>
#include <diffinstruct/models/pretrained.hpp>
#include <diffinstruct/text/prompt_file.hpp>
#include <diffinstruct/text2image/clip_reward.hpp>
#include <diffinstruct/text2image/prompt_encoder.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <string>

namespace di = diffinstruct;
namespace fs = std::filesystem;
using di::models::TextCondition;

namespace {

constexpr double kForwardTol = 1e-5, kGradTol = 1e-4;
bool g_failed = false;

double rel_error(const torch::Tensor& got, const torch::Tensor& want) {
  TORCH_CHECK(got.sizes() == want.sizes(), "shape ", got.sizes(), " vs ", want.sizes());
  const double denom = want.to(torch::kDouble).norm().item<double>();
  const double diff = (got.to(torch::kDouble) - want.to(torch::kDouble)).norm().item<double>();
  return denom > 0 ? diff / denom : diff;
}

struct Worst {
  double err = 0;
  std::string name;
  int64_t count = 0;
  void add(double e, const std::string& n) {
    ++count;
    if (e >= err) {
      err = e;
      name = n;
    }
  }
};

void row(const std::string& model, const std::string& what, const Worst& w, double tol) {
  const bool ok = w.err <= tol;
  g_failed |= !ok;
  std::printf("| %s | %s | %lld | %.2e | %s | %s |\n", model.c_str(), what.c_str(), static_cast<long long>(w.count), w.err, w.name.c_str(),
              ok ? "ok" : "FAIL");
}

// Some gradients are zero in exact arithmetic: to_k's bias adds q·b to every score of a query, which
// the softmax ignores. What both sides compute there is rounding noise, so a tensor whose recorded
// gradient is below 1e-6 of the model's typical one is compared against that scale instead of its own
// norm (and is named "(zero)" in the table).
// Every parameter's gradient against the recorded `grad.param.<name>`, with the recorded name mapped
// through `canonical` (transformers 5 names a plain CLIP model's tensors without its `text_model.` /
// `vision_model.` prefix). Some gradients are zero in exact arithmetic: to_k's bias adds q·b to every
// score of a query, which the softmax ignores. What both sides compute there is rounding noise, so a
// tensor whose recorded gradient is below 1e-6 of the model's typical one is compared against that
// scale instead of its own norm (and is named "(zero)" in the table).
void compare_params(const std::string& name, const torch::nn::Module& m, const di::io::SafetensorsFile& expected,
                    const std::function<std::string(const std::string&)>& canonical = [](const std::string& n) { return n; }) {
  std::vector<std::pair<std::string, torch::Tensor>> renamed;
  for (const auto& e : expected.tensors())
    if (e.name.rfind("grad.param.", 0) == 0) renamed.emplace_back(canonical(e.name.substr(11)), expected.read(e.name));
  Worst w;
  double sum_sq = 0;
  for (const auto& [n, g] : renamed) sum_sq += std::pow(g.to(torch::kDouble).norm().item<double>(), 2);
  const double zero_scale = 1e-6 * std::sqrt(sum_sq / std::max<size_t>(renamed.size(), 1));
  auto params = m.named_parameters(true);
  TORCH_CHECK(static_cast<int64_t>(renamed.size()) == static_cast<int64_t>(params.size()), name, ": ", renamed.size(),
              " recorded parameter gradients, ", params.size(), " parameters");
  for (const auto& [n, want] : renamed) {
    TORCH_CHECK(params.contains(n), name, ": no parameter '", n, "'");
    const auto g = params[n].grad();
    TORCH_CHECK(g.defined(), name, ": no gradient for '", n, "'");
    if (want.to(torch::kDouble).norm().item<double>() < zero_scale)
      w.add((g.to(torch::kDouble) - want.to(torch::kDouble)).norm().item<double>() / (1e6 * zero_scale), n + " (zero)");
    else w.add(rel_error(g, want), n);
  }
  row(name, "grad, every parameter", w, kGradTol);
}

torch::nn::Module& zero_grads(torch::nn::Module& m) {
  for (auto& p : m.parameters()) p.mutable_grad() = torch::Tensor();
  return m;
}

void unet_parity(const std::string& name, const fs::path& dir) {
  di::io::LoadReport report;
  auto unet = di::models::load_unet(dir.string(), {}, &report);
  TORCH_CHECK(report.clean(), name, ": ", report.summary());
  di::io::SafetensorsFile in((dir / "inputs.safetensors").string());
  di::io::SafetensorsFile expected((dir / "expected.safetensors").string());
  auto sample = in.read("sample").requires_grad_(true);
  TextCondition c(in.read("encoder_hidden_states").requires_grad_(true));
  if (in.find("text_embeds")) {
    c.text_embeds = in.read("text_embeds").requires_grad_(true);
    c.time_ids = in.read("time_ids");
  }
  zero_grads(*unet);
  auto out = unet->forward(sample, in.read("timestep"), c);
  (out * in.read("cot")).sum().backward();
  Worst fwd;
  fwd.add(rel_error(out, expected.read("out.sample")), "sample");
  row(name, "forward", fwd, kForwardTol);
  Worst gin;
  gin.add(rel_error(sample.grad(), expected.read("grad.input.sample")), "sample");
  gin.add(rel_error(c.encoder_hidden_states.grad(), expected.read("grad.input.encoder_hidden_states")), "encoder_hidden_states");
  if (c.text_embeds.defined()) gin.add(rel_error(c.text_embeds.grad(), expected.read("grad.input.text_embeds")), "text_embeds");
  row(name, "grad, inputs", gin, kGradTol);
  compare_params(name, *unet, expected);
}

void vae_parity(const fs::path& dir) {
  di::io::LoadReport report;
  auto vae = di::models::load_vae(dir.string(), {}, di::models::VaeParts::kBoth, &report);
  TORCH_CHECK(report.clean(), "vae: ", report.summary());
  di::io::SafetensorsFile in((dir / "inputs.safetensors").string());
  di::io::SafetensorsFile expected((dir / "expected.safetensors").string());
  auto latents = in.read("latents").requires_grad_(true);
  auto image = in.read("image").requires_grad_(true);
  zero_grads(*vae);
  auto decoded = vae->decode(latents);
  auto dist = vae->encode(image);
  ((decoded * in.read("cot")).sum() + (dist.mean * in.read("cot_mean")).sum() + (dist.logvar * in.read("cot_logvar")).sum()).backward();
  Worst fwd;
  fwd.add(rel_error(decoded, expected.read("out.decoded")), "decode");
  fwd.add(rel_error(dist.mean, expected.read("out.mean")), "encode: mean");
  fwd.add(rel_error(dist.logvar, expected.read("out.logvar")), "encode: logvar");
  row("vae", "forward (decode, encode)", fwd, kForwardTol);
  Worst gin;
  gin.add(rel_error(latents.grad(), expected.read("grad.input.latents")), "latents");
  gin.add(rel_error(image.grad(), expected.read("grad.input.image")), "image");
  row("vae", "grad, inputs", gin, kGradTol);
  compare_params("vae", *vae, expected);

  // Decoder only: the reward's configuration loads without the encoder and decodes the same.
  auto dec = di::models::load_vae(dir.string(), {}, di::models::VaeParts::kDecoderOnly, &report);
  TORCH_CHECK(report.clean() && !dec->encoder, "vae decoder-only: ", report.summary());
  torch::NoGradGuard ng;
  Worst d;
  d.add(rel_error(dec->decode(latents.detach()), expected.read("out.decoded")), "decode");
  row("vae (decoder only)", "forward", d, kForwardTol);
}

void clip_vision_parity(const std::string& name, const fs::path& dir) {
  di::io::LoadReport report;
  auto clip = di::models::load_clip_vision(dir.string(), {}, &report);
  TORCH_CHECK(report.clean(), name, ": ", report.summary());
  di::io::SafetensorsFile in((dir / "inputs.safetensors").string());
  di::io::SafetensorsFile expected((dir / "expected.safetensors").string());
  zero_grads(*clip);
  const auto pixels = in.read("pixel_values").requires_grad_(true);
  const auto out = clip->forward(pixels);
  std::vector<std::pair<std::string, torch::Tensor>> got{{"last_hidden_state", out.last_hidden_state}};
  got.emplace_back(out.image_embeds.defined() ? "image_embeds" : "pooler_output", out.image_embeds.defined() ? out.image_embeds : out.pooler_output);
  torch::Tensor loss = torch::zeros({});
  Worst fwd;
  for (const auto& [k, v] : got) {
    fwd.add(rel_error(v, expected.read("out." + k)), k);
    loss = loss + (v * in.read("cot." + k)).sum();
  }
  row(name, "forward (last, pooled or image_embeds)", fwd, kForwardTol);
  loss.backward();
  Worst gin;
  gin.add(rel_error(pixels.grad(), expected.read("grad.input.pixel_values")), "pixel_values");
  row(name, "grad, inputs", gin, kGradTol);
  compare_params(name, *clip, expected, di::models::clip_vision_canonical_name);
}

void clip_text_parity(const std::string& name, const fs::path& dir) {
  di::io::LoadReport report;
  auto clip = di::models::load_clip_text(dir.string(), {}, &report);
  TORCH_CHECK(report.clean(), name, ": ", report.summary());
  di::io::SafetensorsFile in((dir / "inputs.safetensors").string());
  di::io::SafetensorsFile expected((dir / "expected.safetensors").string());
  zero_grads(*clip);
  const auto out = clip->forward(in.read("input_ids"), /*keep_hidden_states=*/true);
  std::vector<std::pair<std::string, torch::Tensor>> got{{"last_hidden_state", out.last_hidden_state},
                                                         {"penultimate", out.hidden_states[out.hidden_states.size() - 2]},
                                                         {"pooler_output", out.pooler_output}};
  if (out.text_embeds.defined()) got.emplace_back("text_embeds", out.text_embeds);
  torch::Tensor loss = torch::zeros({});
  Worst fwd;
  for (const auto& [k, v] : got) {
    fwd.add(rel_error(v, expected.read("out." + k)), k);
    loss = loss + (v * in.read("cot." + k)).sum();
  }
  TORCH_CHECK(static_cast<int64_t>(got.size()) == static_cast<int64_t>(std::count_if(expected.tensors().begin(), expected.tensors().end(),
                                                                    [](const auto& e) { return e.name.rfind("out.", 0) == 0; })),
              name, ": output count differs");
  row(name, "forward (last, penultimate, pooled[, text_embeds])", fwd, kForwardTol);
  loss.backward();
  compare_params(name, *clip, expected, di::models::clip_text_canonical_name);
}

/// A "trained" SD-1.x-style UNet (its weights moved off diffusers' initialisation), exported in
/// each dtype, read back by load_unet, and its output recorded for check_export.py.
// The CLIP reward (text2image::ClipReward) on VAE-decoded latents against transformers' CLIPModel
// on diffusers' VAE, prompts tokenized by each side's own tokenizer: the reward and its gradient
// with respect to the latents. Also: both CLIPModel configs (transformers 5's, and 4.x's with every
// generation default in the sub-configs) load to the same model.
void clip_reward_parity(const fs::path& dir, const fs::path& vae_dir) {
  const auto tok = di::text::ClipTokenizer::from_folder((dir / "tokenizer").string());
  auto clip = di::models::load_clip_model((dir / "clip").string());
  auto vae = di::models::load_vae(vae_dir.string(), {}, di::models::VaeParts::kDecoderOnly);
  di::text2image::PromptEncoder enc({{tok, clip.text}});
  enc.set_reward_text(tok, clip.text);
  const auto prompts = di::text::read_prompt_file((dir / "prompts.txt").string());
  const auto c = enc.encode(prompts);
  di::text2image::ClipReward reward(clip.vision, clip.logit_scale, vae);
  di::io::SafetensorsFile in((dir / "inputs.safetensors").string());
  di::io::SafetensorsFile expected((dir / "expected.safetensors").string());
  const auto latents = in.read("latents").requires_grad_(true);
  const auto r = reward(latents, c);
  (r * in.read("cot")).sum().backward();
  Worst fwd, grad, scale;
  fwd.add(rel_error(r, expected.read("out.reward")), "reward");
  scale.add(rel_error(clip.logit_scale, expected.read("logit_scale")), "logit_scale");
  grad.add(rel_error(latents.grad(), expected.read("grad.input.latents")), "latents");
  row("clip reward (CLIPModel + VAE decoder + tokenizer)", "logit_scale read", scale, 0.0);
  row("clip reward (CLIPModel + VAE decoder + tokenizer)", "reward", fwd, kForwardTol);
  row("clip reward (CLIPModel + VAE decoder + tokenizer)", "grad, latents", grad, kGradTol);

  auto v4 = di::models::load_clip_model((dir / "clip_v4_config").string());
  torch::NoGradGuard ng;
  Worst same;
  same.add(rel_error(di::text2image::ClipReward(v4.vision, v4.logit_scale, vae)(latents, c), r), "reward");
  row("clip reward, transformers 4.x config.json", "reward", same, 0.0);
}

void export_unet(const fs::path& fixture, const fs::path& out_dir) {
  auto unet = di::models::load_unet(fixture.string());
  {
    torch::NoGradGuard ng;
    torch::manual_seed(7);
    for (auto& p : unet->parameters()) p.add_(torch::randn_like(p) * 0.02);
  }
  di::io::SafetensorsFile in((fixture / "inputs.safetensors").string());
  const TextCondition c(in.read("encoder_hidden_states"));
  for (const auto& [dtype_name, dtype] : std::map<std::string, c10::ScalarType>{{"fp32", torch::kFloat}, {"fp16", torch::kHalf}, {"bf16", torch::kBFloat16}}) {
    const fs::path dir = out_dir / ("unet_" + dtype_name);
    di::models::save_pretrained(unet, dir.string(), dtype);
    auto back = di::models::load_unet(dir.string());  // fp32, from the file's dtype
    torch::NoGradGuard ng;
    auto out = back->forward(in.read("sample"), in.read("timestep"), c);
    di::io::write_safetensors((dir / "cpp_output.safetensors").string(),
                              {{"sample", out}, {"input.sample", in.read("sample")}, {"input.timestep", in.read("timestep")},
                               {"input.encoder_hidden_states", in.read("encoder_hidden_states")}});
  }
  // Sharded export: the same weights split into several files with an index; must load the same.
  di::models::save_pretrained(unet, (out_dir / "unet_sharded").string(), torch::kFloat, /*max_shard_bytes=*/1 << 20);
  auto sharded = di::models::load_unet((out_dir / "unet_sharded").string());
  torch::NoGradGuard ng;
  const auto out = sharded->forward(in.read("sample"), in.read("timestep"), c);
  di::io::write_safetensors((out_dir / "unet_sharded" / "cpp_output.safetensors").string(),
                            {{"sample", out}, {"input.sample", in.read("sample")}, {"input.timestep", in.read("timestep")},
                             {"input.encoder_hidden_states", in.read("encoder_hidden_states")}});
  Worst w;
  w.add(rel_error(out, unet->forward(in.read("sample"), in.read("timestep"), c)), "sample");
  row("sd15 export, sharded 1 MB", "forward after reload", w, 0.0);
}

/// diffusers -> C++: the peft LoRA that make_fixtures.py saved with save_lora_weights loads onto the
/// sd15 UNet and computes diffusers' output and gradients (input and every adapter's). C++ ->
/// diffusers: a LoRA built here (rank 3, alpha 6, random B) is saved for check_outputs.py, which
/// loads it with pipeline.load_lora_weights, with the output C++ computes with it.
void lora_parity(const fs::path& fixtures, const fs::path& out_dir) {
  auto unet = di::models::load_unet((fixtures / "sd15").string());
  auto lora = di::adapters::load_lora(*unet, (fixtures / "lora_py" / "pytorch_lora_weights.safetensors").string());
  di::io::SafetensorsFile in((fixtures / "sd15" / "inputs.safetensors").string());
  di::io::SafetensorsFile expected((fixtures / "lora_py" / "expected.safetensors").string());
  auto sample = in.read("sample").requires_grad_(true);
  const TextCondition c(in.read("encoder_hidden_states"));
  auto out = unet->forward(sample, in.read("timestep"), c);
  (out * in.read("cot")).sum().backward();
  Worst fwd, gin, gparam;
  fwd.add(rel_error(out, expected.read("out.sample")), "sample");
  gin.add(rel_error(sample.grad(), expected.read("grad.input.sample")), "sample");
  int64_t recorded = 0;
  for (const auto& e : expected.tensors()) recorded += e.name.rfind("grad.param.", 0) == 0;
  TORCH_CHECK(recorded == static_cast<int64_t>(lora.named_parameters().size()), "lora: ", recorded, " recorded adapter gradients, ",
              lora.named_parameters().size(), " adapter tensors loaded");
  for (const auto& [name, p] : lora.named_parameters()) {
    TORCH_CHECK(p.grad().defined(), "lora: no gradient for '", name, "'");
    gparam.add(rel_error(p.grad(), expected.read("grad.param." + name)), name);
  }
  for (const auto& p : unet->parameters()) TORCH_CHECK(!p.requires_grad() || p.grad().defined(), "lora: a frozen parameter has a gradient");
  row("sd15 + peft LoRA (diffusers save_lora_weights -> load_lora)", "forward", fwd, kForwardTol);
  row("sd15 + peft LoRA", "grad, input", gin, kGradTol);
  row("sd15 + peft LoRA", "grad, every adapter", gparam, kGradTol);

  // The text encoder's adapters, in the same file under "text_encoder." (the UNet's load left them alone).
  auto text = di::models::load_clip_text((fixtures / "clip_text").string());
  // (transformers 5 names the modules without text_model.: the rename puts it back)
  auto text_lora = di::adapters::load_lora(*text, (fixtures / "lora_py" / "pytorch_lora_weights.safetensors").string(), "text_encoder",
                                           di::adapters::LoraLoadOptions().rename(di::models::clip_text_canonical_name));
  TORCH_CHECK(text_lora.size() == 3 * 5, "text encoder LoRA: expected 15 adapted layers (3 layers x q, k, v, out, fc1), got ", text_lora.size());
  di::io::SafetensorsFile text_in((fixtures / "clip_text" / "inputs.safetensors").string());
  di::io::SafetensorsFile text_expected((fixtures / "lora_py" / "expected_text_encoder.safetensors").string());
  const auto text_out = text->forward(text_in.read("input_ids"));
  Worst tfwd, tgrad;
  tfwd.add(rel_error(text_out.last_hidden_state, text_expected.read("out.last_hidden_state")), "last_hidden_state");
  tfwd.add(rel_error(text_out.pooler_output, text_expected.read("out.pooler_output")), "pooler_output");
  ((text_out.last_hidden_state * text_in.read("cot.last_hidden_state")).sum() + (text_out.pooler_output * text_in.read("cot.pooler_output")).sum())
      .backward();
  for (const auto& [name, p] : text_lora.named_parameters()) {
    TORCH_CHECK(p.grad().defined(), "text encoder LoRA: no gradient for '", name, "'");
    const std::string flat = name.rfind("text_model.", 0) == 0 ? name.substr(11) : name;  // transformers 5's names
    tgrad.add(rel_error(p.grad(), text_expected.read("grad.param." + flat)), name);
  }
  row("clip_text + peft LoRA (save_lora_weights -> load_lora, prefix text_encoder)", "forward (last, pooled)", tfwd, kForwardTol);
  row("clip_text + peft LoRA", "grad, every adapter", tgrad, kGradTol);

  auto base = di::models::load_unet((fixtures / "sd15").string());
  auto mine = di::adapters::add_lora(*base, di::adapters::LoraOptions().rank(3).alpha(6).target_modules({"to_q", "to_v", "to_out.0", "conv2", "time_emb_proj"}));
  {
    torch::NoGradGuard ng;
    torch::manual_seed(9);
    for (const auto& e : mine.layers()) e.second->lora_B().normal_(0, 0.1);
  }
  auto text_base = di::models::load_clip_text((fixtures / "clip_text").string());
  auto text_mine = di::adapters::add_lora(*text_base, di::adapters::LoraOptions().rank(2).alpha(4).target_modules({"q_proj", "v_proj", "out_proj", "fc2"}));
  {
    torch::NoGradGuard ng;
    torch::manual_seed(10);
    for (const auto& e : text_mine.layers()) e.second->lora_B().normal_(0, 0.1);
  }
  const fs::path dir = out_dir / "lora_cpp", pipeline_dir = out_dir / "lora_cpp_pipeline";
  fs::create_directories(dir);
  fs::create_directories(pipeline_dir);
  di::adapters::save_lora(mine, (dir / "pytorch_lora_weights.safetensors").string());
  // One file for the pipeline, as diffusers writes it: the UNet's and the text encoder's adapters.
  di::adapters::save_lora({{"unet", mine}, {"text_encoder", text_mine}}, (pipeline_dir / "pytorch_lora_weights.safetensors").string());
  torch::NoGradGuard ng;
  const auto text_out_mine = text_base->forward(text_in.read("input_ids"));
  di::io::write_safetensors((pipeline_dir / "cpp_text_output.safetensors").string(),
                            {{"last_hidden_state", text_out_mine.last_hidden_state}, {"pooler_output", text_out_mine.pooler_output},
                             {"input_ids", text_in.read("input_ids")}});
  di::io::write_safetensors((dir / "cpp_output.safetensors").string(),
                            {{"sample", base->forward(in.read("sample"), in.read("timestep"), c)}, {"input.sample", in.read("sample")},
                             {"input.timestep", in.read("timestep")}, {"input.encoder_hidden_states", in.read("encoder_hidden_states")}});
}

/// The tensors of safetensors_roundtrip.py's expected(), computed the same way.
std::vector<std::pair<std::string, torch::Tensor>> expected_tensors() {
  const auto base = torch::arange(24, torch::kDouble).reshape({2, 3, 4});
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& [name, dtype] : std::vector<std::pair<std::string, c10::ScalarType>>{
           {"F32", torch::kFloat}, {"F16", torch::kHalf}, {"BF16", torch::kBFloat16}, {"F64", torch::kDouble}, {"I64", torch::kLong},
           {"I32", torch::kInt}, {"I16", torch::kShort}, {"I8", torch::kChar}, {"U8", torch::kByte}, {"BOOL", torch::kBool}}) {
    torch::Tensor t;
    if (dtype == torch::kBool) t = (base.to(torch::kLong) % 3) == 0;
    else if (c10::isFloatingType(dtype)) t = ((base - 7) * 0.37).to(dtype);
    else if (dtype == torch::kByte) t = (base * 10).to(dtype);
    else t = (base - 7).to(dtype);
    out.emplace_back(name, t);
  }
  out.emplace_back("scalar", torch::tensor(2.5f));
  out.emplace_back("empty", torch::zeros({0, 3}));
  return out;
}

/// Python wrote py.safetensors: read every tensor bit-exactly, then write cpp.safetensors for Python.
void safetensors_roundtrip(const fs::path& dir) {
  di::io::SafetensorsFile f((dir / "py.safetensors").string());
  const auto want = expected_tensors();
  TORCH_CHECK(f.tensors().size() == want.size(), "py.safetensors has ", f.tensors().size(), " tensors, expected ", want.size());
  for (const auto& [name, w] : want) {
    const auto got = f.read(name);
    TORCH_CHECK(got.scalar_type() == w.scalar_type() && got.sizes() == w.sizes() && torch::equal(got, w), "py.safetensors: tensor '", name,
                "' differs");
  }
  TORCH_CHECK(f.metadata().at("unicode") == "\xc3\xbc\xc3\x9f \xe2\x9c\x93", "py.safetensors: metadata differs");
  di::io::write_safetensors((dir / "cpp.safetensors").string(), want, f.metadata());
  std::printf("| safetensors Python -> C++ (%zu tensors, every dtype, metadata) | bit-exact | ok |\n", want.size());
}

} // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: model_parity FIXTURE_DIR EXPORT_DIR\n");
    return 2;
  }
  torch::set_num_threads(1);
  const fs::path fixtures = argv[1], exports = argv[2];
  try {
    std::printf("| model | quantity | tensors | worst relative error | worst tensor | |\n|---|---|---|---|---|---|\n");
    for (const char* name : {"sd15", "sd2", "sdxl"}) unet_parity(name, fixtures / name);
    vae_parity(fixtures / "vae");
    for (const char* name : {"clip_text", "clip_text_proj"})
      if (fs::exists(fixtures / name)) clip_text_parity(name, fixtures / name);
    for (const char* name : {"clip_vision", "clip_vision_proj"})
      if (fs::exists(fixtures / name)) clip_vision_parity(name, fixtures / name);
    clip_reward_parity(fixtures / "clip_reward", fixtures / "vae");
    // The adapters take the UNet as it is: SD 2.x's v-prediction through VPrediction.
    {
      auto unet = di::models::load_unet((fixtures / "sd2").string());
      di::Denoiser<di::models::UNet2DConditionModel, di::VPrediction> teacher(unet, "sd2 teacher");
      di::io::SafetensorsFile in((fixtures / "sd2" / "inputs.safetensors").string());
      const auto x = in.read("sample");
      const auto alpha = torch::full({x.size(0)}, 0.8), sigma = torch::full({x.size(0)}, 0.6);
      torch::NoGradGuard ng;
      const auto v = unet->forward(x, in.read("timestep"), TextCondition(in.read("encoder_hidden_states")));
      Worst w;
      w.add(rel_error(teacher.eps(x, in.read("timestep"), alpha, sigma, TextCondition(in.read("encoder_hidden_states"))), 0.6 * x + 0.8 * v),
            "eps = σ·x + α·v");
      row("sd2 via Denoiser<..., VPrediction>", "ε̂ from v", w, 1e-6);
    }
    if (fs::exists(fixtures / "roundtrip" / "py.safetensors")) safetensors_roundtrip(fixtures / "roundtrip");
    fs::create_directories(exports);
    export_unet(fixtures / "sd15", exports);
    lora_parity(fixtures, exports);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "model_parity: %s\n", e.what());
    return 1;
  }
  std::printf(g_failed ? "model_parity: FAILED\n" : "model_parity: all within tolerance\n");
  return g_failed ? 1 : 0;
}
