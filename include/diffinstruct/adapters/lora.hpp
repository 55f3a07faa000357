#pragma once
/// \file LoRA (low-rank adaptation) for the native models' `Linear` and `Conv2d` layers, in peft's
/// form and with peft's parameter names, so that a LoRA trained here loads into diffusers and back
/// (adapters/lora_file.hpp):
///
///   y = W x + b + s · B(A(dropout(x))),   s = scale · alpha / rank
///
/// For a Linear, A is [rank, in] and B is [out, rank]; for a Conv2d, A is a convolution with the
/// layer's kernel, stride and padding into `rank` channels and B a 1×1 convolution (as peft). B
/// starts at zero, so an adapted model computes exactly what its base does until B is trained.
/// A and B are registered on the adapted layer as submodules `lora_A` and `lora_B`: the model's
/// parameter names become peft's (`...attn1.to_q.lora_A.weight`), and the base's names do not change.
/// A layer may carry several adapters when each has a name (LoraOptions::adapter_name): they are
/// registered as peft names several adapters in memory (`...to_q.lora_A.generator.weight`) and added
/// in the order they were built. That is how the roles of a run share one base
/// (adapters/shared_base.hpp); a file still holds one adapter under peft's saved names.
///
/// Example:
///   auto lora = adapters::add_lora(*unet, adapters::LoraOptions().rank(8).alpha(8));  // base frozen
///   optimizer(lora.parameters());       // only A and B train
///   {
///     adapters::LoraDisabledScope off(lora);  // the base model: the teacher of a shared-base run
///     eps_teacher = unet->forward(x, t, c);
///   }
///   lora.merge();  // bake s·BA into the base weights (unmerge() takes it out again)

#include <diffinstruct/core/adapter_context.hpp>
#include <diffinstruct/models/layers.hpp>

#include <torch/torch.h>

#include <cctype>
#include <cmath>
#include <memory>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

namespace diffinstruct {
namespace adapters {

/// How A is initialised (B is always zero at start).
enum class LoraInit {
  kKaimingUniform,  ///< peft's default (`init_lora_weights=True`): A ~ U(±1/√fan_in)
  kGaussian,        ///< peft's "gaussian": A ~ N(0, 1/rank²)
};

/// An adapter's name is empty or a module name peft and LibTorch both accept: letters, digits, '_'.
inline void check_adapter_name(const std::string& name, const char* where) {
  bool ok = name.size() <= 64 && name != "lora_A" && name != "lora_B";
  for (char ch : name) ok = ok && (std::isalnum(static_cast<unsigned char>(ch)) || ch == '_');
  TORCH_CHECK(ok, where, ": an adapter name must be empty or up to 64 letters, digits and '_' (and not lora_A / lora_B), got '", name, "'");
}

/// Which layers get an adapter, and its shape.
struct LoraOptions {
  /// Module names to adapt, matched as peft matches a list: a module named N is adapted when N equals
  /// a target or ends with "." + target. The default is the attention projections of diffusers' UNets.
  TORCH_ARG(std::vector<std::string>, target_modules) = std::vector<std::string>{"to_q", "to_k", "to_v", "to_out.0"};
  TORCH_ARG(int64_t, rank) = 4;
  /// The scale is alpha / rank (peft's lora_alpha); alpha = rank gives scale 1.
  TORCH_ARG(double, alpha) = 4;
  /// Dropout on the adapter's input while the layer is in training mode.
  TORCH_ARG(double, dropout) = 0;
  TORCH_ARG(LoraInit, init) = LoraInit::kKaimingUniform;
  /// Set requires_grad(false) on every parameter of the model that is not an adapter's, as peft does:
  /// the adapters are what trains.
  TORCH_ARG(bool, freeze_base) = true;
  /// The adapters' dtype. Unset: float32 (the trained weights are master weights, docs/memory.md),
  /// or float64 when the base is float64.
  TORCH_ARG(c10::optional<c10::ScalarType>, dtype) = c10::nullopt;
  /// Empty: the layer's only adapter (`lora_A.weight`). A name ("generator"; letters, digits and
  /// '_'): one of several on the layer (`lora_A.generator.weight`), found by find_lora(model, name).
  TORCH_ARG(std::string, adapter_name) = "";

