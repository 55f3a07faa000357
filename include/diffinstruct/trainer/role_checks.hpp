#pragma once
/// \file What the trainer checks of its roles when it is built: a trained parameter belongs to its
/// role alone (frozen ones may be shared), and the null condition that CFG needs is usable.

#include <diffinstruct/core/condition.hpp>
#include <diffinstruct/core/condition_device.hpp>
#include <diffinstruct/trainer/model_state.hpp>
#include <diffinstruct/trainer/trained_role.hpp>

#include <cstring>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace diffinstruct {
namespace detail {

/// Does a denoiser declare parameters its callable reads without owning them (Denoiser::reads)?
template <class T, class = void>
struct has_read_parameters : std::false_type {};
template <class T>
struct has_read_parameters<T, std::void_t<decltype(std::declval<const T&>().read_parameters())>> : std::true_type {};

/// The first parameter two roles share (by storage), as "'name' of <role a> and 'name' of <role b>", or "".
inline std::string first_shared(const NamedTensors& a, const char* role_a, const NamedTensors& b, const char* role_b, int64_t* count) {
  std::unordered_map<const void*, std::string> owners;
  for (const auto& [name, t] : a) owners.emplace(t.storage().unsafeGetStorageImpl(), name);
  std::string first;
  *count = 0;
  for (const auto& [name, t] : b) {
    const auto it = owners.find(t.storage().unsafeGetStorageImpl());
    if (it == owners.end()) continue;
    if (first.empty()) first = c10::str("'", it->second, "' of the ", role_a, " and '", name, "' of the ", role_b);
    ++*count;
  }
  return first;
}

/// A trained parameter belongs to its role alone: the generator's and the assistant's trained
/// parameters must not be held by another role (a copied TORCH_MODULE holder shares its module,
/// and a shared teacher would be trained through the assistant). Frozen parameters may be shared:
/// a LoRA assistant on the teacher's base (adapters/shared_base.hpp) holds the base the teacher
/// reads. `generator_all`, `assistant_all`: every parameter of each model; `frozen`: the teacher's
/// and the reward's, and those the teacher declares it reads.
inline void check_distinct_parameters(const TrainedRole& generator, const TrainedRole& assistant, const NamedTensors& generator_all,
                                      const NamedTensors& assistant_all, const NamedTensors& frozen) {
  const std::pair<const NamedTensors*, const char*> trained[] = {{&generator.named_parameters(), "generator"},
                                                                 {&assistant.named_parameters(), "assistant"}};
  const std::pair<const NamedTensors*, const char*> held[] = {
      {&generator_all, "generator"}, {&assistant_all, "assistant"}, {&frozen, "teacher or reward"}};
  for (const auto& [mine, role] : trained) {
    for (const auto& [theirs, other] : held) {
      if (std::strcmp(role, other) == 0) continue;
      int64_t count = 0;
      const auto first = first_shared(*mine, role, *theirs, other, &count);
      TORCH_CHECK(first.empty(), "diffinstruct::DiStarTrainer: ", count, " trained parameter tensor(s) of the ", role, " are also the ", other,
                  "'s (first: ", first, "): shared weights would be trained where they must stay frozen. Give each role its own copy (build "
                  "a second module and copy_state(teacher, assistant)), or, for one base shared by the teacher and the assistant, train a "
                  "LoRA on it and pass the teacher's pass on the base (adapters/shared_base.hpp, docs/lora.md)");
    }
  }
}

/// The null condition CFG needs, checked when the trainer is built rather than at the first
/// guided step: it broadcasts to a micro-batch (1 row, or as many as the micro-batch), and it is
/// on the trainer's device (moved there when ConditionTraits<C>::to exists). Returns it there.
template <class Cond>
Cond checked_null_condition(const Cond& null, int64_t micro_batch, const c10::Device& device) {
  try {
    (void)ConditionTraits<Cond>::broadcast(null, micro_batch);
  } catch (const c10::Error& e) {
    TORCH_CHECK(false, "diffinstruct::DiStarTrainer: the null condition (ConditionSource::null_condition), which classifier-free "
                "guidance passes to the teacher for the unconditional prediction, cannot be batched to ", micro_batch, " rows: ",
                e.what_without_backtrace());
  }
  return condition_to_device(null, device, "the null condition");
}

}  // namespace detail
}  // namespace diffinstruct
