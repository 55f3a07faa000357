// Parity of the reward models with their Python originals, on the files make_reward_fixtures.py writes:
//
//   reward_parity FIXTURE_DIR
//
// HPSv2: the tiny OpenCLIP checkpoint saved as HPS ships it (a torch.save .pt with the state dict
// under "state_dict"), loaded by the native .pt reader onto the CLIP towers; its preprocessing on a
// real PNG against HPSv2's preprocess_val, and on float images; image and text features; the score
// (the cosine, as img_score.py computes it) and its gradient with respect to the images, through the
// reward's own path (ClipReward with hps_reward_options). The LAION aesthetic predictor: the published
// head's .pth on a tiny transformers CLIPModel; the score and its gradient through AestheticReward.
// Errors are ‖c++ − python‖₂ / ‖python‖₂ per tensor: outputs must be within 1e-5, gradients 1e-4 (the
// project's parity bounds, docs/models.md). Prints a table; exits 1 on any miss.
#include <diffinstruct/io/safetensors.hpp>
#include <diffinstruct/models/open_clip.hpp>
#include <diffinstruct/text2image/aesthetic_reward.hpp>
#include <diffinstruct/text2image/clip_reward.hpp>
#include <diffinstruct/util/error_report.hpp>

#include <stb/stb_image.h>
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <string>

namespace di = diffinstruct;
namespace t2i = diffinstruct::text2image;
namespace fs = std::filesystem;

namespace {

constexpr double kForwardTol = 1e-5, kGradTol = 1e-4;
bool g_failed = false;

double rel_error(const torch::Tensor& got, const torch::Tensor& want) {
  TORCH_CHECK(got.sizes() == want.sizes(), "shape ", got.sizes(), " vs ", want.sizes());
  const double denom = want.to(torch::kDouble).norm().item<double>();
  const double diff = (got.to(torch::kDouble) - want.to(torch::kDouble)).norm().item<double>();
  return denom > 0 ? diff / denom : diff;
}

void row(const std::string& model, const std::string& what, const torch::Tensor& got, const torch::Tensor& want, double tol) {
  const double e = rel_error(got, want);
  const bool ok = e <= tol;
  g_failed |= !ok;
  std::printf("| %s | %s | %.2e | %.0e | %s |\n", model.c_str(), what.c_str(), e, tol, ok ? "ok" : "FAIL");
}

/// An 8-bit RGB PNG as a float tensor [1, 3, H, W] in [0, 1] (torchvision's ToTensor).
torch::Tensor read_png(const std::string& path) {
  int w = 0, h = 0, ch = 0;
  unsigned char* img = stbi_load(path.c_str(), &w, &h, &ch, 3);
  TORCH_CHECK(img, "cannot read '", path, "'");
  auto t = torch::from_blob(img, {h, w, 3}, torch::kUInt8).clone();
  stbi_image_free(img);
  return t.permute({2, 0, 1}).unsqueeze(0).to(torch::kFloat) / 255;
}

void hps(const fs::path& dir) {
  const di::io::SafetensorsFile want((dir / "expected.safetensors").string());
  const auto config = di::models::OpenClipConfig::from_file((dir / "open_clip_config.json").string());
  auto parts = di::models::load_open_clip((dir / "hps_tiny.pt").string(), config);
  row("hps", "preprocess (real PNG, 150×260)", di::models::clip_preprocess_pad(read_png((dir / "picture.png").string())), want.read("pixel_values.png"),
      kForwardTol);
  const auto ids = want.read("ids").to(torch::kLong);
  t2i::ClipReward reward(parts.vision, parts.logit_scale, nullptr, t2i::hps_reward_options());
  for (const std::string set : {"square", "wide"}) {
    auto images = want.read("images." + set).clone().requires_grad_(true);
    row("hps", "preprocess (" + set + ")", di::models::clip_preprocess_pad(images.detach()), want.read("pixel_values." + set), kForwardTol);
    torch::Tensor text;
    {
      torch::NoGradGuard ng;
      text = parts.text->forward(ids).text_embeds;
      text = text / text.norm(2, -1, true);
    }
    row("hps", "text features (" + set + ")", text, want.read("text_features." + set), kForwardTol);
    const auto image = reward.embed_pixels(images * 2 - 1);  // the reward takes pixels in [−1, 1]
    row("hps", "image features (" + set + ")", image, want.read("image_features." + set), kForwardTol);
    const auto score = reward.reward_of_embeddings(image, text);
    row("hps", "score (" + set + ")", score, want.read("score." + set), kForwardTol);
    (score * want.read("cot." + set)).sum().backward();
    row("hps", "d score / d images (" + set + ")", images.grad(), want.read("grad." + set), kGradTol);
  }
}

void aesthetic(const fs::path& dir) {
  const di::io::SafetensorsFile want((dir / "expected.safetensors").string());
  auto clip = di::models::load_clip_model((dir / "clip").string(), {}, di::models::ClipTowers::kVision);
  t2i::AestheticReward reward(clip.vision, di::models::load_aesthetic_head((dir / "aesthetic_head.pth").string()));
  for (const std::string set : {"square", "tall"}) {
    auto images = want.read("images." + set).clone().requires_grad_(true);
    const auto score = reward(images * 2 - 1, 0);
    row("aesthetic", "score (" + set + ")", score, want.read("score." + set), kForwardTol);
    (score * want.read("cot." + set)).sum().backward();
    row("aesthetic", "d score / d images (" + set + ")", images.grad(), want.read("grad." + set), kGradTol);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: reward_parity FIXTURE_DIR\n");
    return 2;
  }
  try {
    torch::manual_seed(0);
    std::printf("| model | what | relative error | bound | |\n|---|---|---|---|---|\n");
    hps(fs::path(argv[1]) / "hps");
    aesthetic(fs::path(argv[1]) / "aesthetic");
  } catch (const std::exception& e) {
    return di::report_error("reward_parity", e);
  }
  std::printf(g_failed ? "reward parity: FAILED\n" : "reward parity: all checks passed\n");
  return g_failed ? 1 : 0;
}
