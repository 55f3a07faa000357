// The I/O family: CRC-32C, the strict JSON reader, safetensors read/write (every dtype, metadata,
// checksums, streaming into live tensors) and its refusal of hostile files, atomic replacement.
#include "../test_files.hpp"
#include <diffinstruct/io/atomic_file.hpp>
#include <diffinstruct/io/safetensors.hpp>

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <random>

namespace io = diffinstruct::io;
namespace fs = std::filesystem;

namespace {
fs::path scratch(const std::string& name) { return test_util::scratch_path("io_tests", name); }
using test_util::read_all;
using test_util::write_all;

/// A safetensors file from a header text and a data size (bytes of zeros).
void write_raw(const fs::path& p, const std::string& header, size_t data_bytes, int64_t declared_len = -1) {
  std::string out(8, '\0');
  const uint64_t n = declared_len < 0 ? header.size() : static_cast<uint64_t>(declared_len);
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(n >> (8 * i));
  out += header;
  out += std::string(data_bytes, '\0');
  write_all(p, out);
}
std::string open_error(const fs::path& p) {
  try {
    io::SafetensorsFile f(p.string());
  } catch (const c10::Error& e) {
    return e.what_without_backtrace();
  }
  return "(opened)";
}
}  // namespace

TEST_CASE("CRC-32C: the check value, hardware equals the portable table, and it continues across chunks", "[io][crc32c]") {
  const std::string check = "123456789";
  CHECK(io::crc32c(0, check.data(), check.size()) == 0xE3069283u);
  CHECK(io::crc32c_portable(0, check.data(), check.size()) == 0xE3069283u);
  CHECK(io::crc32_ieee(0, check.data(), check.size()) == 0xCBF43926u);
  std::mt19937 rng(1);
  std::vector<unsigned char> buf(10000);
  for (auto& b : buf) b = static_cast<unsigned char>(rng());
  for (size_t offset : {0, 1, 3, 7}) {
    for (size_t n : {0, 1, 7, 8, 9, 63, 64, 1000, 9990}) {
      const uint32_t whole = io::crc32c(0, buf.data() + offset, n);
      CHECK(whole == io::crc32c_portable(0, buf.data() + offset, n));
      const size_t half = n / 3;
      CHECK(io::crc32c(io::crc32c(0, buf.data() + offset, half), buf.data() + offset + half, n - half) == whole);
    }
  }
}

