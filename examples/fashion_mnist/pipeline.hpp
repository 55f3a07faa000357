#pragma once
// The stages of the Fashion-MNIST miniature, each cached on disk under a name that spells out the
// settings it depends on, so a rerun skips what is done and a changed setting retrains only what it
// touches. The teacher (the longest stage) also keeps a partial checkpoint and resumes from it.
#include "models.hpp"
#include "../common/training_state.hpp"

#include <diffinstruct/io/atomic_file.hpp>
#include <diffinstruct/data/idx.hpp>
#include <diffinstruct/eval/ddim_sampler.hpp>
#include <diffinstruct/eval/frechet.hpp>
#include <diffinstruct/util/progress_bar.hpp>

#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <functional>

namespace fashion {

namespace di = diffinstruct;
namespace fs = std::filesystem;

struct Config {
  std::string data_dir = di::data::kDebianFashionMnistDir, out = "out/fashion";
  int64_t train_subset = 0;  // 0: all 60 000 training images
  int64_t ch = 16;           // UNet width (teacher, assistant and generator)
  int64_t teacher_steps = 4000, teacher_batch = 64;
  double teacher_lr = 1e-3, cond_drop = 0.1, teacher_ema = 0.998;
  int64_t clf_epochs = 2, clf_batch = 128;
  double t_star = 0.76;      // the generator's fixed time: α* ≈ 0.37, σ* ≈ 0.93 (EDM's σ_init = 2.5)
  int64_t distill_steps = 600, post_steps = 300, batch = 32, k = 1;
  double alpha_cfg = 2.0;    // CFG strength α_cfg (usual guidance scale 1 + α_cfg)
  double alpha_rew = 1.0;    // reward scale α_rew
  double c = 1.0;            // pseudo-Huber c
  double lr_gen = 1e-4, lr_asst = 5e-4;
  int64_t eval_per_class = 50;
  std::vector<double> teacher_scales{1.0, 3.0, 5.0};  // usual guidance scales s of the 50-step teacher
  uint64_t seed = 0;
  std::string cache_tag;     // appended to every cached stage's name ("_portable" under --portable)
};

// ---- data -----------------------------------------------------------------------------------------

struct Data {
  torch::Tensor train_x, train_y, test_x, test_y;  // [N, 1, 16, 16] in [-1, 1], [N] int64
};

inline Data load_data(const Config& cfg) {
  auto train = di::data::load_fashion_mnist(cfg.data_dir, "train");
  auto test = di::data::load_fashion_mnist(cfg.data_dir, "test");
  Data d{to_16x16(train.images), train.labels, to_16x16(test.images), test.labels};
  if (cfg.train_subset > 0 && cfg.train_subset < d.train_x.size(0)) {
    d.train_x = d.train_x.slice(0, 0, cfg.train_subset);
    d.train_y = d.train_y.slice(0, 0, cfg.train_subset);
  }
  return d;
}

// ---- caching ----------------------------------------------------------------------------------------

/// Saves a module atomically and durably (io/atomic_file.hpp: a uniquely named temporary, fsync,
/// rename): an interrupted run never leaves a half-written cache entry that a rerun would trust.
template <class Module>
void save_atomic(const Module& m, const fs::path& path) {
  di::io::replace_file_atomically(path.string(), [&](const std::string& tmp) {
    torch::save(m, tmp);
    di::io::fsync_file(tmp, path.string());
  }, 1, "cache entry '" + path.string() + "'");
}

/// Loads a cached module if the file exists; a corrupt file is an error naming it (never silently retrained over).
template <class Module>
bool load_cached(Module& m, const fs::path& path) {
  if (!fs::exists(path)) return false;
  try {
    torch::load(m, path.string());
  } catch (const c10::Error& e) {
    TORCH_CHECK(false, "cannot read cached stage '", path.string(), "' (delete it to retrain): ", e.what_without_backtrace());
  }
  return true;
}

inline int64_t count_parameters(const torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// ---- 1. teacher -----------------------------------------------------------------------------------

/// ε-prediction DDPM loss on the cosine VP schedule, labels dropped to the null class with
/// probability cond_drop (so that one network gives ε̂(x, c) and ε̂(x, ∅) for CFG). EMA weights are
/// the teacher. Resumes from `<name>.partial` (model, EMA, optimizer, step).
inline TinyUNet train_teacher(const Data& data, const Config& cfg, const di::CosineVPSchedule& schedule) {
  const fs::path path = fs::path(cfg.out) / fmt::format("teacher_ch{}_steps{}_bs{}_n{}_seed{}{}.pt", cfg.ch, cfg.teacher_steps,
                                                        cfg.teacher_batch, data.train_x.size(0), cfg.seed, cfg.cache_tag);
  TinyUNet cached(cfg.ch);
  if (load_cached(cached, path)) {
    fmt::print("teacher: cached {}\n", path.string());
    return cached;
  }
  torch::manual_seed(cfg.seed);
  TinyUNet net(cfg.ch);
  di::ExponentialMovingAverage averaged(net->parameters(), cfg.teacher_ema);
  torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(cfg.teacher_lr));
  const fs::path partial = path.string() + ".partial";
  int64_t start = 0;
  if (fs::exists(partial)) {
    start = examples_common::load_training_state(partial.string(), *net, opt, averaged);
    fmt::print("teacher: resuming at step {} from {}\n", start, partial.string());
  }
  const int64_t n = data.train_x.size(0);
  di::ProgressBar bar("teacher", cfg.teacher_steps);
  double smoothed = 0;
  for (int64_t step = start; step < cfg.teacher_steps; ++step) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(cfg.seed * 1000003 + static_cast<uint64_t>(step));  // per-step: resumable
    const auto idx = torch::randint(n, {cfg.teacher_batch}, gen, torch::kLong);
    const auto x0 = data.train_x.index_select(0, idx);
    auto label = data.train_y.index_select(0, idx);
    label = torch::where(torch::rand({cfg.teacher_batch}, gen) < cfg.cond_drop, torch::full_like(label, kNullClass), label);
    const auto t = torch::rand({cfg.teacher_batch}, gen) * 0.999 + 0.0005;
    const auto eps = torch::randn(x0.sizes(), gen);
    const auto x_t = di::diffuse(x0, schedule.alpha(t), schedule.sigma(t), eps);
    const auto loss = (net(x_t, t, label) - eps).pow(2).mean();
    opt.zero_grad();
    loss.backward();
    torch::nn::utils::clip_grad_norm_(net->parameters(), 1.0);
    opt.step();
    averaged.update(net->parameters());
    smoothed = step == start ? loss.item<double>() : 0.98 * smoothed + 0.02 * loss.item<double>();
    if (step % 20 == 0 || step + 1 == cfg.teacher_steps) bar.update(step + 1, fmt::format("loss {:.4f}", smoothed));
    if ((step + 1) % 500 == 0 && step + 1 < cfg.teacher_steps)
      examples_common::save_training_state(partial.string(), *net, opt, averaged, step + 1, "the teacher's partial training");
  }
  bar.finish();
  averaged.swap(net->parameters());  // the teacher is the averaged network
  save_atomic(net, path);
  fs::remove(partial);
  return net;
}

