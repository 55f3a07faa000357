#pragma once
/// \file CLIP's byte-level BPE tokenizer, read from a transformers tokenizer folder (`vocab.json`,
/// `merges.txt`, `tokenizer_config.json`), giving the same ids as transformers' `CLIPTokenizer`
/// (which runs Hugging Face `tokenizers` with this pipeline):
///   1. special tokens (bos, eos, unk, pad) written literally in the text are cut out first;
///   2. each remaining piece is normalised: NFC, then lower case (white space needs no collapsing:
///      step 3 drops it);
///   3. pre-tokenised by CLIP's regex  <|startoftext|> | <|endoftext|> | 's|'t|'re|'ve|'m|'ll|'d |
///      \p{L}+ | \p{N} | [^\s\p{L}\p{N}]+   (white space between matches is dropped), then by
///      ByteLevel's GPT-2 regex, which changes only the first two alternatives' pieces: "<|", the
///      name, "|>";
///   4. each word's UTF-8 bytes are mapped to GPT-2's printable byte alphabet, "</w>" is appended to
///      its last symbol, and BPE merges pairs in the order of merges.txt;
///   5. ids are <|startoftext|> + words + <|endoftext|>; a batch is truncated to `max_length` (the
///      last id stays <|endoftext|>) and padded with the pad token.
/// `with_open_clip_cleaning()` runs OpenCLIP's cleaning (ftfy, html.unescape; text/open_clip_clean.hpp)
/// before step 1, as OpenCLIP's SimpleTokenizer does (HPSv2 tokenizes that way).
///
/// Example:
///   auto tok = text::ClipTokenizer::from_folder(pipeline + "/tokenizer");
///   torch::Tensor ids = tok.batch({"a photo of a cat", "a dog"});   // int64 [2, 77]

#include <diffinstruct/io/json.hpp>
#include <diffinstruct/io/small_file.hpp>
#include <diffinstruct/text/lines.hpp>
#include <diffinstruct/text/open_clip_clean.hpp>
#include <diffinstruct/text/unicode.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <queue>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace diffinstruct {
namespace text {

/// The special tokens and the length of a CLIP tokenizer (the defaults are CLIP's, and SD 1.x's).
struct ClipSpecialTokens {
  std::string bos = "<|startoftext|>";
  std::string eos = "<|endoftext|>";
  std::string unk = "<|endoftext|>";
  std::string pad = "<|endoftext|>";  // SD 2.x's and SDXL's second tokenizer use "!"
  int64_t max_length = 77;
};

class ClipTokenizer {
 public:
  /// Files past these sizes are not tokenizers (CLIP's are 1.6 MB and 0.5 MB).
  static constexpr uint64_t kMaxVocabBytes = uint64_t{64} << 20;
  static constexpr uint64_t kMaxMergesBytes = uint64_t{64} << 20;

  /// From the texts of vocab.json and merges.txt; `what` names them in errors.
  ClipTokenizer(const std::string& vocab_json, const std::string& merges_txt, ClipSpecialTokens special = {},
                const std::string& what = "the CLIP tokenizer")
      : ClipTokenizer(io::parse_json(vocab_json, what + "'s vocab.json", /*max_depth=*/4), merges_txt, std::move(special), what) {}

  /// From a parsed vocabulary (an object of token -> id) and the text of merges.txt.
  ClipTokenizer(const io::JsonValue& vocab, const std::string& merges_txt, ClipSpecialTokens special, const std::string& what)
      : special_(std::move(special)) {
    TORCH_CHECK(special_.max_length >= 2 && special_.max_length <= (int64_t{1} << 20), "diffinstruct::text: ", what,
                ": max_length must be in [2, 2^20] (room for <|startoftext|> and <|endoftext|>), got ", special_.max_length);
    read_vocab(vocab, what);
    read_merges(merges_txt, what);
    bos_id_ = special_id(special_.bos, "bos_token", what);
    eos_id_ = special_id(special_.eos, "eos_token", what);
    unk_id_ = special_id(special_.unk, "unk_token", what);
    pad_id_ = special_id(special_.pad, "pad_token", what);
    for (const std::string* s : {&special_.bos, &special_.eos, &special_.unk, &special_.pad}) {
      TORCH_CHECK(!s->empty(), "diffinstruct::text: ", what, ": a special token is empty");
      const std::u32string cps = decode_utf8(*s, "a special token");
      const bool seen = std::any_of(added_.begin(), added_.end(), [&](const auto& a) { return a.first == cps; });
      if (!seen) added_.emplace_back(cps, vocab_.at(*s));
    }
    for (int b = 0; b < 256; ++b) {
      byte_symbol_[b] = byte_to_symbol(static_cast<uint8_t>(b));
      symbol_to_byte_[byte_symbol_[b]] = static_cast<uint8_t>(b);
    }
  }

