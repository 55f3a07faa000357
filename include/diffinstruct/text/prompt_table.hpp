#pragma once
/// \file Prompt sets as tab-separated tables with a header line, such as the Parti prompts
/// (`PartiPrompts.tsv`: Prompt, Category, Challenge, Note; shipped in data/parti/ with its licence).
/// One column holds the prompts; another may group them (a per-category report) and a filter may
/// keep one group. Fields are taken as they are: TSV has no quoting, so a prompt that starts with a
/// quotation mark keeps it (pandas' read_csv would drop the quotes of Parti's '"G I G G L E"
/// painted ...'). UTF-8 is required, line by line; "\r\n" line ends and a leading byte-order mark are
/// accepted; every row must have the header's number of fields.
///
/// Example:
///   auto parti = text::read_prompt_table("data/parti/PartiPrompts.tsv",
///                                        text::PromptTableOptions().group_column("Category"));
///   auto animals = text::read_prompt_table("PartiPrompts.tsv", text::PromptTableOptions().filter("Category", "Animals"));
///   auto any = text::read_prompts(path);  // a .tsv table's Prompt column, else one prompt per line

#include <diffinstruct/io/small_file.hpp>
#include <diffinstruct/text/lines.hpp>
#include <diffinstruct/text/prompt_file.hpp>
#include <diffinstruct/text/unicode.hpp>

#include <c10/util/Exception.h>
#include <torch/arg.h>

#include <string>
#include <vector>

namespace diffinstruct {
namespace text {

struct PromptTableOptions {
  /// The column of the prompts.
  TORCH_ARG(std::string, column) = "Prompt";
  /// A column whose value each prompt carries as its group ("Category"); empty: none.
  TORCH_ARG(std::string, group_column) = "";
  /// Keep only the rows whose `filter_column` equals `filter_value` (both empty: keep every row).
  TORCH_ARG(std::string, filter_column) = "";
  TORCH_ARG(std::string, filter_value) = "";
  TORCH_ARG(uint64_t, max_bytes) = uint64_t{1} << 30;

 public:
  /// Both filter fields at once.
  PromptTableOptions& filter(std::string column_name, std::string value) {
    filter_column_ = std::move(column_name), filter_value_ = std::move(value);
    return *this;
  }
};

struct TablePrompt {
  std::string text;
  std::string group;  ///< the group column's value; empty without one
};

inline std::vector<TablePrompt> read_prompt_table(const std::string& path, const PromptTableOptions& o = {}) {
  const std::string text = io::read_small_file(path, o.max_bytes(), "a prompt table (tab-separated, with a header line)");
  auto fail = [&](const std::string& why) { TORCH_CHECK(false, "diffinstruct::text: '", path, "': ", why); };
  auto split = [](const std::string& line) {
    std::vector<std::string> fields;
    size_t start = 0;
    for (size_t tab; (tab = line.find('\t', start)) != std::string::npos; start = tab + 1) fields.push_back(line.substr(start, tab - start));
    fields.push_back(line.substr(start));
    return fields;
  };
  std::vector<std::string> header;
  int64_t prompt_at = -1, group_at = -1, filter_at = -1;
  std::vector<TablePrompt> out;
  for_each_line(text, text.compare(0, 3, "\xEF\xBB\xBF") == 0 ? 3 : 0, [&](std::string line, size_t line_no) {
    decode_utf8(line, "line " + std::to_string(line_no) + " of '" + path + "'");
    if (line_no == 1) {
      header = split(line);
      auto find = [&](const std::string& name, const char* role) -> int64_t {
        if (name.empty()) return -1;
        for (size_t i = 0; i < header.size(); ++i)
          if (header[i] == name) return static_cast<int64_t>(i);
        std::string have;
        for (const auto& h : header) have += (have.empty() ? "'" : ", '") + h + "'";
        fail(std::string("no ") + role + " column '" + name + "' in its header (its columns: " + have + ")");
        return -1;
      };
      prompt_at = find(o.column(), "prompt");
      group_at = find(o.group_column(), "group");
      filter_at = find(o.filter_column(), "filter");
      return;
    }
    if (line.empty()) return;
    const auto fields = split(line);
    if (fields.size() != header.size())
      fail("line " + std::to_string(line_no) + " has " + std::to_string(fields.size()) + " fields, the header " + std::to_string(header.size()));
    if (filter_at >= 0 && fields[static_cast<size_t>(filter_at)] != o.filter_value()) return;
    const auto& prompt = fields[static_cast<size_t>(prompt_at)];
    if (prompt.empty()) fail("line " + std::to_string(line_no) + " has an empty prompt");
    out.push_back({prompt, group_at >= 0 ? fields[static_cast<size_t>(group_at)] : std::string()});
  });
  if (header.empty()) fail("it is empty (expected a header line, then one row per prompt)");
  if (out.empty())
    fail(o.filter_column().empty() ? std::string("it has no prompts below its header")
                                   : "no row has " + o.filter_column() + " = '" + o.filter_value() + "'");
  return out;
}

/// The prompts of a file: a `.tsv` table's `Prompt` column, else one prompt per line.
inline std::vector<std::string> read_prompts(const std::string& path) {
  if (path.size() > 4 && path.compare(path.size() - 4, 4, ".tsv") == 0) {
    std::vector<std::string> out;
    for (auto& p : read_prompt_table(path)) out.push_back(std::move(p.text));
    return out;
  }
  return read_prompt_file(path);
}

}  // namespace text
}  // namespace diffinstruct
