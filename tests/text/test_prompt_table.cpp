// Prompt tables (tab-separated with a header): the shipped Parti prompts read whole, grouped and
// filtered, fields taken as written, and the refusals (missing column, ragged row, not UTF-8, empty).
#include "../test_files.hpp"
#include <diffinstruct/text/prompt_table.hpp>

#include <catch2/catch.hpp>

#include <filesystem>
#include <map>
#include <string>

namespace text = diffinstruct::text;
namespace fs = std::filesystem;

namespace {
std::string parti() { return (fs::path(DIFFINSTRUCT_TEST_SOURCE_DIR) / ".." / "data" / "parti" / "PartiPrompts.tsv").string(); }
std::string table_error(const std::string& body, const text::PromptTableOptions& o = {}) {
  const auto p = test_util::scratch_path("prompt_table", "t.tsv");
  test_util::write_all(p, body);
  try {
    text::read_prompt_table(p.string(), o);
  } catch (const c10::Error& e) {
    return e.what_without_backtrace();
  }
  return "";
}
}  // namespace

TEST_CASE("the Parti prompts: 1,632 prompts in 12 categories, fields as written", "[text][prompt_table]") {
  const auto all = text::read_prompt_table(parti(), text::PromptTableOptions().group_column("Category"));
  REQUIRE(all.size() == 1632);
  std::map<std::string, int> per;
  for (const auto& p : all) ++per[p.group];
  CHECK(per.size() == 12);
  CHECK(per["Animals"] == 314);
  CHECK(per["Artifacts"] == 287);
  CHECK(per["Indoor Scenes"] == 40);
  CHECK(all.front().text == "bond");
  // TSV has no quoting: the prompt keeps its leading quotation mark.
  CHECK(all[1560].text.rfind("\"G I G G L E\" painted", 0) == 0);
  const auto animals = text::read_prompt_table(parti(), text::PromptTableOptions().filter("Category", "Animals"));
  CHECK(animals.size() == 314);
  const auto complex = text::read_prompt_table(parti(), text::PromptTableOptions().filter("Challenge", "Complex"));
  CHECK(!complex.empty());
  CHECK(text::read_prompts(parti()).size() == 1632);
}

TEST_CASE("prompt tables refuse what they cannot read, naming the file and the line", "[text][prompt_table]") {
  CHECK_THAT(table_error("Text\tCategory\na cat\tAnimals\n"), Catch::Contains("no prompt column 'Prompt'") && Catch::Contains("'Text', 'Category'"));
  CHECK_THAT(table_error("Prompt\tCategory\na cat\tAnimals\na dog\n"), Catch::Contains("line 3 has 1 fields, the header 2"));
  CHECK_THAT(table_error("Prompt\tCategory\na c\xFFt\tAnimals\n"), Catch::Contains("line 2"));
  CHECK_THAT(table_error(""), Catch::Contains("empty"));
  CHECK_THAT(table_error("Prompt\n"), Catch::Contains("no prompts below its header"));
  CHECK_THAT(table_error("Prompt\tCategory\na cat\tAnimals\n", text::PromptTableOptions().filter("Category", "Vehicles")),
             Catch::Contains("no row has Category = 'Vehicles'"));
  CHECK_THAT(table_error("Prompt\tCategory\n\tAnimals\n"), Catch::Contains("line 2 has an empty prompt"));
  // "\r\n" line ends and a byte-order mark are accepted.
  const auto p = test_util::scratch_path("prompt_table", "crlf.tsv");
  test_util::write_all(p, "\xEF\xBB\xBFPrompt\tCategory\r\na cat\tAnimals\r\na car\tVehicles\r\n");
  const auto rows = text::read_prompt_table(p.string(), text::PromptTableOptions().group_column("Category"));
  REQUIRE(rows.size() == 2);
  CHECK(rows[1].text == "a car");
  CHECK(rows[1].group == "Vehicles");
}
