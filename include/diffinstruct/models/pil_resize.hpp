#pragma once
/// \file PIL's bicubic resize of 8-bit images, bit for bit (Pillow's Resample.c: a separable filter
/// with a = −0.5, support 2 scaled by the reduction, weights normalised and turned into 22-bit fixed
/// point, the horizontal pass first, each pass rounded and clipped to 8 bits), and the evaluation
/// preprocessing of the metrics whose originals resize with PIL: PickScore's and the CLIP score's
/// processor (transformers' CLIPImageProcessor with its PIL backend, as transformers 4.x always ran
/// it), the aesthetic predictor's and ImageReward's torchvision `Resize` + `CenterCrop` on PIL images.
/// These are metrics, not rewards: not differentiable (the rewards' own preprocessing is, and differs
/// by resampling: docs/evaluation.md).
///
/// Example:
///   auto pv = models::clip_preprocess_pil(images_u8, 224, models::CropRounding::kFloor);  // PickScore's processor

#include <diffinstruct/models/clip_vision.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace diffinstruct {
namespace models {
namespace detail {

inline double pil_bicubic(double x) {
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

/// Pillow's precompute_coeffs + normalize_coeffs_8bpc for one axis: per output pixel its first input
/// pixel, its count, and `ksize` fixed-point weights.
struct PilAxis {
  int64_t ksize = 0;
  std::vector<int64_t> first, count;
  std::vector<int32_t> weights;
};
constexpr int kPilPrecisionBits = 32 - 8 - 2;

inline PilAxis pil_axis(int64_t in_size, int64_t out_size) {
  PilAxis a;
  const double scale = static_cast<double>(in_size) / static_cast<double>(out_size);
  const double filterscale = std::max(scale, 1.0);
  const double support = 2.0 * filterscale;
  a.ksize = static_cast<int64_t>(std::ceil(support)) * 2 + 1;
  a.first.resize(static_cast<size_t>(out_size));
  a.count.resize(static_cast<size_t>(out_size));
  a.weights.assign(static_cast<size_t>(out_size * a.ksize), 0);
  std::vector<double> k(static_cast<size_t>(a.ksize));
  for (int64_t xx = 0; xx < out_size; ++xx) {
    const double center = (static_cast<double>(xx) + 0.5) * scale, ss = 1.0 / filterscale;
    int64_t xmin = static_cast<int64_t>(center - support + 0.5);  // C's truncation, as Pillow
    if (xmin < 0) xmin = 0;
    int64_t xmax = static_cast<int64_t>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int64_t x = 0; x < xmax; ++x) {
      k[static_cast<size_t>(x)] = pil_bicubic((static_cast<double>(x + xmin) - center + 0.5) * ss);
      ww += k[static_cast<size_t>(x)];
    }
    for (int64_t x = 0; x < a.ksize; ++x) {
      double w = x < xmax ? k[static_cast<size_t>(x)] : 0.0;
      if (x < xmax && ww != 0.0) w /= ww;
      a.weights[static_cast<size_t>(xx * a.ksize + x)] =
          static_cast<int32_t>(w < 0 ? -0.5 + w * (1 << kPilPrecisionBits) : 0.5 + w * (1 << kPilPrecisionBits));
    }
    a.first[static_cast<size_t>(xx)] = xmin;
    a.count[static_cast<size_t>(xx)] = xmax;
  }
  return a;
}

inline uint8_t pil_clip8(int64_t ss) {
  const int64_t v = ss >> kPilPrecisionBits;
  return static_cast<uint8_t>(std::min<int64_t>(255, std::max<int64_t>(0, v)));
}

} // namespace detail

/// PIL's Image.resize((out_w, out_h), BICUBIC) of 8-bit images [B, C, H, W] (uint8, on the CPU).
inline torch::Tensor pil_resize_bicubic(const torch::Tensor& images, int64_t out_h, int64_t out_w) {
  TORCH_CHECK(images.defined() && images.dim() == 4 && images.scalar_type() == torch::kUInt8 && images.size(2) > 0 && images.size(3) > 0,
              "diffinstruct::models::pil_resize_bicubic: expected uint8 images [B, C, H, W], got ",
              images.defined() ? c10::str(images.sizes(), " ", images.scalar_type()) : std::string("none"));
  TORCH_CHECK(out_h > 0 && out_w > 0 && out_h <= 65536 && out_w <= 65536, "diffinstruct::models::pil_resize_bicubic: bad output size ", out_h, "×", out_w);
  const int64_t b = images.size(0), c = images.size(1), h = images.size(2), w = images.size(3);
  const auto in = images.to(torch::kCPU).contiguous();
  if (h == out_h && w == out_w) return in.clone();  // PIL returns a copy
  const auto hx = detail::pil_axis(w, out_w), vy = detail::pil_axis(h, out_h);
  // The horizontal pass covers only the rows the vertical pass reads (Pillow's ybox), when both run.
  const bool horizontal = w != out_w, vertical = h != out_h;
  const int64_t row0 = vertical ? vy.first.front() : 0, row1 = vertical ? vy.first.back() + vy.count.back() : h;
  auto mid = horizontal ? torch::empty({b, c, row1 - row0, out_w}, torch::kUInt8) : in.slice(2, row0, row1).contiguous();
  if (horizontal) {
    const auto* src = in.data_ptr<uint8_t>();
    auto* dst = mid.data_ptr<uint8_t>();
    for (int64_t p = 0; p < b * c; ++p)
      for (int64_t y = row0; y < row1; ++y) {
        const uint8_t* line = src + (p * h + y) * w;
        uint8_t* out = dst + (p * (row1 - row0) + (y - row0)) * out_w;
        for (int64_t x = 0; x < out_w; ++x) {
          int64_t ss = int64_t{1} << (detail::kPilPrecisionBits - 1);
          const int32_t* k = &hx.weights[static_cast<size_t>(x * hx.ksize)];
          for (int64_t i = 0; i < hx.count[static_cast<size_t>(x)]; ++i) ss += line[hx.first[static_cast<size_t>(x)] + i] * static_cast<int64_t>(k[i]);
          out[x] = detail::pil_clip8(ss);
        }
      }
  }
  if (!vertical) return mid;
  const int64_t mh = mid.size(2), mw = mid.size(3);
  auto result = torch::empty({b, c, out_h, mw}, torch::kUInt8);
  const auto* src = mid.data_ptr<uint8_t>();
  auto* dst = result.data_ptr<uint8_t>();
  for (int64_t p = 0; p < b * c; ++p)
    for (int64_t y = 0; y < out_h; ++y) {
      const int32_t* k = &vy.weights[static_cast<size_t>(y * vy.ksize)];
      const int64_t first = vy.first[static_cast<size_t>(y)] - row0, count = vy.count[static_cast<size_t>(y)];
      for (int64_t x = 0; x < mw; ++x) {
        int64_t ss = int64_t{1} << (detail::kPilPrecisionBits - 1);
        for (int64_t i = 0; i < count; ++i) ss += src[(p * mh + first + i) * mw + x] * static_cast<int64_t>(k[i]);
        dst[(p * out_h + y) * mw + x] = detail::pil_clip8(ss);
      }
    }
  return result;
}

/// How a centre crop rounds its offset: transformers' processors floor ((H − size) // 2),
/// torchvision's CenterCrop rounds half to even (int(round((H − size) / 2))).
enum class CropRounding { kFloor, kHalfEven };

/// The evaluation preprocessing of 8-bit images [B, 3, H, W]: the short side to `size` and the long
/// side to int(size · long / short) with PIL's bicubic, a centre crop, then /255 and CLIP's
/// normalisation (float32). kFloor: CLIPImageProcessor (PickScore, the CLIP score); kHalfEven:
/// torchvision's Resize + CenterCrop (the aesthetic predictor's `clip` preprocessing, ImageReward).
inline torch::Tensor clip_preprocess_pil(const torch::Tensor& images, int64_t size = 224, CropRounding rounding = CropRounding::kFloor) {
  TORCH_CHECK(images.defined() && images.dim() == 4 && images.size(1) == 3, "diffinstruct::models::clip_preprocess_pil: expected uint8 images [B, 3, H, W]");
  const int64_t h = images.size(2), w = images.size(3), shorter = std::min(h, w), longer = std::max(h, w);
  const auto long_side = static_cast<int64_t>(static_cast<double>(size) * static_cast<double>(longer) / static_cast<double>(shorter));
  const int64_t nh = h <= w ? size : long_side, nw = h <= w ? long_side : size;
  const auto resized = pil_resize_bicubic(images, nh, nw);
  auto offset = [&](int64_t n) {
    return rounding == CropRounding::kFloor ? (n - size) / 2 : static_cast<int64_t>(std::nearbyint(static_cast<double>(n - size) / 2.0));
  };
  const int64_t top = offset(nh), left = offset(nw);
  return clip_normalize(resized.slice(2, top, top + size).slice(3, left, left + size).to(torch::kFloat) / 255.0f);
}

}  // namespace models
}  // namespace diffinstruct
