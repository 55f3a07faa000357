#pragma once
/// \file Pinning the CPU kernels a program's arithmetic runs through, so that its results do not
/// depend on which x86-64 CPU it runs on (given the same packages).
///
/// Without pins, three libraries choose kernels by the CPU they find, and each choice changes the
/// last bits of a result (measured: scripts/repro_probe.sh, docs/results.md#reproducibility):
///   * OpenBLAS picks GEMM kernels per CPU model: `OPENBLAS_CORETYPE=Haswell` pins them (they run
///     on every AVX2 CPU);
///   * ATen picks vectorised kernels by instruction set: `ATEN_CPU_CAPABILITY=avx2` pins them;
///   * oneDNN (LibTorch's convolutions) JIT-compiles kernels for the instruction set it finds:
///     `DNNL_MAX_CPU_ISA=AVX2` pins the set; disable_onednn() removes it altogether (convolutions go
///     through im2col and the pinned GEMM: slower, and nothing is left that could look at the CPU);
///   * intra-op threads change the order of reductions: use one.
/// The environment variables are read when the libraries load or first dispatch, so only the
/// process's environment can set them (scripts/demo.sh does); missing_cpu_pins() says which are
/// missing.

#include <ATen/Context.h>

#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

namespace diffinstruct {

/// The environment a run with pinned CPU kernels needs, as (name, value).
inline std::vector<std::pair<std::string, std::string>> pinned_cpu_environment() {
  return {{"OPENBLAS_CORETYPE", "Haswell"}, {"ATEN_CPU_CAPABILITY", "avx2"}, {"DNNL_MAX_CPU_ISA", "AVX2"}};
}

/// The pins this process's environment lacks, as "NAME=value"; empty when all are set.
inline std::vector<std::string> missing_cpu_pins() {
  std::vector<std::string> missing;
  for (const auto& [name, value] : pinned_cpu_environment()) {
    const char* v = std::getenv(name.c_str());
    if (!v || value != v) missing.push_back(name + "=" + value);
  }
  return missing;
}

/// Switches oneDNN off for this process (LibTorch then uses its own convolution kernels).
inline void disable_onednn() { at::globalContext().setUserEnabledMkldnn(false); }

} // namespace diffinstruct