 public:
  void validate() const {
    check_adapter_name(adapter_name_, "diffinstruct::adapters::LoraOptions");
    TORCH_CHECK(!target_modules_.empty(), "diffinstruct::adapters::LoraOptions: expected at least one target module name, got none");
    for (const auto& t : target_modules_) {
      TORCH_CHECK(!t.empty(), "diffinstruct::adapters::LoraOptions: a target module name is empty");
    }
    TORCH_CHECK(rank_ > 0, "diffinstruct::adapters::LoraOptions: rank must be positive, got ", rank_);
    TORCH_CHECK(std::isfinite(alpha_) && alpha_ > 0, "diffinstruct::adapters::LoraOptions: alpha must be positive and finite, got ", alpha_);
    TORCH_CHECK(dropout_ >= 0 && dropout_ < 1, "diffinstruct::adapters::LoraOptions: dropout must be in [0, 1), got ", dropout_);
    TORCH_CHECK(!dtype_ || c10::isFloatingType(*dtype_), "diffinstruct::adapters::LoraOptions: dtype must be floating, got ", *dtype_);
  }
};

/// One layer's adapter. Built by add_lora() / load_lora(); the layer calls adapt() in its forward.
class LoraLayer final : public models::LayerAdapter {
 public:
  /// Adds lora_A and lora_B to `layer` (a models::LinearImpl or models::Conv2dImpl), as themselves
  /// or, for a named adapter, under them as `adapter_name`.
  LoraLayer(torch::nn::Module& layer, int64_t rank, double alpha, double dropout, LoraInit init, c10::ScalarType dtype,
            std::string adapter_name = "")
      : rank_(rank), alpha_(alpha), dropout_(dropout), name_(std::move(adapter_name)) {
    check_adapter_name(name_, "diffinstruct::adapters::LoraLayer");
    TORCH_CHECK(rank > 0, "diffinstruct::adapters::LoraLayer: rank must be positive, got ", rank);
    TORCH_CHECK(std::isfinite(alpha) && alpha > 0, "diffinstruct::adapters::LoraLayer: alpha must be positive and finite, got ", alpha);
    TORCH_CHECK(dropout >= 0 && dropout < 1, "diffinstruct::adapters::LoraLayer: dropout must be in [0, 1), got ", dropout);
    TORCH_CHECK(c10::isFloatingType(dtype), "diffinstruct::adapters::LoraLayer: the adapters' dtype must be floating, got ", dtype);
    auto o = models::BuildOptions().dtype(dtype);
    if (auto* linear = dynamic_cast<models::LinearImpl*>(&layer)) {
      base_weight_ = linear->weight;
      o.device(base_weight_.device());
      const int64_t out = base_weight_.size(0), in = base_weight_.size(1);
      a_ = attach(layer, "lora_A", models::Linear(in, rank, false, o))->weight;
      b_ = attach(layer, "lora_B", models::Linear(rank, out, false, o))->weight;
    } else if (auto* conv = dynamic_cast<models::Conv2dImpl*>(&layer)) {
      base_weight_ = conv->weight;
      o.device(base_weight_.device());
      const int64_t out = base_weight_.size(0), in = base_weight_.size(1), k = base_weight_.size(2);
      conv_ = true;
      stride_ = conv->stride();
      padding_ = conv->padding();
      a_ = attach(layer, "lora_A", models::Conv2d(in, rank, k, stride_, padding_, false, o))->weight;
      b_ = attach(layer, "lora_B", models::Conv2d(rank, out, 1, 1, 0, false, o))->weight;
    } else {
      TORCH_CHECK(false, "diffinstruct::adapters::LoraLayer: expected a diffinstruct::models Linear or Conv2d layer, got ", layer.name());
    }
    torch::NoGradGuard no_grad;
    if (init == LoraInit::kGaussian) a_.normal_(0, 1.0 / static_cast<double>(rank));
    b_.zero_();  // the adapted layer computes what its base does
    a_.requires_grad_(true);
    b_.requires_grad_(true);
  }

