#pragma once
/// \file The Unicode the CLIP tokenizer needs, and nothing more: strict UTF-8 decoding and encoding,
/// the character classes of its pre-tokenizer regex (\p{L}, \p{N}, and \s as Oniguruma defines it),
/// per-character full lower-casing, and NFC normalisation (canonical decomposition, canonical
/// ordering, canonical composition, Hangul done arithmetically). The data comes from a table generated
/// from Python's unicodedata (text/unicode_tables.hpp, scripts/gen_unicode_tables.py).
///
/// Example:
///   std::u32string s = text::nfc(text::decode_utf8(prompt, "prompt 3"));   // throws on bad UTF-8

#include <diffinstruct/text/unicode_tables.hpp>

#include <c10/util/Exception.h>

#include <algorithm>
#include <cstdint>
#include <string>

namespace diffinstruct {
namespace text {

using unicode_data::CharClass;

/// Decodes UTF-8, refusing what is not UTF-8 (overlong forms, surrogates, truncated sequences,
/// values past U+10FFFF) with an error that names `what` and the byte offset.
inline std::u32string decode_utf8(const std::string& s, const std::string& what) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    int len = b0 < 0x80 ? 1 : (b0 >> 5) == 0x6 ? 2 : (b0 >> 4) == 0xE ? 3 : (b0 >> 3) == 0x1E ? 4 : 0;
    TORCH_CHECK(len != 0, "diffinstruct::text: ", what, " is not valid UTF-8: byte ", i, " (0x", std::hex,
                static_cast<int>(b0), std::dec, ") cannot start a character");
    TORCH_CHECK(i + len <= s.size(), "diffinstruct::text: ", what, " is not valid UTF-8: the character at byte ",
                i, " is cut off by the end of the text");
    uint32_t cp = len == 1 ? b0 : len == 2 ? (b0 & 0x1F) : len == 3 ? (b0 & 0x0F) : (b0 & 0x07);
    for (int k = 1; k < len; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      TORCH_CHECK((b & 0xC0) == 0x80, "diffinstruct::text: ", what, " is not valid UTF-8: byte ", i + k,
                  " should continue the character at byte ", i);
      cp = (cp << 6) | (b & 0x3F);
    }
    static constexpr uint32_t kMinOfLength[5] = {0, 0, 0x80, 0x800, 0x10000};
    TORCH_CHECK(cp >= kMinOfLength[len] && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF),
                "diffinstruct::text: ", what, " is not valid UTF-8: the sequence at byte ", i,
                " is overlong, a surrogate or past U+10FFFF");
    out.push_back(cp);
    i += len;
  }
  return out;
}

inline void append_utf8(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

inline std::string encode_utf8(const std::u32string& s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t cp : s) append_utf8(cp, out);
  return out;
}

namespace detail {
/// The entry of a table sorted by `key` whose key is cp, or nullptr.
template <typename Entry, size_t N, typename Key>
const Entry* find_sorted(const Entry (&table)[N], uint32_t cp, Key key) {
  const Entry* it = std::lower_bound(table, table + N, cp, [&](const Entry& e, uint32_t v) { return key(e) < v; });
  return it != table + N && key(*it) == cp ? it : nullptr;
}
/// The range of a table of sorted, disjoint [lo, hi] ranges that holds cp, or nullptr.
template <typename Range, size_t N>
const Range* find_range(const Range (&table)[N], uint32_t cp) {
  const Range* it = std::upper_bound(table, table + N, cp, [](uint32_t v, const Range& r) { return v < r.lo; });
  if (it == table) return nullptr;
  --it;
  return cp <= it->hi ? it : nullptr;
}
}  // namespace detail

/// Letter (\p{L}), number (\p{N}), white space (Oniguruma's \s: U+0009..U+000D, U+0085, Zs, Zl, Zp) or
/// anything else.
inline CharClass char_class(uint32_t cp) {
  if (cp < 0x80) {  // the common case without a search
    if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z')) return unicode_data::kLetter;
    if (cp >= '0' && cp <= '9') return unicode_data::kNumber;
    if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D)) return unicode_data::kSpace;
    return unicode_data::kOther;
  }
  const auto* r = detail::find_range(unicode_data::kClassRanges, cp);
  return r ? r->cls : unicode_data::kOther;
}
inline bool is_space(uint32_t cp) { return char_class(cp) == unicode_data::kSpace; }

