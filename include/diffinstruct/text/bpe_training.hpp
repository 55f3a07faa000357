#pragma once
/// \file Trains a CLIP byte-level BPE vocabulary on a corpus: the vocab.json and merges.txt that
/// ClipTokenizer (and transformers' CLIPTokenizer) read, for a model trained from scratch on its own
/// captions rather than on OpenAI's 49 408-token vocabulary.
///
/// The vocabulary is laid out as CLIP's is: the 256 byte symbols (GPT-2's printable map, in its
/// order), the same 256 with "</w>" (a word's last symbol), one token per merge in merge order, then
/// <|startoftext|> and <|endoftext|>. Words are split exactly as ClipTokenizer splits them (it does the
/// splitting here, on a vocabulary of bytes alone), so what was learnt is what will be applied.
/// Training is classic BPE: the most frequent adjacent pair over all words (weighted by how often
/// each word occurs) is merged, ties broken by the pair's text, until no pair occurs `min_frequency`
/// times or `max_merges` merges are made. Deterministic: the same corpus gives the same files.
///
///   auto files = text::train_clip_bpe(captions);
///   text::ClipTokenizer tok(files.vocab_json, files.merges_txt);
#include <diffinstruct/io/atomic_file.hpp>
#include <diffinstruct/io/json.hpp>
#include <diffinstruct/text/clip_tokenizer.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace diffinstruct {
namespace text {

struct ClipBpeTrainingOptions {
  /// At most this many merges (the vocabulary is then 512 + merges + 2 tokens at most).
  TORCH_ARG(int64_t, max_merges) = 2000;
  /// A pair seen fewer times than this over the corpus is not merged.
  TORCH_ARG(int64_t, min_frequency) = 2;
};

struct ClipBpeFiles {
  std::string vocab_json;  ///< token -> id, as vocab.json
  std::string merges_txt;  ///< "#version: 0.2" then one "a b" line per merge, as merges.txt
  int64_t vocab_size = 0;
  int64_t merges = 0;
  int64_t bos_id = 0, eos_id = 0;  ///< <|startoftext|>, <|endoftext|>: the text model's config needs them
};

namespace detail {

/// The 256 byte symbols in CLIP's vocabulary order: GPT-2's printable bytes as themselves, in byte
/// order, then the other 68 as U+0100 onwards.
inline std::vector<std::string> clip_byte_symbols() {
  auto printable = [](int c) { return (c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF); };
  std::vector<std::string> out;
  for (int b = 0; b < 256; ++b)
    if (printable(b)) out.push_back(encode_utf8(std::u32string(1, static_cast<char32_t>(b))));
  uint32_t shifted = 0;
  for (int b = 0; b < 256; ++b)
    if (!printable(b)) out.push_back(encode_utf8(std::u32string(1, static_cast<char32_t>(256 + shifted++))));
  return out;
}

inline std::string vocab_json_of(const std::vector<std::string>& tokens) {
  std::string s = "{";
  for (size_t i = 0; i < tokens.size(); ++i) s += (i ? "," : "") + io::json_quote(tokens[i]) + ":" + std::to_string(i);
  return s + "}";
}

}  // namespace detail

inline ClipBpeFiles train_clip_bpe(const std::vector<std::string>& corpus, const ClipBpeTrainingOptions& o = {}) {
  TORCH_CHECK(!corpus.empty(), "diffinstruct::text::train_clip_bpe: the corpus is empty");
  TORCH_CHECK(o.max_merges() >= 0 && o.max_merges() <= (int64_t{1} << 20), "diffinstruct::text::train_clip_bpe: max_merges must be in [0, 2^20], got ",
              o.max_merges());
  TORCH_CHECK(o.min_frequency() >= 1, "diffinstruct::text::train_clip_bpe: min_frequency must be at least 1, got ", o.min_frequency());
  const ClipSpecialTokens special;
  std::vector<std::string> tokens = detail::clip_byte_symbols();
  for (size_t i = 0; i < 256; ++i) tokens.push_back(tokens[i] + "</w>");
  std::map<std::string, int64_t> known;
  for (size_t i = 0; i < tokens.size(); ++i) known.emplace(tokens[i], static_cast<int64_t>(i));

  // The words of the corpus, as byte symbols, split by the tokenizer itself (no merges yet).
  std::vector<std::string> base_tokens = tokens;
  base_tokens.push_back(special.bos);
  base_tokens.push_back(special.eos);
  const ClipTokenizer splitter(detail::vocab_json_of(base_tokens), "", special, "train_clip_bpe's byte vocabulary");
  std::map<std::vector<std::string>, int64_t> word_counts;
  for (const auto& line : corpus) {
    std::vector<std::string> word;
    for (auto& sym : splitter.tokenize(line)) {
      const bool last = sym.size() >= 4 && sym.compare(sym.size() - 4, 4, "</w>") == 0;
      word.push_back(std::move(sym));
      if (last) ++word_counts[std::move(word)], word.clear();
    }
  }
  std::vector<std::pair<std::vector<std::string>, int64_t>> words(word_counts.begin(), word_counts.end());

  std::string merges = "#version: 0.2\n";
  int64_t made = 0;
  for (; made < o.max_merges(); ++made) {
    std::map<std::pair<std::string, std::string>, int64_t> pairs;  // ordered: ties go to the smallest pair
    for (const auto& [w, n] : words)
      for (size_t i = 0; i + 1 < w.size(); ++i) pairs[{w[i], w[i + 1]}] += n;
    const std::pair<std::string, std::string>* best = nullptr;
    int64_t best_n = 0;
    for (const auto& [p, n] : pairs)
      if (n > best_n) best = &p, best_n = n;
    if (best == nullptr || best_n < o.min_frequency()) break;
    const std::string a = best->first, b = best->second, ab = a + b;
    merges += a + " " + b + "\n";
    if (known.emplace(ab, static_cast<int64_t>(tokens.size())).second) tokens.push_back(ab);
    for (auto& [w, n] : words) {
      std::vector<std::string> merged;
      for (size_t i = 0; i < w.size(); ++i) {
        if (i + 1 < w.size() && w[i] == a && w[i + 1] == b) merged.push_back(ab), ++i;
        else merged.push_back(w[i]);
      }
      w = std::move(merged);
    }
  }
  ClipBpeFiles out;
  out.bos_id = static_cast<int64_t>(tokens.size());
  tokens.push_back(special.bos);
  out.eos_id = static_cast<int64_t>(tokens.size());
  tokens.push_back(special.eos);
  out.vocab_json = detail::vocab_json_of(tokens);
  out.merges_txt = merges;
  out.vocab_size = static_cast<int64_t>(tokens.size());
  out.merges = made;
  return out;
}

/// Writes vocab.json, merges.txt and tokenizer_config.json (the special tokens and `max_length`) into
/// `dir` (created), each atomically: a folder ClipTokenizer::from_folder and transformers'
/// CLIPTokenizer.from_pretrained read.
inline void save_clip_tokenizer_folder(const ClipBpeFiles& files, const std::string& dir, int64_t max_length) {
  TORCH_CHECK(max_length >= 2 && max_length <= 77, "diffinstruct::text::save_clip_tokenizer_folder: max_length must be in [2, 77], got ", max_length);
  std::filesystem::create_directories(dir);
  const std::filesystem::path d(dir);
  io::write_text_file_atomically((d / "vocab.json").string(), files.vocab_json, "vocab.json");
  io::write_text_file_atomically((d / "merges.txt").string(), files.merges_txt, "merges.txt");
  const ClipSpecialTokens t;
  io::write_text_file_atomically((d / "tokenizer_config.json").string(),
                                 "{\n  \"tokenizer_class\": \"CLIPTokenizer\",\n  \"model_max_length\": " + std::to_string(max_length) +
                                     ",\n  \"bos_token\": " + io::json_quote(t.bos) + ",\n  \"eos_token\": " + io::json_quote(t.eos) +
                                     ",\n  \"unk_token\": " + io::json_quote(t.unk) + ",\n  \"pad_token\": " + io::json_quote(t.pad) + "\n}\n",
                                 "tokenizer_config.json");
}

}  // namespace text
}  // namespace diffinstruct