  /// A transformers tokenizer folder: vocab.json and merges.txt (what the Hub's SD, SDXL and CLIP
  /// folders hold) or, where they are absent, tokenizer.json (all transformers 5 writes), and the
  /// special tokens and model_max_length of tokenizer_config.json (or special_tokens_map.json) where present.
  static ClipTokenizer from_folder(const std::string& dir) {
    namespace fs = std::filesystem;
    const std::string vocab = dir + "/vocab.json", merges = dir + "/merges.txt", fast = dir + "/tokenizer.json";
    const bool files = fs::is_regular_file(vocab) && fs::is_regular_file(merges);
    TORCH_CHECK(files || fs::is_regular_file(fast), "diffinstruct::text: '", dir,
                "' is not a CLIP tokenizer folder: expected vocab.json and merges.txt, or tokenizer.json, in it");
    ClipSpecialTokens special;
    // special_tokens_map.json first: what tokenizer_config.json says wins.
    for (const char* name : {"special_tokens_map.json", "tokenizer_config.json"}) {
      const std::string path = dir + "/" + name;
      if (fs::is_regular_file(path))
        read_special_tokens(io::read_small_file(path, uint64_t{16} << 20, "a tokenizer config"), "'" + path + "'", special);
    }
    if (!files) return from_tokenizer_json(io::read_small_file(fast, kMaxVocabBytes + kMaxMergesBytes, "a tokenizer.json"), special, "'" + fast + "'");
    return ClipTokenizer(io::read_small_file(vocab, kMaxVocabBytes, "a CLIP vocab.json"),
                         io::read_small_file(merges, kMaxMergesBytes, "a CLIP merges.txt"), special, "'" + dir + "'");
  }

  /// From the text of a Hugging Face tokenizers `tokenizer.json` of a CLIP tokenizer: its BPE
  /// model's vocab and merges (as [a, b] pairs or "a b" strings). Anything but a CLIP BPE (whose
  /// words end in "</w>") is refused: its pipeline is not the one implemented here.
  static ClipTokenizer from_tokenizer_json(const std::string& json, ClipSpecialTokens special = {}, const std::string& what = "tokenizer.json") {
    const io::JsonValue root = io::parse_json(json, what, /*max_depth=*/16);
    TORCH_CHECK(root.is_object(), "diffinstruct::text: ", what, " is not a JSON object");
    const io::JsonValue* model = root.find("model");
    TORCH_CHECK(model != nullptr && model->is_object(), "diffinstruct::text: ", what, " has no \"model\" object");
    const io::JsonValue* type = model->find("type");
    TORCH_CHECK(type != nullptr && type->is_string() && type->string() == "BPE", "diffinstruct::text: ", what,
                ": expected a BPE model (CLIP's), got ", type != nullptr && type->is_string() ? io::json_quote(type->string()) : std::string("none"));
    const io::JsonValue* suffix = model->find("end_of_word_suffix");
    TORCH_CHECK(suffix != nullptr && suffix->is_string() && suffix->string() == "</w>", "diffinstruct::text: ", what,
                ": expected CLIP's BPE, whose words end in \"</w>\" (end_of_word_suffix); this is another tokenizer");
    const io::JsonValue* vocab = model->find("vocab");
    const io::JsonValue* merges = model->find("merges");
    TORCH_CHECK(vocab != nullptr && merges != nullptr && merges->is_array(), "diffinstruct::text: ", what,
                ": the BPE model needs \"vocab\" (an object) and \"merges\" (an array)");
    std::string merges_txt;
    for (const auto& m : merges->array()) {
      if (m.is_string()) {  // "a b": read_merges checks its shape, once it is one line
        TORCH_CHECK(m.string().find_first_of("\n\r") == std::string::npos, "diffinstruct::text: ", what, ": the merge ",
                    io::json_quote(m.string()), " holds a line break, which no CLIP merge does");
        merges_txt += m.string() + "\n";
        continue;
      }
      TORCH_CHECK(m.is_array() && m.array().size() == 2 && m.array()[0].is_string() && m.array()[1].is_string(), "diffinstruct::text: ", what,
                  ": a merge must be a pair of strings or \"a b\", got ", io::JsonValue::kind_name(m.kind()));
      const std::string& a = m.array()[0].string();
      const std::string& b = m.array()[1].string();
      for (const std::string* t : {&a, &b})
        TORCH_CHECK(!t->empty() && t->find_first_of(" \n\r") == std::string::npos, "diffinstruct::text: ", what, ": the merge token ",
                    io::json_quote(*t), " is empty or holds white space, which no CLIP token does");
      merges_txt += a + " " + b + "\n";
    }
    return ClipTokenizer(*vocab, merges_txt, std::move(special), what);
  }

