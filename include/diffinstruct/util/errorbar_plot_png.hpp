#pragma once
/// \file Labelled scatter plots with error bars, written as PNG (for examples and docs; needs
/// libstb): each point carries its own label (say "a_rew = 0.333") and optional x/y error bars
/// (say ± one standard deviation over seeds); both axes have titles. Points are not joined: the
/// reading of a trade-off plot must not depend on the order the runs happened to be listed in.

#include <diffinstruct/util/scatter_png.hpp>

#include <cstdio>

namespace diffinstruct {

struct ErrorBarPoint {
  double x = 0, y = 0;
  double x_err = 0, y_err = 0;  ///< half-widths of the bars; 0 draws none
  std::string label;            ///< written beside the point
};

struct ErrorBarSeries {
  std::vector<ErrorBarPoint> points;
  std::array<float, 3> rgb{0.12f, 0.35f, 0.75f};
  std::string label;  ///< in the legend
};

struct ErrorBarPlotOptions {
  TORCH_ARG(int, width) = 720;
  TORCH_ARG(int, height) = 480;
  TORCH_ARG(std::string, title) = "";
  TORCH_ARG(std::string, x_title) = "";
  TORCH_ARG(std::string, y_title) = "";
};

/// Writes the series to `path` as PNG; axes fitted to the points and their bars, with a margin.
inline void write_errorbar_png(const std::string& path, const std::vector<ErrorBarSeries>& series, const ErrorBarPlotOptions& options = {}) {
  const int w = options.width(), h = options.height();
  TORCH_CHECK(w >= 200 && h >= 150 && w <= 8192 && h <= 8192, "diffinstruct::write_errorbar_png: expected a size in [200, 8192] x [150, 8192], got ",
              w, " x ", h);
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (const auto& s : series) {
    for (const auto& p : s.points) {
      TORCH_CHECK(std::isfinite(p.x_err) && std::isfinite(p.y_err) && p.x_err >= 0 && p.y_err >= 0,
                  "diffinstruct::write_errorbar_png: point '", p.label, "' of series '", s.label, "' has error bars (", p.x_err, ", ", p.y_err,
                  "); expected finite values >= 0");
      if (!std::isfinite(p.x) || !std::isfinite(p.y)) continue;
      x0 = std::min(x0, p.x - p.x_err), x1 = std::max(x1, p.x + p.x_err);
      y0 = std::min(y0, p.y - p.y_err), y1 = std::max(y1, p.y + p.y_err);
    }
  }
  TORCH_CHECK(std::isfinite(x0) && std::isfinite(y0), "diffinstruct::write_errorbar_png: no finite points to plot");
  const double mx = std::max((x1 - x0) * 0.08, 1e-9), my = std::max((y1 - y0) * 0.08, 1e-9);
  x0 -= mx, x1 += mx, y0 -= my, y1 += my;
  const int top = 46, left = 64, right = 20, bottom = 44;
  detail::Canvas canvas(w, h);
  const int pw = w - left - right, ph = h - top - bottom;
  const detail::PlotFrame frame{x0, x1, y0, y1, top, left, pw, ph};
  auto px = [&](double v) { return frame.px(v); };
  auto py = [&](double v) { return frame.py(v); };
  const std::array<float, 3> ink{0.1f, 0.1f, 0.1f}, axis{0.45f, 0.45f, 0.45f};
  frame.draw_grid(canvas, "%.3g", 6);
  canvas.rect(left, top + ph, left + pw, top + ph + 1, axis);
  canvas.rect(left, top, left + 1, top + ph, axis);
  for (size_t si = 0; si < series.size(); ++si) {
    const auto& s = series[si];
    for (const auto& p : s.points) {
      if (!std::isfinite(p.x) || !std::isfinite(p.y)) continue;
      const float cx = px(p.x), cy = py(p.y);
      if (p.x_err > 0) {
        const int a = int(px(p.x - p.x_err)), b = int(px(p.x + p.x_err));
        canvas.rect(a, int(cy), b + 1, int(cy) + 1, s.rgb, 0.8f);
        canvas.rect(a, int(cy) - 3, a + 1, int(cy) + 4, s.rgb, 0.8f);
        canvas.rect(b, int(cy) - 3, b + 1, int(cy) + 4, s.rgb, 0.8f);
      }
      if (p.y_err > 0) {
        const int a = int(py(p.y + p.y_err)), b = int(py(p.y - p.y_err));
        canvas.rect(int(cx), a, int(cx) + 1, b + 1, s.rgb, 0.8f);
        canvas.rect(int(cx) - 3, a, int(cx) + 4, a + 1, s.rgb, 0.8f);
        canvas.rect(int(cx) - 3, b, int(cx) + 4, b + 1, s.rgb, 0.8f);
      }
      canvas.disc(cx, cy, 3.5f, s.rgb, 0.95f);
      canvas.text(int(cx) + 6, int(cy) - 10, p.label, 1, s.rgb);
    }
    const int lx = left + pw - 170;  // legend, top right
    canvas.rect(lx, top + 8 + int(si) * 12, lx + 14, top + 11 + int(si) * 12, s.rgb);
    canvas.text(lx + 18, top + 5 + int(si) * 12, s.label, 1, ink);
  }
  canvas.text(left, 6, options.title(), 2, ink);
  canvas.text(left, 30, options.y_title(), 1, ink);                    // the y axis's title, above it
  canvas.text(left + pw / 2 - 120, h - 16, options.x_title(), 1, ink);  // the x axis's, below it
  TORCH_CHECK(canvas.write_png(path), "diffinstruct::write_errorbar_png: cannot write '", path, "'");
}

} // namespace diffinstruct