  torch::Tensor adapt(const torch::Tensor& x, torch::Tensor y, bool training) const override {
    if (!enabled() || merged_ || scale_ == 0) return y;
    auto h = dropout_ > 0 && training ? torch::dropout(x, dropout_, true) : x;
    // A frozen base stored in bf16 meets float32 adapters outside autocast: the adapter computes in
    // its own dtype, and its contribution joins the base's output in the output's dtype. Under
    // autocast the matrix products cast their operands themselves.
    if (h.scalar_type() != a_.scalar_type() && !autocast_on(h)) h = h.to(a_.scalar_type());
    const auto d = conv_ ? torch::conv2d(torch::conv2d(h, a_, {}, stride_, padding_), b_) : torch::linear(torch::linear(h, a_), b_);
    return y + (d * effective_scale()).to(y.scalar_type());
  }

  /// s · B·A in the base weight's shape, in the adapters' dtype (at least float32).
  torch::Tensor delta_weight() const {
    torch::NoGradGuard no_grad;
    const auto dt = a_.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
    const auto a = a_.to(dt).reshape({rank_, -1}), b = b_.to(dt).reshape({b_.size(0), rank_});
    return (b.mm(a) * effective_scale()).reshape(base_weight_.sizes());
  }
  /// Adds s·B·A into the base weight; the adapter then adds nothing in forward until unmerge().
  void merge() {
    TORCH_CHECK(!merged_, "diffinstruct::adapters::LoraLayer::merge: already merged");
    torch::NoGradGuard no_grad;
    const auto delta = delta_weight();
    base_weight_.copy_((base_weight_.to(delta.scalar_type()) + delta).to(base_weight_.scalar_type()));
    merged_ = true;
  }
  /// Subtracts what merge() added (the base comes back up to the base dtype's round-off).
  void unmerge() {
    TORCH_CHECK(merged_, "diffinstruct::adapters::LoraLayer::unmerge: not merged");
    torch::NoGradGuard no_grad;
    const auto delta = delta_weight();
    base_weight_.copy_((base_weight_.to(delta.scalar_type()) - delta).to(base_weight_.scalar_type()));
    merged_ = false;
  }

  const torch::Tensor& lora_A() const { return a_; }
  const torch::Tensor& lora_B() const { return b_; }
  const torch::Tensor& base_weight() const { return base_weight_; }
  int64_t rank() const { return rank_; }
  double alpha() const { return alpha_; }
  /// Empty for a layer's only adapter; its name when it is one of several.
  const std::string& adapter_name() const { return name_; }
  double dropout() const { return dropout_; }
  bool is_conv() const { return conv_; }
  /// The run-time multiplier of alpha / rank (diffusers' adapter weight); 1 by default.
  double scale() const { return scale_; }
  void set_scale(double s) {
    TORCH_CHECK(std::isfinite(s), "diffinstruct::adapters::LoraLayer::set_scale: expected a finite scale, got ", s);
    TORCH_CHECK(!merged_, "diffinstruct::adapters::LoraLayer::set_scale: unmerge() before changing the scale of a merged adapter");
    scale_ = s;
  }
  double effective_scale() const { return scale_ * alpha_ / static_cast<double>(rank_); }
  /// Enabled, and not disabled on this thread by a LoraDisabledScope?
  bool enabled() const { return enabled_ && !diffinstruct::detail::adapter_disabled(this); }
  /// Switches the adapter on or off for every thread, until switched again.
  void set_enabled(bool on) { enabled_ = on; }
  bool merged() const { return merged_; }

 private:
  /// Registers A or B on the layer: as `slot` itself, or as `name_` under a `slot` holder shared by
  /// the layer's named adapters.
  template <class Holder>
  Holder attach(torch::nn::Module& layer, const char* slot, Holder factor) {
    if (name_.empty()) return layer.register_module(slot, factor);
    std::shared_ptr<torch::nn::Module> holder;
    for (const auto& child : layer.named_children()) {
      if (child.key() == slot) holder = child.value();
    }
    if (!holder) holder = layer.register_module(slot, std::make_shared<torch::nn::Module>(slot));
    return holder->register_module(name_, factor);
  }
  static bool autocast_on(const torch::Tensor& x) {
    const auto s = compat::autocast_state();
    return x.is_cuda() ? s.cuda : (x.is_cpu() && s.cpu);
  }