/// Full lower-casing, one character at a time (as Rust's char::to_lowercase, which `tokenizers` uses):
/// U+0130 becomes two characters; there is no context rule such as Greek final sigma.
inline void append_lowercase(uint32_t cp, std::u32string& out) {
  if (cp < 0x80) {
    out.push_back(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp);
    return;
  }
  if (const auto* m = detail::find_sorted(unicode_data::kLowercase, cp, [](const auto& e) { return e.cp; })) {
    out.push_back(m->lower);
    return;
  }
  for (const auto& m : unicode_data::kLowercaseMulti) {
    if (m.cp == cp) {
      for (uint32_t c : m.lower) {
        if (c != 0) out.push_back(c);
      }
      return;
    }
  }
  out.push_back(cp);
}

inline std::u32string lowercase(const std::u32string& s) {
  std::u32string out;
  out.reserve(s.size());
  for (char32_t cp : s) append_lowercase(cp, out);
  return out;
}

/// Canonical combining class (0 for starters).
inline uint8_t combining_class(uint32_t cp) {
  if (cp < 0x300) return 0;
  const auto* r = detail::find_range(unicode_data::kCombiningClass, cp);
  return r ? r->ccc : 0;
}

namespace detail {
// Hangul syllables decompose and compose by arithmetic (Unicode §3.12).
constexpr uint32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr uint32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount, kSCount = kLCount * kNCount;

inline void append_decomposed(uint32_t cp, std::u32string& out) {
  if (cp >= kSBase && cp < kSBase + kSCount) {
    const uint32_t s = cp - kSBase;
    out.push_back(kLBase + s / kNCount);
    out.push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount != 0) out.push_back(kTBase + s % kTCount);
    return;
  }
  const auto* d = cp < 0xC0 ? nullptr : find_sorted(unicode_data::kDecomposition, cp, [](const auto& e) { return e.cp; });
  if (d == nullptr) {
    out.push_back(cp);
    return;
  }
  append_decomposed(d->first, out);  // decompositions nest at most a few levels deep
  if (d->second != 0) append_decomposed(d->second, out);
}

/// The primary composite of (a, b), or 0.
inline uint32_t compose_pair(uint32_t a, uint32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount) {
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  }
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase && b < kTBase + kTCount) {
    return a + (b - kTBase);
  }
  const auto& table = unicode_data::kComposition;
  const auto* end = table + sizeof(table) / sizeof(table[0]);
  const auto* it = std::lower_bound(table, end, std::make_pair(a, b), [](const auto& e, const std::pair<uint32_t, uint32_t>& v) {
    return e.first < v.first || (e.first == v.first && e.second < v.second);
  });
  return it != end && it->first == a && it->second == b ? it->composite : 0;
}
}  // namespace detail

/// Unicode Normalization Form C.
inline std::u32string nfc(const std::u32string& s) {
  // Text below U+0300 is already in NFC (no combining marks, no decomposable letters can recompose
  // differently): the common case costs one pass.
  if (std::all_of(s.begin(), s.end(), [](char32_t c) { return c < 0x300; })) return s;

  std::u32string d;
  d.reserve(s.size() + 8);
  for (char32_t cp : s) detail::append_decomposed(cp, d);
  // Canonical ordering: a stable sort of each run of non-starters by combining class.
  for (size_t i = 0; i < d.size();) {
    if (combining_class(d[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < d.size() && combining_class(d[j]) != 0) ++j;
    std::stable_sort(d.begin() + i, d.begin() + j,
                     [](char32_t a, char32_t b) { return combining_class(a) < combining_class(b); });
    i = j;
  }
  // Canonical composition: each character joins the last starter unless blocked by a character of the
  // same or a higher class in between.
  std::u32string out;
  out.reserve(d.size());
  ptrdiff_t starter = -1;
  int last_class = -1;
  for (char32_t cp : d) {
    const int cls = combining_class(cp);
    if (starter >= 0 && (last_class < cls || last_class == 0)) {  // 0: right after the starter
      if (const uint32_t c = detail::compose_pair(out[starter], cp)) {
        out[starter] = c;
        continue;
      }
    }
    if (cls == 0) {
      starter = static_cast<ptrdiff_t>(out.size());
      last_class = 0;
    } else {
      last_class = cls;
    }
    out.push_back(cp);
  }
  return out;
}

}  // namespace text
}  // namespace diffinstruct
