// Training a CLIP BPE vocabulary (text/bpe_training.hpp): the layout CLIP's files have, merges that
// follow pair frequency with the stated tie rule, every frequent word one token, unseen text still
// encoded byte by byte, the written folder read back by ClipTokenizer::from_folder, and refusals.
#include <diffinstruct/text/bpe_training.hpp>

#include <catch2/catch.hpp>

#include <filesystem>

namespace text = diffinstruct::text;

TEST_CASE("train_clip_bpe: CLIP's vocabulary layout, merges by frequency, words become tokens", "[text][bpe]") {
  const std::vector<std::string> corpus{"a red bag in the top left", "a blue bag above a red shirt", "a red shirt", "the bag"};
  const auto files = text::train_clip_bpe(corpus);
  const text::ClipTokenizer tok(files.vocab_json, files.merges_txt);
  // The 512 byte symbols first (CLIP's order: '!' is id 0, 'a' is 64, "a</w>" 256 + 64), specials last.
  const auto ids = [&](const std::string& s) { return tok.encode(s); };
  CHECK(ids("!") == std::vector<int64_t>{files.bos_id, 256 + 0, files.eos_id});
  CHECK(files.bos_id == files.vocab_size - 2);
  CHECK(files.eos_id == files.vocab_size - 1);
  CHECK(files.vocab_size == 512 + files.merges + 2);  // every merge made a new token here
  // Every word seen at least twice is one token; "top" and "left" (once each) stay in pieces.
  for (const char* w : {"a", "red", "bag", "shirt", "the"}) {
    INFO(w);
    CHECK(tok.tokenize(w) == std::vector<std::string>{std::string(w) + "</w>"});
  }
  CHECK(tok.tokenize("left").size() > 1);
  // The first merge is the most frequent pair within words (the smallest such pair on a tie), counted
  // here from the byte split.
  std::map<std::pair<std::string, std::string>, int> pairs;
  const text::ClipTokenizer bytes(files.vocab_json, "", {}, "bytes");
  for (const auto& line : corpus) {
    const auto syms = bytes.tokenize(line);
    for (size_t i = 0; i + 1 < syms.size(); ++i)
      if (syms[i].find("</w>") == std::string::npos) ++pairs[{syms[i], syms[i + 1]}];
  }
  std::pair<std::string, std::string> best;
  int best_n = 0;
  for (const auto& [p, n] : pairs)
    if (n > best_n) best = p, best_n = n;
  const std::string first = files.merges_txt.substr(files.merges_txt.find('\n') + 1, files.merges_txt.find('\n', files.merges_txt.find('\n') + 1) - files.merges_txt.find('\n') - 1);
  CHECK(first == best.first + " " + best.second);
  // Text never seen still round-trips, byte by byte (decoded without the special tokens, lowercased, words spaced).
  CHECK(tok.decode(tok.encode("Zebra!")) == "zebra !");
  // Deterministic.
  const auto again = text::train_clip_bpe(corpus);
  CHECK(again.vocab_json == files.vocab_json);
  CHECK(again.merges_txt == files.merges_txt);
}

TEST_CASE("train_clip_bpe: limits, the saved folder, refusals", "[text][bpe]") {
  const std::vector<std::string> corpus{"sneaker sneaker sneaker", "sneaker bag"};
  CHECK(text::train_clip_bpe(corpus, text::ClipBpeTrainingOptions().max_merges(3)).merges == 3);
  CHECK(text::train_clip_bpe(corpus, text::ClipBpeTrainingOptions().max_merges(0)).vocab_size == 514);
  // min_frequency above every pair's count: no merge.
  CHECK(text::train_clip_bpe(corpus, text::ClipBpeTrainingOptions().min_frequency(100)).merges == 0);
  const auto files = text::train_clip_bpe(corpus);
  const std::string dir = std::string(DIFFINSTRUCT_TEST_TMPDIR) + "/bpe_tokenizer";
  std::filesystem::remove_all(dir);
  text::save_clip_tokenizer_folder(files, dir, 12);
  const auto tok = text::ClipTokenizer::from_folder(dir);
  CHECK(tok.tokenize("sneaker bag") == std::vector<std::string>{"sneaker</w>", "b", "a", "g</w>"});  // "bag" once: not merged
  const auto batch = tok.batch({"sneaker"});
  CHECK(batch.size(1) == 12);  // model_max_length read back
  CHECK(batch[0][1].item<int64_t>() == tok.encode("sneaker")[1]);
  CHECK_THROWS_WITH(text::train_clip_bpe({}), Catch::Contains("the corpus is empty"));
  CHECK_THROWS_WITH(text::train_clip_bpe(corpus, text::ClipBpeTrainingOptions().min_frequency(0)), Catch::Contains("min_frequency"));
  CHECK_THROWS_WITH(text::save_clip_tokenizer_folder(files, dir, 78), Catch::Contains("max_length must be in [2, 77]"));
}
