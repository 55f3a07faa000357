#pragma once
/// \file 2-D scatter plots written as PNG (for the examples; needs libstb: link `stb`).
///
/// Points are drawn as alpha-blended discs over a light grid, with a title and axis labels in
/// stb_easy_font's bitmap font, so a plot reads on its own.

#include <diffinstruct/core/checks.hpp>

#include <stb/stb_easy_font.h>
#include <stb/stb_image_write.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

namespace diffinstruct {

struct ScatterLayer {
  torch::Tensor points;                       ///< [N, 2]
  std::array<float, 3> rgb{0.12f, 0.35f, 0.75f};
  float alpha = 0.35f;
  float radius = 1.6f;                        ///< in pixels
};

struct ScatterPlotOptions {
  TORCH_ARG(int, size) = 480;                 ///< width = height in pixels
  TORCH_ARG(double, extent) = 3.0;            ///< axes span [−extent, extent]²
  TORCH_ARG(std::string, title) = "";
};

namespace detail {
class Canvas {
 public:
  Canvas(int w, int h) : w_(w), h_(h), px_(static_cast<size_t>(w * h * 3), 1.0f) {}
  void blend(int x, int y, const std::array<float, 3>& c, float a) {
    if (x < 0 || y < 0 || x >= w_ || y >= h_) return;
    float* p = &px_[static_cast<size_t>((y * w_ + x) * 3)];
    for (int k = 0; k < 3; ++k) p[k] = p[k] * (1 - a) + c[k] * a;
  }
  void disc(float cx, float cy, float r, const std::array<float, 3>& c, float a) {
    for (int y = int(std::floor(cy - r)); y <= int(std::ceil(cy + r)); ++y)
      for (int x = int(std::floor(cx - r)); x <= int(std::ceil(cx + r)); ++x) {
        const float d = std::hypot(x + 0.5f - cx, y + 0.5f - cy);
        const float cover = std::clamp(r + 0.5f - d, 0.0f, 1.0f);  // anti-aliased edge
        if (cover > 0) blend(x, y, c, a * cover);
      }
  }
  void rect(int x0, int y0, int x1, int y1, const std::array<float, 3>& c, float a = 1.0f) {
    for (int y = y0; y < y1; ++y)
      for (int x = x0; x < x1; ++x) blend(x, y, c, a);
  }
  /// Text in stb_easy_font's 7-pixel font, scaled by an integer factor (reduced to fit the width).
  void text(int x, int y, const std::string& s, int scale, const std::array<float, 3>& c) {
    while (scale > 1 && x + stb_easy_font_width(const_cast<char*>(s.c_str())) * scale > w_) --scale;
    static std::vector<char> buffer(200000);
    std::vector<char> str(s.begin(), s.end());
    str.push_back('\0');
    const int quads = stb_easy_font_print(0, 0, str.data(), nullptr, buffer.data(), static_cast<int>(buffer.size()));
    const float* v = reinterpret_cast<const float*>(buffer.data());
    for (int q = 0; q < quads; ++q) {
      const float* p = v + q * 16;  // 4 vertices of (x, y, z, rgba-as-float)
      rect(x + int(p[0]) * scale, y + int(p[1]) * scale, x + int(p[8]) * scale, y + int(p[9]) * scale, c);
    }
  }
  bool write_png(const std::string& path) const {
    std::vector<unsigned char> bytes(px_.size());
    for (size_t i = 0; i < px_.size(); ++i) bytes[i] = static_cast<unsigned char>(std::lround(std::clamp(px_[i], 0.0f, 1.0f) * 255));
    return stbi_write_png(path.c_str(), w_, h_, 3, bytes.data(), w_ * 3) != 0;
  }
  int width() const { return w_; }

 private:
  int w_, h_;
  std::vector<float> px_;
};

/// A plot's frame: the data range [x0, x1] × [y0, y1] mapped onto the canvas inside margins, and a
/// grid of five lines each way with the values written beside the axes (`y_format` for the y values,
/// "%.4g" for x, placed `x_label_gap` pixels below the plot).
struct PlotFrame {
  double x0, x1, y0, y1;
  int top, left, pw, ph;

