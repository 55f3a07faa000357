// Skipping a test that cannot run here (a [cuda] test on a machine without a GPU) so that ctest
// reports it as skipped, never as passed. Catch2 v2 (Debian's) has no skip of its own: the test case
// prints a marker and returns, and ctest, which runs each test case in a process of its own, marks
// a test whose output has the marker as skipped (SKIP_REGULAR_EXPRESSION, tests/CMakeLists.txt).
#pragma once
// LibTorch first: Debian's 1.13 pulls in glog, whose CHECK would replace Catch's if it came second
// (a failing CHECK then aborts the process instead of being reported). The tests' precompiled header
// has this order too; it matters where that is off.
#include <torch/torch.h>
#include <catch2/catch.hpp>

#include <iostream>

namespace test_util {

inline void skip_test(const char* why) {
  std::cout << "DIFFINSTRUCT-TEST-SKIPPED: " << why << std::endl;
  WARN("skipped: " << why);
}

}  // namespace test_util

/// Skips the test case (see above) unless a CUDA device is present.
#define DIFFINSTRUCT_REQUIRE_CUDA()           \
  do {                                        \
    if (!torch::cuda::is_available()) {       \
      test_util::skip_test("no CUDA device"); \
      return;                                 \
    }                                         \
  } while (0)
