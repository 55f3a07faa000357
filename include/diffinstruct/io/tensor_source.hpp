#pragma once
/// \file Loading a module from named tensors that are read one at a time, whatever file they come
/// from: a `TensorSource` is a name, a shape, a dtype and a function that reads the tensor. The
/// PyTorch checkpoint reader (torch_checkpoint.hpp) gives sources with the names as saved; a model's
/// loader may rename them, split one into several (OpenCLIP's fused q/k/v) or transpose one (its
/// projections as matrices) before they reach `load_tensor_sources`, which checks every name and
/// shape against the module first, as `load_safetensors` does, and only then reads and copies, one
/// tensor at a time (never a second copy of the model in memory).

#include <diffinstruct/io/module_state.hpp>

#include <torch/torch.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace diffinstruct {
namespace io {

struct TensorSource {
  std::string name;
  std::vector<int64_t> shape;
  c10::ScalarType dtype = c10::ScalarType::Float;
  std::function<torch::Tensor()> read;  ///< the tensor, of `shape` and `dtype`, on the CPU
};

/// The same source under another name.
inline TensorSource renamed(TensorSource s, std::string name) {
  s.name = std::move(name);
  return s;
}

/// Rows [begin, end) of a source's first dimension (one of q, k, v in a fused in-projection).
inline TensorSource row_slice(const TensorSource& s, std::string name, int64_t begin, int64_t end) {
  TORCH_CHECK(!s.shape.empty() && begin >= 0 && begin <= end && end <= s.shape[0], "diffinstruct::io: cannot take rows [", begin, ", ", end,
              ") of '", s.name, "' of shape ", c10::IntArrayRef(s.shape));
  TensorSource out = s;
  out.name = std::move(name);
  out.shape[0] = end - begin;
  auto read = s.read;
  out.read = [read, begin, end]() { return read().slice(0, begin, end).contiguous(); };
  return out;
}

/// A 2-D source transposed (a `x @ W` matrix as a Linear's `[out, in]` weight).
inline TensorSource transposed(const TensorSource& s, std::string name) {
  TORCH_CHECK(s.shape.size() == 2, "diffinstruct::io: '", s.name, "' is ", c10::IntArrayRef(s.shape), ", expected a matrix");
  TensorSource out = s;
  out.name = std::move(name);
  out.shape = {s.shape[1], s.shape[0]};
  auto read = s.read;
  out.read = [read]() { return read().t().contiguous(); };
  return out;
}

/// The tensors of a safetensors file (or a sharded index), read one at a time.
inline std::vector<TensorSource> safetensors_sources(const std::string& path) {
  auto ckpt = std::make_shared<SafetensorsCheckpoint>(path);
  std::vector<TensorSource> out;
  for (const auto& name : ckpt->names()) {
    const auto* e = ckpt->find(name);
    out.push_back({name, e->shape, e->dtype, [ckpt, name]() { return ckpt->read(name); }});
  }
  return out;
}

namespace detail {

/// The comparison of load_tensor_sources, and the module name -> source pairs it found.
inline LoadReport compare_sources(const torch::nn::Module& module, const std::vector<TensorSource>& sources, const LoadOptions& options,
                                  const std::string& what, std::map<std::string, const TensorSource*>* pairs) {
  LoadReport report;
  std::map<std::string, torch::Tensor> targets;
  for (auto& [name, t] : detail::module_tensors(module)) {
    targets.emplace(name, t);
    report.parameters += t.numel();
  }
  std::map<std::string, const TensorSource*> source_of;
  for (const auto& s : sources) {
    const std::string name = options.rename() ? options.rename()(s.name) : s.name;
    report.file_dtypes[c10::toString(s.dtype)]++;
    const auto it = targets.find(name);
    if (it == targets.end()) {
      report.unexpected.push_back(s.name);
      continue;
    }
    TORCH_CHECK(source_of.emplace(name, &s).second, "diffinstruct::io: ", what, " has two tensors for '", name, "'");
    if (it->second.sizes() != c10::IntArrayRef(s.shape))
      report.mismatched.push_back(name + ": file " + c10::str(c10::IntArrayRef(s.shape)) + " vs module " + c10::str(it->second.sizes()));
  }
  for (const auto& [name, t] : targets)
    if (!source_of.count(name)) report.missing.push_back(name);
  if (pairs) *pairs = std::move(source_of);
  return report;
}

} // namespace detail

/// What load_tensor_sources would find, reading nothing (works on a module on the `meta` device).
inline LoadReport compare_tensor_sources(const torch::nn::Module& module, const std::vector<TensorSource>& sources, const LoadOptions& options = {},
                                         const std::string& what = "the checkpoint") {
  return detail::compare_sources(module, sources, options, what, nullptr);
}

/// Checks every name and shape of `sources` against `module`'s parameters and buffers, then (when
/// strict and clean, or not strict) reads and copies each matching tensor, converted to the
/// module's dtype and device. `what` names the file in errors.
inline LoadReport load_tensor_sources(torch::nn::Module& module, const std::vector<TensorSource>& sources, const LoadOptions& options = {},
                                      const std::string& what = "the checkpoint") {
  std::map<std::string, const TensorSource*> source_of;
  LoadReport report = detail::compare_sources(module, sources, options, what, &source_of);
  TORCH_CHECK(!options.strict() || report.clean(), "diffinstruct::io: ", what, " does not match the module (nothing was loaded): ", report.summary());
  std::map<std::string, torch::Tensor> targets;
  for (auto& [name, t] : detail::module_tensors(module)) targets.emplace(name, t);
  torch::NoGradGuard no_grad;
  for (const auto& [name, s] : source_of) {
    auto& dst = targets.at(name);
    if (dst.sizes() != c10::IntArrayRef(s->shape)) continue;
    TORCH_CHECK(s->dtype != c10::ScalarType::Bool || dst.scalar_type() == c10::ScalarType::Bool, "diffinstruct::io: tensor '", s->name,
                "' of ", what, " is bool, but the module's '", name, "' is ", dst.scalar_type());
    const torch::Tensor src = s->read();
    TORCH_CHECK(src.sizes() == c10::IntArrayRef(s->shape), "diffinstruct::io: tensor '", s->name, "' of ", what, " read as ", src.sizes(),
                ", declared ", c10::IntArrayRef(s->shape));
    dst.copy_(src.to(dst.scalar_type()));
    ++report.loaded;
  }
  return report;
}

} // namespace io
} // namespace diffinstruct
