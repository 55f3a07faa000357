#pragma once
/// \file Prompts from a text file, one per line (UTF-8; "\r\n" line ends and a leading byte-order mark
/// are accepted). Blank lines are skipped unless asked otherwise; a line that is not UTF-8 is refused
/// with its number.
///
/// Example:
///   std::vector<std::string> prompts = text::read_prompt_file("prompts.txt");

#include <diffinstruct/io/small_file.hpp>
#include <diffinstruct/text/lines.hpp>
#include <diffinstruct/text/unicode.hpp>

#include <c10/util/Exception.h>

#include <cstdint>
#include <string>
#include <vector>

namespace diffinstruct {
namespace text {

struct PromptFileOptions {
  bool skip_blank_lines = true;  // lines of only white space
  uint64_t max_bytes = uint64_t{1} << 30;
};

inline std::vector<std::string> read_prompt_file(const std::string& path, const PromptFileOptions& options = {}) {
  const std::string text = io::read_small_file(path, options.max_bytes, "a prompt file (one prompt per line)");
  std::vector<std::string> prompts;
  for_each_line(text, text.compare(0, 3, "\xEF\xBB\xBF") == 0 ? 3 : 0, [&](std::string line, size_t line_no) {
    const std::u32string cps = decode_utf8(line, "line " + std::to_string(line_no) + " of '" + path + "'");
    bool blank = true;
    for (char32_t c : cps) blank = blank && is_space(c);
    if (!(blank && options.skip_blank_lines)) prompts.push_back(std::move(line));
  });
  TORCH_CHECK(!prompts.empty(), "diffinstruct::text: '", path, "' has no prompts (expected one per line",
              options.skip_blank_lines ? "; blank lines are skipped)" : ")");
  return prompts;
}

}  // namespace text
}  // namespace diffinstruct