// ---- 2. classifiers -------------------------------------------------------------------------------

template <class Net>
double test_accuracy(Net& net, const Data& data) {
  net->eval();
  torch::NoGradGuard no_grad;
  return (net(data.test_x).argmax(1) == data.test_y).to(torch::kFloat64).mean().template item<double>();
}

/// Cross-entropy training; `noise_aug` > 0 adds Gaussian pixel noise of a random level up to it (the
/// reward model then stays smooth on imperfect generator samples). Returns test accuracy.
template <class Net>
double train_classifier(Net& net, const Data& data, const Config& cfg, uint64_t seed, double noise_aug, const std::string& label) {
  torch::manual_seed(seed);
  torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(1e-3));
  const int64_t n = data.train_x.size(0), per_epoch = (n + cfg.clf_batch - 1) / cfg.clf_batch;
  di::ProgressBar bar(label, cfg.clf_epochs * per_epoch);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  double smoothed = 0;
  for (int64_t epoch = 0; epoch < cfg.clf_epochs; ++epoch) {
    const auto perm = torch::randperm(n, gen, torch::kLong);
    for (int64_t b = 0; b < per_epoch; ++b) {
      const auto idx = perm.slice(0, b * cfg.clf_batch, std::min(n, (b + 1) * cfg.clf_batch));
      auto x = data.train_x.index_select(0, idx);
      if (noise_aug > 0) x = x + noise_aug * torch::rand({x.size(0), 1, 1, 1}, gen) * torch::randn(x.sizes(), gen);
      const torch::Tensor loss = torch::nn::functional::cross_entropy(net(x), data.train_y.index_select(0, idx));
      opt.zero_grad();
      loss.backward();
      opt.step();
      smoothed = smoothed == 0 ? loss.item<double>() : 0.98 * smoothed + 0.02 * loss.item<double>();
      const int64_t done = epoch * per_epoch + b + 1;
      if (done % 20 == 0 || done == cfg.clf_epochs * per_epoch) bar.update(done, fmt::format("loss {:.4f}", smoothed));
    }
  }
  bar.finish();
  return test_accuracy(net, data);
}

