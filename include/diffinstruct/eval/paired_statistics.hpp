#pragma once
/// \file The statistics of a model comparison on shared prompts and seeds:
///
///   mean ± standard error   over n units: s / √n with the sample standard deviation (n − 1)
///   paired bootstrap        the difference of two models' means over the same n units (prompts,
///                           each averaged over its seeds first), resampled n at a time with
///                           replacement; the interval is the percentile interval of the resampled
///                           means (linear interpolation between order statistics, numpy's default)
///
/// The resampling draws from a SplitMix64 stream with rejection (no modulo bias), so an interval
/// is the same on every machine and standard library for the same seed.
///
/// Example:
///   auto d = paired_bootstrap(scores_b, scores_a, BootstrapOptions().resamples(2000));
///   // d.mean, d.lo, d.hi: the difference b − a and its 95% interval

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace diffinstruct {
struct MeanSe {
  double mean = NAN, se = NAN;  ///< se is NaN for fewer than two values
  int64_t n = 0;
};

inline MeanSe mean_and_se(const std::vector<double>& x) {
  MeanSe r;
  r.n = static_cast<int64_t>(x.size());
  if (x.empty()) return r;
  double sum = 0;
  for (double v : x) sum += v;
  r.mean = sum / static_cast<double>(x.size());
  if (x.size() < 2) return r;
  double ss = 0;
  for (double v : x) ss += (v - r.mean) * (v - r.mean);
  r.se = std::sqrt(ss / static_cast<double>(x.size() - 1) / static_cast<double>(x.size()));
  return r;
}

struct BootstrapOptions {
  TORCH_ARG(int64_t, resamples) = 1000;
  /// The interval's coverage (0.95: the 2.5% and 97.5% percentiles).
  TORCH_ARG(double, level) = 0.95;
  TORCH_ARG(uint64_t, seed) = 0;
};

struct BootstrapInterval {
  double mean = NAN;         ///< mean of b − a over the units
  double lo = NAN, hi = NAN;  ///< the percentile interval
  int64_t n = 0;
};

namespace detail {

/// SplitMix64: a fixed, portable stream.
struct SplitMix64 {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  /// Uniform in [0, n), by rejection of the top partial range.
  uint64_t below(uint64_t n) {
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = next();
    while (x >= limit);
    return x % n;
  }
};

/// numpy.percentile's linear interpolation of sorted values at q in [0, 1].
inline double sorted_quantile(const std::vector<double>& sorted, double q) {
  const double pos = q * static_cast<double>(sorted.size() - 1);
  const auto i = static_cast<size_t>(std::floor(pos));
  const size_t j = std::min(i + 1, sorted.size() - 1);
  return sorted[i] + (pos - static_cast<double>(i)) * (sorted[j] - sorted[i]);
}

}  // namespace detail

/// The difference `b − a` of paired values (b[i] and a[i] measured on the same unit), its mean and
/// the bootstrap interval of that mean.
inline BootstrapInterval paired_bootstrap(const std::vector<double>& b, const std::vector<double>& a, const BootstrapOptions& o = {}) {
  TORCH_CHECK(a.size() == b.size(), "diffinstruct::paired_bootstrap: expected paired values, got ", b.size(), " and ", a.size());
  TORCH_CHECK(o.resamples() >= 1 && o.resamples() <= 10'000'000, "diffinstruct::paired_bootstrap: expected 1 to 10^7 resamples, got ",
              o.resamples());
  TORCH_CHECK(o.level() > 0 && o.level() < 1, "diffinstruct::paired_bootstrap: expected a level in (0, 1), got ", o.level());
  BootstrapInterval r;
  r.n = static_cast<int64_t>(a.size());
  if (a.empty()) return r;
  std::vector<double> d(a.size());
  for (size_t i = 0; i < a.size(); ++i) d[i] = b[i] - a[i];
  r.mean = mean_and_se(d).mean;
  detail::SplitMix64 rng{o.seed()};
  std::vector<double> means(static_cast<size_t>(o.resamples()));
  for (auto& m : means) {
    double sum = 0;
    for (size_t k = 0; k < d.size(); ++k) sum += d[rng.below(d.size())];
    m = sum / static_cast<double>(d.size());
  }
  std::sort(means.begin(), means.end());
  r.lo = detail::sorted_quantile(means, (1 - o.level()) / 2);
  r.hi = detail::sorted_quantile(means, (1 + o.level()) / 2);
  return r;
}

}  // namespace diffinstruct
