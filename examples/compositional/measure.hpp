#pragma once
// The miniature's exact evaluator. The composition a caption asks for is known, so prompt following
// is measured, not guessed:
//
//   position   from the image's mass: a quadrant is occupied when its mean brightness (the brightest
//              channel, in [0, 1]) passes a threshold set from the real items (a quarter of the
//              dimmest 1% of them); the image must occupy exactly the requested quadrants (for a
//              pair, in the row or column that holds more mass)
//   colour     from the pixels: the mean RGB of the quadrant, nearest palette colour by angle (exact
//              on real images: the tints' chromaticities are far apart)
//   class      a held-out recogniser: a small CNN on 16×16 quadrant crops (max-pooling, ReLU — not
//              the ViT the reward is), trained on train-split items under random tints, its accuracy
//              measured on test-split items
//
// Reported per image set: each attribute's accuracy over requested items, the fraction of images with
// every attribute right (GenEval's idea), Fréchet distance in the recogniser's features of the
// requested items' crops against real test images of the same prompts, and diversity: the mean
// pairwise feature distance between the seeds of one prompt.
#include "render.hpp"

#include <diffinstruct/eval/frechet.hpp>
#include <diffinstruct/util/progress_bar.hpp>

#include <fmt/format.h>

namespace compositional {

/// [B, 3, 32, 32] -> [B, 4, 3, 16, 16]: the quadrants in reading order.
inline torch::Tensor quadrant_crops(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == 3 && x.size(2) == kCanvas && x.size(3) == kCanvas, "compositional: expected images [B, 3, 32, 32], got ",
              x.sizes());
  const int64_t b = x.size(0);
  return x.view({b, 3, 2, kCell, 2, kCell}).permute({0, 2, 4, 1, 3, 5}).reshape({b, kQuadrants, 3, kCell, kCell});
}

/// Mean brightness of each quadrant, [B, 4] in [0, 1].
inline torch::Tensor quadrant_brightness(const torch::Tensor& x) {
  return ((quadrant_crops(x) + 1) / 2).clamp(0, 1).amax(2).mean({2, 3});
}

/// The palette colour nearest (by angle) to each quadrant's mean RGB, [B, 4] int64.
inline torch::Tensor quadrant_colours(const torch::Tensor& x) {
  const auto mean_rgb = ((quadrant_crops(x) + 1) / 2).clamp(0, 1).mean({3, 4});  // [B, 4, 3]
  std::vector<float> flat;
  for (const auto& c : colour_rgb()) flat.insert(flat.end(), c.begin(), c.end());
  const auto palette = torch::nn::functional::normalize(torch::tensor(flat).view({kColours, 3}), torch::nn::functional::NormalizeFuncOptions().dim(1));
  return torch::matmul(torch::nn::functional::normalize(mean_rgb, torch::nn::functional::NormalizeFuncOptions().dim(2)), palette.t()).argmax(2);
}

/// The held-out recogniser of a crop's class: [N, 3, 16, 16] -> logits [N, 10]; `embed` gives its
/// 64-d features (the space of the Fréchet distance and of diversity).
struct RecogniserImpl : torch::nn::Module {
  torch::nn::Sequential features{nullptr};
  torch::nn::Linear head{nullptr};
  RecogniserImpl() {
    namespace nn = torch::nn;
    features = register_module("features", nn::Sequential(nn::Conv2d(nn::Conv2dOptions(3, 32, 5).padding(2)), nn::ReLU(), nn::MaxPool2d(2),
                                                          nn::Conv2d(nn::Conv2dOptions(32, 64, 3).padding(1)), nn::ReLU(), nn::MaxPool2d(2),
                                                          nn::Flatten(), nn::Linear(64 * 4 * 4, 64), nn::ReLU()));
    head = register_module("head", nn::Linear(64, kClasses));
  }
  torch::Tensor embed(const torch::Tensor& crops) { return features->forward(crops); }
  torch::Tensor forward(const torch::Tensor& crops) { return head(embed(crops)); }
};
TORCH_MODULE(Recogniser);

