#pragma once
/// \file Conditions: what a model is conditioned on (class labels, prompt embeddings, a struct of
/// several tensors), and the null condition that classifier-free guidance needs.
///
/// Requirements of `ConditionTraits<C>` (see docs/policies.md#conditions):
///   static int64_t batch_size(const C& c);               // rows in the batch
///   static C concat(const C& a, const C& b);             // a's rows then b's rows
///   static C broadcast(const C& c, int64_t batch);       // a 1-row condition (e.g. the null one) to `batch` rows
///   static void append_ivalues(const C& c, std::vector<torch::jit::IValue>& args);  // TorchScript arguments
/// Optional, needed only for data-parallel training and micro-batches (each takes rows of a batch):
///   static C slice(const C& c, int64_t begin, int64_t end);  // rows [begin, end)
/// Optional: the trainer moves sampled and null conditions to its device with it (without it, it
/// checks that they are there; core/condition_device.hpp):
///   static C to(const C& c, const c10::Device& device);
/// Shipped: `torch::Tensor` (any [B, ...] tensor: labels, embeddings) and `NoCondition`.
/// Specialise it for a struct of tensors (docs/policies.md shows SDXL's three-tensor condition).

#include <diffinstruct/core/checks.hpp>

#include <torch/script.h>

#include <type_traits>
#include <vector>

namespace diffinstruct {

/// The condition of an unconditional model: models are called without a condition argument.
struct NoCondition {};

template <class C, class Enable = void>
struct ConditionTraits;  // not defined: a condition type must specialise it

/// A tensor condition: one row per sample (class labels [B], embeddings [B, L, D], ...).
template <>
struct ConditionTraits<torch::Tensor> {
  static int64_t batch_size(const torch::Tensor& c) {
    TORCH_CHECK(c.defined() && c.dim() >= 1, "diffinstruct::ConditionTraits<Tensor>: expected a condition "
                "tensor with a leading batch dimension, got shape ", detail::shape_str(c));
    return c.size(0);
  }
  static torch::Tensor concat(const torch::Tensor& a, const torch::Tensor& b) {
    TORCH_CHECK(a.dim() == b.dim() && a.sizes().slice(1) == b.sizes().slice(1) && a.scalar_type() == b.scalar_type(),
                "diffinstruct::ConditionTraits<Tensor>: cannot batch conditions of shape ", a.sizes(), " (",
                a.scalar_type(), ") and ", b.sizes(), " (", b.scalar_type(),
                "); the null condition must have the conditional one's per-row shape and dtype");
    return torch::cat({a, b}, 0);
  }
  static torch::Tensor broadcast(const torch::Tensor& c, int64_t batch) {
    const int64_t rows = batch_size(c);
    if (rows == batch) return c;
    TORCH_CHECK(rows == 1, "diffinstruct::ConditionTraits<Tensor>: expected a condition with 1 or ", batch,
                " rows, got ", rows);
    std::vector<int64_t> shape(c.sizes().begin(), c.sizes().end());
    shape[0] = batch;
    return c.expand(shape).contiguous();
  }
  static void append_ivalues(const torch::Tensor& c, std::vector<torch::jit::IValue>& args) { args.emplace_back(c); }
  static torch::Tensor slice(const torch::Tensor& c, int64_t begin, int64_t end) { return c.slice(0, begin, end); }
  static torch::Tensor to(const torch::Tensor& c, const c10::Device& device) { return c.defined() ? c.to(device) : c; }
};

template <>
struct ConditionTraits<NoCondition> {
  static int64_t batch_size(const NoCondition&) { return -1; }  // any batch
  static NoCondition concat(const NoCondition&, const NoCondition&) { return {}; }
  static NoCondition broadcast(const NoCondition&, int64_t) { return {}; }
  static void append_ivalues(const NoCondition&, std::vector<torch::jit::IValue>&) {}
  static NoCondition slice(const NoCondition&, int64_t, int64_t) { return {}; }
  static NoCondition to(const NoCondition&, const c10::Device&) { return {}; }
};

namespace detail {
template <class C, class = void>
struct is_condition : std::false_type {};
template <class C>
struct is_condition<C, std::void_t<decltype(ConditionTraits<C>::batch_size(std::declval<const C&>())),
                                   decltype(ConditionTraits<C>::concat(std::declval<const C&>(), std::declval<const C&>())),
                                   decltype(ConditionTraits<C>::broadcast(std::declval<const C&>(), int64_t{})),
                                   decltype(ConditionTraits<C>::append_ivalues(
                                       std::declval<const C&>(), std::declval<std::vector<torch::jit::IValue>&>()))>>
    : std::true_type {};

/// Does ConditionTraits<C> provide the optional slice (needed by data-parallel training)?
template <class C, class = void>
struct has_condition_slice : std::false_type {};
template <class C>
struct has_condition_slice<C, std::void_t<decltype(ConditionTraits<C>::slice(std::declval<const C&>(), int64_t{}, int64_t{}))>>
    : std::true_type {};

template <class C>
void check_condition_batch(const C& c, int64_t batch, const char* component) {
  const int64_t rows = ConditionTraits<C>::batch_size(c);
  TORCH_CHECK(rows < 0 || rows == batch, "diffinstruct::", component, ": expected a condition with ", batch,
              " rows (one per sample), got ", rows);
}
} // namespace detail

/// True when `ConditionTraits<C>` is specialised with every required function.
template <class C>
inline constexpr bool is_condition_v = detail::is_condition<C>::value;

} // namespace diffinstruct
