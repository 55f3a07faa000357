// The teacher sampler (DDIM with CFG), ODE-pair regression, mixture metrics and the PNG plots.
#include <diffinstruct/di_star.hpp>
#include <diffinstruct/eval/ddim_sampler.hpp>
#include <diffinstruct/testing/gaussian_mixture.hpp>
#include <diffinstruct/trainer/regression.hpp>
#include <diffinstruct/util/errorbar_plot_png.hpp>
#include <diffinstruct/util/line_plot_png.hpp>
#include <diffinstruct/util/scatter_png.hpp>

#include <stb/stb_image.h>

#include <catch2/catch.hpp>

#include <filesystem>

namespace di = diffinstruct;
namespace dt = diffinstruct::testing;

namespace {
// Conditional mixture teacher: label 0 keeps the modes with x > 0, label 1 the others, label 2 (null) all.
struct HalfTeacher {
  dt::GaussianMixture mixture = dt::GaussianMixture::ring();
  di::CosineVPSchedule schedule = di::CosineVPSchedule();
  torch::Tensor operator()(const torch::Tensor& x_t, const torch::Tensor& t, const torch::Tensor& labels) const {
    const auto right = mixture.means.select(1, 0).gt(0.1).unsqueeze(0);                     // [1, K]
    const auto lab = labels.unsqueeze(1);
    const auto keep = torch::where(lab == 0, right, torch::where(lab == 1, right.logical_not(), torch::ones_like(right)));
    const auto logw = torch::where(keep, torch::zeros({}), torch::full({}, -1e9));
    return mixture.eps(x_t, schedule.alpha(t), schedule.sigma(t), logw);
  }
};
std::string tmp(const std::string& n) { return std::string(DIFFINSTRUCT_TEST_TMPDIR) + "/" + n; }
}  // namespace

TEST_CASE("DDIM with the exact mixture score lands on the modes, in proportion", "[eval][ddim]") {
  auto teacher = di::Denoiser<HalfTeacher>(HalfTeacher{}, "teacher");
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
  const auto z = torch::randn({4096, 2}, gen);
  const auto null = torch::full({1}, 2, torch::kLong);
  const auto x = di::ddim_sample(teacher, HalfTeacher{}.schedule, z, torch::full({4096}, 2, torch::kLong), null, {0.0, 0.98});
  const auto stats = HalfTeacher{}.mixture.mode_stats(x);
  CHECK(stats.covered == 8);
  CHECK(stats.off_support < 0.02);
  CHECK(stats.entropy > 2.07);  // log 8 = 2.079
  // Conditioning on the right half puts the mass there; CFG (scale 3) keeps it there.
  const auto right = di::ddim_sample(teacher, HalfTeacher{}.schedule, z, torch::zeros({4096}, torch::kLong), null, {0.0, 0.98},
                                     di::DdimOptions().guidance_scale(3.0));
  CHECK(right.select(1, 0).gt(0).to(torch::kFloat).mean().item<double>() > 0.97);
  CHECK_THROWS_WITH(di::ddim_sample(teacher, HalfTeacher{}.schedule, z, torch::zeros({4096}, torch::kLong), null, {0.0, 0.98},
                                    di::DdimOptions().steps(0)),
                    Catch::Contains("steps >= 1, got 0"));
}

TEST_CASE("regressing a generator onto (z, x0) pairs drives the error down", "[eval][regression]") {
  torch::manual_seed(2);
  torch::nn::Sequential net(torch::nn::Linear(2, 32), torch::nn::SiLU(), torch::nn::Linear(32, 2));
  di::Generator<torch::nn::Sequential> g(net);
  const auto z = torch::randn({1024, 2});
  const auto x0 = torch::stack({z.select(1, 0) * 2 + 1, torch::tanh(z.select(1, 1))}, 1);
  std::vector<double> losses;
  di::regress_generator(g, z, di::NoCondition{}, x0, di::RegressionOptions().steps(300).batch_size(128),
                        [&](int64_t, double l) { losses.push_back(l); });
  REQUIRE(losses.size() == 300);
  CHECK(losses.back() < 0.05 * losses.front());
  CHECK_THROWS_WITH(di::regress_generator(g, z, di::NoCondition{}, x0.slice(0, 0, 10)), Catch::Contains("as many x0 as z"));
}

TEST_CASE("mode statistics count mass, coverage, entropy and off-support samples", "[eval][mixture]") {
  const auto m = dt::GaussianMixture::ring();
  auto x = torch::cat({m.means.slice(0, 0, 4).repeat({25, 1}), torch::zeros({100, 2})});  // 4 modes + 100 at the centre
  const auto s = m.mode_stats(x);
  CHECK(s.covered == 4);
  CHECK(s.off_support == Approx(0.5));
  CHECK(s.entropy == Approx(std::log(4.0)));
  CHECK(s.mass[0] == Approx(0.125));
  CHECK(s.mass[7] == 0.0);
}