  float px(double v) const { return static_cast<float>(left + (v - x0) / (x1 - x0) * pw); }
  float py(double v) const { return static_cast<float>(top + (y1 - v) / (y1 - y0) * ph); }

  void draw_grid(Canvas& canvas, const char* y_format, int x_label_gap) const {
    const std::array<float, 3> grid{0.9f, 0.9f, 0.9f}, axis{0.45f, 0.45f, 0.45f};
    for (int k = 0; k <= 4; ++k) {
      const double yv = y0 + (y1 - y0) * k / 4, xv = x0 + (x1 - x0) * k / 4;
      canvas.rect(left, int(py(yv)), left + pw, int(py(yv)) + 1, grid);
      canvas.rect(int(px(xv)), top, int(px(xv)) + 1, top + ph, grid);
      char buf[32];
      std::snprintf(buf, sizeof buf, y_format, yv);
      canvas.text(2, int(py(yv)) - 3, buf, 1, axis);
      std::snprintf(buf, sizeof buf, "%.4g", xv);
      canvas.text(int(px(xv)) - 8, top + ph + x_label_gap, buf, 1, axis);
    }
  }
};
}  // namespace detail

/// Writes a scatter plot of the layers (drawn in order) to `path` as PNG. Throws if it cannot.
///
/// Example:
///   write_scatter_png("teacher.png", {{teacher_samples}}, ScatterPlotOptions().title("teacher"));
inline void write_scatter_png(const std::string& path, const std::vector<ScatterLayer>& layers, const ScatterPlotOptions& options = {}) {
  const int n = options.size();
  TORCH_CHECK(n >= 64 && n <= 8192, "diffinstruct::write_scatter_png: expected a size in [64, 8192], got ", n);
  detail::check_positive(options.extent(), "write_scatter_png", "extent");
  const int top = 28, margin = 24;
  const int plot = n - 2 * margin;
  detail::Canvas canvas(n, n + top);
  const double ext = options.extent();
  auto to_px = [&](double v) { return static_cast<float>(margin + (v + ext) / (2 * ext) * plot); };
  auto to_py = [&](double v) { return static_cast<float>(top + margin + (ext - v) / (2 * ext) * plot); };
  const std::array<float, 3> grid{0.9f, 0.9f, 0.9f}, axis{0.6f, 0.6f, 0.6f}, ink{0.1f, 0.1f, 0.1f};
  for (int g = -int(ext); g <= int(ext); ++g) {
    const int gx = int(to_px(g)), gy = int(to_py(g));
    canvas.rect(gx, top + margin, gx + 1, top + margin + plot, g == 0 ? axis : grid);
    canvas.rect(margin, gy, margin + plot, gy + 1, g == 0 ? axis : grid);
    canvas.text(gx - 3, top + margin + plot + 6, std::to_string(g), 1, axis);
  }
  for (const auto& layer : layers) {
    TORCH_CHECK(layer.points.dim() == 2 && layer.points.size(1) == 2, "diffinstruct::write_scatter_png: expected points of shape [N, 2], got ",
                layer.points.sizes());
    const auto pts = layer.points.detach().to(torch::kCPU, torch::kFloat64).contiguous();
    const auto acc = pts.accessor<double, 2>();
    for (int64_t i = 0; i < pts.size(0); ++i) {
      if (!std::isfinite(acc[i][0]) || !std::isfinite(acc[i][1])) continue;
      canvas.disc(to_px(acc[i][0]), to_py(acc[i][1]), layer.radius, layer.rgb, layer.alpha);
    }
  }
  canvas.text(margin, 8, options.title(), 2, ink);
  TORCH_CHECK(canvas.write_png(path), "diffinstruct::write_scatter_png: cannot write '", path, "'");
}

} // namespace diffinstruct
