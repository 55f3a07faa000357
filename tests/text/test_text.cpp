// The text side without Python: strict UTF-8, NFC and lower-casing on cases worked out by hand, the
// CLIP tokenizer on a vocabulary small enough to reason about (BPE order, special tokens, truncation,
// padding, decoding, a very long word), hostile tokenizer files, and prompt files. Parity with
// transformers itself is tests/text/run_parity.sh.
#include "tiny_vocab.hpp"

#include <diffinstruct/text/clip_tokenizer.hpp>
#include <diffinstruct/text/prompt_file.hpp>

#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

namespace dt = diffinstruct::text;
namespace fs = std::filesystem;

namespace {

fs::path scratch(const std::string& name) {
  const fs::path p = fs::path(DIFFINSTRUCT_TEST_TMPDIR) / "text" / name;
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

void write(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }

std::u32string nfc_of(const std::string& utf8) { return dt::nfc(dt::decode_utf8(utf8, "test")); }

// Merges of "cat" and "a", learnt in the order BPE would: c+a, ca+t</w>, then a space-free "a</w>".
const std::vector<std::string> kMerged = {"ca", "cat</w>", "do", "dog</w>", "aa"};
const std::string kMerges = "#version: 0.2\nc a\nca t</w>\nd o\ndo g</w>\na a\n";

dt::ClipTokenizer tiny_tokenizer(dt::ClipSpecialTokens special = {}) {
  return dt::ClipTokenizer(test_text::TinyVocab(kMerged).json(), kMerges, std::move(special), "the tiny tokenizer");
}

template <typename F>
void refuses(F&& f, const std::string& fragment) {
  try {
    f();
  } catch (const c10::Error& e) {
    INFO(e.what_without_backtrace());
    CHECK(std::string(e.what_without_backtrace()).find(fragment) != std::string::npos);
    return;
  }
  FAIL("expected an error containing '" << fragment << "'");
}

}  // namespace

TEST_CASE("text: UTF-8 is decoded strictly", "[text]") {
  CHECK(dt::decode_utf8("a\xC3\xA9\xE6\x97\xA5\xF0\x9F\x90\xB1", "t") == U"a\u00E9\u65E5\U0001F431");
  CHECK(dt::encode_utf8(U"a\u00E9\u65E5\U0001F431") == "a\xC3\xA9\xE6\x97\xA5\xF0\x9F\x90\xB1");
  refuses([] { dt::decode_utf8("ab\xC3", "prompt 7"); }, "prompt 7 is not valid UTF-8: the character at byte 2 is cut off");
  refuses([] { dt::decode_utf8("\xC0\xAF", "t"); }, "overlong");         // an overlong '/'
  refuses([] { dt::decode_utf8("\xED\xA0\x80", "t"); }, "surrogate");    // U+D800
  refuses([] { dt::decode_utf8("\xF4\x90\x80\x80", "t"); }, "U+10FFFF");  // past the last code point
  refuses([] { dt::decode_utf8("a\x80", "t"); }, "byte 1 (0x80) cannot start a character");
  refuses([] { dt::decode_utf8("\xC3(", "t"); }, "byte 1 should continue the character at byte 0");
}

TEST_CASE("text: NFC composes, reorders and leaves composed text alone", "[text]") {
  CHECK(nfc_of("cafe\xCC\x81") == U"caf\u00E9");                        // e + acute -> é
  CHECK(nfc_of("caf\xC3\xA9") == U"caf\u00E9");                         // already composed
  CHECK(nfc_of("A\xCC\x8A") == U"\u00C5");                               // A + ring -> Å
  CHECK(nfc_of("\xE2\x84\xAB") == U"\u00C5");                            // the Ångström sign is a singleton -> Å
  // Dot below (class 220) sorts before dot above (230); both orders give the same composite.
  CHECK(nfc_of("a\xCC\xA3\xCC\x87") == U"\u1EA1\u0307");
  CHECK(nfc_of("a\xCC\x87\xCC\xA3") == U"\u1EA1\u0307");
  CHECK(nfc_of("s\xCC\x87\xCC\xA3") == U"\u1E69");                       // s + dot below + dot above -> ṩ
  CHECK(dt::nfc(U"\u1100\u1161\u11A8") == U"\uAC01");                    // Hangul L V T -> 각
  CHECK(dt::nfc(U"\uAC00\u11A8") == U"\uAC01");                           // LV + T
  CHECK(dt::nfc(U"\u0301a") == U"\u0301a");                               // a leading mark stays
  CHECK(dt::nfc(U"\u0344") == U"\u0308\u0301");                           // an excluded composite stays apart
}

TEST_CASE("text: lower-casing and character classes", "[text]") {
  CHECK(dt::lowercase(U"ABC\u00C9\u03A3\u0416") == U"abc\u00E9\u03C3\u0436");
  CHECK(dt::lowercase(U"\u0130") == U"i\u0307");  // İ: one-to-many
  CHECK(dt::char_class(U'x') == dt::unicode_data::kLetter);
  CHECK(dt::char_class(U'\u65E5') == dt::unicode_data::kLetter);
  CHECK(dt::char_class(U'\u0661') == dt::unicode_data::kNumber);  // Arabic-Indic one
  CHECK(dt::char_class(U'\u00BD') == dt::unicode_data::kNumber);  // ½
  CHECK(dt::is_space(U'\u3000'));
  CHECK(dt::is_space(U'\u0085'));
  CHECK_FALSE(dt::is_space(U'\u001C'));  // Python's isspace() says yes; Oniguruma's \s says no
  CHECK_FALSE(dt::is_space(U'\u200B'));  // zero width space is a format character
  CHECK(dt::char_class(U'!') == dt::unicode_data::kOther);
}

TEST_CASE("text: CLIP tokenizer on a vocabulary worked out by hand", "[text]") {
  const test_text::TinyVocab v(kMerged);
  const auto tok = tiny_tokenizer();
  CHECK(tok.vocab_size() == 512 + 5 + 2);
  CHECK(tok.num_merges() == 5);
  CHECK(tok.bos_id() == v.id("<|startoftext|>"));
  CHECK(tok.eos_id() == v.id("<|endoftext|>"));
  CHECK(tok.pad_id() == tok.eos_id());

  // Upper case, extra white space and punctuation: "cat" and "dog" merge, "!" and "?" stay one word.
  CHECK(tok.tokenize("  A CAT,\tdog!?") == std::vector<std::string>{"a</w>", "cat</w>", ",</w>", "dog</w>", "!", "?</w>"});
  // "cats": "ca t</w>" needs the end of the word, so "cats" is ca + t + s</w>.
  CHECK(tok.tokenize("cats") == std::vector<std::string>{"ca", "t", "s</w>"});
  // Contractions, digits one by one.
  CHECK(tok.tokenize("it's 42") == std::vector<std::string>{"i", "t</w>", "'", "s</w>", "4</w>", "2</w>"});
  // A special token written literally is that token; in other letters' case it is text.
  CHECK(tok.encode("a<|endoftext|>a") == std::vector<int64_t>{tok.bos_id(), v.id("a</w>"), tok.eos_id(), v.id("a</w>"), tok.eos_id()});
  CHECK(tok.tokenize("<|ENDOFTEXT|>").front() == "<");
  // Bytes past ASCII go through GPT-2's alphabet: é is the two symbols of its UTF-8 bytes.
  CHECK(tok.tokenize("\xC3\xA9") == std::vector<std::string>{"\xC3\x83", "\xC2\xA9</w>"});
  CHECK(tok.encode("") == std::vector<int64_t>{tok.bos_id(), tok.eos_id()});

  // A batch: padded with the pad token; a long text is cut to 77 with <|endoftext|> last.
  std::string long_text;
  for (int i = 0; i < 100; ++i) long_text += "dog ";
  const auto ids = tok.batch({"a cat", long_text});
  REQUIRE(ids.sizes() == torch::IntArrayRef({2, 77}));
  CHECK(ids.scalar_type() == torch::kInt64);
  CHECK(ids[0].slice(0, 0, 4).equal(torch::tensor({tok.bos_id(), v.id("a</w>"), v.id("cat</w>"), tok.eos_id()})));
  CHECK((ids[0].slice(0, 4) == tok.pad_id()).all().item<bool>());
  CHECK(ids[1][0].item<int64_t>() == tok.bos_id());
  CHECK((ids[1].slice(0, 1, 76) == v.id("dog</w>")).all().item<bool>());
  CHECK(ids[1][76].item<int64_t>() == tok.eos_id());
  CHECK(tok.decode({tok.bos_id(), v.id("a</w>"), v.id("cat</w>"), v.id("ca"), v.id("t"), tok.eos_id()}) == "a cat cat");

  // Another pad token (SD 2.x's "!"): it is then a special token everywhere in the text too.
  dt::ClipSpecialTokens bang;
  bang.pad = "!";
  const auto tok2 = tiny_tokenizer(bang);
  CHECK(tok2.pad_id() == v.id("!"));
  CHECK(tok2.tokenize("dog!?") == std::vector<std::string>{"dog</w>", "!", "?</w>"});
  CHECK(tok2.batch({"dog"})[0][3].item<int64_t>() == v.id("!"));
}

TEST_CASE("text: BPE of a very long word is right and does not go quadratic", "[text]") {
  const test_text::TinyVocab v(kMerged);
  const auto tok = tiny_tokenizer();
  // 200 000 a's: "a a" merges left to right into 99 999 "aa", then "a" and "a</w>".
  const auto ids = tok.encode(std::string(200000, 'a'));
  REQUIRE(ids.size() == 2 + 99999 + 2);
  CHECK(ids[1] == v.id("aa"));
  CHECK(ids[99999] == v.id("aa"));
  CHECK(ids[100000] == v.id("a"));
  CHECK(ids[100001] == v.id("a</w>"));
  // A batch stops tokenizing once it has 77 ids.
  const auto batch = tok.batch({std::string(2000000, 'a')});
  CHECK((batch[0].slice(0, 1, 76) == v.id("aa")).all().item<bool>());
}

TEST_CASE("text: hostile tokenizer files are refused by name", "[text][hostile]") {
  const std::string vocab = test_text::TinyVocab(kMerged).json();
  refuses([&] { dt::ClipTokenizer("{\"a\": 0,", kMerges); }, "vocab.json");
  refuses([&] { dt::ClipTokenizer("[1, 2]", kMerges); }, "must be an object of token -> id, got an array");
  refuses([&] { dt::ClipTokenizer("{}", ""); }, "vocab.json is empty");
  refuses([&] { dt::ClipTokenizer("{\"a\": \"0\"}", ""); }, "the id of \"a\" must be an integer, got a string");
  refuses([&] { dt::ClipTokenizer("{\"a\": 0, \"b\": 7}", ""); }, "\"b\" has id 7, outside [0, 2)");
  refuses([&] { dt::ClipTokenizer("{\"a\": 0, \"b\": 0}", ""); }, "id 0 is given to both \"a\" and \"b\"");
  refuses([&] { dt::ClipTokenizer("{\"a\": -1}", ""); }, "has id -1");
  refuses([&] { dt::ClipTokenizer(vocab, "c a\nq zz\n"); }, "merges.txt, line 2: the token \"zz\" is not in vocab.json");
  refuses([&] { dt::ClipTokenizer(vocab, "c a\nc t\n"); }, "line 2: the merged token \"ct\" is not in vocab.json");
  refuses([&] { dt::ClipTokenizer(vocab, "c a\n\nd o\n"); }, "line 2: expected two tokens separated by one space");
  refuses([&] { dt::ClipTokenizer(vocab, "c a b\n"); }, "line 1: expected two tokens");
  dt::ClipSpecialTokens missing;
  missing.pad = "<pad>";
  refuses([&] { dt::ClipTokenizer(vocab, kMerges, missing); }, "the pad_token \"<pad>\" is not in vocab.json");
  dt::ClipSpecialTokens short_length;
  short_length.max_length = 1;
  refuses([&] { dt::ClipTokenizer(vocab, kMerges, short_length); }, "max_length must be in [2, 2^20]");
  refuses([&] { tiny_tokenizer().encode("caf\xC3"); }, "the text to tokenize is not valid UTF-8");
  refuses([&] { tiny_tokenizer().decode({100000}); }, "id 100000 is outside the vocabulary of 519");

  // Folders: what is missing is named; the config's special tokens and length are used.
  const auto dir = scratch("folder");
  refuses([&] { dt::ClipTokenizer::from_folder(dir.string()); }, "expected vocab.json and merges.txt, or tokenizer.json, in it");
  // tokenizer.json alone (what transformers 5 writes): its BPE model's vocab and merges, the merges
  // as pairs or as "a b" strings, give the same ids as vocab.json + merges.txt.
  write(dir / "tokenizer.json", "{}");
  refuses([&] { dt::ClipTokenizer::from_folder(dir.string()); }, "has no \"model\" object");
  auto fast_json = [&](const std::string& type, const std::string& suffix, bool pairs) {
    std::string merges = pairs ? R"([["c", "a"], ["ca", "t</w>"], ["d", "o"], ["do", "g</w>"], ["a", "a"]])"
                               : R"(["c a", "ca t</w>", "d o", "do g</w>", "a a"])";
    return R"({"version": "1.0", "added_tokens": [], "model": {"type": ")" + type + R"(", "end_of_word_suffix": ")" + suffix +
           R"(", "vocab": )" + vocab + R"(, "merges": )" + merges + "}}";
  };
  const std::vector<std::string> probe = {"a cat and a dog", "caaat", "dogcat!"};
  for (const bool pairs : {true, false}) {
    write(dir / "tokenizer.json", fast_json("BPE", "</w>", pairs));
    const auto fast = dt::ClipTokenizer::from_folder(dir.string());
    CHECK(fast.batch(probe).equal(tiny_tokenizer().batch(probe)));
  }
  write(dir / "tokenizer.json", fast_json("Unigram", "</w>", true));
  refuses([&] { dt::ClipTokenizer::from_folder(dir.string()); }, "expected a BPE model (CLIP's), got \"Unigram\"");
  write(dir / "tokenizer.json", fast_json("BPE", "", true));
  refuses([&] { dt::ClipTokenizer::from_folder(dir.string()); }, "this is another tokenizer");
  write(dir / "tokenizer.json", R"({"model": {"type": "BPE", "end_of_word_suffix": "</w>", "vocab": )" + vocab + R"(, "merges": [["c a", "t"]]}})");
  refuses([&] { dt::ClipTokenizer::from_folder(dir.string()); }, "the merge token \"c a\" is empty or holds white space");
  write(dir / "tokenizer.json", R"({"model": {"type": "BPE", "end_of_word_suffix": "</w>", "vocab": )" + vocab + R"(, "merges": ["c a\nd o"]}})");
  refuses([&] { dt::ClipTokenizer::from_folder(dir.string()); }, "holds a line break, which no CLIP merge does");
  write(dir / "tokenizer.json", "{}");  // vocab.json + merges.txt win over tokenizer.json
  write(dir / "vocab.json", vocab);
  write(dir / "merges.txt", kMerges);
  write(dir / "tokenizer_config.json",
        R"({"pad_token": {"content": "!", "lstrip": false}, "model_max_length": 16, "do_lower_case": true, "errors": "replace"})");
  const auto tok = dt::ClipTokenizer::from_folder(dir.string());
  CHECK(tok.special_tokens().pad == "!");
  CHECK(tok.max_length() == 16);
  CHECK(tok.batch({"a"}).size(1) == 16);
  write(dir / "tokenizer_config.json", R"({"model_max_length": 1000000000000000019884624838656})");  // "no limit"
  CHECK(dt::ClipTokenizer::from_folder(dir.string()).max_length() == 77);
  // special_tokens_map.json gives what tokenizer_config.json does not; where both do, the config wins.
  write(dir / "special_tokens_map.json", R"({"pad_token": "!", "bos_token": "<|endoftext|>"})");
  write(dir / "tokenizer_config.json", R"({"bos_token": "<|startoftext|>"})");
  CHECK(dt::ClipTokenizer::from_folder(dir.string()).special_tokens().pad == "!");
  CHECK(dt::ClipTokenizer::from_folder(dir.string()).special_tokens().bos == "<|startoftext|>");
  fs::remove(dir / "special_tokens_map.json");
  write(dir / "tokenizer_config.json", R"({"pad_token": 3})");
  refuses([&] { dt::ClipTokenizer::from_folder(dir.string()); }, "pad_token must be a string or an object with a \"content\" string");
}

TEST_CASE("text: prompt files", "[text]") {
  const auto dir = scratch("prompts");
  write(dir / "p.txt", "\xEF\xBB\xBF" "a cat\r\n\r\n  \na dog\nlast without newline");
  CHECK(dt::read_prompt_file((dir / "p.txt").string()) == std::vector<std::string>{"a cat", "a dog", "last without newline"});
  CHECK(dt::read_prompt_file((dir / "p.txt").string(), {/*skip_blank_lines=*/false}) ==
        std::vector<std::string>{"a cat", "", "  ", "a dog", "last without newline"});
  write(dir / "bad.txt", "fine\nbad \xFF byte\n");
  refuses([&] { dt::read_prompt_file((dir / "bad.txt").string()); }, "line 2 of");
  write(dir / "empty.txt", "\n \n");
  refuses([&] { dt::read_prompt_file((dir / "empty.txt").string()); }, "has no prompts");
  refuses([&] { dt::read_prompt_file((dir / "none.txt").string()); }, "cannot open");
}