TEST_CASE("scatter and line plots are real PNG files of the requested size", "[util][png]") {
  const auto path = tmp("scatter.png"), lines = tmp("lines.png");
  di::write_scatter_png(path, {{torch::randn({500, 2})}, {torch::zeros({1, 2}), {1.0f, 0.0f, 0.0f}, 1.0f, 4.0f}},
                        di::ScatterPlotOptions().size(300).title("test"));
  int w = 0, h = 0, ch = 0;
  unsigned char* img = stbi_load(path.c_str(), &w, &h, &ch, 3);
  REQUIRE(img != nullptr);
  CHECK(w == 300);
  CHECK(h == 300 + 28);
  // The red marker at the origin is drawn: the pixel at the plot's centre is red.
  const int cx = 24 + (300 - 48) / 2, cy = 28 + 24 + (300 - 48) / 2;
  const unsigned char* p = img + (cy * w + cx) * 3;
  CHECK(int(p[0]) > 200);
  CHECK(int(p[1]) < 80);
  stbi_image_free(img);
  di::write_line_png(lines, {{{1, 2, 3}, {1, 10, 100}, {0.2f, 0.6f, 0.2f}, "a"}}, di::LinePlotOptions().log_y(true));
  CHECK(std::filesystem::file_size(lines) > 500);
  CHECK_THROWS_WITH(di::write_scatter_png(path, {{torch::zeros({3, 3})}}), Catch::Contains("points of shape [N, 2], got [3, 3]"));
  CHECK_THROWS_WITH(di::write_scatter_png("/nonexistent-dir/x.png", {{torch::zeros({3, 2})}}), Catch::Contains("cannot write"));
  CHECK_THROWS_WITH(di::write_line_png(lines, {{{1}, {-1}, {0, 0, 0}, "neg"}}, di::LinePlotOptions().log_y(true)),
                    Catch::Contains("no finite points"));
  std::filesystem::remove(path);
  std::filesystem::remove(lines);
}

TEST_CASE("labelled scatter plots with error bars: bars drawn, axes titled, bad bars refused", "[util][png]") {
  const auto path = tmp("errorbars.png");
  di::ErrorBarSeries a{{{10, 1, 2, 0.5, "a_rew=0.333"}, {20, 2, 0, 0, "a_rew=1"}}, {1.0f, 0.0f, 0.0f}, "red"};
  di::ErrorBarSeries b{{{15, 1.5, 0, 0.2, "a_rew=3"}}, {0.0f, 0.0f, 1.0f}, "blue"};
  di::write_errorbar_png(path, {a, b}, di::ErrorBarPlotOptions().width(400).height(300).title("t").x_title("FD").y_title("reward"));
  int w = 0, h = 0, ch = 0;
  unsigned char* img = stbi_load(path.c_str(), &w, &h, &ch, 3);
  REQUIRE(img != nullptr);
  CHECK(w == 400);
  CHECK(h == 300);
  // The x error bar of the first point reaches x = 12: its right cap is red, in the point's row.
  const int left = 64, right = 20, top = 46, bottom = 44, pw = w - left - right, ph = h - top - bottom;
  const double x0 = 8 - 12 * 0.08, x1 = 20 + 12 * 0.08, y0 = 0.5 - 1.5 * 0.08, y1 = 2 + 1.5 * 0.08;
  const int cap_x = int(left + (12 - x0) / (x1 - x0) * pw), row = int(top + (y1 - 1) / (y1 - y0) * ph);
  const unsigned char* p = img + (row * w + cap_x) * 3;
  CHECK(int(p[0]) > 200);
  CHECK(int(p[2]) < 120);
  stbi_image_free(img);
  CHECK_THROWS_WITH(di::write_errorbar_png(path, {{{{1, 1, -1, 0, "bad"}}, {0, 0, 0}, "s"}}), Catch::Contains("expected finite values >= 0"));
  CHECK_THROWS_WITH(di::write_errorbar_png(path, {{{{NAN, 1, 0, 0, "nan"}}, {0, 0, 0}, "s"}}), Catch::Contains("no finite points"));
  std::filesystem::remove(path);
}

#include <diffinstruct/util/portable_math.hpp>
#include <diffinstruct/util/progress_bar.hpp>
#include <diffinstruct/util/threads.hpp>

TEST_CASE("missing_cpu_pins names exactly the kernel pins the environment lacks", "[util][reproducibility]") {
  std::vector<std::pair<std::string, std::string>> saved;
  for (const auto& [name, value] : di::pinned_cpu_environment()) {
    const char* v = std::getenv(name.c_str());
    saved.emplace_back(name, v ? v : "");
    ::unsetenv(name.c_str());
  }
  CHECK(di::missing_cpu_pins() == std::vector<std::string>{"OPENBLAS_CORETYPE=Haswell", "ATEN_CPU_CAPABILITY=avx2", "DNNL_MAX_CPU_ISA=AVX2"});
  ::setenv("OPENBLAS_CORETYPE", "Haswell", 1);
  ::setenv("ATEN_CPU_CAPABILITY", "avx512", 1);  // set, but to something else: still missing
  ::setenv("DNNL_MAX_CPU_ISA", "AVX2", 1);
  CHECK(di::missing_cpu_pins() == std::vector<std::string>{"ATEN_CPU_CAPABILITY=avx2"});
  for (const auto& [name, value] : saved) {
    if (value.empty()) ::unsetenv(name.c_str());
    else ::setenv(name.c_str(), value.c_str(), 1);
  }
}

#include <fstream>
#include <sstream>

TEST_CASE("the progress bar prints one line per tenth when its output is not a terminal", "[util][progress]") {
  const auto path = tmp("progress.txt");
  FILE* f = std::fopen(path.c_str(), "w");
  REQUIRE(f != nullptr);
  {
    di::ProgressBar bar("train", 100, f);
    for (int i = 1; i <= 100; ++i) bar.update(i, "loss " + std::to_string(i));
    bar.finish();
  }
  std::fclose(f);
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  REQUIRE(lines.size() == 10);
  CHECK_THAT(lines.front(), Catch::StartsWith("train") && Catch::Contains("10.0%") && Catch::Contains("loss 10"));
  CHECK_THAT(lines.back(), Catch::Contains("100.0%") && Catch::Contains("loss 100"));
  std::filesystem::remove(path);
}

TEST_CASE("use_threads sets and reports the intra-op thread count", "[util][threads]") {
  const int before = at::get_num_threads();
  CHECK(di::use_threads(1) == 1);
  CHECK(at::get_num_threads() == 1);
  at::set_num_threads(before);
}