template <class Net>
Net classifier_stage(const Data& data, const Config& cfg, const std::string& kind, uint64_t seed, double noise_aug, double& test_acc) {
  const fs::path path = fs::path(cfg.out) / fmt::format("{}_epochs{}_n{}_seed{}{}.pt", kind, cfg.clf_epochs, data.train_x.size(0), seed, cfg.cache_tag);
  Net net;
  if (load_cached(net, path)) {
    test_acc = test_accuracy(net, data);
    fmt::print("{}: cached {} (test accuracy {:.3f})\n", kind, path.string(), test_acc);
  } else {
    test_acc = train_classifier(net, data, cfg, seed, noise_aug, kind);
    save_atomic(net, path);
    fmt::print("{}: test accuracy {:.3f}\n", kind, test_acc);
  }
  for (auto& p : net->parameters()) p.requires_grad_(false);
  return net;
}

// ---- 3./4. one-step generators with the library -----------------------------------------------------

using Labels = torch::Tensor;
using TeacherDenoiser = di::Denoiser<TinyUNet, di::EpsPrediction>;
using RewardFn = std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&)>;
using Reward = di::CallableReward<RewardFn>;

/// r(x, c) = log p(c | x) under a classifier, which the reward declares (holds) so that the
/// trainer freezes it: evaluation mode, no parameter gradients.
template <class Net>
Reward log_prob_reward(Net net) {
  Reward reward(RewardFn([net](const torch::Tensor& x, const torch::Tensor& c) mutable {
    return torch::log_softmax(net(x), 1).gather(1, c.view({-1, 1})).squeeze(1);
  }));
  reward.holds(net);
  return reward;
}

/// What a post-training run produced.
struct TrainedGenerator {
  OneStepGenerator generator{nullptr};
  double seconds = 0;
  double final_reward = 0;
};

inline di::ConditionSource<Labels> class_conditions() {
  di::ConditionSource<Labels> source;
  source.sample = [](int64_t batch, at::Generator& gen) { return torch::randint(kClasses, {batch}, gen, torch::kLong); };
  source.null_condition = torch::full({1}, kNullClass, torch::kLong);
  return source;
}

inline OneStepGenerator make_generator(const Config& cfg, const di::CosineVPSchedule& schedule) {
  const auto t = torch::full({1}, cfg.t_star, torch::kFloat64);
  return OneStepGenerator(cfg.ch, cfg.t_star, schedule.alpha(t).item<double>(), schedule.sigma(t).item<double>());
}

/// One DI*-family run: generator and assistant start from (gen_init, asst_init); `Div` and `Guid`
/// pick the divergence and where CFG enters; alpha_rew = 0 drops the explicit reward.
template <class Div, class Guid>
TrainedGenerator run_di_star(const std::string& label, Div divergence, Guid guidance, double alpha_rew, int64_t steps, int64_t k,
                             const Config& cfg, const di::CosineVPSchedule& schedule, const TinyUNet& teacher,
                             const OneStepGenerator& gen_init, const TinyUNet& asst_init, const Reward& reward, uint64_t seed) {
  OneStepGenerator gen = make_generator(cfg, schedule);
  TinyUNet asst(cfg.ch);
  di::copy_state(gen_init, gen);
  di::copy_state(asst_init, asst);
  using Trainer = di::DiStarTrainer<di::Generator<OneStepGenerator>, TeacherDenoiser, TeacherDenoiser, Labels, Div, Guid, Reward,
                                    di::CosineVPSchedule>;
  Trainer trainer(di::Generator<OneStepGenerator>(gen), TeacherDenoiser(teacher, "teacher"), TeacherDenoiser(asst, "assistant"),
                  {divergence, guidance, reward, schedule}, class_conditions(), std::vector<int64_t>{1, kSize, kSize},
                  di::DiStarTrainerOptions()
                      .batch_size(cfg.batch)
                      .assistant_steps(k)
                      .alpha_rew(alpha_rew)
                      .generator_adam(di::AdamSettings(cfg.lr_gen))
                      .assistant_adam(di::AdamSettings(cfg.lr_asst))
                      .ema_decay(0)
                      .seed(seed));
  di::ProgressBar bar(label, steps);
  const auto t0 = std::chrono::steady_clock::now();
  double smoothed_reward = 0;
  for (int64_t i = 0; i < steps; ++i) {
    const di::StepStats s = trainer.step();
    smoothed_reward = i == 0 ? s.mean_reward : 0.95 * smoothed_reward + 0.05 * s.mean_reward;
    if (i % 10 == 0 || i + 1 == steps)
      bar.update(i + 1, fmt::format("L_div {:+.4f}  DSM {:.3f}  reward {:+.2f}  skipped {}", s.divergence_loss, s.assistant_loss,
                                    smoothed_reward, trainer.non_finite_total()));
  }
  bar.finish();
  return {gen, seconds_since(t0), smoothed_reward};
}

