#pragma once
/// \file BERT's WordPiece tokenizer, as transformers 4.x's (slow) `BertTokenizer` runs it uncased —
/// ImageReward's text side (BLIP's `init_tokenizer`: bert-base-uncased plus [DEC] and [ENC]):
///   1. added and special tokens ([PAD], [UNK], [CLS], [SEP], [MASK], and any added ones such as
///      [DEC], [ENC]) written literally in the text are cut out first; the rest is lower-cased;
///   2. BasicTokenizer: U+0000, U+FFFD and control characters (C*, except \t \n \r) dropped, white
///      space (Zs, \t \n \r) made a space; CJK ideographs spaced; NFC; split at white space; each
///      word lower-cased, its accents stripped (NFD, marks Mn dropped), split at punctuation (P*
///      and ASCII's symbols);
///   3. WordPiece: each word as the longest vocabulary prefix, then "##"-continuations; a word with
///      a piece not in the vocabulary, or longer than 100 characters, is [UNK];
///   4. [CLS] + ids + [SEP]; a batch is truncated to `max_length` ids ([SEP] kept last) and padded
///      with [PAD], with its attention mask.
/// The character classes come from a table generated from Python's unicodedata
/// (text/bert_tables.hpp, scripts/gen_bert_tables.py).
///
/// Example:
///   auto tok = text::WordPieceTokenizer::from_vocab_file("bert-base-uncased/vocab.txt").with_added_tokens({"[DEC]", "[ENC]"});
///   auto [ids, mask] = tok.batch({"a photo of a cat"}, 35);   // ImageReward's max length

#include <diffinstruct/io/small_file.hpp>
#include <diffinstruct/text/bert_tables.hpp>
#include <diffinstruct/text/lines.hpp>
#include <diffinstruct/text/unicode.hpp>

#include <torch/torch.h>

#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace diffinstruct {
namespace text {

inline bert_data::BertClass bert_class(uint32_t cp) {
  const auto* r = detail::find_range(bert_data::kBertRanges, cp);
  return r ? r->cls : bert_data::kBertOther;
}

class WordPieceTokenizer {
 public:
  static constexpr uint64_t kMaxVocabBytes = uint64_t{64} << 20;  // bert-base-uncased's is 0.23 MB
  static constexpr size_t kMaxInputCharsPerWord = 100;

  /// `vocab_txt`: one token per line, the id of a token its line number from 0.
  explicit WordPieceTokenizer(const std::string& vocab_txt, const std::string& what = "a WordPiece vocab.txt") {
    for_each_line(vocab_txt, 0, [&](std::string line, size_t line_no) {
      decode_utf8(line, "line " + std::to_string(line_no) + " of " + what);
      TORCH_CHECK(vocab_.emplace(line, static_cast<int64_t>(id_to_token_.size())).second, "diffinstruct::text: ", what, " lists '", line,
                  "' twice (line ", line_no, ")");
      id_to_token_.push_back(std::move(line));
    });
    for (const char* s : {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}) {
      const auto it = vocab_.find(s);
      TORCH_CHECK(it != vocab_.end() || std::string(s) == "[MASK]", "diffinstruct::text: ", what, " has no ", s, " token: not a BERT vocabulary");
      if (it != vocab_.end()) specials_.emplace_back(decode_utf8(s, "a special token"), it->second);
    }
    pad_ = vocab_.at("[PAD]"), unk_ = vocab_.at("[UNK]"), cls_ = vocab_.at("[CLS]"), sep_ = vocab_.at("[SEP]");
  }
  static WordPieceTokenizer from_vocab_file(const std::string& path) {
    return WordPieceTokenizer(io::read_small_file(path, kMaxVocabBytes, "a WordPiece vocab.txt"), "'" + path + "'");
  }

  /// This tokenizer with `tokens` added after the vocabulary (ids vocab_size(), vocab_size() + 1, ...;
  /// a token already in it keeps its id), cut out of texts like the special tokens.
  WordPieceTokenizer with_added_tokens(const std::vector<std::string>& tokens) const {
    WordPieceTokenizer t = *this;
    for (const auto& s : tokens) {
      TORCH_CHECK(!s.empty(), "diffinstruct::text: an added token is empty");
      auto it = t.vocab_.find(s);
      if (it == t.vocab_.end()) {
        it = t.vocab_.emplace(s, static_cast<int64_t>(t.id_to_token_.size())).first;
        t.id_to_token_.push_back(s);
      }
      t.specials_.emplace_back(decode_utf8(s, "an added token"), it->second);
    }
    return t;
  }

