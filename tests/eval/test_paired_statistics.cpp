// The comparison statistics of di_evaluate: mean ± standard error and the paired bootstrap of a
// difference, against closed forms and the bootstrap's own theory.
#include <diffinstruct/eval/paired_statistics.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

namespace di = diffinstruct;

namespace {
/// Deterministic, spread-out values in [0, 1) (the same on every machine).
std::vector<double> spread(size_t n, uint64_t seed) {
  di::detail::SplitMix64 rng{seed};
  std::vector<double> x(n);
  for (auto& v : x) v = static_cast<double>(rng.next() >> 11) / 9007199254740992.0;
  return x;
}
}  // namespace

TEST_CASE("statistics: mean and standard error are the closed forms", "[unit][eval]") {
  const auto r = di::mean_and_se({1, 2, 3, 4});
  CHECK(r.n == 4);
  CHECK(r.mean == Approx(2.5).epsilon(1e-15));
  CHECK(r.se == Approx(std::sqrt(5.0 / 3.0) / 2.0).epsilon(1e-14));  // sample sd √(5/3), over √4
  CHECK(std::isnan(di::mean_and_se({7}).se));
  CHECK(std::isnan(di::mean_and_se({}).mean));
}

TEST_CASE("statistics: percentiles interpolate as numpy's do", "[unit][eval]") {
  const std::vector<double> s = {1, 2, 3, 4};
  CHECK(di::detail::sorted_quantile(s, 0.25) == Approx(1.75));  // numpy.percentile([1,2,3,4], 25)
  CHECK(di::detail::sorted_quantile(s, 0.975) == Approx(3.925));
  CHECK(di::detail::sorted_quantile(s, 0) == 1);
  CHECK(di::detail::sorted_quantile(s, 1) == 4);
}

TEST_CASE("statistics: the paired bootstrap of a difference", "[unit][eval]") {
  SECTION("a constant difference has a point interval") {
    const auto a = spread(50, 1);
    auto b = a;
    for (auto& v : b) v += 0.25;
    const auto d = di::paired_bootstrap(b, a);
    CHECK(d.mean == Approx(0.25).epsilon(1e-12));
    CHECK(d.lo == Approx(0.25).epsilon(1e-12));
    CHECK(d.hi == Approx(0.25).epsilon(1e-12));
  }
  SECTION("its width is that of the normal interval, 2 · 1.96 · SE, for many units") {
    // The percentile interval of a mean of n = 400 uniform differences: the bootstrap's Monte Carlo
    // error with 4000 resamples is about 2% of the width, the non-normality at n = 400 less.
    const auto a = spread(400, 2), b = spread(400, 3);
    std::vector<double> diff(a.size());
    for (size_t i = 0; i < a.size(); ++i) diff[i] = b[i] - a[i];
    const auto se = di::mean_and_se(diff).se;
    const auto d = di::paired_bootstrap(b, a, di::BootstrapOptions().resamples(4000));
    CHECK(d.mean == Approx(di::mean_and_se(diff).mean).epsilon(1e-12));
    CHECK((d.hi - d.lo) == Approx(2 * 1.959964 * se).epsilon(0.08));
    CHECK(d.lo < d.mean);
    CHECK(d.mean < d.hi);
    // The same seed gives the same interval; another seed another one.
    const auto again = di::paired_bootstrap(b, a, di::BootstrapOptions().resamples(4000));
    CHECK(again.lo == d.lo);
    CHECK(again.hi == d.hi);
    const auto other = di::paired_bootstrap(b, a, di::BootstrapOptions().resamples(4000).seed(9));
    CHECK(other.lo != d.lo);
    // Negative control: the other way round, the interval is mirrored.
    const auto mirrored = di::paired_bootstrap(a, b, di::BootstrapOptions().resamples(4000));
    CHECK(mirrored.mean == Approx(-d.mean).epsilon(1e-12));
    CHECK(mirrored.lo == Approx(-d.hi).epsilon(1e-12));
    CHECK(mirrored.hi == Approx(-d.lo).epsilon(1e-12));
  }
  SECTION("a difference of 6 standard errors is resolved, one of 0 is not") {
    const auto a = spread(200, 4);
    auto b = spread(200, 5), same = a;
    std::vector<double> noise(200);
    for (size_t i = 0; i < a.size(); ++i) noise[i] = b[i] - a[i];
    const double shift = 6 * di::mean_and_se(noise).se - di::mean_and_se(noise).mean;
    for (auto& v : b) v += shift;
    const auto d = di::paired_bootstrap(b, a);
    CHECK(d.lo > 0);
    const auto z = di::paired_bootstrap(same, a);
    CHECK(z.lo == 0);
    CHECK(z.hi == 0);
  }
  SECTION("refusals") {
    CHECK_THROWS_WITH(di::paired_bootstrap({1, 2}, {1}), Catch::Contains("expected paired values, got 2 and 1"));
    CHECK_THROWS_WITH(di::paired_bootstrap({1}, {1}, di::BootstrapOptions().level(1.0)), Catch::Contains("level in (0, 1)"));
    CHECK_THROWS_WITH(di::paired_bootstrap({1}, {1}, di::BootstrapOptions().resamples(0)), Catch::Contains("1 to 10^7 resamples"));
  }
}
