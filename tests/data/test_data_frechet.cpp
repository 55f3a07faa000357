// The Fashion-MNIST building blocks: the IDX reader (good and corrupt files), the Fréchet distance
// against closed forms, DDIM + CFG on an analytic class-conditional Gaussian model, image grids.
#include "../test_files.hpp"
#include <diffinstruct/data/idx.hpp>
#include <diffinstruct/di_star.hpp>
#include <diffinstruct/eval/ddim_sampler.hpp>
#include <diffinstruct/eval/frechet.hpp>
#include <diffinstruct/util/image_grid_png.hpp>

#include <catch2/catch.hpp>
#include <stb/stb_image.h>

#include <array>
#include <filesystem>
#include <fstream>

namespace di = diffinstruct;
namespace fs = std::filesystem;

namespace {

fs::path scratch(const std::string& name) { return test_util::scratch_path("data_tests", name); }

std::vector<uint8_t> idx_bytes(std::vector<uint32_t> dims, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> b{0, 0, 0x08, static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims)
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(d >> s));
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

void write_gz(const fs::path& path, const std::vector<uint8_t>& bytes) {
  gzFile f = gzopen(path.string().c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) == static_cast<int>(bytes.size()));
  gzclose(f);
}

void write_plain(const fs::path& path, const std::vector<uint8_t>& bytes) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

std::vector<uint8_t> ramp(size_t n) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(i % 251);
  return v;
}

}  // namespace

TEST_CASE("read_idx reads gzip and plain IDX files: shape and bytes", "[data][idx]") {
  const auto bytes = idx_bytes({3, 4, 5}, ramp(60));
  write_gz(scratch("good.gz"), bytes);
  write_plain(scratch("good.idx"), bytes);
  for (const auto* name : {"good.gz", "good.idx"}) {
    const auto t = di::data::read_idx(scratch(name).string());
    CHECK(t.sizes() == torch::IntArrayRef({3, 4, 5}));
    CHECK(t.scalar_type() == torch::kUInt8);
    CHECK(t.view(-1)[59].item<int>() == 59);
    CHECK(t.sum().item<int64_t>() == 59 * 60 / 2);
  }
}