/// Crops of single items for the recogniser: random classes from `bank`, each under a random tint
/// (any hue and strength, not only the palette: class must not depend on colour) plus a little noise.
inline std::pair<torch::Tensor, torch::Tensor> recogniser_batch(const ItemBank& bank, int64_t n, at::Generator& gen) {
  const auto labels = torch::randint(kClasses, {n}, gen, torch::kLong);
  std::vector<torch::Tensor> crops;
  for (int64_t i = 0; i < n; ++i) crops.push_back(bank.draw(labels[i].item<int64_t>(), gen).unsqueeze(0));
  const auto grey = torch::stack(crops);  // [n, 1, 16, 16]
  const auto rgb = 0.1 + 0.9 * torch::rand({n, 3, 1, 1}, gen);
  const auto x = (grey * rgb / rgb.amax(1, true)) * 2 - 1;
  return {x + 0.05 * torch::randn(x.sizes(), gen), labels};
}

/// Accuracy of the recogniser on test-split items in the palette's colours (the evaluator's own error).
inline double recogniser_accuracy(Recogniser& net, const ItemBank& test_bank) {
  torch::NoGradGuard no_grad;
  net->eval();
  int64_t right = 0, total = 0;
  for (int64_t k = 0; k < kClasses; ++k) {
    const auto& items = test_bank.by_class[static_cast<size_t>(k)];
    for (int64_t c = 0; c < kColours; ++c) {
      const auto& rgb = colour_rgb()[static_cast<size_t>(c)];
      const auto x = items.unsqueeze(1) * torch::tensor({rgb[0], rgb[1], rgb[2]}).view({1, 3, 1, 1}) * 2 - 1;
      right += (net(x).argmax(1) == k).sum().item<int64_t>();
      total += items.size(0);
    }
  }
  return static_cast<double>(right) / static_cast<double>(total);
}

/// A recogniser trained from an initialisation drawn from `seed` (LibTorch's global generator starts
/// from a random seed in every process: a network built before seeding it differs run to run).
inline Recogniser train_recogniser(const ItemBank& train_bank, int64_t steps, uint64_t seed) {
  torch::manual_seed(seed);
  Recogniser net;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(1e-3));
  diffinstruct::ProgressBar bar("recogniser", steps);
  net->train();
  double smoothed = 0;
  for (int64_t step = 0; step < steps; ++step) {
    const auto [x, y] = recogniser_batch(train_bank, 128, gen);
    const torch::Tensor loss = torch::nn::functional::cross_entropy(net(x), y);
    opt.zero_grad();
    loss.backward();
    opt.step();
    smoothed = step == 0 ? loss.item<double>() : 0.98 * smoothed + 0.02 * loss.item<double>();
    if (step % 20 == 0 || step + 1 == steps) bar.update(step + 1, fmt::format("loss {:.4f}", smoothed));
  }
  bar.finish();
  net->eval();
  return net;
}

/// The threshold of an occupied quadrant: a quarter of the 1st percentile of the real items' mean
/// brightness (the dimmest real items, sandals, stay far above it; an empty real quadrant is 0).
inline double occupancy_threshold(const ItemBank& bank) {
  std::vector<torch::Tensor> means;
  for (const auto& items : bank.by_class) means.push_back(items.mean({1, 2}));
  const auto all = std::get<0>(torch::cat(means).sort());
  return 0.25 * all[static_cast<int64_t>(0.01 * static_cast<double>(all.size(0)))].item<double>();
}

/// An unrequested quadrant holds an extra item, not haze, when its brightness reaches this multiple of
/// the occupancy threshold: the dimmest 1% of real items' brightness.
inline constexpr double kItemLevel = 4.0;

/// What the evaluator found in one set of images.
struct PromptFollowing {
  double position = 0, colour = 0, cls = 0;  // accuracy over requested items
  double layout = 0;                         // exactly the requested quadrants occupied (over images)
  double all_correct = 0;                    // layout, and every item's colour and class (over images)
  // The same two with faint haze forgiven: an unrequested quadrant only counts as occupied when it
  // is as bright as a real item (kItemLevel × the threshold), so these separate haze from extra items.
  double layout_items = 0, all_correct_items = 0;
  double fd = 0, diversity = 0;
  torch::Tensor item_features;               // [items, 64]: the requested items' crops, in scene order
};

/// The evaluator: recogniser, threshold, and the real test images' feature statistics for the same
/// prompts (set by `set_reference`).
struct Evaluator {
  Recogniser recogniser{nullptr};
  double threshold = 0;
  diffinstruct::GaussianStats reference;
  bool has_reference = false;