  /// The ids of one text: [CLS], its word pieces, [SEP]; neither truncated nor padded.
  std::vector<int64_t> encode(const std::string& text) const {
    std::vector<int64_t> ids{cls_};
    const std::u32string cps = decode_utf8(text, "the text to tokenize");
    size_t start = 0;
    while (start <= cps.size()) {
      size_t at = cps.size(), len = 0;  // the leftmost, then longest, special or added token
      int64_t id = -1;
      for (size_t i = start; i < cps.size() && id < 0; ++i)
        for (const auto& [tok, tid] : specials_)
          if (tok.size() > len && cps.compare(i, tok.size(), tok) == 0) at = i, len = tok.size(), id = tid;
      words(lowercase(cps.substr(start, at - start)), ids);
      if (id < 0) break;
      ids.push_back(id);
      start = at + len;
    }
    ids.push_back(sep_);
    return ids;
  }

  /// input_ids and attention_mask, int64 [N, max_length]: each text truncated ([SEP] kept last) and
  /// padded with [PAD], as transformers does with padding="max_length", truncation=True.
  std::pair<torch::Tensor, torch::Tensor> batch(const std::vector<std::string>& texts, int64_t max_length) const {
    TORCH_CHECK(max_length >= 2, "diffinstruct::text::WordPieceTokenizer: max_length must hold [CLS] and [SEP], got ", max_length);
    const int64_t n = static_cast<int64_t>(texts.size());
    auto ids = torch::full({n, max_length}, pad_, torch::kInt64);
    auto mask = torch::zeros({n, max_length}, torch::kInt64);
    for (int64_t i = 0; i < n; ++i) {
      auto row = encode(texts[static_cast<size_t>(i)]);
      if (static_cast<int64_t>(row.size()) > max_length) {
        row.resize(static_cast<size_t>(max_length));
        row.back() = sep_;
      }
      for (size_t j = 0; j < row.size(); ++j) ids[i][static_cast<int64_t>(j)] = row[j], mask[i][static_cast<int64_t>(j)] = 1;
    }
    return {ids, mask};
  }

  /// The word pieces of a text, as vocabulary strings, without [CLS] and [SEP] (for inspection).
  std::vector<std::string> tokenize(const std::string& text) const {
    std::vector<std::string> out;
    const auto ids = encode(text);
    for (size_t i = 1; i + 1 < ids.size(); ++i) out.push_back(id_to_token_.at(static_cast<size_t>(ids[i])));
    return out;
  }

  int64_t vocab_size() const { return static_cast<int64_t>(id_to_token_.size()); }
  int64_t pad_id() const { return pad_; }
  int64_t unk_id() const { return unk_; }
  int64_t cls_id() const { return cls_; }
  int64_t sep_id() const { return sep_; }

 private:
  /// Steps 2 and 3 on a piece of text without special tokens: appends its ids.
  void words(const std::u32string& raw, std::vector<int64_t>& ids) const {
    std::u32string cleaned;
    for (char32_t c : raw) {
      const auto cls = bert_class(c);
      if (cls == bert_data::kBertControl) continue;
      if (cls == bert_data::kBertSpace) cleaned.push_back(U' ');
      else if (cls == bert_data::kBertCjk) cleaned += std::u32string{U' ', c, U' '};
      else cleaned.push_back(c);
    }
    const std::u32string s = nfc(cleaned);
    std::u32string word;
    auto flush = [&] {
      if (word.empty()) return;
      std::u32string stripped;  // lower case, then NFD with the marks (Mn) dropped
      for (char32_t c : lowercase(word)) {
        std::u32string d;
        detail::append_decomposed(c, d);
        for (char32_t x : d)
          if (bert_class(x) != bert_data::kBertMark) stripped.push_back(x);
      }
      std::u32string piece;  // split at punctuation: each punctuation character a word of its own
      for (char32_t c : stripped) {
        if (bert_class(c) == bert_data::kBertPunct) {
          wordpiece(piece, ids);
          piece.clear();
          wordpiece(std::u32string(1, c), ids);
        } else {
          piece.push_back(c);
        }
      }
      wordpiece(piece, ids);
      word.clear();
    };
    for (char32_t c : s) {
      if (is_space(c)) flush();  // Python's str.split(): Zs, Zl, Zp and the controls left are white space
      else word.push_back(c);
    }
    flush();
  }

  /// Greedy longest-match-first WordPiece of one word.
  void wordpiece(const std::u32string& word, std::vector<int64_t>& ids) const {
    if (word.empty()) return;
    if (word.size() > kMaxInputCharsPerWord) return ids.push_back(unk_);
    std::vector<int64_t> pieces;
    for (size_t start = 0; start < word.size();) {
      int64_t found = -1;
      size_t end = word.size();
      for (; end > start; --end) {
        const std::string piece = (start > 0 ? "##" : "") + encode_utf8(word.substr(start, end - start));
        const auto it = vocab_.find(piece);
        if (it != vocab_.end()) {
          found = it->second;
          break;
        }
      }
      if (found < 0) return ids.push_back(unk_);
      pieces.push_back(found);
      start = end;
    }
    ids.insert(ids.end(), pieces.begin(), pieces.end());
  }

  std::unordered_map<std::string, int64_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<std::pair<std::u32string, int64_t>> specials_;
  int64_t pad_ = 0, unk_ = 0, cls_ = 0, sep_ = 0;
};

}  // namespace text
}  // namespace diffinstruct