TEST_CASE("read_idx names what is wrong with a bad file", "[data][idx]") {
  CHECK_THROWS_WITH(di::data::read_idx(scratch("missing.gz").string()), Catch::Contains("no such file") && Catch::Contains("missing.gz"));
  auto truncated = idx_bytes({10, 28, 28}, ramp(100));
  write_gz(scratch("truncated.gz"), truncated);
  CHECK_THROWS_WITH(di::data::read_idx(scratch("truncated.gz").string()),
                    Catch::Contains("truncated") && Catch::Contains("expected 7840 bytes of data, got 100"));
  write_gz(scratch("magic.gz"), {1, 2, 8, 1, 0, 0, 0, 1, 7});
  CHECK_THROWS_WITH(di::data::read_idx(scratch("magic.gz").string()), Catch::Contains("not an IDX file"));
  write_gz(scratch("float.gz"), {0, 0, 0x0D, 1, 0, 0, 0, 1, 7, 7, 7, 7});
  CHECK_THROWS_WITH(di::data::read_idx(scratch("float.gz").string()), Catch::Contains("only unsigned bytes"));
  auto extra = idx_bytes({2}, {1, 2});
  extra.push_back(3);
  write_gz(scratch("extra.gz"), extra);
  CHECK_THROWS_WITH(di::data::read_idx(scratch("extra.gz").string()), Catch::Contains("bytes after the 2"));
  // A gzip file cut in the middle of its compressed stream.
  write_gz(scratch("whole.gz"), idx_bytes({4096}, ramp(4096)));
  std::ifstream in(scratch("whole.gz"), std::ios::binary);
  std::vector<char> gz((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::ofstream(scratch("cut.gz"), std::ios::binary).write(gz.data(), static_cast<std::streamsize>(gz.size() / 2));
  CHECK_THROWS(di::data::read_idx(scratch("cut.gz").string()));
}

TEST_CASE("#19 read_idx refuses gzip streams without their trailer and sizes the file cannot hold, before allocating",
          "[data][idx][hardening]") {
  // Every truncation of a small gzipped IDX file is an error, the 8-byte trailer (CRC, length) included.
  write_gz(scratch("small.gz"), idx_bytes({64, 4}, ramp(256)));
  std::ifstream in(scratch("small.gz"), std::ios::binary);
  const std::string gz((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::ofstream(scratch("no_trailer.gz"), std::ios::binary) << gz.substr(0, gz.size() - 8);
  CHECK_THROWS_WITH(di::data::read_idx(scratch("no_trailer.gz").string()), Catch::Contains("no_trailer.gz") && Catch::Contains("truncated"));
  int refused = 0;
  for (size_t cut = 1; cut < gz.size(); ++cut) {
    std::ofstream(scratch("cut_n.gz"), std::ios::binary) << gz.substr(0, gz.size() - cut);
    try {
      (void)di::data::read_idx(scratch("cut_n.gz").string());
    } catch (const c10::Error& e) {
      CHECK_THAT(e.what(), Catch::Contains("cut_n.gz"));
      ++refused;
    }
  }
  CHECK(refused == static_cast<int>(gz.size()) - 1);
  // A flipped bit in the compressed data fails zlib's CRC.
  std::string flipped = gz;
  flipped[gz.size() - 6] ^= 0x01;  // inside the stored CRC
  std::ofstream(scratch("bad_crc.gz"), std::ios::binary) << flipped;
  CHECK_THROWS_WITH(di::data::read_idx(scratch("bad_crc.gz").string()), Catch::Contains("bad_crc.gz"));
  // A 26-byte file declaring 131072 x 131071 bytes: refused before any allocation.
  const std::vector<uint8_t> huge_header = {0, 0, 8, 2, 0, 2, 0, 0, 0, 1, 255, 255};
  auto huge = huge_header;
  huge.resize(26, 'x');
  write_plain(scratch("huge.idx"), huge);
  CHECK_THROWS_WITH(di::data::read_idx(scratch("huge.idx").string()),
                    Catch::Contains("huge.idx") && Catch::Contains("declares [131072, 131071]") && Catch::Contains("holds 14 bytes"));
  write_gz(scratch("huge.gz"), huge);
  CHECK_THROWS_WITH(di::data::read_idx(scratch("huge.gz").string()), Catch::Contains("more than a gzip file of"));
}

TEST_CASE("load_fashion_mnist checks that images and labels belong together", "[data][idx]") {
  const fs::path dir = scratch("fmnist");
  fs::create_directories(dir);
  write_gz(dir / "t10k-images-idx3-ubyte.gz", idx_bytes({3, 28, 28}, ramp(3 * 784)));
  write_gz(dir / "t10k-labels-idx1-ubyte.gz", idx_bytes({3}, {0, 9, 4}));
  const auto test = di::data::load_fashion_mnist(dir.string(), "test");
  CHECK(test.images.sizes() == torch::IntArrayRef({3, 1, 28, 28}));
  CHECK(test.images.min().item<float>() == Approx(-1.0f));
  CHECK(test.images.max().item<float>() == Approx(250.0f / 127.5f - 1.0f));
  CHECK(torch::equal(test.labels, torch::tensor({0, 9, 4}, torch::kLong)));
  write_gz(dir / "t10k-labels-idx1-ubyte.gz", idx_bytes({2}, {0, 9}));
  CHECK_THROWS_WITH(di::data::load_fashion_mnist(dir.string(), "test"), Catch::Contains("3 images") && Catch::Contains("but 2 labels"));
  write_gz(dir / "t10k-labels-idx1-ubyte.gz", idx_bytes({3}, {0, 12, 4}));
  CHECK_THROWS_WITH(di::data::load_fashion_mnist(dir.string(), "test"), Catch::Contains("label 12; expected 0..9"));
  CHECK_THROWS_WITH(di::data::load_fashion_mnist(dir.string(), "train"), Catch::Contains("no such file") && Catch::Contains("train-images"));
  CHECK_THROWS_WITH(di::data::load_fashion_mnist((dir / "nope").string(), "test"), Catch::Contains("dataset-fashion-mnist"));
  CHECK_THROWS_WITH(di::data::load_fashion_mnist(dir.string(), "validation"), Catch::Contains("'train' or 'test'"));
}

TEST_CASE("the Debian Fashion-MNIST package reads as 60000 + 10000 labelled images", "[data][idx][fashion]") {
  if (!fs::is_directory(di::data::kDebianFashionMnistDir)) {
    WARN("dataset-fashion-mnist not installed: skipped");
    return;
  }
  const auto test = di::data::load_fashion_mnist(di::data::kDebianFashionMnistDir, "test");
  CHECK(test.images.size(0) == 10000);
  CHECK(torch::equal(torch::bincount(test.labels), torch::full({10}, 1000, torch::kLong)));
}

TEST_CASE("Frechet distance matches the closed forms", "[eval][frechet]") {
  // Commuting (diagonal) covariances: FD = |mu1 - mu2|^2 + sum (sqrt a_i - sqrt b_i)^2.
  di::GaussianStats a{Eigen::Vector3d(1, 2, 3), Eigen::Vector3d(4, 1, 9).asDiagonal()};
  di::GaussianStats b{Eigen::Vector3d(0, 2, 5), Eigen::Vector3d(1, 1, 16).asDiagonal()};
  CHECK(di::frechet_distance(a, b) == Approx(1 + 4 + (1 + 0 + 1)).epsilon(1e-12));
  // Rotated copies: FD is invariant to a common rotation; and FD(a, a) = 0, FD symmetric.
  const Eigen::Matrix3d r = Eigen::AngleAxisd(0.7, Eigen::Vector3d(1, 2, 3).normalized()).toRotationMatrix();
  di::GaussianStats ra{r * a.mean, r * a.cov * r.transpose()}, rb{r * b.mean, r * b.cov * r.transpose()};
  CHECK(di::frechet_distance(ra, rb) == Approx(7.0).epsilon(1e-10));
  CHECK(std::abs(di::frechet_distance(ra, ra)) < 1e-9);
  // Non-commuting 2x2 case against the scalar formula tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2) computed by hand:
  // S1 = I, S2 = [[2, 1], [1, 2]] -> sqrt eigenvalues of S2 are sqrt(3), 1: FD = 2 + 4 - 2 (sqrt 3 + 1).
  di::GaussianStats eye{Eigen::Vector2d::Zero(), Eigen::Matrix2d::Identity()};
  Eigen::Matrix2d s2;
  s2 << 2, 1, 1, 2;
  di::GaussianStats other{Eigen::Vector2d::Zero(), s2};
  CHECK(di::frechet_distance(eye, other) == Approx(6 - 2 * (std::sqrt(3.0) + 1)).epsilon(1e-12));
  CHECK(di::frechet_distance(other, eye) == Approx(6 - 2 * (std::sqrt(3.0) + 1)).epsilon(1e-12));
  // From samples: N(0, I) vs N(m, 4I) in 4-D, FD = |m|^2 + 4 (2 - 1)^2 = 4 + 4 = 8 (sampling error ~1%).
  torch::manual_seed(3);
  const auto x = torch::randn({200000, 4}, torch::kFloat64);
  const auto y = 2 * torch::randn({200000, 4}, torch::kFloat64) + 1.0;
  CHECK(di::frechet_distance(x, y) == Approx(8.0).epsilon(0.03));
  CHECK_THROWS_WITH(di::frechet_distance(x, y.slice(1, 0, 3)), Catch::Contains("feature sizes differ (4 vs 3)"));
  CHECK_THROWS_WITH(di::gaussian_stats(torch::ones({1, 4})), Catch::Contains("expected features [N >= 2, D]"));
  CHECK_THROWS_WITH(di::gaussian_stats(torch::full({3, 2}, std::nan(""))), Catch::Contains("non-finite"));
}

namespace {
// Class-conditional Gaussian data x0 | c ~ N(mu_c, s^2 I) with mu_c = +m (c = 0), -m (c = 1), and the
// null class 2 = the 50/50 mixture's best Gaussian fit is not needed: its exact ε is used (mixture).
struct AnalyticTeacher {
  di::CosineVPSchedule schedule = di::CosineVPSchedule();
  double m = 1.5, s = 0.5;
  torch::Tensor eps_gauss(const torch::Tensor& x, const torch::Tensor& alpha, const torch::Tensor& sigma, const torch::Tensor& mu) const {
    const auto a = alpha.view({-1, 1}), sg = sigma.view({-1, 1});
    return sg * (x - a * mu) / (a * a * s * s + sg * sg);
  }
  torch::Tensor operator()(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& c) const {
    const auto alpha = schedule.alpha(t), sigma = schedule.sigma(t);
    const auto mu_pos = torch::full_like(x, m), mu_neg = torch::full_like(x, -m);
    const auto e_pos = eps_gauss(x, alpha, sigma, mu_pos), e_neg = eps_gauss(x, alpha, sigma, mu_neg);
    // Null class: exact mixture ε from the posterior weights of the two components.
    const auto a = alpha.view({-1, 1}), sg = sigma.view({-1, 1});
    const auto var = a * a * s * s + sg * sg;
    const auto logit = ((x - a * m).pow(2) - (x + a * m).pow(2)).sum(1, true) / (-2 * var);
    const auto p_pos = torch::sigmoid(logit);
    const auto e_mix = p_pos * e_pos + (1 - p_pos) * e_neg;
    const auto cc = c.view({-1, 1});
    return torch::where(cc == 0, e_pos, torch::where(cc == 1, e_neg, e_mix));
  }
};
}  // namespace

TEST_CASE("DDIM on an analytic class-conditional Gaussian recovers each class mean and spread, and CFG pushes away from the other class",
          "[eval][ddim]") {
  AnalyticTeacher exact;
  di::Denoiser<AnalyticTeacher, di::EpsPrediction> teacher(exact, "analytic");
  torch::manual_seed(5);
  const int64_t n = 4000;
  const auto z = torch::randn({n, 2}, torch::kFloat64);
  const auto labels = torch::cat({torch::zeros({n / 2}, torch::kLong), torch::ones({n / 2}, torch::kLong)});
  const auto null = torch::full({1}, 2, torch::kLong);
  const auto x = di::ddim_sample(teacher, exact.schedule, z, labels, null, {0.0, 0.98}, di::DdimOptions().steps(100));
  const auto pos = x.slice(0, 0, n / 2), neg = x.slice(0, n / 2);
  // The exact flow of a Gaussian is affine: starting from N(0, I) at t = 0.98 instead of the true
  // N(α_T m, α_T² s² + σ_T²) maps to mean ±m (1 − s α_T / v) and std s / v, v = √(α_T² s² + σ_T²).
  const auto tt = torch::full({1}, 0.98, torch::kFloat64);
  const double a_t = exact.schedule.alpha(tt).item<double>(), s_t = exact.schedule.sigma(tt).item<double>();
  const double v = std::sqrt(a_t * a_t * exact.s * exact.s + s_t * s_t);
  const double mean = exact.m * (1 - exact.s * a_t / v), spread = exact.s / v;
  const double se = spread / std::sqrt(static_cast<double>(n));  // 2 coordinates x n/2 samples
  CHECK(pos.mean().item<double>() == Approx(mean).margin(4 * se));
  CHECK(neg.mean().item<double>() == Approx(-mean).margin(4 * se));
  CHECK(pos.std().item<double>() == Approx(spread).margin(0.02));
  CHECK(neg.std().item<double>() == Approx(spread).margin(0.02));
  // Guidance scale 3: samples move further from the other class (mean beyond +m), not just sharpen.
  const auto g = di::ddim_sample(teacher, exact.schedule, z, labels, null, {0.0, 0.98}, di::DdimOptions().steps(100).guidance_scale(3.0));
  CHECK(g.slice(0, 0, n / 2).mean().item<double>() > exact.m + 0.05);
  CHECK(g.slice(0, n / 2).mean().item<double>() < -exact.m - 0.05);
}

TEST_CASE("image grids are PNG files sized by rows, columns and zoom", "[util][png]") {
  const auto path = scratch("grid.png");
  di::write_image_grid_png(path.string(), torch::rand({3, 4, 1, 16, 16}) * 2 - 1, {"a", "b", "c"},
                           di::ImageGridOptions().zoom(2).label_width(40));
  std::ifstream in(path, std::ios::binary);
  std::vector<unsigned char> head(24);
  in.read(reinterpret_cast<char*>(head.data()), 24);
  CHECK(head[1] == 'P');
  CHECK(head[2] == 'N');
  const auto be32 = [&](int o) { return (head[o] << 24) | (head[o + 1] << 16) | (head[o + 2] << 8) | head[o + 3]; };
  CHECK(be32(16) == 40 + 4 * (16 * 2 + 2) + 2);  // width: labels + 4 cells + final gap
  CHECK(be32(20) == 2 + 3 * (16 * 2 + 2) + 2);   // height: top gap + 3 cells + final gap
  CHECK_THROWS_WITH(di::write_image_grid_png(path.string(), torch::rand({3, 4, 16, 16}), {}),
                    Catch::Contains("expected images [rows, cols, C, H, W] with C = 1 or 3"));
  CHECK_THROWS_WITH(di::write_image_grid_png(path.string(), torch::rand({3, 4, 2, 16, 16}), {}), Catch::Contains("with C = 1 or 3, got [3, 4, 2, 16, 16]"));
  CHECK_THROWS_WITH(di::write_image_grid_png(path.string(), torch::rand({3, 4, 1, 16, 16}), {"a"}), Catch::Contains("1 labels for 3 rows"));
}

TEST_CASE("image grids draw RGB images in their colours, with captions above the rows", "[util][png]") {
  const auto path = scratch("grid_rgb.png");
  // Two rows of two 4x4 images: row 0 red then green, row 1 blue then white (values in [-1, 1]).
  auto images = -torch::ones({2, 2, 3, 4, 4});
  images[0][0][0] = 1;
  images[0][1][1] = 1;
  images[1][0][2] = 1;
  images[1][1] = 1;
  const std::string long_prompt(400, 'x');
  di::write_image_grid_png(path.string(), images, {"a red square", long_prompt}, di::ImageGridOptions().zoom(3).labels_above(true));
  int w = 0, h = 0, ch = 0;
  unsigned char* img = stbi_load(path.string().c_str(), &w, &h, &ch, 3);
  REQUIRE(img != nullptr);
  const int cell_w = 4 * 3 + 2, cell_h = 4 * 3 + 2 + 12;  // image, gap, caption line
  CHECK(w == 2 * cell_w + 2);                                // no label column: the captions are above
  CHECK(h == 2 + 2 * cell_h + 2);
  auto pixel = [&](int x, int y) {
    const unsigned char* p = img + 3 * (y * w + x);
    return std::array<int, 3>{p[0], p[1], p[2]};
  };
  auto centre = [&](int r, int c) { return pixel(c * cell_w + 2 + 6, 2 + r * cell_h + 12 + 2 + 6); };
  CHECK(centre(0, 0) == std::array<int, 3>{255, 0, 0});
  CHECK(centre(0, 1) == std::array<int, 3>{0, 255, 0});
  CHECK(centre(1, 0) == std::array<int, 3>{0, 0, 255});
  CHECK(centre(1, 1) == std::array<int, 3>{255, 255, 255});
  // The caption band above row 0 has dark text pixels; nothing was drawn past the grid's width.
  int dark = 0;
  for (int y = 2; y < 2 + 12; ++y)
    for (int x = 0; x < w; ++x) dark += pixel(x, y)[0] < 100;
  CHECK(dark > 0);
  stbi_image_free(img);
  CHECK(di::detail::fit_caption(long_prompt, 60).size() < 20);
  CHECK(di::detail::fit_caption(long_prompt, 60).substr(di::detail::fit_caption(long_prompt, 60).size() - 3) == "...");
  CHECK(di::detail::fit_caption("short", 600) == "short");
}
