#pragma once
/// \file A strict, bounded JSON reader (and the string escaping a writer needs), for headers of files
/// that may be hostile: safetensors headers and the configs that come with model folders. Refuses
/// what RFC 8259 refuses (invalid UTF-8 in strings included, as RFC 3629 defines it), plus duplicate keys, nesting deeper than a limit and numbers that do not
/// fit a double (an integer past int64 is read as a number, not an integer); never recurses deeper
/// than that limit; allocates in proportion to its input.
///
/// Example:
///   auto v = io::parse_json(text, "model.safetensors header");   // throws c10::Error naming it
///   for (const auto& [key, value] : v.object()) ...

#include <c10/util/Exception.h>

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace diffinstruct {
namespace io {

/// One JSON value. Objects keep their keys in file order.
class JsonValue {
 public:
  enum class Kind { kNull, kBool, kInteger, kNumber, kString, kArray, kObject };
  using Object = std::vector<std::pair<std::string, JsonValue>>;
  using Array = std::vector<JsonValue>;

  Kind kind() const { return kind_; }
  bool is_null() const { return kind_ == Kind::kNull; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  /// An integer literal (no fraction or exponent) that fits in int64.
  bool is_integer() const { return kind_ == Kind::kInteger; }
  /// Any number (integer or not).
  bool is_number() const { return kind_ == Kind::kInteger || kind_ == Kind::kNumber; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_array() const { return kind_ == Kind::kArray; }
  bool is_object() const { return kind_ == Kind::kObject; }

  bool boolean() const { return expect(Kind::kBool), bool_; }
  int64_t integer() const { return expect(Kind::kInteger), int_; }
  double number() const {
    TORCH_CHECK(is_number(), "diffinstruct::io::JsonValue: expected a number, got ", kind_name(kind_));
    return kind_ == Kind::kInteger ? static_cast<double>(int_) : num_;
  }
  const std::string& string() const { return expect(Kind::kString), str_; }
  const Array& array() const { return expect(Kind::kArray), *arr_; }
  const Object& object() const { return expect(Kind::kObject), *obj_; }
  /// The member `key` of an object, or nullptr.
  const JsonValue* find(const std::string& key) const {
    for (const auto& kv : object()) {
      if (kv.first == key) return &kv.second;
    }
    return nullptr;
  }

  static const char* kind_name(Kind k) {
    switch (k) {
      case Kind::kNull: return "null";
      case Kind::kBool: return "a boolean";
      case Kind::kInteger: return "an integer";
      case Kind::kNumber: return "a number";
      case Kind::kString: return "a string";
      case Kind::kArray: return "an array";
      case Kind::kObject: return "an object";
    }
    return "?";
  }

 private:
  friend class JsonParser;
  void expect(Kind k) const {
    TORCH_CHECK(kind_ == k, "diffinstruct::io::JsonValue: expected ", kind_name(k), ", got ", kind_name(kind_));
  }
  Kind kind_ = Kind::kNull;
  bool bool_ = false;
  int64_t int_ = 0;
  double num_ = 0;
  std::string str_;
  std::shared_ptr<Array> arr_;
  std::shared_ptr<Object> obj_;
};

/// Parses one JSON document; `what` names it in errors ("'unet/config.json'").
class JsonParser {
 public:
  JsonParser(const std::string& text, std::string what, int max_depth) : s_(text), what_(std::move(what)), max_depth_(max_depth) {}

  JsonValue parse() {
    skip_ws();
    JsonValue v = value(0);
    skip_ws();
    if (pos_ != s_.size()) fail("unexpected characters after the JSON value");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& why) const {
    TORCH_CHECK(false, "diffinstruct: ", what_, " is not valid JSON: ", why, " at byte ", pos_);
  }
  void skip_ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  void literal(const char* word) {
    for (const char* c = word; *c; ++c) {
      if (peek() != *c) fail(std::string("expected '") + word + "'");
      ++pos_;
    }
  }

  JsonValue value(int depth) {
    if (depth > max_depth_) fail("nested deeper than " + std::to_string(max_depth_) + " levels");
    JsonValue v;
    switch (peek()) {
      case '{': v.kind_ = JsonValue::Kind::kObject; v.obj_ = std::make_shared<JsonValue::Object>(object_body(depth)); break;
      case '[': v.kind_ = JsonValue::Kind::kArray; v.arr_ = std::make_shared<JsonValue::Array>(array_body(depth)); break;
      case '"': v.kind_ = JsonValue::Kind::kString; v.str_ = string_body(); break;
      case 't': literal("true"); v.kind_ = JsonValue::Kind::kBool; v.bool_ = true; break;
      case 'f': literal("false"); v.kind_ = JsonValue::Kind::kBool; break;
      case 'n': literal("null"); break;
      default:
        if (peek() == '-' || (peek() >= '0' && peek() <= '9')) number_body(v);
        else if (pos_ >= s_.size()) fail("unexpected end of text");
        else fail(std::string("unexpected character '") + peek() + "'");
    }
    return v;
  }

  JsonValue::Object object_body(int depth) {
    JsonValue::Object out;
    ++pos_;  // '{'
    skip_ws();
    if (peek() == '}') {
      ++pos_;
      return out;
    }
    std::map<std::string, bool> seen;
    while (true) {
      skip_ws();
      if (peek() != '"') fail("expected a string key");
      std::string key = string_body();
      if (!seen.emplace(key, true).second) fail("duplicate key \"" + key + "\"");
      skip_ws();
      if (peek() != ':') fail("expected ':' after a key");
      ++pos_;
      skip_ws();
      out.emplace_back(std::move(key), value(depth + 1));
      skip_ws();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == '}') {
        ++pos_;
        return out;
      }
      fail("expected ',' or '}' in an object");
    }
  }

  JsonValue::Array array_body(int depth) {
    JsonValue::Array out;
    ++pos_;  // '['
    skip_ws();
    if (peek() == ']') {
      ++pos_;
      return out;
    }
    while (true) {
      skip_ws();
      out.push_back(value(depth + 1));
      skip_ws();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == ']') {
        ++pos_;
        return out;
      }
      fail("expected ',' or ']' in an array");
    }
  }

  /// The rest of a UTF-8 sequence whose lead byte `lead` was just read, appended to `out`; refuses
  /// stray continuation bytes, overlong forms, surrogates and code points past U+10FFFF (RFC 3629).
  void utf8_sequence(unsigned char lead, std::string& out) {
    int more = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // the allowed range of the second byte
    if (lead >= 0xC2 && lead <= 0xDF) more = 1;
    else if (lead == 0xE0) more = 2, lo = 0xA0;
    else if (lead == 0xED) more = 2, hi = 0x9F;
    else if (lead >= 0xE1 && lead <= 0xEF) more = 2;
    else if (lead == 0xF0) more = 3, lo = 0x90;
    else if (lead >= 0xF1 && lead <= 0xF3) more = 3;
    else if (lead == 0xF4) more = 3, hi = 0x8F;
    else fail("invalid UTF-8 in a string (byte 0x" + hex_byte(lead) + ")");
    out += static_cast<char>(lead);
    for (int i = 0; i < more; ++i) {
      if (pos_ >= s_.size()) fail("truncated UTF-8 sequence in a string");
      const auto b = static_cast<unsigned char>(s_[pos_]);
      const unsigned char min = i == 0 ? lo : 0x80, max = i == 0 ? hi : 0xBF;
      if (b < min || b > max) fail("invalid UTF-8 in a string (byte 0x" + hex_byte(b) + " after 0x" + hex_byte(lead) + ")");
      out += static_cast<char>(b);
      ++pos_;
    }
  }
  static std::string hex_byte(unsigned char b) {
    const char* digits = "0123456789abcdef";
    return {digits[b >> 4], digits[b & 15]};
  }
  static void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  uint32_t hex4() {
    if (pos_ + 4 > s_.size()) fail("truncated \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = s_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= static_cast<uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f') v |= static_cast<uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= static_cast<uint32_t>(c - 'A' + 10);
      else fail("bad hex digit in a \\u escape");
    }
    return v;
  }
  std::string string_body() {
    std::string out;
    ++pos_;  // '"'
    while (true) {
      if (pos_ >= s_.size()) fail("unterminated string");
      const auto c = static_cast<unsigned char>(s_[pos_++]);
      if (c == '"') return out;
      if (c < 0x20) fail("control character in a string");
      if (c >= 0x80) {  // a UTF-8 sequence, checked whole (RFC 8259 §8.1: JSON text is UTF-8)
        utf8_sequence(c, out);
        continue;
      }
      if (c != '\\') {
        out += static_cast<char>(c);
        continue;
      }
      if (pos_ >= s_.size()) fail("unterminated escape");
      const char e = s_[pos_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          uint32_t cp = hex4();
          if (cp >= 0xD800 && cp <= 0xDBFF) {  // a surrogate pair
            if (pos_ + 2 > s_.size() || s_[pos_] != '\\' || s_[pos_ + 1] != 'u') fail("unpaired surrogate in a \\u escape");
            pos_ += 2;
            const uint32_t lo = hex4();
            if (lo < 0xDC00 || lo > 0xDFFF) fail("bad low surrogate in a \\u escape");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            fail("unpaired low surrogate in a \\u escape");
          }
          append_utf8(out, cp);
          break;
        }
        default: fail(std::string("bad escape '\\") + e + "'");
      }
    }
  }
  void number_body(JsonValue& v) {
    const size_t start = pos_;
    if (peek() == '-') ++pos_;
    if (peek() == '0') {
      ++pos_;
    } else if (peek() >= '1' && peek() <= '9') {
      while (peek() >= '0' && peek() <= '9') ++pos_;
    } else {
      fail("bad number");
    }
    bool integral = true;
    if (peek() == '.') {
      integral = false;
      ++pos_;
      if (!(peek() >= '0' && peek() <= '9')) fail("bad number: no digit after '.'");
      while (peek() >= '0' && peek() <= '9') ++pos_;
    }
    if (peek() == 'e' || peek() == 'E') {
      integral = false;
      ++pos_;
      if (peek() == '+' || peek() == '-') ++pos_;
      if (!(peek() >= '0' && peek() <= '9')) fail("bad number: no digit in the exponent");
      while (peek() >= '0' && peek() <= '9') ++pos_;
    }
    const std::string text = s_.substr(start, pos_ - start);
    if (pos_ - start > 400) fail("number literal of " + std::to_string(pos_ - start) + " characters");
    if (integral) {
      errno = 0;
      char* end = nullptr;
      const long long x = std::strtoll(text.c_str(), &end, 10);
      if (errno != ERANGE) {
        v.kind_ = JsonValue::Kind::kInteger;
        v.int_ = x;
        return;
      }
      // Past int64 (transformers writes model_max_length = 10^30 as an integer): a number, not an
      // integer, so a reader that needs an integer still refuses it.
    }
    v.kind_ = JsonValue::Kind::kNumber;
    v.num_ = std::strtod(text.c_str(), nullptr);
    if (!std::isfinite(v.num_)) fail("number " + text + " is out of range");
  }

  const std::string& s_;
  std::string what_;
  int max_depth_;
  size_t pos_ = 0;
};

/// Parses `text` (a whole document) with at most `max_depth` levels of nesting.
inline JsonValue parse_json(const std::string& text, const std::string& what, int max_depth = 64) {
  return JsonParser(text, what, max_depth).parse();
}

/// `v` as a JSON number that reads back as the same double, with a decimal point where it is
/// integral (so that Python reads a float, as the config files written by diffusers hold).
inline std::string json_number(double v) {
  TORCH_CHECK(std::isfinite(v), "diffinstruct::io::json_number: JSON has no ", v);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  std::string s = buf;
  if (s.find_first_of(".eE") == std::string::npos) s += ".0";
  return s;
}

/// A JSON array of integers, "[1, 2, 3]".
inline std::string json_ints(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

/// `s` as a JSON string literal, quotes included.
inline std::string json_quote(const std::string& s) {
  std::string out = "\"";
  for (const unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

/// A JSON array of strings, "[\"a\", \"b\"]".
inline std::string json_strings(const std::vector<std::string>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + json_quote(v[i]);
  return s + "]";
}

} // namespace io
} // namespace diffinstruct