TEST_CASE("the JSON reader accepts JSON and refuses everything else by name", "[io][json]") {
  const auto v = io::parse_json(R"({"a": [1, -2, 3.5e2, true, null], "s": "x\u00e9\ud83d\ude00\n", "o": {}})", "test");
  REQUIRE(v.is_object());
  CHECK(v.find("a")->array()[1].integer() == -2);
  CHECK(v.find("a")->array()[2].number() == 350.0);
  CHECK(v.find("s")->string() == "x\xc3\xa9\xf0\x9f\x98\x80\n");
  // Raw UTF-8 of every length passes through unchanged.
  CHECK(io::parse_json("\"x\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"", "t").string() == "x\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
  CHECK(v.find("o")->object().empty());
  CHECK(v.find("missing") == nullptr);
  CHECK(io::parse_json(" 7 ", "t").integer() == 7);
  // An integer past int64 is a number (as transformers' model_max_length = 10^30), never an integer.
  const auto big = io::parse_json("1000000000000000019884624838656", "t");
  CHECK(big.is_number());
  CHECK_FALSE(big.is_integer());
  CHECK(big.number() == 1e30);
  const std::vector<std::pair<std::string, std::string>> bad = {
      {R"({"a": 1, "a": 2})", "duplicate key \"a\""},
      {R"([1, 2,])", "unexpected character ']'"},
      {R"({"a": 1} x)", "unexpected characters after"},
      {R"("\x")", "bad escape"},
      {"\"a\nb\"", "control character"},
      {R"("\ud83d")", "unpaired surrogate"},
      {R"(1e999)", "out of range"},
      {R"("abc)", "unterminated string"},
      {R"(01)", "unexpected characters after"},
      {R"(-)", "bad number"},
      {R"(tru)", "expected 'true'"},
      {"", "unexpected end of text"},
      {std::string(100, '[') + std::string(100, ']'), "nested deeper than 64 levels"},
      // UTF-8 (RFC 3629): a stray continuation byte, an overlong '/', a UTF-16 surrogate, past U+10FFFF,
      // a Latin-1 byte, a sequence cut short.
      {"\"\x80\"", "invalid UTF-8"},
      {"\"\xc0\xaf\"", "invalid UTF-8"},
      {"\"\xed\xa0\x80\"", "invalid UTF-8"},
      {"\"\xf4\x90\x80\x80\"", "invalid UTF-8"},
      {"\"caf\xe9\"", "invalid UTF-8"},
      {"\"\xe2\x82", "truncated UTF-8"},
  };
  for (const auto& [text, why] : bad) {
    INFO(text);
    CHECK_THROWS_WITH(io::parse_json(text, "'doc.json'"), Catch::Contains("'doc.json' is not valid JSON") && Catch::Contains(why));
  }
  CHECK(io::json_quote("a\"b\\c\n\x01") == R"("a\"b\\c\n\u0001")");
}

TEST_CASE("safetensors round trip: every dtype, scalars, empty tensors, metadata, checksums", "[io][safetensors]") {
  torch::manual_seed(0);
  std::vector<std::pair<std::string, torch::Tensor>> tensors = {
      {"f32", torch::randn({3, 4})},
      {"f16", torch::randn({5}).to(torch::kHalf)},
      {"bf16", torch::randn({2, 3}).to(torch::kBFloat16)},
      {"f64", torch::randn({2, 2, 2}, torch::kFloat64)},
      {"i64", torch::randint(-1000, 1000, {7}, torch::kLong)},
      {"i32", torch::randint(-1000, 1000, {3}, torch::kInt)},
      {"i16", torch::randint(-1000, 1000, {3}, torch::kShort)},
      {"i8", torch::randint(-100, 100, {4}, torch::kChar)},
      {"u8", torch::randint(0, 255, {4}, torch::kByte)},
      {"bool", torch::rand({6}) > 0.5},
      {"scalar", torch::tensor(3.25)},
      {"empty", torch::zeros({0, 3})},
      {"strided", torch::randn({4, 6}).t()},  // non-contiguous: written contiguously
      {"unicode \xc3\xa9 \"quoted\"", torch::ones({1})},
  };
  const auto path = scratch("all.safetensors");
  io::write_safetensors(path.string(), tensors, {{"format", "pt"}, {"note", "line\nbreak"}}, /*checksums=*/true, /*durable=*/true);
  io::SafetensorsFile f(path.string());
  CHECK(f.data_offset() % 8 == 0);
  CHECK(f.metadata().at("format") == "pt");
  CHECK(f.metadata().at("note") == "line\nbreak");
  REQUIRE(f.tensors().size() == tensors.size());
  for (const auto& [name, t] : tensors) {
    INFO(name);
    const auto back = f.read(name);
    CHECK(back.scalar_type() == t.scalar_type());
    CHECK(back.sizes() == t.sizes());
    CHECK(torch::equal(back, t.contiguous()));
  }
  CHECK_NOTHROW(f.verify_checksums());
  // read_into converts to the destination's dtype and layout.
  auto dst = torch::empty({3, 4}, torch::kFloat64);
  f.read_into("f32", dst);
  CHECK(torch::equal(dst, tensors[0].second.to(torch::kFloat64)));
  auto strided_dst = torch::empty({4, 6}).t();  // [6, 4], not contiguous: read through a staging copy
  f.read_into("strided", strided_dst);
  CHECK(torch::equal(strided_dst, tensors[12].second));
  CHECK_THROWS_WITH(f.read_into("f32", torch::empty({4, 3})), Catch::Contains("has shape [3, 4], expected [4, 3]"));
  CHECK_THROWS_WITH(f.read("nope"), Catch::Contains("has no tensor 'nope'"));
  // Without checksums the file is the plain format.
  io::write_safetensors(scratch("plain.safetensors").string(), {{"x", torch::ones({2})}});
  io::SafetensorsFile plain(scratch("plain.safetensors").string());
  CHECK(plain.metadata().empty());
  CHECK_FALSE(plain.has_checksums());
  CHECK_THROWS_WITH(plain.verify_checksums(), Catch::Contains("carries no checksums"));
  // Writer refusals.
  CHECK_THROWS_WITH(io::write_safetensors(scratch("dup.safetensors").string(), {{"a", torch::ones(1)}, {"a", torch::ones(1)}}),
                    Catch::Contains("duplicate tensor name 'a'"));
  CHECK_THROWS_WITH(io::write_safetensors(scratch("cplx.safetensors").string(), {{"c", torch::ones(1, torch::kComplexFloat)}}),
                    Catch::Contains("which safetensors cannot hold"));
  CHECK_THROWS_WITH(io::write_safetensors((scratch("nodir") / "x.safetensors").string(), {{"a", torch::ones(1)}}),
                    Catch::Contains("cannot create"));
}

TEST_CASE("hostile safetensors files get an error naming the file and the broken rule, never an allocation the file cannot justify",
          "[io][safetensors][hostile]") {
  const auto p = scratch("hostile.safetensors");
  auto expect = [&](const std::string& header, size_t data, const std::string& why, int64_t declared = -1) {
    write_raw(p, header, data, declared);
    const auto msg = open_error(p);
    INFO(header.substr(0, 200));
    CHECK_THAT(msg, Catch::Contains("hostile.safetensors") && Catch::Contains(why));
  };
  const std::string ok = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  write_raw(p, ok, 8);
  CHECK(open_error(p) == "(opened)");
  write_all(p, "abc");
  CHECK_THAT(open_error(p), Catch::Contains("fewer than the 8 of the header length"));
  expect(ok, 8, "runs past the end of the file", /*declared=*/1000);
  expect(ok, 8, "exceeds the limit of 104857600 bytes", /*declared=*/int64_t{200} << 20);
  expect(ok, 4, "but the file holds 4 data bytes");                 // truncated data
  expect(ok, 12, "but the file holds 12 data bytes");               // trailing bytes
  expect(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})", 8, "not valid JSON");
  expect(R"([1,2])", 0, "does not start with '{'");
  expect(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", 16,
         "duplicate key \"a\"");
  expect(R"({"a":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}})", 8, "unknown dtype 'Q4'");
  expect(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8, "(12 bytes) but data_offsets span 8 bytes");
  expect(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12,
         "starts at data byte 4, expected 8");  // overlap
  expect(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}})", 20,
         "starts at data byte 12, expected 8");  // gap
  expect(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8, "has data_offsets [8, 0]");
  expect(R"({"a":{"dtype":"F32","shape":[4611686018427387904,4611686018427387904],"data_offsets":[0,8]}})", 8, "size overflows");
  expect(R"({"a":{"dtype":"F32","shape":[1000000000000],"data_offsets":[0,4000000000000]}})", 8, "but the file holds 8 data bytes");
  expect(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8, "not a non-negative integer");
  expect(R"({"a":{"dtype":"F32","shape":[2]}})", 8, "no data_offsets pair");
  expect(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,16]}})", 8, "no data_offsets pair");
  expect(R"({"a":[1]})", 8, "is not an object");
  expect(R"({"__metadata__":{"k":1}})", 0, "__metadata__ entry 'k' is not a string");
  expect(R"({"a":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],"data_offsets":[0,4]}})", 4, "rank 20");
  expect(R"({"":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8, "empty name");
  expect("{" + std::string(60, '[') + "}", 0, "not valid JSON");
  // Entries may come in any order in the header; the data must still tile the buffer.
  write_raw(p, R"({"b":{"dtype":"U8","shape":[4],"data_offsets":[8,12]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 12);
  io::SafetensorsFile f(p.string());
  CHECK(f.tensors()[0].name == "a");
  CHECK(f.at("b").bytes() == 4);
}

TEST_CASE("replace_file_atomically leaves the target untouched when the write fails, and removes its temporary", "[io][atomic]") {
  const auto target = scratch("atomic.bin");
  write_all(target, "old");
  CHECK_THROWS_WITH(io::replace_file_atomically(target.string(), [](const std::string& tmp) {
                      write_all(tmp, "half");
                      TORCH_CHECK(false, "disk full");
                    }),
                    Catch::Contains("disk full"));
  CHECK(read_all(target) == "old");
  for (const auto& e : fs::directory_iterator(target.parent_path())) CHECK(e.path().filename().string().find("atomic.bin.tmp") == std::string::npos);
  io::replace_file_atomically(target.string(), [](const std::string& tmp) { write_all(tmp, "new"); });
  CHECK(read_all(target) == "new");
}
