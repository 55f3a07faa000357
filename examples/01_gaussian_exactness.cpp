// 01 — The proof that the losses are right, readable by anyone.
//
// On the Gaussian problem of docs/math.md §5 (generator x0 = m + e^l z, Gaussian teacher, every score
// exact), prints for every divergence and every CFG placement the library's surrogate gradient
// beside the divergence's true gradient, with Monte-Carlo standard errors, and a verdict. The last
// block is the negative control: pseudo-Huber with d'(y) detached, which the same check must reject
// (its scale gradient is wrong). Exit status 0 only if every real surrogate agrees and the control
// is rejected.

#include <diffinstruct/util/error_report.hpp>
#include <diffinstruct/testing/gaussian_exactness.hpp>
#include <diffinstruct/util/threads.hpp>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <string>

namespace di = diffinstruct;
namespace dt = diffinstruct::testing;

namespace {

struct Row {
  std::string divergence, guidance;
  dt::ExactnessResult result;
  bool expect_agree = true;
};

void print_row(const Row& row, double k) {
  const auto& r = row.result;
  const int64_t n = r.surrogate.mean.size(0);
  const bool agree = r.agrees(k);
  const bool ok = agree == row.expect_agree;
  fmt::print("\n{} | {}   truth: {}\n", row.divergence, row.guidance,
             r.truth_is_closed_form ? "closed form"
                                    : "E[d'(y)ᵀ ∂s_θ/∂θ] on the same draws (Monte Carlo; the difference is paired)");
  fmt::print("  {:>6}  {:>24}  {:>24}  {:>24}  {:>7}\n", "param", "surrogate ± se", "true ± se", "difference ± se", "|z|");
  for (int64_t i = 0; i < n; ++i) {
    const std::string name = i + 1 == n ? "l" : fmt::format("m[{}]", i);
    const double z = r.z()[i].item<double>();
    fmt::print("  {:>6}  {:>+12.6f} ± {:<9.6f}  {:>+12.6f} ± {:<9.6f}  {:>+12.2e} ± {:<9.2e}  {:>7.2f}\n", name,
               r.surrogate.mean[i].item<double>(), r.surrogate.se[i].item<double>(), r.truth.mean[i].item<double>(),
               r.truth.se[i].item<double>(), r.difference.mean[i].item<double>(), r.difference.se[i].item<double>(), z);
  }
  fmt::print("  verdict: {} (max |z| = {:.2f}; {} expected {})\n", ok ? "OK" : "FAIL", r.max_z(),
             agree ? "agrees," : "disagrees,", row.expect_agree ? "agreement" : "disagreement");
}

}  // namespace

static int run(int argc, char** argv) {
  CLI::App app{"Surrogate gradients of every DI* divergence versus the exact gradient on a Gaussian problem"};
  int64_t samples = 1 << 20;
  int64_t dim = 3;
  uint64_t seed = 2024;
  double c = 1.0, cfg = 2.0, k = 5.0;
  app.add_option("--samples", samples, "Monte-Carlo draws per configuration")->check(CLI::Range(int64_t{1000}, int64_t{1} << 28));
  app.add_option("--dim", dim, "dimension D of the problem")->check(CLI::Range(int64_t{1}, int64_t{4096}));
  app.add_option("--seed", seed, "random seed");
  app.add_option("--c", c, "pseudo-Huber c")->check(CLI::PositiveNumber);
  app.add_option("--cfg", cfg, "guidance scale alpha_cfg (guided = eps_c + alpha_cfg (eps_c - eps_u))")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--sigmas", k, "agreement threshold in standard errors")->check(CLI::PositiveNumber);
  int threads = 0;
  app.add_option("--threads", threads, "intra-op threads (0: OMP_NUM_THREADS if set, else every core)")->check(CLI::NonNegativeNumber);
  CLI11_PARSE(app, argc, argv);
  threads = di::use_threads(threads);

  const auto p = dt::GaussianProblem::make(dim);
  fmt::print("diffinstruct {} — Gaussian exactness check (docs/math.md §5)\n", di::kVersion);
  fmt::print("D = {}, alpha_t = {:.4f}, sigma_t = {:.4f}, w = {:.3f}, generator scale e^l = {:.3f}, teacher s_c = {}, s_u = {}\n",
             dim, p.alpha, p.sigma, p.w, std::exp(p.l), p.s_c, p.s_u);
  fmt::print("{} draws per configuration (float64, seed {}), pseudo-Huber c = {}, alpha_cfg = {}; "
             "agreement = every component within {} standard errors\n",
             samples, seed, c, cfg, k);

  const di::PseudoHuberScore huber(c);
  const di::SquaredL2Score l2;
  const di::KL kl;
  const di::PseudoHuberDistance huber_d{c};
  const di::SquaredL2Distance l2_d;
  const di::NoGuidance none;
  const di::CfgInside inside(di::AlphaCfg{cfg});
  const di::CfgOutside outside(di::AlphaCfg{cfg});

  std::vector<Row> rows;
  rows.push_back({"pseudo-Huber (DI*)", "no CFG", dt::check_score_exactness(huber, none, huber_d, p, samples, seed)});
  rows.push_back({"pseudo-Huber (DI*)", "CFG inside", dt::check_score_exactness(huber, inside, huber_d, p, samples, seed)});
  rows.push_back({"pseudo-Huber (DI*)", "CFG outside", dt::check_score_exactness(huber, outside, huber_d, p, samples, seed)});
  rows.push_back({"squared L2 (SiD a=1)", "no CFG", dt::check_score_exactness(l2, none, l2_d, p, samples, seed)});
  rows.push_back({"squared L2 (SiD a=1)", "CFG inside", dt::check_score_exactness(l2, inside, l2_d, p, samples, seed)});
  rows.push_back({"squared L2 (SiD a=1)", "CFG outside", dt::check_score_exactness(l2, outside, l2_d, p, samples, seed)});
  rows.push_back({"KL (DI / DI++)", "no CFG", dt::check_kl_exactness(kl, none, p, samples, seed)});
  rows.push_back({"KL (DI / DI++)", "CFG inside", dt::check_kl_exactness(kl, inside, p, samples, seed)});
  rows.push_back({"KL (DI / DI++)", "CFG outside", dt::check_kl_exactness(kl, outside, p, samples, seed)});
  const di::ScoreDivergence<dt::DetachedDistance<di::PseudoHuberDistance>> detached({huber_d});
  Row control{"NEGATIVE CONTROL: pseudo-Huber with d'(y) detached", "no CFG",
              dt::check_score_exactness(detached, none, huber_d, p, samples, seed)};
  control.expect_agree = false;
  rows.push_back(control);

  int failures = 0;
  for (const auto& row : rows) {
    print_row(row, k);
    failures += row.result.agrees(k) != row.expect_agree;
  }
  fmt::print("\n{} of {} checks as expected.{}\n", rows.size() - failures, rows.size(),
             failures ? " SOMETHING IS WRONG." : " The surrogates are the divergences' gradients.");
  return failures == 0 ? 0 : 1;
}

int main(int argc, char** argv) {
  return diffinstruct::run_program("01_gaussian_exactness", [&] { return run(argc, argv); });
}
