#pragma once
/// \file Line plots written as PNG (for examples and docs; needs libstb).

#include <diffinstruct/util/scatter_png.hpp>

namespace diffinstruct {

struct LineSeries {
  std::vector<double> x, y;
  std::array<float, 3> rgb{0.12f, 0.35f, 0.75f};
  std::string label;
};

struct LinePlotOptions {
  TORCH_ARG(int, width) = 640;
  TORCH_ARG(int, height) = 400;
  TORCH_ARG(std::string, title) = "";
  TORCH_ARG(bool, log_y) = false;  ///< log10 y axis (values ≤ 0 are skipped)
};

/// Writes the series to `path` as PNG, axes fitted to the data, a legend of the labels.
inline void write_line_png(const std::string& path, const std::vector<LineSeries>& series, const LinePlotOptions& options = {}) {
  const int w = options.width(), h = options.height();
  TORCH_CHECK(w >= 128 && h >= 96 && w <= 8192 && h <= 8192, "diffinstruct::write_line_png: expected a size in [128, 8192] x [96, 8192], got ", w,
              " x ", h);
  auto fy = [&](double v) { return options.log_y() ? (v > 0 ? std::log10(v) : NAN) : v; };
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (const auto& s : series) {
    TORCH_CHECK(s.x.size() == s.y.size(), "diffinstruct::write_line_png: series '", s.label, "' has ", s.x.size(), " x and ", s.y.size(),
                " y values");
    for (size_t i = 0; i < s.x.size(); ++i) {
      const double yv = fy(s.y[i]);
      if (!std::isfinite(s.x[i]) || !std::isfinite(yv)) continue;
      x0 = std::min(x0, s.x[i]), x1 = std::max(x1, s.x[i]), y0 = std::min(y0, yv), y1 = std::max(y1, yv);
    }
  }
  TORCH_CHECK(std::isfinite(x0) && std::isfinite(y0), "diffinstruct::write_line_png: no finite points to plot");
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) y1 = y0 + 1;
  const int top = 30, left = 60, right = 16, bottom = 30;
  detail::Canvas canvas(w, h);
  const int pw = w - left - right, ph = h - top - bottom;
  const detail::PlotFrame frame{x0, x1, y0, y1, top, left, pw, ph};
  auto px = [&](double v) { return frame.px(v); };
  auto py = [&](double v) { return frame.py(v); };
  const std::array<float, 3> ink{0.1f, 0.1f, 0.1f};
  frame.draw_grid(canvas, options.log_y() ? "1e%.1f" : "%.3g", 8);
  for (size_t si = 0; si < series.size(); ++si) {
    const auto& s = series[si];
    for (size_t i = 1; i < s.x.size(); ++i) {
      const double ya = fy(s.y[i - 1]), yb = fy(s.y[i]);
      if (!std::isfinite(ya) || !std::isfinite(yb)) continue;
      const float ax = px(s.x[i - 1]), ay = py(ya), bx = px(s.x[i]), by = py(yb);
      const int n = std::max(1, int(std::ceil(std::hypot(bx - ax, by - ay))));
      for (int k = 0; k <= n; ++k) canvas.disc(ax + (bx - ax) * k / n, ay + (by - ay) * k / n, 1.2f, s.rgb, 0.8f);
    }
    for (size_t i = 0; i < s.x.size() && s.x.size() <= 64; ++i) {  // markers when the points are few
      const double yv = fy(s.y[i]);
      if (std::isfinite(s.x[i]) && std::isfinite(yv)) canvas.disc(px(s.x[i]), py(yv), 3.0f, s.rgb, 0.9f);
    }
    const int lx = left + pw - 150;  // legend, top right
    canvas.rect(lx, top + 8 + int(si) * 12, lx + 14, top + 11 + int(si) * 12, s.rgb);
    canvas.text(lx + 18, top + 5 + int(si) * 12, s.label, 1, ink);
  }
  canvas.text(left, 8, options.title(), 2, ink);
  TORCH_CHECK(canvas.write_png(path), "diffinstruct::write_line_png: cannot write '", path, "'");
}

} // namespace diffinstruct