  /// The ids of one text: <|startoftext|>, its tokens, <|endoftext|>; neither truncated nor padded.
  /// `text` must be UTF-8.
  std::vector<int64_t> encode(const std::string& text) const { return encode(text, std::numeric_limits<size_t>::max()); }

  /// The pieces BPE produces for `text`, as vocabulary strings (for inspection and tests).
  std::vector<std::string> tokenize(const std::string& text) const {
    std::vector<std::string> out;
    for (int64_t id : encode(text)) out.push_back(id_to_token_.at(static_cast<size_t>(id)));
    return std::vector<std::string>(out.begin() + 1, out.end() - 1);
  }

  /// `input_ids` of a batch, int64 [N, max_length]: each text truncated to max_length ids (the last
  /// one stays <|endoftext|>) and padded with the pad token, as transformers does with
  /// padding="max_length", truncation=True.
  torch::Tensor batch(const std::vector<std::string>& texts) const {
    const int64_t n = static_cast<int64_t>(texts.size()), len = special_.max_length;
    auto out = torch::full({n, len}, pad_id_, torch::kInt64);
    auto acc = out.accessor<int64_t, 2>();
    for (int64_t i = 0; i < n; ++i) {
      std::vector<int64_t> ids = encode(texts[static_cast<size_t>(i)], static_cast<size_t>(len));
      if (static_cast<int64_t>(ids.size()) > len) {
        ids.resize(static_cast<size_t>(len));
        ids.back() = eos_id_;
      }
      for (size_t j = 0; j < ids.size(); ++j) acc[i][static_cast<int64_t>(j)] = ids[j];
    }
    return out;
  }

  /// The text of ids, as transformers' decode(skip_special_tokens=True) gives it: "</w>" becomes a
  /// space, bytes are mapped back, special tokens are dropped. For captions and logs.
  std::string decode(const std::vector<int64_t>& ids) const {
    std::string symbols;
    for (int64_t id : ids) {
      TORCH_CHECK(id >= 0 && id < vocab_size(), "diffinstruct::text: id ", id, " is outside the vocabulary of ", vocab_size());
      if (id == bos_id_ || id == eos_id_ || id == pad_id_ || id == unk_id_) continue;
      symbols += id_to_token_[static_cast<size_t>(id)];
    }
    std::string bytes;
    for (char32_t cp : decode_utf8(symbols, "a decoded token")) {
      const auto it = symbol_to_byte_.find(cp);
      if (it != symbol_to_byte_.end()) bytes.push_back(static_cast<char>(it->second));
      else append_utf8(cp, bytes);
    }
    std::string out;
    for (size_t i = 0; i < bytes.size();) {
      if (bytes.compare(i, 4, "</w>") == 0) {
        out.push_back(' ');
        i += 4;
      } else {
        out.push_back(bytes[i++]);
      }
    }
    // transformers then strip()s the text: Python's white space, which is \s and U+001C..U+001F.
    std::u32string cps = decode_utf8(out, "a decoded text");
    auto python_space = [](char32_t c) { return is_space(c) || (c >= 0x1C && c <= 0x1F); };
    size_t b = 0, e = cps.size();
    while (b < e && python_space(cps[b])) ++b;
    while (e > b && python_space(cps[e - 1])) --e;
    return encode_utf8(cps.substr(b, e - b));
  }

