#pragma once
/// \file The lines of a text file: split at "\n", a trailing "\r" dropped ("\r\n" files), numbered
/// from 1; no line after a final "\n". Shared by the readers of merges.txt and prompt files.

#include <string>
#include <utility>

namespace diffinstruct {
namespace text {

/// Calls `f(line, line_no)` for each line of `text` from byte `start` on.
template <class F>
void for_each_line(const std::string& text, size_t start, F&& f) {
  size_t pos = start, line_no = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    f(std::move(line), ++line_no);
  }
}

}  // namespace text
}  // namespace diffinstruct
