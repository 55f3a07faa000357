#pragma once
// di_evaluate's record of what it has done, so that an interrupted or extended evaluation redoes
// nothing: per model, OUT/models/<slug>/
//   images/p<prompt>_s<seed>.png       every generated image, 8-bit, as the metrics read it
//   batch_<b>.safetensors              per batch of rows: prompt_index, seed, the seconds its
//                                      generation and decoding took, score.<metric> per image and
//                                      embeds (the diversity metric's unit image embeddings);
//                                      metadata "settings": everything that decided the images
// A batch file is written atomically after its images, so a file that exists is complete. On
// resume a batch whose settings match is kept; a metric it lacks is scored from its PNGs (no
// regeneration); settings that differ are refused (another --out, or remove the folder).
#include <diffinstruct/io/atomic_file.hpp>
#include <diffinstruct/io/safetensors.hpp>

#include <fmt/format.h>
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace evaluate {

namespace di = diffinstruct;
namespace fs = std::filesystem;

struct BatchRecord {
  torch::Tensor prompt_index, seed;             // [B] int64
  double seconds = 0;                           // generation + decoding of the whole batch
  std::map<std::string, torch::Tensor> scores;  // metric -> [B] float64
  torch::Tensor embeds;                         // [B, E] float32, or undefined
};

inline std::string image_name(int64_t prompt, int64_t seed) { return fmt::format("p{:05d}_s{:03d}.png", prompt, seed); }

/// images [B, 3, H, W] uint8 as PNG files in `dir`.
inline void write_pngs(const fs::path& dir, const torch::Tensor& images, const torch::Tensor& prompt_index, const torch::Tensor& seed) {
  fs::create_directories(dir);
  const auto hwc = images.permute({0, 2, 3, 1}).contiguous();
  for (int64_t i = 0; i < images.size(0); ++i) {
    const auto path = (dir / image_name(prompt_index[i].item<int64_t>(), seed[i].item<int64_t>())).string();
    const auto one = hwc[i];
    di::io::replace_file_atomically(path, [&](const std::string& tmp) {
      TORCH_CHECK(stbi_write_png(tmp.c_str(), static_cast<int>(one.size(1)), static_cast<int>(one.size(0)), 3, one.data_ptr<uint8_t>(),
                                 static_cast<int>(one.size(1) * 3)) != 0, "di_evaluate: cannot write '", path, "'");
    }, 1, "an image");
  }
}

/// The PNGs of a batch back as uint8 [B, 3, H, W], each checked to be H × W RGB.
inline torch::Tensor read_pngs(const fs::path& dir, const torch::Tensor& prompt_index, const torch::Tensor& seed, int64_t height, int64_t width) {
  std::vector<torch::Tensor> out;
  for (int64_t i = 0; i < prompt_index.size(0); ++i) {
    const auto path = (dir / image_name(prompt_index[i].item<int64_t>(), seed[i].item<int64_t>())).string();
    int w = 0, h = 0, ch = 0;
    unsigned char* data = stbi_load(path.c_str(), &w, &h, &ch, 3);
    TORCH_CHECK(data, "di_evaluate: cannot read the image '", path, "' (", stbi_failure_reason() ? stbi_failure_reason() : "unknown",
                "); remove its batch file to generate it again");
    const auto t = torch::from_blob(data, {h, w, 3}, torch::kByte).clone();
    stbi_image_free(data);
    TORCH_CHECK(h == height && w == width, "di_evaluate: '", path, "' is ", h, "x", w, ", expected ", height, "x", width);
    out.push_back(t.permute({2, 0, 1}));
  }
  return torch::stack(out);
}

inline fs::path batch_path(const fs::path& model_dir, int64_t b) { return model_dir / fmt::format("batch_{:05d}.safetensors", b); }

/// The record of batch `b`, if its file exists; refuses one made with other settings.
inline std::optional<BatchRecord> read_batch(const fs::path& model_dir, int64_t b, const std::string& settings) {
  const auto path = batch_path(model_dir, b);
  if (!fs::exists(path)) return std::nullopt;
  di::io::SafetensorsFile f(path.string());
  const auto it = f.metadata().find("settings");
  TORCH_CHECK(it != f.metadata().end() && it->second == settings, "di_evaluate: '", path.string(), "' was made with other settings:\n  it has:  ",
              it == f.metadata().end() ? std::string("none") : it->second, "\n  now:     ", settings,
              "\nuse another --out, or remove '", model_dir.string(), "' to evaluate this model again");
  BatchRecord r;
  r.prompt_index = f.read("prompt_index");
  r.seed = f.read("seed");
  r.seconds = f.read("seconds").item<double>();
  for (const auto& e : f.tensors()) {
    if (e.name.rfind("score.", 0) == 0) r.scores[e.name.substr(6)] = f.read(e.name).to(torch::kDouble);
    if (e.name == "embeds") r.embeds = f.read(e.name);
  }
  return r;
}

inline void write_batch(const fs::path& model_dir, int64_t b, const BatchRecord& r, const std::string& settings) {
  std::vector<std::pair<std::string, torch::Tensor>> tensors = {
      {"prompt_index", r.prompt_index}, {"seed", r.seed}, {"seconds", torch::tensor({r.seconds}, torch::kDouble)}};
  for (const auto& [name, s] : r.scores) tensors.emplace_back("score." + name, s.contiguous());
  if (r.embeds.defined()) tensors.emplace_back("embeds", r.embeds.contiguous());
  const auto path = batch_path(model_dir, b).string();
  di::io::replace_file_atomically(path, [&](const std::string& tmp) { di::io::write_safetensors(tmp, tensors, {{"settings", settings}}); }, 1,
                                  "a batch record");
}

}  // namespace evaluate