  torch::Tensor base_weight_, a_, b_;
  int64_t rank_;
  double alpha_, dropout_;
  std::string name_;
  bool conv_ = false;
  int64_t stride_ = 1, padding_ = 0;
  double scale_ = 1;
  bool enabled_ = true, merged_ = false;
};

/// Does the module named `name` match one of `targets` (peft's rule for a list of targets)?
inline bool lora_target_matches(const std::string& name, const std::vector<std::string>& targets) {
  for (const auto& t : targets) {
    if (name == t) return true;
    if (name.size() > t.size() && name.compare(name.size() - t.size(), t.size(), t) == 0 && name[name.size() - t.size() - 1] == '.') return true;
  }
  return false;
}

/// The adapters of one model, by module name (in the model's module order).
class Lora {
 public:
  using Entry = std::pair<std::string, std::shared_ptr<LoraLayer>>;
  Lora() = default;
  explicit Lora(std::vector<Entry> layers) : layers_(std::move(layers)) {}

  const std::vector<Entry>& layers() const { return layers_; }
  bool empty() const { return layers_.empty(); }
  size_t size() const { return layers_.size(); }

  /// Every adapter's A and B, in module order: what an optimizer for the LoRA trains.
  std::vector<torch::Tensor> parameters() const {
    std::vector<torch::Tensor> out;
    for (const auto& e : layers_) {
      out.push_back(e.second->lora_A());
      out.push_back(e.second->lora_B());
    }
    return out;
  }
  /// (peft name, tensor): "<module>.lora_A.weight", "<module>.lora_B.weight".
  std::vector<std::pair<std::string, torch::Tensor>> named_parameters() const {
    std::vector<std::pair<std::string, torch::Tensor>> out;
    for (const auto& e : layers_) {
      out.emplace_back(e.first + ".lora_A.weight", e.second->lora_A());
      out.emplace_back(e.first + ".lora_B.weight", e.second->lora_B());
    }
    return out;
  }
  int64_t parameter_count() const {
    int64_t n = 0;
    for (const auto& p : parameters()) n += p.numel();
    return n;
  }

  void set_enabled(bool on) const {
    for (const auto& e : layers_) e.second->set_enabled(on);
  }
  /// All adapters enabled? (false when there are none)
  bool enabled() const {
    for (const auto& e : layers_) {
      if (!e.second->enabled()) return false;
    }
    return !layers_.empty();
  }
  /// The run-time multiplier of every adapter's alpha / rank.
  void set_scale(double s) const {
    for (const auto& e : layers_) e.second->set_scale(s);
  }
  void merge() const {
    for (const auto& e : layers_) e.second->merge();
  }
  void unmerge() const {
    for (const auto& e : layers_) e.second->unmerge();
  }

 private:
  std::vector<Entry> layers_;
};

/// Disables every adapter of a Lora on this thread for a scope (also on throw): the base model's
/// forward, such as the teacher's pass on a shared base. The adapters are recorded in the thread's
/// disabled set (core/adapter_context.hpp), which activation checkpointing carries into its
/// recompute, so a block of this pass recomputed in backward, after the scope, still sees them off.
class LoraDisabledScope {
 public:
  explicit LoraDisabledScope(const Lora& lora) {
    auto& d = diffinstruct::detail::disabled_adapters();
    adapters_ = d.adapters.size(), parameters_ = d.parameters.size();
    for (const auto& e : lora.layers()) {
      d.adapters.push_back(e.second.get());
      d.parameters.push_back(e.second->lora_A().unsafeGetTensorImpl());
      d.parameters.push_back(e.second->lora_B().unsafeGetTensorImpl());
    }
  }
  ~LoraDisabledScope() {
    auto& d = diffinstruct::detail::disabled_adapters();  // scopes nest: this one's entries are the last
    if (d.adapters.size() >= adapters_) d.adapters.resize(adapters_);
    if (d.parameters.size() >= parameters_) d.parameters.resize(parameters_);
  }
  LoraDisabledScope(const LoraDisabledScope&) = delete;
  LoraDisabledScope& operator=(const LoraDisabledScope&) = delete;

