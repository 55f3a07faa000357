#pragma once
/// \file OpenCLIP's text cleaning, which its `SimpleTokenizer` (HPSv2's tokenizer) runs before BPE and
/// transformers' CLIP tokenizer does not:
///
///   basic_clean(t) = html.unescape(html.unescape(ftfy.fix_text(t))).strip()
///
/// `ftfy.fix_text` here is its default pipeline without `fix_encoding` (the heuristic repair of
/// mojibake such as "cafÃ©", which this port does not attempt): per line, until nothing changes,
/// unescape HTML entities (ftfy's table, `&name;` and `&#...;` only, and not in a line after one
/// that holds '<'), read C1 controls as windows-1252, expand Latin ligatures, map fullwidth and
/// halfwidth forms to standard width, straighten curly quotes, turn \r\n, \r, U+2028, U+2029 into
/// \n, drop ANSI terminal escapes and control characters, then NFC. `html.unescape` is Python's
/// (every HTML5 entity, with or without its ';', the longest prefix rule, numeric references and
/// their replacements). The data is generated from the pinned Python packages
/// (text/text_cleaning_tables.hpp, scripts/gen_text_cleaning_tables.py). On the Parti prompts this
/// makes the CLIP tokenizer's ids equal OpenCLIP's on all 1,632 (12 differ without it: curly
/// apostrophes); tests/text/run_parity.sh checks that and hostile strings against ftfy itself.
///
/// Example:
///   auto tok = text::ClipTokenizer::from_folder(dir).with_open_clip_cleaning();   // HPS's tokenization

#include <diffinstruct/text/text_cleaning_tables.hpp>
#include <diffinstruct/text/unicode.hpp>

#include <algorithm>
#include <cstring>
#include <string>

namespace diffinstruct {
namespace text {
namespace detail {

template <class Table>
const char* find_string(const Table& table, const std::string& key) {
  const auto* end = std::end(table);
  const auto* it = std::lower_bound(std::begin(table), end, key, [](const auto& e, const std::string& k) { return std::strcmp(e.key, k.c_str()) < 0; });
  return it != end && key == it->key ? it->value : nullptr;
}
template <class Table>
const char* find_codepoint(const Table& table, uint32_t cp) {
  const auto* end = std::end(table);
  const auto* it = std::lower_bound(std::begin(table), end, cp, [](const auto& e, uint32_t c) { return e.cp < c; });
  return it != end && it->cp == cp ? it->value : nullptr;
}
inline void append(std::u32string& out, const char* utf8) { out += decode_utf8(utf8, "a cleaning table entry"); }
inline bool ascii_alnum(char32_t c) { return (c >= U'0' && c <= U'9') || (c >= U'a' && c <= U'z') || (c >= U'A' && c <= U'Z'); }
inline bool ascii_hex(char32_t c) { return (c >= U'0' && c <= U'9') || (c >= U'a' && c <= U'f') || (c >= U'A' && c <= U'F'); }

/// Python's html.unescape of a numeric reference's value (saturated: past U+10FFFF is past it).
inline void append_numeric_reference(std::u32string& out, uint64_t num) {
  if (num <= 0x10FFFF) {
    if (const char* r = find_codepoint(cleaning_data::kInvalidCharrefs, static_cast<uint32_t>(num))) return append(out, r);
  }
  if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) return out.push_back(0xFFFD);
  if (std::binary_search(std::begin(cleaning_data::kInvalidCodepoints), std::end(cleaning_data::kInvalidCodepoints), static_cast<uint32_t>(num))) return;
  out.push_back(static_cast<char32_t>(num));
}

/// Python's html.unescape: &(#[0-9]+;? | #[xX][0-9a-fA-F]+;? | [^\t\n\f <&#;]{1,32};?) replaced left to right.
inline std::u32string html_unescape(const std::u32string& s) {
  std::u32string out;
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] != U'&') {
      out.push_back(s[i++]);
      continue;
    }
    size_t j = i + 1;
    if (j < s.size() && s[j] == U'#') {
      const bool hex = j + 1 < s.size() && (s[j + 1] == U'x' || s[j + 1] == U'X');
      size_t k = j + (hex ? 2 : 1);
      uint64_t num = 0;
      const size_t digits_at = k;
      while (k < s.size() && (hex ? ascii_hex(s[k]) : (s[k] >= U'0' && s[k] <= U'9'))) {
        const char32_t c = s[k++];
        const uint64_t d = c <= U'9' ? c - U'0' : (c | 0x20) - U'a' + 10;
        num = std::min<uint64_t>(num * (hex ? 16 : 10) + d, uint64_t{1} << 40);
      }
      if (k == digits_at) {  // "&#" without digits matches none of the alternatives
        out.push_back(s[i++]);
        continue;
      }
      if (k < s.size() && s[k] == U';') ++k;
      append_numeric_reference(out, num);
      i = k;
      continue;
    }
    size_t k = j;
    while (k < s.size() && k - j < 32 && s[k] != U'\t' && s[k] != U'\n' && s[k] != U'\f' && s[k] != U' ' && s[k] != U'<' && s[k] != U'&' &&
           s[k] != U'#' && s[k] != U';')
      ++k;
    if (k == j) {
      out.push_back(s[i++]);
      continue;
    }
    const bool semicolon = k < s.size() && s[k] == U';';
    const std::u32string name = s.substr(j, k - j) + (semicolon ? U";" : U"");
    const std::string key = encode_utf8(name);
    if (const char* v = find_string(cleaning_data::kHtml5Entities, key)) {
      append(out, v);
    } else {
      // The longest prefix that is an entity (at least 2 characters), the rest kept; else unchanged.
      bool found = false;
      for (size_t x = name.size() - 1; x > 1 && !found; --x) {
        if (const char* p = find_string(cleaning_data::kHtml5Entities, encode_utf8(name.substr(0, x)))) {
          append(out, p);
          out += name.substr(x);
          found = true;
        }
      }
      if (!found) out += U"&" + name;
    }
    i = k + (semicolon ? 1 : 0);
  }
  return out;
}