  int64_t vocab_size() const { return static_cast<int64_t>(id_to_token_.size()); }
  int64_t bos_id() const { return bos_id_; }
  int64_t eos_id() const { return eos_id_; }
  int64_t pad_id() const { return pad_id_; }
  int64_t unk_id() const { return unk_id_; }
  int64_t max_length() const { return special_.max_length; }
  const ClipSpecialTokens& special_tokens() const { return special_; }
  int64_t num_merges() const { return static_cast<int64_t>(merges_.size()); }

  /// This tokenizer with OpenCLIP's text cleaning before everything else (or without it).
  ClipTokenizer with_open_clip_cleaning(bool on = true) const {
    ClipTokenizer t = *this;
    t.open_clip_cleaning_ = on;
    return t;
  }
  bool open_clip_cleaning() const { return open_clip_cleaning_; }

 private:
  /// encode(), stopping once `limit` ids are known: a very long text costs no more BPE than its first
  /// words (normalising it stays linear).
  std::vector<int64_t> encode(const std::string& text, size_t limit) const {
    std::vector<int64_t> ids{bos_id_};
    const std::u32string cps = decode_utf8(open_clip_cleaning_ ? open_clip_clean(text) : text, "the text to tokenize");
    size_t start = 0;
    while (start <= cps.size() && ids.size() < limit) {
      // Step 1: the leftmost (then longest) special token written in the text.
      size_t at = cps.size(), len = 0;
      int64_t id = -1;
      for (size_t i = start; i < cps.size() && id < 0; ++i) {
        for (const auto& tok : added_) {
          if (tok.first.size() > len && cps.compare(i, tok.first.size(), tok.first) == 0) {
            at = i, len = tok.first.size(), id = tok.second;
          }
        }
      }
      encode_words(cps.substr(start, at - start), ids, limit);
      if (id < 0) break;
      ids.push_back(id);
      start = at + len;
    }
    ids.push_back(eos_id_);
    return ids;
  }

  // GPT-2's reversible map from bytes to printable characters: printable Latin-1 bytes map to
  // themselves, the other 68 to U+0100 and up, in byte order.
  static uint32_t byte_to_symbol(uint8_t b) {
    auto printable = [](int c) { return (c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF); };
    if (printable(b)) return b;
    uint32_t shifted = 0;
    for (int c = 0; c < b; ++c) shifted += printable(c) ? 0 : 1;
    return 256 + shifted;
  }

  void read_vocab(const io::JsonValue& root, const std::string& what) {
    TORCH_CHECK(root.is_object(), "diffinstruct::text: ", what, "'s vocab.json must be an object of token -> id, got ",
                io::JsonValue::kind_name(root.kind()));
    const auto& entries = root.object();
    TORCH_CHECK(!entries.empty(), "diffinstruct::text: ", what, "'s vocab.json is empty");
    id_to_token_.assign(entries.size(), std::string());
    std::vector<bool> seen(entries.size(), false);
    vocab_.reserve(entries.size());
    for (const auto& [token, value] : entries) {
      TORCH_CHECK(value.is_integer(), "diffinstruct::text: ", what, "'s vocab.json: the id of ", io::json_quote(token),
                  " must be an integer, got ", io::JsonValue::kind_name(value.kind()));
      const int64_t id = value.integer();
      // Ids are dense, as in every CLIP vocabulary: an id past the count is a corrupt (or hostile) file.
      TORCH_CHECK(id >= 0 && id < static_cast<int64_t>(entries.size()), "diffinstruct::text: ", what, "'s vocab.json: ",
                  io::json_quote(token), " has id ", id, ", outside [0, ", entries.size(), ") (ids must be 0..N-1)");
      TORCH_CHECK(!seen[static_cast<size_t>(id)], "diffinstruct::text: ", what, "'s vocab.json: id ", id, " is given to both ",
                  io::json_quote(id_to_token_[static_cast<size_t>(id)]), " and ", io::json_quote(token));
      decode_utf8(token, what + "'s vocab.json token");  // tokens are text
      seen[static_cast<size_t>(id)] = true;
      id_to_token_[static_cast<size_t>(id)] = token;
      vocab_.emplace(token, id);
    }
  }

