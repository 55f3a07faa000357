#pragma once
// Scenes to pixels: Fashion-MNIST items (28×28, padded to 32 and 2×2-averaged to 16×16, so each sits
// inside its quadrant with a one-pixel margin) tinted and placed on the 32×32 canvas. Items come from
// one split of Fashion-MNIST (ItemBank), so that train and test images never share an item.
#include "scenes.hpp"

#include <diffinstruct/data/idx.hpp>

#include <vector>

namespace compositional {

/// One split's items by class, as grey intensities in [0, 1] at 16×16.
struct ItemBank {
  std::array<torch::Tensor, kClasses> by_class;  // [N_k, 16, 16] float32

  static ItemBank from_split(const diffinstruct::data::LabelledImages& split) {
    const auto small = torch::avg_pool2d(torch::constant_pad_nd(split.images, {2, 2, 2, 2}, -1.0), 2);  // [N, 1, 16, 16] in [-1, 1]
    const auto u = ((small.squeeze(1) + 1) / 2).clamp(0, 1).contiguous();
    ItemBank bank;
    for (int64_t k = 0; k < kClasses; ++k) {
      bank.by_class[static_cast<size_t>(k)] = u.index_select(0, (split.labels == k).nonzero().squeeze(1)).contiguous();
      TORCH_CHECK(bank.by_class[static_cast<size_t>(k)].size(0) > 0, "compositional: the Fashion-MNIST split has no item of class ", k);
    }
    return bank;
  }
  torch::Tensor draw(int64_t cls, at::Generator& gen) const {
    const auto& items = by_class.at(static_cast<size_t>(cls));
    return items[torch::randint(items.size(0), {1}, gen, torch::kLong).item<int64_t>()];
  }
};

/// An item's grey intensities [16, 16] tinted with a colour: [3, 16, 16] in [0, 1].
inline torch::Tensor tint(const torch::Tensor& grey, int64_t colour) {
  const auto& rgb = colour_rgb().at(static_cast<size_t>(colour));
  return grey.unsqueeze(0) * torch::tensor({rgb[0], rgb[1], rgb[2]}).view({3, 1, 1});
}

/// The canvas of each scene, items where the scene placed them: [B, 3, 32, 32] in [-1, 1].
inline torch::Tensor render(const std::vector<Scene>& scenes, const ItemBank& bank, at::Generator& gen) {
  auto canvas = torch::zeros({static_cast<int64_t>(scenes.size()), 3, kCanvas, kCanvas});
  for (size_t b = 0; b < scenes.size(); ++b) {
    const Scene& s = scenes[b];
    const auto where = s.placed_quadrants();
    for (int64_t i = 0; i < s.count; ++i) {
      const Item& it = s.items[static_cast<size_t>(i)];
      const int64_t q = where[static_cast<size_t>(i)];
      canvas[static_cast<int64_t>(b)]
          .slice(1, quadrant_row(q) * kCell, (quadrant_row(q) + 1) * kCell)
          .slice(2, quadrant_col(q) * kCell, (quadrant_col(q) + 1) * kCell)
          .copy_(tint(bank.draw(it.cls, gen), it.colour));
    }
  }
  return canvas * 2 - 1;
}

inline std::vector<Scene> sample_scenes(int64_t n, at::Generator& gen, Combinations which, double p_single = 0.5) {
  std::vector<Scene> out;
  out.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) out.push_back(sample_scene(gen, which, p_single));
  return out;
}

inline std::vector<std::string> captions_of(const std::vector<Scene>& scenes) {
  std::vector<std::string> out;
  out.reserve(scenes.size());
  for (const auto& s : scenes) out.push_back(s.caption());
  return out;
}

}  // namespace compositional
