#pragma once
/// \file How the library's programs report an error: one line, "<program>: <message>", without
/// LibTorch's backtrace (a dozen "frame #N: <unknown function>" lines that bury the message the
/// library took care to write). DIFFINSTRUCT_BACKTRACE=1 in the environment prints it too.

#include <c10/util/Exception.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <type_traits>

namespace diffinstruct {

/// The message of an exception: a c10::Error's without its backtrace (unless DIFFINSTRUCT_BACKTRACE=1).
inline std::string error_message(const std::exception& e) {
  const char* env = std::getenv("DIFFINSTRUCT_BACKTRACE");
  const bool backtrace = env && env[0] == '1';
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&e)) {
    return backtrace ? c10_error->what() : c10_error->what_without_backtrace();
  }
  return e.what();
}

/// Prints "<program>: <message>" to stderr; returns 1 (the exit status of a failed program).
inline int report_error(const char* program, const std::exception& e) {
  const std::string message = error_message(e), prefix = std::string(program) + ": ";
  // A message that already names the program (the programs' own checks) is not prefixed twice.
  std::fprintf(stderr, "%s%s\n", message.compare(0, prefix.size(), prefix) == 0 ? "" : prefix.c_str(), message.c_str());
  return 1;
}

/// Runs a program's body; an exception is reported (report_error) and becomes exit status 1.
/// `body` returns the exit status (int) or nothing (0).
///
/// Example:
///   int main(int argc, char** argv) { return run_program("05_text_to_image", [&] { return run(argc, argv); }); }
template <class Body>
int run_program(const char* program, Body&& body) {
  try {
    if constexpr (std::is_void_v<decltype(body())>) {
      body();
      return 0;
    } else {
      return body();
    }
  } catch (const std::exception& e) {
    return report_error(program, e);
  }
}

}  // namespace diffinstruct