// ---- 5. evaluation -----------------------------------------------------------------------------------

/// Fixed prompts and seeds, the same for every model: eval_per_class of each class, in class order.
struct EvalSet {
  torch::Tensor z, labels;
};

inline EvalSet make_eval_set(const Config& cfg) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(cfg.seed + 99);
  const int64_t n = kClasses * cfg.eval_per_class;
  return {torch::randn({n, 1, kSize, kSize}, gen), torch::arange(kClasses, torch::kLong).repeat_interleave(cfg.eval_per_class)};
}

struct Metrics {
  std::string name, method;
  int64_t steps = 1, parameters = 0;
  double ms_per_image = 0, accuracy = 0, log_prob = 0, reward = 0, fd = 0, diversity = 0;
  double alpha_rew = 0, alpha_cfg = 0, train_seconds = 0;
};

/// The held-out evaluator's view of the test split: FD reference statistics and the data's own diversity.
struct Reference {
  di::GaussianStats test_stats;
  double test_diversity = 0;
};

/// Mean pairwise feature distance within each class, averaged over classes.
inline double within_class_diversity(const torch::Tensor& features, const torch::Tensor& labels) {
  double total = 0;
  for (int64_t c = 0; c < kClasses; ++c) {
    const auto f = features.index_select(0, (labels == c).nonzero().squeeze(1)).to(torch::kFloat64);
    const int64_t n = f.size(0);
    if (n < 2) continue;
    total += torch::cdist(f, f).sum().item<double>() / static_cast<double>(n * (n - 1));
  }
  return total / kClasses;
}

inline Reference make_reference(EvalClassifier& evaluator, const Data& data) {
  torch::NoGradGuard no_grad;
  const auto f = evaluator->embed(data.test_x);
  return {di::gaussian_stats(f), within_class_diversity(f, data.test_y)};
}

/// Scores samples x of the eval set's labels.
inline void score(Metrics& m, const torch::Tensor& x, const EvalSet& set, EvalClassifier& evaluator, RewardClassifier& reward_model,
                  const Reference& ref) {
  torch::NoGradGuard no_grad;
  TORCH_CHECK(torch::isfinite(x).all().item<bool>(), "evaluation: model '", m.name, "' produced non-finite samples");
  const auto logits = evaluator(x);
  m.accuracy = (logits.argmax(1) == set.labels).to(torch::kFloat64).mean().item<double>();
  m.log_prob = torch::log_softmax(logits, 1).gather(1, set.labels.view({-1, 1})).mean().item<double>();
  m.reward = torch::log_softmax(reward_model(x), 1).gather(1, set.labels.view({-1, 1})).mean().item<double>();
  const auto f = evaluator->embed(x);
  m.fd = di::frechet_distance(di::gaussian_stats(f), ref.test_stats);
  m.diversity = within_class_diversity(f, set.labels);
}

/// Times `sample` over the whole eval set (after one warm-up batch) and scores the result.
inline torch::Tensor evaluate(Metrics& m, const std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&)>& sample,
                              const EvalSet& set, EvalClassifier& evaluator, RewardClassifier& reward_model, const Reference& ref) {
  torch::NoGradGuard no_grad;
  sample(set.z.slice(0, 0, 10), set.labels.slice(0, 0, 10));
  const auto t0 = std::chrono::steady_clock::now();
  const auto x = sample(set.z, set.labels);
  m.ms_per_image = 1e3 * seconds_since(t0) / static_cast<double>(set.z.size(0));
  score(m, x, set, evaluator, reward_model, ref);
  return x;
}

}  // namespace fashion
