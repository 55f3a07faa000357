#pragma once
/// \file An optimizer's state as named tensors and text, so that a checkpoint can store it tensor by
/// tensor (each checksummed, streamed) and restore it onto each parameter's own device and dtype.
///
/// Adam, AdamW and SGD are stored natively: per parameter `<prefix>/<parameter name>/<state field>`,
/// plus each parameter group's options and membership as text (an LR schedule's changes survive a
/// resume). Any other torch::optim optimizer is stored as LibTorch's own archive, one byte tensor,
/// restored onto the device of its first parameter.

#include <diffinstruct/core/describe.hpp>
#include <diffinstruct/io/safetensors.hpp>
#include <diffinstruct/trainer/model_state.hpp>
#include <diffinstruct/trainer/optimizers.hpp>

#include <torch/torch.h>

#include <cmath>
#include <map>
#include <typeinfo>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

namespace diffinstruct {
namespace detail {

inline std::string optimizer_type(const torch::optim::Optimizer& opt) {
  if (dynamic_cast<const torch::optim::AdamW*>(&opt)) return "adamw";
  if (dynamic_cast<const torch::optim::Adam*>(&opt)) return "adam";
  if (dynamic_cast<const torch::optim::SGD*>(&opt)) return "sgd";
  return std::string("libtorch_archive:") + typeid(opt).name();
}

template <class O>
std::string adam_options_text(const O& o) {
  return "lr=" + exact_number(o.lr()) + ",beta1=" + exact_number(std::get<0>(o.betas())) + ",beta2=" +
         exact_number(std::get<1>(o.betas())) + ",eps=" + exact_number(o.eps()) + ",weight_decay=" + exact_number(o.weight_decay()) +
         ",amsgrad=" + (o.amsgrad() ? "1" : "0");
}
inline std::string sgd_options_text(const torch::optim::SGDOptions& o) {
  return "lr=" + exact_number(o.lr()) + ",momentum=" + exact_number(o.momentum()) + ",dampening=" + exact_number(o.dampening()) +
         ",weight_decay=" + exact_number(o.weight_decay()) + ",nesterov=" + (o.nesterov() ? "1" : "0");
}

/// "k=v,k=v" -> map; errors name `what`.
inline std::map<std::string, double> parse_options_text(const std::string& text, const std::string& what) {
  std::map<std::string, double> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const auto eq = item.find('=');
    TORCH_CHECK(eq != std::string::npos, "diffinstruct: ", what, " has a malformed entry '", item, "'");
    char* end = nullptr;
    const std::string v = item.substr(eq + 1);
    const double x = std::strtod(v.c_str(), &end);
    TORCH_CHECK(end && *end == '\0' && !v.empty() && std::isfinite(x), "diffinstruct: ", what, " has a malformed value '", item, "'");
    out[item.substr(0, eq)] = x;
  }
  return out;
}

/// Parameter names of the optimizer's groups, "a,b,c" per group; every parameter must be named.
inline std::vector<std::string> group_members(torch::optim::Optimizer& opt, const std::unordered_map<const void*, std::string>& names,
                                              const char* which) {
  std::vector<std::string> out;
  for (auto& group : opt.param_groups()) {
    std::string list;
    for (const auto& p : group.params()) {
      const auto it = names.find(p.unsafeGetTensorImpl());
      TORCH_CHECK(it != names.end(), "diffinstruct::DiStarTrainer: the ", which,
                  " optimizer holds a tensor that is not one of the trainer's parameters; it cannot be checkpointed");
      list += (list.empty() ? "" : ",") + it->second;
    }
    out.push_back(list);
  }
  return out;
}

/// Appends `opt`'s state to a checkpoint's tensors and metadata under `prefix` ("optim/generator").
inline void optimizer_to_record(torch::optim::Optimizer& opt, const NamedTensors& params, const std::string& prefix, const char* which,
                                std::vector<std::pair<std::string, torch::Tensor>>& tensors, std::map<std::string, std::string>& meta) {
  std::unordered_map<const void*, std::string> names;
  for (const auto& [n, t] : params) names.emplace(t.unsafeGetTensorImpl(), n);
  const std::string type = optimizer_type(opt);
  meta[prefix + ".type"] = type;
  const auto members = group_members(opt, names, which);
  meta[prefix + ".groups"] = std::to_string(members.size());
  for (size_t g = 0; g < members.size(); ++g) meta[prefix + ".group" + std::to_string(g) + ".params"] = members[g];
  if (type.rfind("libtorch_archive:", 0) == 0) {
    torch::serialize::OutputArchive ar;
    opt.save(ar);
    std::ostringstream bytes;
    ar.save_to(bytes);
    const std::string s = bytes.str();
    tensors.emplace_back(prefix + "/archive",
                         torch::from_blob(const_cast<char*>(s.data()), {static_cast<int64_t>(s.size())}, torch::kUInt8).clone());
    return;
  }
  for (size_t g = 0; g < opt.param_groups().size(); ++g) {
    auto& group = opt.param_groups()[g];
    const std::string key = prefix + ".group" + std::to_string(g) + ".options";
    if (type == "adam") meta[key] = adam_options_text(static_cast<const torch::optim::AdamOptions&>(group.options()));
    else if (type == "adamw") meta[key] = adam_options_text(static_cast<const torch::optim::AdamWOptions&>(group.options()));
    else meta[key] = sgd_options_text(static_cast<const torch::optim::SGDOptions&>(group.options()));
    for (const auto& p : group.params()) {
      const auto it = opt.state().find(optimizer_state_key(p));
      if (it == opt.state().end()) continue;
      const std::string base = prefix + "/" + names.at(p.unsafeGetTensorImpl()) + "/";
      auto add = [&](const char* field, const torch::Tensor& t) {
        if (t.defined() && t.numel() > 0) tensors.emplace_back(base + field, t.detach());
      };
      if (type == "sgd") {
        add("momentum_buffer", static_cast<const torch::optim::SGDParamState&>(*it->second).momentum_buffer());
        tensors.emplace_back(base + "has_state", torch::ones({}, torch::kUInt8));
        continue;
      }
      auto put = [&](const auto& st) {
        tensors.emplace_back(base + "step", torch::tensor(static_cast<int64_t>(st.step())));
        add("exp_avg", st.exp_avg());
        add("exp_avg_sq", st.exp_avg_sq());
        add("max_exp_avg_sq", st.max_exp_avg_sq());
      };
      if (type == "adam") put(static_cast<const torch::optim::AdamParamState&>(*it->second));
      else put(static_cast<const torch::optim::AdamWParamState&>(*it->second));
    }
  }
}

/// Checks that a checkpoint's optimizer record fits `opt` (type, groups, shapes); throws naming `path`.
inline void check_optimizer_record(torch::optim::Optimizer& opt, const NamedTensors& params, const std::string& prefix, const char* which,
                                   const io::SafetensorsFile& file) {
  const auto& meta = file.metadata();
  auto get = [&](const std::string& key) -> const std::string& {
    const auto it = meta.find(key);
    TORCH_CHECK(it != meta.end(), "diffinstruct::DiStarTrainer::load: checkpoint '", file.path(), "' has no '", key, "'");
    return it->second;
  };
  const std::string type = optimizer_type(opt);
  TORCH_CHECK(get(prefix + ".type") == type, "diffinstruct::DiStarTrainer::load: the ", which, " optimizer in '", file.path(), "' is ",
              get(prefix + ".type"), " but this trainer's is ", type);
  std::unordered_map<const void*, std::string> names;
  std::unordered_map<std::string, torch::Tensor> by_name;
  for (const auto& [n, t] : params) {
    names.emplace(t.unsafeGetTensorImpl(), n);
    by_name.emplace(n, t);
  }
  const auto members = group_members(opt, names, which);
  TORCH_CHECK(get(prefix + ".groups") == std::to_string(members.size()), "diffinstruct::DiStarTrainer::load: the ", which,
              " optimizer in '", file.path(), "' has ", get(prefix + ".groups"), " parameter groups, this trainer's has ", members.size());
  for (size_t g = 0; g < members.size(); ++g) {
    TORCH_CHECK(get(prefix + ".group" + std::to_string(g) + ".params") == members[g], "diffinstruct::DiStarTrainer::load: parameter group ",
                g, " of the ", which, " optimizer in '", file.path(), "' holds other parameters than this trainer's");
  }
  if (type.rfind("libtorch_archive:", 0) == 0) {
    file.at(prefix + "/archive");
    return;
  }
  const std::string head = prefix + "/";
  for (const auto& e : file.tensors()) {
    if (e.name.compare(0, head.size(), head) != 0) continue;
    const auto slash = e.name.rfind('/');
    const std::string pname = e.name.substr(head.size(), slash - head.size()), field = e.name.substr(slash + 1);
    const auto it = by_name.find(pname);
    TORCH_CHECK(it != by_name.end(), "diffinstruct::DiStarTrainer::load: '", file.path(), "' has ", which, " optimizer state for '", pname,
                "', which this trainer does not have");
    if (field == "step" || field == "has_state") continue;
    TORCH_CHECK(c10::IntArrayRef(e.shape) == it->second.sizes(), "diffinstruct::DiStarTrainer::load: ", which, " optimizer state '",
                e.name, "' in '", file.path(), "' has shape ", c10::IntArrayRef(e.shape), ", expected ", it->second.sizes());
  }
}

/// Restores `opt` from a checked record: state tensors are created like each parameter (its device
/// and dtype) and filled from the file; group options too unless `keep_live_options`.
inline void optimizer_from_record(torch::optim::Optimizer& opt, const NamedTensors& params, const std::string& prefix,
                                  const io::SafetensorsFile& file, bool keep_live_options) {
  const std::string type = optimizer_type(opt);
  if (type.rfind("libtorch_archive:", 0) == 0) {
    const auto bytes = file.read(prefix + "/archive");
    std::istringstream in(std::string(static_cast<const char*>(bytes.data_ptr()), static_cast<size_t>(bytes.numel())));
    torch::serialize::InputArchive ar;
    const auto device = params.empty() ? torch::Device(torch::kCPU) : params.front().second.device();
    ar.load_from(in, device);
    opt.load(ar);
    return;
  }
  const auto& meta = file.metadata();
  if (!keep_live_options) {
    for (size_t g = 0; g < opt.param_groups().size(); ++g) {
      const std::string key = prefix + ".group" + std::to_string(g) + ".options";
      const auto o = parse_options_text(meta.at(key), "'" + key + "' in '" + file.path() + "'");
      auto& group = opt.param_groups()[g];
      auto need = [&](const char* k) {
        const auto it = o.find(k);
        TORCH_CHECK(it != o.end(), "diffinstruct::DiStarTrainer::load: '", key, "' in '", file.path(), "' has no ", k);
        return it->second;
      };
      auto set_adam = [&](auto& a) {
        a.lr(need("lr")).betas(std::make_tuple(need("beta1"), need("beta2"))).eps(need("eps")).weight_decay(need("weight_decay"));
        a.amsgrad(need("amsgrad") != 0);
      };
      if (type == "adam") set_adam(static_cast<torch::optim::AdamOptions&>(group.options()));
      else if (type == "adamw") set_adam(static_cast<torch::optim::AdamWOptions&>(group.options()));
      else {
        auto& s = static_cast<torch::optim::SGDOptions&>(group.options());
        s.lr(need("lr")).momentum(need("momentum")).dampening(need("dampening")).weight_decay(need("weight_decay"));
        s.nesterov(need("nesterov") != 0);
      }
    }
  }
  torch::NoGradGuard no_grad;
  opt.state().clear();
  for (const auto& entry : params) {
    const auto& p = entry.second;  // not a structured binding: lambdas below capture it
    const std::string base = prefix + "/" + entry.first + "/";
    auto load_like = [&](const char* field) {
      const auto* e = file.find(base + field);
      if (!e) return torch::Tensor();
      auto t = torch::empty_like(p, torch::MemoryFormat::Contiguous);
      file.read_into(*e, t);
      return t;
    };
    if (type == "sgd") {
      if (!file.find(base + "has_state")) continue;
      auto st = std::make_unique<torch::optim::SGDParamState>();
      st->momentum_buffer(load_like("momentum_buffer"));
      opt.state()[optimizer_state_key(p)] = std::move(st);
      continue;
    }
    const auto* step = file.find(base + "step");
    if (!step) continue;
    const int64_t steps = file.read(step->name).item<int64_t>();
    auto fill = [&](auto st) {
      st->step(steps);
      st->exp_avg(load_like("exp_avg"));
      st->exp_avg_sq(load_like("exp_avg_sq"));
      if (auto m = load_like("max_exp_avg_sq"); m.defined()) st->max_exp_avg_sq(m);
      opt.state()[optimizer_state_key(p)] = std::move(st);
    };
    if (type == "adam") fill(std::make_unique<torch::optim::AdamParamState>());
    else fill(std::make_unique<torch::optim::AdamWParamState>());
  }
}

} // namespace detail
} // namespace diffinstruct
