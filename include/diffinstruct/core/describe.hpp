#pragma once
/// \file Text that identifies a policy and its settings ("pseudo_huber_score(c=1)"): what a checkpoint
/// records of the run that wrote it, so that a resume can say exactly what differs.
///
/// A policy may provide `std::string describe() const`; otherwise its `name` stands for it. Numbers
/// are written with 17 significant digits, so that equal text means equal values.

#include <cstdio>
#include <string>
#include <type_traits>
#include <utility>

namespace diffinstruct {
namespace detail {

/// A double, exactly (round-trips through strtod).
inline std::string exact_number(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

template <class T, class = void>
struct has_describe : std::false_type {};
template <class T>
struct has_describe<T, std::void_t<decltype(std::string(std::declval<const T&>().describe()))>> : std::true_type {};
template <class T, class = void>
struct has_static_name : std::false_type {};
template <class T>
struct has_static_name<T, std::void_t<decltype(static_cast<const char*>(T::name))>> : std::true_type {};

/// describe() when the policy has it, else its name, else "(undescribed)".
template <class T>
std::string describe_policy(const T& policy) {
  if constexpr (has_describe<T>::value) return policy.describe();
  else if constexpr (has_static_name<T>::value) return T::name;
  else return "(undescribed)";
}

} // namespace detail
} // namespace diffinstruct
