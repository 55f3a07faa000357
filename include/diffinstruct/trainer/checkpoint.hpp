#pragma once
/// \file Checkpoints of DiStarTrainer: one file restores everything (generator, EMA, assistant, both
/// optimizers, step, RNG state, options). Written atomically: a temporary file, then a rename, so a
/// crash mid-write leaves the previous checkpoint intact. Loading reads and checks everything before
/// changing anything, so a truncated or mismatched file leaves the trainer as it was.
///
/// Format: a LibTorch archive (zip) with, per model, tensors `<model>_<i>` in named_state() order and
/// the names list `<model>_names`; `ema_<i>`; sub-archives `optim_generator`, `optim_assistant`;
/// `step`, `non_finite_total`, `rng` (CPU generator state), `options`, `seed`, `format` (= 1).

#include <diffinstruct/trainer/di_star_trainer.hpp>

#include <exception>
#include <filesystem>
#include <sstream>

namespace diffinstruct {
namespace detail {

inline constexpr int64_t kCheckpointFormat = 1;

inline std::string join_names(const NamedTensors& named) {
  std::string out;
  for (const auto& n : named) out += n.first + "\n";
  return out;
}

inline void write_named(torch::serialize::OutputArchive& ar, const std::string& prefix, const NamedTensors& named) {
  for (size_t i = 0; i < named.size(); ++i) ar.write(prefix + "_" + std::to_string(i), named[i].second.detach());
  ar.write(prefix + "_names", c10::IValue(join_names(named)));
}

inline torch::Tensor read_tensor(torch::serialize::InputArchive& ar, const std::string& key, const std::string& path) {
  torch::Tensor t;
  TORCH_CHECK(ar.try_read(key, t), "diffinstruct::DiStarTrainer::load: checkpoint '", path, "' has no entry '", key,
              "' (truncated, or written by something else)");
  return t;
}

/// Reads a model's tensors and checks names and shapes against the live model.
inline std::vector<torch::Tensor> read_named(torch::serialize::InputArchive& ar, const std::string& prefix, const NamedTensors& live,
                                             const std::string& path) {
  c10::IValue names;
  TORCH_CHECK(ar.try_read(prefix + "_names", names) && names.isString(), "diffinstruct::DiStarTrainer::load: checkpoint '", path,
              "' has no ", prefix, " names");
  TORCH_CHECK(names.toStringRef() == join_names(live), "diffinstruct::DiStarTrainer::load: the ", prefix, " in '", path,
              "' has parameters\n", names.toStringRef(), "but this trainer's ", prefix, " has\n", join_names(live));
  std::vector<torch::Tensor> out;
  for (size_t i = 0; i < live.size(); ++i) {
    auto t = read_tensor(ar, prefix + "_" + std::to_string(i), path);
    TORCH_CHECK(t.sizes() == live[i].second.sizes(), "diffinstruct::DiStarTrainer::load: ", prefix, " tensor '", live[i].first,
                "' in '", path, "' has shape ", t.sizes(), ", expected ", live[i].second.sizes());
    out.push_back(std::move(t));
  }
  return out;
}

inline torch::Tensor options_to_tensor(const DiStarTrainerOptions& o) {
  const auto& g = o.generator_adam();
  const auto& a = o.assistant_adam();
  return torch::tensor({double(o.batch_size()), double(o.assistant_steps()), o.alpha_rew(), g.lr(), g.beta1(), g.beta2(), g.eps(),
                        g.weight_decay(), a.lr(), a.beta1(), a.beta2(), a.eps(), a.weight_decay(), o.generator_max_grad_norm(),
                        o.assistant_max_grad_norm(), o.ema_decay(), double(static_cast<int>(o.non_finite()))},
                       torch::kFloat64);
}

inline DiStarTrainerOptions options_from_tensor(const torch::Tensor& t, int64_t seed, const std::string& path) {
  TORCH_CHECK(t.dim() == 1 && t.size(0) == 17 && t.scalar_type() == torch::kFloat64, "diffinstruct::DiStarTrainer::load: '", path,
              "' has malformed options (expected 17 float64 values, got ", t.sizes(), ")");
  const auto v = t.accessor<double, 1>();
  DiStarTrainerOptions o;
  o.batch_size(static_cast<int64_t>(v[0])).assistant_steps(static_cast<int64_t>(v[1])).alpha_rew(v[2]);
  o.generator_adam(AdamSettings(v[3]).beta1(v[4]).beta2(v[5]).eps(v[6]).weight_decay(v[7]));
  o.assistant_adam(AdamSettings(v[8]).beta1(v[9]).beta2(v[10]).eps(v[11]).weight_decay(v[12]));
  o.generator_max_grad_norm(v[13]).assistant_max_grad_norm(v[14]).ema_decay(v[15]);
  o.non_finite(static_cast<NonFinitePolicy>(static_cast<int>(v[16]))).seed(static_cast<uint64_t>(seed));
  o.validate();
  return o;
}

} // namespace detail

template <class G, class T, class A, class C, class D, class Gd, class R, class S>
void DiStarTrainer<G, T, A, C, D, Gd, R, S>::save(const std::string& path) {
  // Data-parallel: every rank holds the same state; rank 0 writes, the others wait until it has.
  struct BarrierAtExit {
    Collectives* dp;
    ~BarrierAtExit() noexcept(false) {
      if (dp && std::uncaught_exceptions() == 0) dp->barrier();
    }
  } barrier_at_exit{dp_.get()};
  if (dp_ && dp_->rank() != 0) return;
  torch::serialize::OutputArchive ar;
  ar.write("format", torch::tensor(detail::kCheckpointFormat));
  detail::write_named(ar, "generator", detail::named_state(generator_.model()));
  detail::write_named(ar, "assistant", detail::named_state(assistant_.model()));
  for (size_t i = 0; i < ema_.shadow().size(); ++i) ar.write("ema_" + std::to_string(i), ema_.shadow()[i]);
  torch::serialize::OutputArchive gen_opt, asst_opt;
  generator_opt_->save(gen_opt);
  assistant_opt_->save(asst_opt);
  ar.write("optim_generator", gen_opt);
  ar.write("optim_assistant", asst_opt);
  ar.write("step", torch::tensor(step_));
  ar.write("non_finite_total", torch::tensor(non_finite_total_));
  ar.write("rng", rng_.get_state());
  ar.write("options", detail::options_to_tensor(options_));
  ar.write("seed", torch::tensor(static_cast<int64_t>(options_.seed())));
  const std::string tmp = path + ".tmp";
  try {
    ar.save_to(tmp);
  } catch (const c10::Error& e) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    TORCH_CHECK(false, "diffinstruct::DiStarTrainer::save: cannot write '", tmp, "': ", e.what_without_backtrace());
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  TORCH_CHECK(!ec, "diffinstruct::DiStarTrainer::save: cannot move '", tmp, "' to '", path, "': ", ec.message());
}

template <class G, class T, class A, class C, class D, class Gd, class R, class S>
void DiStarTrainer<G, T, A, C, D, Gd, R, S>::load(const std::string& path) {
  TORCH_CHECK(std::filesystem::is_regular_file(path), "diffinstruct::DiStarTrainer::load: no checkpoint file at '", path, "'");
  torch::serialize::InputArchive ar;
  try {
    ar.load_from(path);
  } catch (const c10::Error& e) {
    TORCH_CHECK(false, "diffinstruct::DiStarTrainer::load: cannot read checkpoint '", path,
                "' (truncated, corrupt or not a checkpoint): ", e.what_without_backtrace());
  }
  // Phase 1: read and check everything; nothing of this trainer changes yet.
  const auto format = detail::read_tensor(ar, "format", path);
  TORCH_CHECK(format.numel() == 1 && format.item<int64_t>() == detail::kCheckpointFormat, "diffinstruct::DiStarTrainer::load: '", path,
              "' has checkpoint format ", format, ", expected ", detail::kCheckpointFormat);
  const auto gen_live = detail::named_state(generator_.model());
  const auto asst_live = detail::named_state(assistant_.model());
  const auto gen = detail::read_named(ar, "generator", gen_live, path);
  const auto asst = detail::read_named(ar, "assistant", asst_live, path);
  const auto options = detail::options_from_tensor(detail::read_tensor(ar, "options", path),
                                                   detail::read_tensor(ar, "seed", path).item<int64_t>(), path);
  std::vector<torch::Tensor> ema;
  if (options.ema_decay() > 0) {
    for (size_t i = 0; i < generator_params_.size(); ++i) {
      ema.push_back(detail::read_tensor(ar, "ema_" + std::to_string(i), path));
      TORCH_CHECK(ema.back().sizes() == generator_params_[i].sizes(), "diffinstruct::DiStarTrainer::load: EMA tensor ", i, " in '",
                  path, "' has shape ", ema.back().sizes(), ", expected ", generator_params_[i].sizes());
    }
  }
  const auto step = detail::read_tensor(ar, "step", path).item<int64_t>();
  const auto non_finite_total = detail::read_tensor(ar, "non_finite_total", path).item<int64_t>();
  const auto rng_state = detail::read_tensor(ar, "rng", path);
  // Optimizers (Adam or whatever set_optimizers() installed) load in place; their current state is
  // kept in memory first and put back if either fails, so a bad file changes nothing.
  auto snapshot = [](torch::optim::Optimizer& opt) {
    torch::serialize::OutputArchive out;
    opt.save(out);
    std::ostringstream bytes;
    out.save_to(bytes);
    return bytes.str();
  };
  auto restore = [](torch::optim::Optimizer& opt, const std::string& bytes) {
    std::istringstream in(bytes);
    torch::serialize::InputArchive archive;
    archive.load_from(in);
    opt.load(archive);
  };
  const std::string gen_backup = snapshot(*generator_opt_), asst_backup = snapshot(*assistant_opt_);
  try {
    torch::serialize::InputArchive g, a;
    TORCH_CHECK(ar.try_read("optim_generator", g) && ar.try_read("optim_assistant", a), "missing optimizer state");
    generator_opt_->load(g);
    assistant_opt_->load(a);
  } catch (const c10::Error& e) {
    restore(*generator_opt_, gen_backup);
    restore(*assistant_opt_, asst_backup);
    TORCH_CHECK(false, "diffinstruct::DiStarTrainer::load: cannot restore the optimizers from '", path, "': ", e.what_without_backtrace());
  }
  auto rng = at::make_generator<at::CPUGeneratorImpl>(options.seed());
  rng.set_state(rng_state);

  // Phase 2: commit.
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < gen.size(); ++i) gen_live[i].second.detach().copy_(gen[i]);
  for (size_t i = 0; i < asst.size(); ++i) asst_live[i].second.detach().copy_(asst[i]);
  ema_ = options.ema_decay() > 0 ? ExponentialMovingAverage(generator_params_, options.ema_decay()) : ExponentialMovingAverage();
  for (size_t i = 0; i < ema.size(); ++i) ema_.shadow()[i].copy_(ema[i]);
  options_ = options;
  rng_ = rng;
  step_ = step;
  non_finite_total_ = non_finite_total;
  broadcast_state();  // data-parallel: every rank continues from rank 0's values
}

} // namespace diffinstruct
