#pragma once
// A training run's resumable state in one file — the network, its optimizer, its EMA shadow and the
// next step — for the examples' long pretraining stages (03's and 06's teachers): written atomically
// (io/atomic_file.hpp) every few hundred steps, read back after an interruption.
#include <diffinstruct/io/atomic_file.hpp>
#include <diffinstruct/trainer/ema.hpp>

#include <torch/torch.h>

#include <string>

namespace examples_common {

/// Writes `net`, `opt`, the EMA's shadow and `next_step` to `path` (replaced atomically).
inline void save_training_state(const std::string& path, torch::nn::Module& net, torch::optim::Optimizer& opt,
                                diffinstruct::ExponentialMovingAverage& ema, int64_t next_step, const std::string& what) {
  torch::serialize::OutputArchive ar, a_net, a_opt;
  net.save(a_net);
  opt.save(a_opt);
  ar.write("net", a_net);
  ar.write("opt", a_opt);
  for (size_t i = 0; i < ema.shadow().size(); ++i) ar.write("ema_" + std::to_string(i), ema.shadow()[i]);
  ar.write("step", torch::tensor(next_step));
  diffinstruct::io::replace_file_atomically(path, [&](const std::string& tmp) {
    ar.save_to(tmp);
    diffinstruct::io::fsync_file(tmp, path);
  }, 1, what);
}

/// Reads what save_training_state wrote into `net`, `opt` and the EMA; returns the next step.
inline int64_t load_training_state(const std::string& path, torch::nn::Module& net, torch::optim::Optimizer& opt,
                                   diffinstruct::ExponentialMovingAverage& ema) {
  torch::serialize::InputArchive ar, a_net, a_opt;
  ar.load_from(path);
  ar.read("net", a_net);
  ar.read("opt", a_opt);
  net.load(a_net);
  opt.load(a_opt);
  for (size_t i = 0; i < ema.shadow().size(); ++i) ar.read("ema_" + std::to_string(i), ema.shadow()[i]);
  torch::Tensor step;
  ar.read("step", step);
  return step.item<int64_t>();
}

}  // namespace examples_common
