#pragma once
// A CLIP vocabulary in miniature, for tests: the 256 byte symbols in GPT-2's order, the same with
// "</w>", the merged tokens given, then <|startoftext|> and <|endoftext|>.
#include <diffinstruct/io/json.hpp>
#include <diffinstruct/text/unicode.hpp>

#include <stdexcept>
#include <string>
#include <vector>

namespace test_text {

struct TinyVocab {
  std::vector<std::string> tokens;
  explicit TinyVocab(const std::vector<std::string>& merged) {
    std::vector<std::string> bytes;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      if (printable) bytes.push_back(diffinstruct::text::encode_utf8(std::u32string(1, static_cast<char32_t>(b))));
    }
    int shifted = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      if (!printable) bytes.push_back(diffinstruct::text::encode_utf8(std::u32string(1, static_cast<char32_t>(256 + shifted++))));
    }
    tokens = bytes;
    for (const auto& b : bytes) tokens.push_back(b + "</w>");
    for (const auto& m : merged) tokens.push_back(m);
    tokens.push_back("<|startoftext|>");
    tokens.push_back("<|endoftext|>");
  }
  std::string json() const {
    std::string s = "{";
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i) s += ',';
      s += diffinstruct::io::json_quote(tokens[i]);
      s += ':';
      s += std::to_string(i);
    }
    return s + "}";
  }
  int64_t id(const std::string& t) const {
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (tokens[i] == t) return static_cast<int64_t>(i);
    }
    throw std::runtime_error("no token " + t);
  }
};

}  // namespace test_text
