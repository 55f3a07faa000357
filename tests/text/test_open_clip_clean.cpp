// OpenCLIP's text cleaning (ftfy.fix_text without mojibake repair, html.unescape twice, strip), on the
// cases ftfy's and Python's documentation give, and the tokenizer option that runs it. The comparison
// with ftfy and hpsv2's tokenizer on every Parti prompt and hostile strings is tests/rewards/run_parity.sh.
#include "../text/tiny_vocab.hpp"
#include <diffinstruct/text/clip_tokenizer.hpp>
#include <diffinstruct/text/open_clip_clean.hpp>

#include <catch2/catch.hpp>

namespace text = diffinstruct::text;

TEST_CASE("OpenCLIP's cleaning: ftfy's fixes and html.unescape as Python computes them", "[text][open_clip_clean]") {
  using text::open_clip_clean;
  // ftfy's own examples (those that need no mojibake repair).
  CHECK(open_clip_clean("Broken text&hellip; it&#x2019;s \xEF\xAC\x82ubberi\xEF\xAC\x81" "c!") == "Broken text\xE2\x80\xA6 it's flubberific!");
  CHECK(open_clip_clean("\xEF\xBC\xAC\xEF\xBC\xAF\xEF\xBC\xB5\xEF\xBC\xA4\xE3\x80\x80\xEF\xBC\xAE\xEF\xBC\xAF\xEF\xBC\xA9\xEF\xBC\xB3\xEF\xBC\xA5\xEF\xBC\xB3") ==
        "LOUD NOISES");
  CHECK(open_clip_clean("P&EACUTE;REZ") == "P\xC3\x89REZ");
  CHECK(open_clip_clean("&ntilde; &Ntilde; &NTILDE; &nTILDE;") == "\xC3\xB1 \xC3\x91 \xC3\x91 &nTILDE;");
  // Curly quotes straightened (the 12 Parti prompts where OpenCLIP and transformers differ).
  CHECK(open_clip_clean("a corgi\xE2\x80\x99s head, \xE2\x80\x9Cquoted\xE2\x80\x9D") == "a corgi's head, \"quoted\"");
  // html.unescape: without ';', the longest entity prefix, numeric references and their replacements.
  CHECK(open_clip_clean("&amp") == "&");
  CHECK(open_clip_clean("&notit;") == "\xC2\xACit;");
  CHECK(open_clip_clean("x&#128;y") == "x\xE2\x82\xACy");           // 0x80 is the euro sign
  CHECK(open_clip_clean("a&#xD800;b") == "a\xEF\xBF\xBD" "b");      // a surrogate becomes U+FFFD
  CHECK(open_clip_clean("a&#65535;b") == "ab");                     // a noncharacter is dropped
  CHECK(open_clip_clean("&#;&#x;&") == "&#;&#x;&");
  // A line with '<' is not unescaped by ftfy (html.unescape still runs twice after it).
  CHECK(open_clip_clean("&amp;amp;amp;") == "&");
  CHECK(open_clip_clean("<b>&amp;amp;amp;</b>") == "<b>&amp;</b>");
  // Controls, terminal escapes, line breaks; ends stripped.
  CHECK(open_clip_clean("  \x1B[31mred\x1B[0m\x07 \xEF\xBB\xBF") == "red");
  CHECK(open_clip_clean("a\r\nb\rc") == "a\nb\nc");
  CHECK(open_clip_clean("\xC2\x92quoted\xC2\x92") == "'quoted'");   // a C1 control read as windows-1252, then uncurled
  CHECK(open_clip_clean("e\xCC\x81") == "\xC3\xA9");                 // NFC
  CHECK_THROWS_WITH(open_clip_clean("bad \xFF utf-8"), Catch::Contains("the text to clean"));
}

TEST_CASE("the CLIP tokenizer with OpenCLIP's cleaning: same ids as the text cleaned first, off by default", "[text][open_clip_clean]") {
  const auto plain = text::ClipTokenizer(test_text::TinyVocab({"ca", "cat</w>"}).json(), "#version: 0.2\nc a\nca t</w>\n");
  const auto cleaned = plain.with_open_clip_cleaning();
  CHECK_FALSE(plain.open_clip_cleaning());
  CHECK(cleaned.open_clip_cleaning());
  const std::string s = "a cat\xE2\x80\x99s &amp; \xEF\xBC\xA3\xEF\xBC\xA1\xEF\xBC\xB4";
  CHECK(cleaned.encode(s) == plain.encode(text::open_clip_clean(s)));
  CHECK(cleaned.encode(s) != plain.encode(s));
}