  void read_merges(const std::string& text, const std::string& what) {
    int64_t rank = 0;
    for_each_line(text, 0, [&](const std::string& line, size_t line_no) {
      if (line.rfind("#version", 0) == 0) return;  // the header tokenizers skips
      const size_t space = line.find(' ');
      TORCH_CHECK(space != std::string::npos && space > 0 && space + 1 < line.size() &&
                      line.find(' ', space + 1) == std::string::npos,
                  "diffinstruct::text: ", what, "'s merges.txt, line ", line_no,
                  ": expected two tokens separated by one space, got ", io::json_quote(line));
      const std::string a = line.substr(0, space), b = line.substr(space + 1);
      for (const std::string* t : {&a, &b}) {
        TORCH_CHECK(vocab_.count(*t), "diffinstruct::text: ", what, "'s merges.txt, line ", line_no, ": the token ",
                    io::json_quote(*t), " is not in vocab.json");
      }
      TORCH_CHECK(vocab_.count(a + b), "diffinstruct::text: ", what, "'s merges.txt, line ", line_no, ": the merged token ",
                  io::json_quote(a + b), " is not in vocab.json");
      // A repeated pair keeps its last rank, as tokenizers does.
      merges_[pair_key(vocab_.at(a), vocab_.at(b))] = {rank++, vocab_.at(a + b)};
    });
  }

  int64_t special_id(const std::string& token, const char* role, const std::string& what) const {
    const auto it = vocab_.find(token);
    TORCH_CHECK(it != vocab_.end(), "diffinstruct::text: ", what, ": the ", role, " ", io::json_quote(token),
                " is not in vocab.json");
    return it->second;
  }

  /// Sets what the config file gives: the special tokens, and model_max_length where it is an
  /// integer in [2, 77].
  static void read_special_tokens(const std::string& json, const std::string& what, ClipSpecialTokens& special) {
    const io::JsonValue root = io::parse_json(json, what, /*max_depth=*/16);
    TORCH_CHECK(root.is_object(), "diffinstruct::text: ", what, " is not a JSON object");
    auto token = [&](const char* key, std::string& out) {
      const io::JsonValue* v = root.find(key);
      if (v == nullptr || v->is_null()) return;
      if (v->is_object()) v = v->find("content");  // an AddedToken written out
      TORCH_CHECK(v != nullptr && v->is_string(), "diffinstruct::text: ", what, ": ", key,
                  " must be a string or an object with a \"content\" string");
      out = v->string();
    };
    token("bos_token", special.bos);
    token("eos_token", special.eos);
    token("unk_token", special.unk);
    token("pad_token", special.pad);
    // transformers writes 10^30 for "no limit"; CLIP's text model stops at 77.
    if (const io::JsonValue* v = root.find("model_max_length"); v != nullptr && v->is_integer() && v->integer() >= 2 && v->integer() <= 77)
      special.max_length = v->integer();
  }

  /// Steps 2-5 on a piece of text without special tokens: appends its ids.
  void encode_words(const std::u32string& raw, std::vector<int64_t>& ids, size_t limit) const {
    if (raw.empty()) return;
    const std::u32string s = lowercase(nfc(raw));
    static const std::u32string kSot = U"<|startoftext|>", kEot = U"<|endoftext|>";
    const size_t n = s.size();
    size_t i = 0;
    while (i < n && ids.size() < limit) {
      const uint32_t c = s[i];
      const CharClass cls = char_class(c);
      size_t j = i + 1;
      if (cls == unicode_data::kSpace) {
        i = j;
        continue;
      }
      const size_t special = s.compare(i, kSot.size(), kSot) == 0 ? kSot.size() : s.compare(i, kEot.size(), kEot) == 0 ? kEot.size() : 0;
      if (special > 0) {
        // A special token's text that was not cut out in step 1 (it was written in upper case, say).
        // ByteLevel's own GPT-2 split then breaks the piece into "<|", the name and "|>".
        bpe(s.substr(i, 2), ids);
        bpe(s.substr(i + 2, special - 4), ids);
        bpe(s.substr(i + special - 2, 2), ids);
        i += special;
        continue;
      } else if (c == '\'' && i + 1 < n && contraction_length(s, i + 1) > 0) {
        j = i + 1 + contraction_length(s, i + 1);
      } else if (cls == unicode_data::kLetter) {
        while (j < n && char_class(s[j]) == unicode_data::kLetter) ++j;
      } else if (cls == unicode_data::kNumber) {
        // one digit per word
      } else {
        while (j < n && char_class(s[j]) == unicode_data::kOther) ++j;
      }
      bpe(s.substr(i, j - i), ids);
      i = j;
    }
  }