/// ftfy's unescape_html: &#?[0-9A-Za-z]{1,24}; through ftfy's table, or a numeric reference that
/// html.unescape decodes whole.
inline std::u32string ftfy_unescape_html(const std::u32string& s) {
  std::u32string out;
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] == U'&') {
      size_t k = i + 1 + (i + 1 < s.size() && s[i + 1] == U'#' ? 1 : 0);
      const size_t run = k;
      while (k < s.size() && k - run < 25 && ascii_alnum(s[k])) ++k;
      if (k > run && k - run <= 24 && k < s.size() && s[k] == U';') {
        const std::u32string entity = s.substr(i, k + 1 - i);
        if (const char* v = find_string(cleaning_data::kFtfyEntities, encode_utf8(entity))) {
          append(out, v);
        } else if (entity[1] == U'#') {
          const std::u32string u = html_unescape(entity);
          out += u.find(U';') == std::u32string::npos ? u : entity;
        } else {
          out += entity;
        }
        i = k + 1;
        continue;
      }
    }
    out.push_back(s[i++]);
  }
  return out;
}

/// One pass of ftfy's character fixers, in its order (unescaping done by the caller).
inline std::u32string ftfy_fix_characters(const std::u32string& s) {
  std::u32string a;
  for (char32_t c : s) {  // C1 controls as windows-1252, ligatures, width (three maps of one character each)
    if (c >= 0x80 && c <= 0x9F) append(a, find_codepoint(cleaning_data::kC1AsWindows1252, c));
    else a.push_back(c);
  }
  std::u32string b;
  for (char32_t c : a) {
    if (const char* v = find_codepoint(cleaning_data::kLigatures, c)) append(b, v);
    else b.push_back(c);
  }
  std::u32string w;
  for (char32_t c : b) {
    if (const char* v = find_codepoint(cleaning_data::kWidthMap, c)) append(w, v);
    else if (c == 0x02BC || (c >= 0x2018 && c <= 0x201B)) w.push_back(U'\'');  // uncurl_quotes
    else if (c >= 0x201C && c <= 0x201F) w.push_back(U'"');
    else w.push_back(c);
  }
  std::u32string lines;  // fix_line_breaks
  for (size_t i = 0; i < w.size(); ++i) {
    const char32_t c = w[i];
    if (c == U'\r' && i + 1 < w.size() && w[i + 1] == U'\n') continue;
    lines.push_back(c == U'\r' || c == 0x2028 || c == 0x2029 || c == 0x85 ? U'\n' : c);
  }
  std::u32string out;  // remove_terminal_escapes (ESC [ digits-or-';' letter), then remove_control_chars
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i] == 0x1B && i + 1 < lines.size() && lines[i + 1] == U'[') {
      size_t k = i + 2;
      while (k < lines.size() && ((lines[k] >= U'0' && lines[k] <= U'9') || lines[k] == U';')) ++k;
      if (k < lines.size() && ((lines[k] | 0x20) >= U'a' && (lines[k] | 0x20) <= U'z')) {
        i = k;
        continue;
      }
    }
    const char32_t c = lines[i];
    const bool control = c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F || (c >= 0x206A && c <= 0x206F) || c == 0xFEFF ||
                         (c >= 0xFFF9 && c <= 0xFFFC);
    if (!control) out.push_back(c);
  }
  return nfc(out);
}

/// ftfy.fix_text without fix_encoding: line by line, each fixed until it stops changing.
inline std::u32string ftfy_fix_text(const std::u32string& s) {
  std::u32string out;
  bool unescape = true;  // "auto": off from the first line that holds '<' on
  for (size_t pos = 0; pos < s.size();) {
    const size_t nl = s.find(U'\n', pos);
    const size_t end = nl == std::u32string::npos ? s.size() : nl + 1;
    std::u32string line = s.substr(pos, end - pos);
    unescape = unescape && line.find(U'<') == std::u32string::npos;
    for (int round = 0; round < 16; ++round) {  // ftfy loops until nothing changes; each fix shortens or settles
      std::u32string next = ftfy_fix_characters(unescape ? ftfy_unescape_html(line) : line);
      if (next == line) break;
      line = std::move(next);
    }
    out += line;
    pos = end;
  }
  return out;
}

/// Python's str.strip(): white space at both ends (after ftfy, the controls among Python's white
/// space are gone, so the tokenizer's class of white space is Python's).
inline std::u32string strip(const std::u32string& s) {
  size_t a = 0, b = s.size();
  while (a < b && is_space(s[a])) ++a;
  while (b > a && is_space(s[b - 1])) --b;
  return s.substr(a, b - a);
}

} // namespace detail

/// OpenCLIP's basic_clean of UTF-8 `text` (see the file comment), as UTF-8.
inline std::string open_clip_clean(const std::string& text) {
  const std::u32string s = decode_utf8(text, "the text to clean");
  return encode_utf8(detail::strip(detail::html_unescape(detail::html_unescape(detail::ftfy_fix_text(s)))));
}

}  // namespace text
}  // namespace diffinstruct
