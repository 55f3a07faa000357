#pragma once
/// \file Grids of images (grey-scale or RGB) written as PNG, one row per class or prompt with its
/// label on the left or, for long labels such as prompts, as a caption above the row (for sample
/// sheets; needs libstb: link `stb`).

#include <diffinstruct/util/scatter_png.hpp>

namespace diffinstruct {

struct ImageGridOptions {
  TORCH_ARG(int, zoom) = 3;             ///< each image pixel becomes zoom × zoom
  TORCH_ARG(int, label_width) = 96;     ///< pixels left of each row for its label (0: no labels)
  TORCH_ARG(std::string, title) = "";
  TORCH_ARG(double, low) = -1.0;        ///< value drawn black
  TORCH_ARG(double, high) = 1.0;        ///< value drawn white
  /// Each row's label as a caption line above it (shortened with "..." to the grid's width),
  /// instead of in the label_width column on its left.
  TORCH_ARG(bool, labels_above) = false;
};

namespace detail {

/// `s` shortened with "..." so that it is at most `pixels` wide in the 7-pixel font at scale 1.
inline std::string fit_caption(const std::string& s, int pixels) {
  auto width = [](const std::string& t) { return stb_easy_font_width(const_cast<char*>(t.c_str())); };
  if (width(s) <= pixels) return s;
  // Every glyph is at least a pixel wide, so no more than `pixels` characters can fit: cutting there
  // first keeps a megabyte-long prompt from costing a width measurement per character it loses.
  std::string cut = s.substr(0, static_cast<size_t>(std::max(0, pixels)));
  while (!cut.empty() && width(cut + "...") > pixels) cut.pop_back();
  return cut + "...";
}

}  // namespace detail

/// `images` [rows, cols, C, H, W] with C = 1 (grey) or 3 (RGB); `row_labels` empty or one per row.
/// Throws if it cannot write.
inline void write_image_grid_png(const std::string& path, const torch::Tensor& images, const std::vector<std::string>& row_labels,
                                 const ImageGridOptions& options = {}) {
  TORCH_CHECK(images.dim() == 5 && (images.size(2) == 1 || images.size(2) == 3),
              "diffinstruct::write_image_grid_png: expected images [rows, cols, C, H, W] with C = 1 or 3, got ", images.sizes());
  TORCH_CHECK(row_labels.empty() || static_cast<int64_t>(row_labels.size()) == images.size(0), "diffinstruct::write_image_grid_png: ",
              row_labels.size(), " labels for ", images.size(0), " rows");
  TORCH_CHECK(options.zoom() >= 1 && options.zoom() <= 32, "diffinstruct::write_image_grid_png: expected zoom in [1, 32], got ", options.zoom());
  TORCH_CHECK(options.high() > options.low(), "diffinstruct::write_image_grid_png: expected high > low");
  const auto img = ((images.detach().to(torch::kCPU, torch::kFloat32) - options.low()) / (options.high() - options.low())).clamp(0, 1).contiguous();
  const int rows = static_cast<int>(img.size(0)), cols = static_cast<int>(img.size(1));
  const int h = static_cast<int>(img.size(3)), w = static_cast<int>(img.size(4)), z = options.zoom(), gap = 2;
  const int top = options.title().empty() ? gap : 20;
  const bool above = options.labels_above() && !row_labels.empty();
  const int caption_h = above ? 12 : 0, left = above ? 0 : options.label_width();
  const int cell_w = w * z + gap, cell_h = h * z + gap + caption_h;
  const bool rgb = img.size(2) == 3;
  detail::Canvas canvas(left + cols * cell_w + gap, top + rows * cell_h + gap);
  canvas.rect(0, 0, canvas.width(), top + rows * cell_h + gap, {0.93f, 0.93f, 0.93f});
  if (!options.title().empty()) canvas.text(4, 4, options.title(), 2, {0.1f, 0.1f, 0.1f});
  const auto acc = img.accessor<float, 5>();
  for (int r = 0; r < rows; ++r) {
    const int y0 = top + r * cell_h;
    const std::string& label = row_labels.empty() ? std::string() : row_labels[static_cast<size_t>(r)];
    if (above) {
      canvas.text(gap + 2, y0 + 2, detail::fit_caption(label, canvas.width() - 2 * gap - 4), 1, {0.1f, 0.1f, 0.1f});
    } else if (!row_labels.empty() && options.label_width() > 0) {
      canvas.text(4, y0 + cell_h / 2 - 6, label, 2, {0.1f, 0.1f, 0.1f});
    }
    for (int c = 0; c < cols; ++c) {
      const int x0 = left + c * cell_w + gap;
      for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
          const float v = acc[r][c][0][y][x];
          const std::array<float, 3> colour = rgb ? std::array<float, 3>{v, acc[r][c][1][y][x], acc[r][c][2][y][x]} : std::array<float, 3>{v, v, v};
          const int top_y = y0 + caption_h + gap + y * z;
          canvas.rect(x0 + x * z, top_y, x0 + (x + 1) * z, top_y + z, colour);
        }
    }
  }
  TORCH_CHECK(canvas.write_png(path), "diffinstruct::write_image_grid_png: cannot write '", path, "'");
}

}  // namespace diffinstruct