  /// Scores images `x` [B, 3, 32, 32] made for `scenes` (B = P prompts × S seeds, seed-major within a
  /// prompt: image p·S + s). `seeds` = S for diversity.
  PromptFollowing score(const torch::Tensor& x, const std::vector<Scene>& scenes, int64_t seeds) {
    torch::NoGradGuard no_grad;
    recogniser->eval();
    const int64_t b = x.size(0);
    TORCH_CHECK(b == static_cast<int64_t>(scenes.size()) && seeds >= 1 && b % seeds == 0, "compositional: ", b, " images for ", scenes.size(),
                " scenes and ", seeds, " seeds");
    TORCH_CHECK(torch::isfinite(x).all().item<bool>(), "compositional: the images to evaluate are not finite");
    const auto crops = quadrant_crops(x);
    const auto bright = quadrant_brightness(x), colours = quadrant_colours(x);
    const auto flat_feats = recogniser->embed(crops.reshape({b * kQuadrants, 3, kCell, kCell}));  // once: classes and FD share it
    const auto classes = recogniser->head(flat_feats).argmax(1).view({b, kQuadrants});
    const auto feats = flat_feats.view({b, kQuadrants, -1});
    const auto occupied = bright > threshold;
    auto acc_b = bright.accessor<float, 2>();
    auto occ = occupied.accessor<bool, 2>();
    auto col = colours.accessor<int64_t, 2>();
    auto cls = classes.accessor<int64_t, 2>();
    PromptFollowing r;
    int64_t items = 0;
    std::vector<torch::Tensor> item_feats, image_feats;
    for (int64_t i = 0; i < b; ++i) {
      const Scene& s = scenes[static_cast<size_t>(i)];
      // The layout that holds more mass, when the caption allows two.
      int64_t line = 0;
      if (s.layouts() == 2) {
        auto mass = [&](int64_t l) {
          const auto q = s.quadrants_for(l);
          return acc_b[i][q[0]] + acc_b[i][q[1]];
        };
        line = mass(1) > mass(0) ? 1 : 0;
      }
      const auto target = s.quadrants_for(line);
      bool layout_ok = true, layout_items_ok = true;
      for (int64_t q = 0; q < kQuadrants; ++q) {
        const bool wanted = q == target[0] || (s.count == 2 && q == target[1]);
        layout_ok = layout_ok && occ[i][q] == wanted;
        layout_items_ok = layout_items_ok && (wanted ? occ[i][q] : acc_b[i][q] < kItemLevel * threshold);
      }
      bool all = true;
      std::vector<torch::Tensor> mine;
      for (int64_t k = 0; k < s.count; ++k) {
        const int64_t q = target[static_cast<size_t>(k)];
        const Item& it = s.items[static_cast<size_t>(k)];
        const bool pos = occ[i][q], colour = col[i][q] == it.colour, klass = cls[i][q] == it.cls;
        r.position += pos, r.colour += colour, r.cls += klass;
        all = all && colour && klass;
        ++items;
        item_feats.push_back(feats[i][q]);
        mine.push_back(feats[i][q]);
      }
      r.layout += layout_ok, r.layout_items += layout_items_ok;
      r.all_correct += all && layout_ok, r.all_correct_items += all && layout_items_ok;
      image_feats.push_back(torch::cat(mine));
    }
    r.position /= static_cast<double>(items), r.colour /= static_cast<double>(items), r.cls /= static_cast<double>(items);
    for (double* v : {&r.layout, &r.all_correct, &r.layout_items, &r.all_correct_items}) *v /= static_cast<double>(b);
    r.item_features = torch::stack(item_feats);
    if (has_reference) r.fd = diffinstruct::frechet_distance(diffinstruct::gaussian_stats(r.item_features), reference);
    // Diversity: the mean pairwise distance between the seeds of each prompt (features of its items).
    double div = 0;
    const int64_t prompts = b / seeds;
    for (int64_t p = 0; p < prompts && seeds > 1; ++p) {
      const auto f = torch::stack(std::vector<torch::Tensor>(image_feats.begin() + p * seeds, image_feats.begin() + (p + 1) * seeds)).to(torch::kFloat64);
      div += torch::cdist(f, f).sum().item<double>() / static_cast<double>(seeds * (seeds - 1));
    }
    r.diversity = seeds > 1 ? div / static_cast<double>(prompts) : 0.0;
    return r;
  }

  /// The Fréchet reference: the real test images of the evaluation prompts.
  void set_reference(const torch::Tensor& real, const std::vector<Scene>& scenes, int64_t seeds) {
    has_reference = false;
    reference = diffinstruct::gaussian_stats(score(real, scenes, seeds).item_features);
    has_reference = true;
  }
};

}  // namespace compositional