  /// After an apostrophe: the length of s|t|re|ve|m|ll|d, or 0.
  static size_t contraction_length(const std::u32string& s, size_t at) {
    auto is = [&](const char32_t* suffix) { return s.compare(at, std::char_traits<char32_t>::length(suffix), suffix) == 0; };
    if (is(U"re") || is(U"ve") || is(U"ll")) return 2;
    if (is(U"s") || is(U"t") || is(U"m") || is(U"d")) return 1;
    return 0;
  }

  /// Byte-level BPE of one word; appends its ids. As tokenizers does it: each byte symbol (the last
  /// with "</w>") becomes its id, or the unknown token's; then the pair of lowest merge rank, leftmost
  /// first, is merged until none is left, with a heap, so a long word costs O(n log n), not O(n^2).
  void bpe(const std::u32string& word, std::vector<int64_t>& ids) const {
    struct Symbol {
      int64_t id;
      ptrdiff_t prev, next;
      bool alive;
    };
    std::vector<Symbol> sym;
    const std::string bytes = encode_utf8(word);
    sym.reserve(bytes.size());
    for (size_t k = 0; k < bytes.size(); ++k) {
      std::string s;
      append_utf8(byte_symbol_[static_cast<unsigned char>(bytes[k])], s);
      if (k + 1 == bytes.size()) s += "</w>";
      const auto it = vocab_.find(s);
      sym.push_back({it == vocab_.end() ? unk_id_ : it->second, static_cast<ptrdiff_t>(k) - 1,
                     k + 1 < bytes.size() ? static_cast<ptrdiff_t>(k) + 1 : -1, true});
    }
    struct Candidate {
      int64_t rank;
      ptrdiff_t pos;
      int64_t new_id;
      bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
    auto push = [&](ptrdiff_t pos) {
      const ptrdiff_t next = sym[static_cast<size_t>(pos)].next;
      if (next < 0) return;
      const auto it = merges_.find(pair_key(sym[static_cast<size_t>(pos)].id, sym[static_cast<size_t>(next)].id));
      if (it != merges_.end()) queue.push({it->second.first, pos, it->second.second});
    };
    for (size_t k = 0; k + 1 < sym.size(); ++k) push(static_cast<ptrdiff_t>(k));
    while (!queue.empty()) {
      const Candidate top = queue.top();
      queue.pop();
      Symbol& left = sym[static_cast<size_t>(top.pos)];
      if (!left.alive || left.next < 0) continue;
      Symbol& right = sym[static_cast<size_t>(left.next)];
      const auto it = merges_.find(pair_key(left.id, right.id));
      if (it == merges_.end() || it->second.second != top.new_id) continue;  // an outdated entry
      left.id = top.new_id;
      right.alive = false;
      left.next = right.next;
      if (right.next >= 0) sym[static_cast<size_t>(right.next)].prev = top.pos;
      if (left.prev >= 0) push(left.prev);
      push(top.pos);
    }
    for (const Symbol& s : sym) {
      if (s.alive) ids.push_back(s.id);
    }
  }

  static uint64_t pair_key(int64_t a, int64_t b) { return (static_cast<uint64_t>(a) << 32) | static_cast<uint64_t>(b); }

  ClipSpecialTokens special_;
  bool open_clip_cleaning_ = false;
  std::unordered_map<std::string, int64_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::unordered_map<uint64_t, std::pair<int64_t, int64_t>> merges_;  // (left id, right id) -> (rank, merged id)
  std::vector<std::pair<std::u32string, int64_t>> added_;  // the special tokens as text, and their ids
  uint32_t byte_symbol_[256] = {};
  std::unordered_map<uint32_t, uint8_t> symbol_to_byte_;
  int64_t bos_id_ = 0, eos_id_ = 0, unk_id_ = 0, pad_id_ = 0;
};

}  // namespace text
}  // namespace diffinstruct
