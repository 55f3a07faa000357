#pragma once
/// \file Pinning the CPU kernels a program's arithmetic runs through, so that its results are the
/// same bits on any x86-64 CPU with AVX2 and FMA, given the same packages.
///
/// Without pins, three libraries choose kernels by the CPU they find, and each choice changes the
/// last bits of a result (measured: scripts/repro_probe.sh, docs/results.md#reproducibility):
///   * OpenBLAS picks GEMM kernels per CPU model (`OPENBLAS_CORETYPE` pins them; Haswell runs on
///     every AVX2 CPU);
///   * ATen picks vectorised kernels by instruction set (`ATEN_CPU_CAPABILITY=avx2` pins them);
///   * oneDNN (LibTorch's convolutions) picks kernels, and blockings, by instruction set and cache
///     sizes: use_portable_cpu_math() switches it off, so convolutions go through im2col and the
///     pinned GEMM;
///   * and intra-op threads change the order of reductions: use one.
/// The first two are read when the libraries load, so only the environment of the process can set
/// them (scripts/demo.sh does); this function reports which are missing.

#include <ATen/Context.h>

#include <cstdlib>
#include <string>
#include <vector>

namespace diffinstruct {

/// Switches oneDNN off for this process and returns the pins the environment lacks (as
/// "NAME=value" to set), empty when everything is pinned.
inline std::vector<std::string> use_portable_cpu_math() {
  at::globalContext().setUserEnabledMkldnn(false);
  std::vector<std::string> missing;
  auto want = [&](const char* name, const char* value) {
    const char* v = std::getenv(name);
    if (!v || std::string(v) != value) missing.push_back(std::string(name) + "=" + value);
  };
  want("OPENBLAS_CORETYPE", "Haswell");
  want("ATEN_CPU_CAPABILITY", "avx2");
  return missing;
}

} // namespace diffinstruct