 private:
  size_t adapters_ = 0, parameters_ = 0;
};

namespace detail {
inline std::string last_component(const std::string& name) {
  const auto dot = name.rfind('.');
  return dot == std::string::npos ? name : name.substr(dot + 1);
}
/// Is this module part of an adapter (lora_A / lora_B, or a named adapter's factor under them), not
/// a layer of the base?
inline bool is_adapter_module(const std::string& name) {
  const auto last = last_component(name);
  if (last == "lora_A" || last == "lora_B") return true;
  const auto dot = name.rfind('.');
  return dot != std::string::npos && is_adapter_module(name.substr(0, dot)) && last_component(name.substr(0, dot)).rfind("lora_", 0) == 0;
}
inline bool is_adaptable(torch::nn::Module& m) {
  return dynamic_cast<models::LinearImpl*>(&m) != nullptr || dynamic_cast<models::Conv2dImpl*>(&m) != nullptr;
}
/// The adapters of a Linear or Conv2d; null for any other module.
inline std::vector<std::shared_ptr<models::LayerAdapter>>* adapters_of(torch::nn::Module& m) {
  if (auto* l = dynamic_cast<models::LinearImpl*>(&m)) return &l->adapters;
  if (auto* c = dynamic_cast<models::Conv2dImpl*>(&m)) return &c->adapters;
  return nullptr;
}
inline std::vector<std::shared_ptr<LoraLayer>> loras_of(torch::nn::Module& m) {
  std::vector<std::shared_ptr<LoraLayer>> out;
  if (const auto* all = adapters_of(m)) {
    for (const auto& a : *all) {
      if (auto lora = std::dynamic_pointer_cast<LoraLayer>(a)) out.push_back(std::move(lora));
    }
  }
  return out;
}
/// The layer's LoRA named `name` ("" for its only, unnamed one), or null.
inline std::shared_ptr<LoraLayer> lora_of(torch::nn::Module& m, const std::string& name) {
  for (auto& lora : loras_of(m)) {
    if (lora->adapter_name() == name) return lora;
  }
  return nullptr;
}
/// Can an adapter named `name` join this layer? Empty when it can; otherwise why not. A layer holds
/// one unnamed adapter, or any number of adapters with distinct names.
inline std::string why_no_room(torch::nn::Module& m, const std::string& name) {
  for (const auto& a : *adapters_of(m)) {
    auto lora = std::dynamic_pointer_cast<LoraLayer>(a);
    if (!lora) return "has an adapter of another kind";
    if (lora->adapter_name().empty() || name.empty())
      return "already has an adapter; to put several on one layer give each a name (LoraOptions::adapter_name)";
    if (lora->adapter_name() == name) return "already has an adapter named '" + name + "'";
  }
  return "";
}
inline c10::ScalarType adapter_dtype(const c10::optional<c10::ScalarType>& wanted, const torch::Tensor& base_weight) {
  if (wanted) return *wanted;
  return base_weight.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
}
inline torch::Tensor base_weight_of(torch::nn::Module& m) {
  if (auto* l = dynamic_cast<models::LinearImpl*>(&m)) return l->weight;
  return dynamic_cast<models::Conv2dImpl&>(m).weight;
}
} // namespace detail

/// Every adapter a model has (from add_lora or load_lora), by module name, whatever its name.
inline Lora find_lora(torch::nn::Module& model) {
  std::vector<Lora::Entry> out;
  for (const auto& item : model.named_modules()) {
    for (auto& lora : detail::loras_of(*item.value())) out.emplace_back(item.key(), std::move(lora));
  }
  return Lora(std::move(out));
}

/// The adapters named `adapter_name` ("" for the unnamed ones), by module name.
inline Lora find_lora(torch::nn::Module& model, const std::string& adapter_name) {
  std::vector<Lora::Entry> out;
  for (const auto& item : model.named_modules()) {
    if (auto lora = detail::lora_of(*item.value(), adapter_name)) out.emplace_back(item.key(), std::move(lora));
  }
  return Lora(std::move(out));
}

namespace detail {
/// Freezes every parameter of `model` that no adapter holds (its base), and sets `trainable` on `lora`'s.
inline void freeze_base_of(torch::nn::Module& model, const Lora& lora, bool trainable) {
  std::unordered_set<const void*> adapters;
  for (const auto& p : find_lora(model).parameters()) adapters.insert(p.unsafeGetTensorImpl());
  for (auto& p : model.parameters()) {
    if (!adapters.count(p.unsafeGetTensorImpl())) p.requires_grad_(false);
  }
  for (auto& p : lora.parameters()) p.requires_grad_(trainable);
}
}  // namespace detail

/// Adds a LoRA adapter to every Linear and Conv2d of `model` whose name matches a target; returns
/// them. Refuses (before changing anything) a target that matches no module, a matched module that is
/// not a diffinstruct::models Linear or Conv2d, and a layer that already has an adapter.
inline Lora add_lora(torch::nn::Module& model, const LoraOptions& o = {}) {
  o.validate();
  std::vector<std::pair<std::string, std::shared_ptr<torch::nn::Module>>> chosen;
  std::vector<bool> used(o.target_modules().size(), false);
  for (const auto& item : model.named_modules()) {
    const auto& name = item.key();
    if (name.empty() || detail::is_adapter_module(name)) continue;
    bool match = false;
    for (size_t i = 0; i < o.target_modules().size(); ++i) {
      if (lora_target_matches(name, {o.target_modules()[i]})) used[i] = match = true;
    }
    if (!match) continue;
    TORCH_CHECK(detail::is_adaptable(*item.value()), "diffinstruct::adapters::add_lora: module '", name, "' matches a target but is a ",
                item.value()->name(), "; LoRA adapts diffinstruct::models Linear and Conv2d layers");
    const auto why = detail::why_no_room(*item.value(), o.adapter_name());
    TORCH_CHECK(why.empty(), "diffinstruct::adapters::add_lora: module '", name, "' ", why);
    chosen.emplace_back(name, item.value());
  }
  for (size_t i = 0; i < used.size(); ++i) {
    TORCH_CHECK(used[i], "diffinstruct::adapters::add_lora: target '", o.target_modules()[i], "' matches no module of the model "
                "(names are matched whole or as the end of a dotted name, e.g. 'to_q' or 'attn1.to_q')");
  }
  std::vector<Lora::Entry> layers;
  for (auto& [name, module] : chosen) {
    const auto dt = detail::adapter_dtype(o.dtype(), detail::base_weight_of(*module));
    auto lora = std::make_shared<LoraLayer>(*module, o.rank(), o.alpha(), o.dropout(), o.init(), dt, o.adapter_name());
    detail::adapters_of(*module)->push_back(lora);
    layers.emplace_back(name, std::move(lora));
  }
  Lora out(std::move(layers));
  if (o.freeze_base()) detail::freeze_base_of(model, out, /*trainable=*/true);  // other adapters keep their flags
  return out;
}

/// Stores a LoRA-adapted model's frozen parameters (its base: every floating parameter that does
/// not require grad and is no adapter's) in `dtype`, in place, and leaves the adapters as they are
/// (float32 master weights, or a frozen published LoRA). Under autocast the base then costs half its
/// float32 memory in bf16/fp16. The counterpart of store_frozen_in (precision/precision.hpp) for a
/// model that is partly trained.
inline void store_base_in(c10::ScalarType dtype, torch::nn::Module& model) {
  TORCH_CHECK(c10::isFloatingType(dtype), "diffinstruct::adapters::store_base_in: expected a floating dtype, got ", dtype);
  std::unordered_set<const void*> adapters;
  for (const auto& p : find_lora(model).parameters()) adapters.insert(p.unsafeGetTensorImpl());
  torch::NoGradGuard no_grad;
  for (auto& p : model.parameters()) {
    if (!p.requires_grad() && !adapters.count(p.unsafeGetTensorImpl()) && p.is_floating_point() && p.scalar_type() != dtype) p.set_data(p.to(dtype));
  }
}

} // namespace adapters
} // namespace diffinstruct
