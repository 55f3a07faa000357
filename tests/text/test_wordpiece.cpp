// BERT's WordPiece tokenizer (uncased, as ImageReward uses it) without Python: the greedy longest match
// with "##" continuations, [UNK], accents, CJK, punctuation, special and added tokens, truncation and
// padding, and the refusals. Parity with transformers' BertTokenizer on every Parti prompt is
// tests/rewards/run_image_reward_parity.sh.
#include <diffinstruct/text/wordpiece_tokenizer.hpp>

#include <catch2/catch.hpp>

namespace text = diffinstruct::text;

namespace {
text::WordPieceTokenizer tiny() {
  // ids: [PAD] 0, [UNK] 1, [CLS] 2, [SEP] 3, [MASK] 4, then the words below.
  return text::WordPieceTokenizer("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nun\n##aff\n##able\nunaff\na\ncafe\n!\n,\n\xE4\xB8\xAD\n##s\ncat\n");
}
}  // namespace

TEST_CASE("WordPiece: longest match first, ## continuations, [UNK], accents, CJK, punctuation", "[text][wordpiece]") {
  const auto t = tiny();
  CHECK(t.tokenize("unaffable") == std::vector<std::string>{"unaff", "##able"});  // the longest prefix, then the rest
  CHECK(t.tokenize("UnAffable cats!") == std::vector<std::string>{"unaff", "##able", "cat", "##s", "!"});
  CHECK(t.tokenize("Caf\xC3\xA9, a") == std::vector<std::string>{"cafe", ",", "a"});  // the accent stripped
  CHECK(t.tokenize("a\xE4\xB8\xAD" "cat") == std::vector<std::string>{"a", "\xE4\xB8\xAD", "cat"});  // an ideograph spaced
  CHECK(t.tokenize("dog a") == std::vector<std::string>{"[UNK]", "a"});  // a piece not in the vocabulary: the word is [UNK]
  CHECK(t.tokenize(std::string(101, 'a')) == std::vector<std::string>{"[UNK]"});  // longer than 100 characters
  CHECK(t.tokenize("a\x01\xEF\xBF\xBD" "cat") == std::vector<std::string>{"[UNK]"});  // controls and U+FFFD dropped: "acat"
  CHECK(t.encode("cat") == std::vector<int64_t>{2, 15, 3});
  CHECK(t.encode("a [SEP] cat") == std::vector<int64_t>{2, 9, 3, 15, 3});  // a special token written in the text
  CHECK(t.encode("a [sep]").size() > 4);                                  // only in its own case
  const auto added = t.with_added_tokens({"[DEC]", "[ENC]"});
  CHECK(added.vocab_size() == t.vocab_size() + 2);
  CHECK(added.encode("[DEC]cat[ENC]") == std::vector<int64_t>{2, 16, 15, 17, 3});
}

TEST_CASE("WordPiece: batches truncated with [SEP] last, padded with [PAD] and masked, bad vocabularies refused", "[text][wordpiece]") {
  const auto t = tiny();
  const auto [ids, mask] = t.batch({"cat cat cat cat", "a"}, 5);
  CHECK(torch::equal(ids, torch::tensor({{2, 15, 15, 15, 3}, {2, 9, 3, 0, 0}}, torch::kLong)));
  CHECK(torch::equal(mask, torch::tensor({{1, 1, 1, 1, 1}, {1, 1, 1, 0, 0}}, torch::kLong)));
  CHECK_THROWS_WITH(text::WordPieceTokenizer("[PAD]\n[CLS]\n[SEP]\n"), Catch::Contains("no [UNK] token"));
  CHECK_THROWS_WITH(text::WordPieceTokenizer("[PAD]\n[UNK]\n[CLS]\n[SEP]\ncat\ncat\n"), Catch::Contains("lists 'cat' twice (line 6)"));
  CHECK_THROWS_WITH(text::WordPieceTokenizer("[PAD]\n[UNK]\n[CLS]\n[SEP]\nc\xFFt\n"), Catch::Contains("line 5"));
  CHECK_THROWS_WITH(t.batch({"a"}, 1), Catch::Contains("max_length must hold [CLS] and [SEP]"));
}
