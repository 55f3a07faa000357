// libFuzzer target for every reader of untrusted files: the IDX reader, the safetensors reader, the
// trainer's checkpoint loader, the TorchScript loader, diffusers' config.json (UNet and VAE) and the
// sharded-safetensors index, the CLIP tokenizer (vocab.json + merges.txt, then a text to tokenize)
// the LoRA file loader (diffusers' format with peft's metadata, onto a small model), and PyTorch's
// checkpoint files (torch.save's zip archives: `pt` mutates whole files, `pickle` only the data.pkl
// inside an archive written around it with valid CRCs, so that the pickle reader is reached). One
// binary; DIFFINSTRUCT_FUZZ_TARGET picks the reader
// (idx | safetensors | checkpoint | torchscript | config | index | tokenizer | lora | pt | pickle). Built with clang and
// -fsanitize=fuzzer,address,undefined (tests/fuzz/CMakeLists.txt); scripts/fuzz.sh runs each target
// for a bounded time from the committed seed corpus in tests/fuzz/corpus/<target>/.
//
// Contract checked: a reader either succeeds or throws c10::Error; anything else escaping (another
// exception type, a crash, a sanitizer report, a hang past -timeout, memory past -rss_limit_mb) is a
// finding. With --make-corpus DIR the binary writes the seed corpus instead (run without libFuzzer's
// driver: DIFFINSTRUCT_FUZZ_MAKE_CORPUS=DIR).
#include "../text/tiny_vocab.hpp"
#include "../trainer/tiny_trainer.hpp"

#include <diffinstruct/adapters/lora_file.hpp>
#include <diffinstruct/data/idx.hpp>
#include <diffinstruct/io/module_state.hpp>
#include <diffinstruct/io/safetensors.hpp>
#include <diffinstruct/io/torch_checkpoint.hpp>
#include <diffinstruct/models/autoencoder_kl.hpp>
#include <diffinstruct/models/layers.hpp>
#include <diffinstruct/models/unet2d_condition_config.hpp>
#include <diffinstruct/text/clip_tokenizer.hpp>

#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>

namespace di = diffinstruct;
namespace fs = std::filesystem;

namespace {

enum class Target { kIdx, kSafetensors, kCheckpoint, kTorchscript, kConfig, kIndex, kTokenizer, kLora, kPt, kPickle };

/// The model a LoRA file is loaded onto: attention-like projections and a convolution, named as in
/// a diffusers UNet block, in native layers (what adapters/lora.hpp adapts).
struct LoraTargetImpl : torch::nn::Module {
  di::models::Linear to_q{nullptr}, to_k{nullptr};
  di::models::Conv2d conv{nullptr};
  LoraTargetImpl() {
    to_q = register_module("to_q", di::models::Linear(8, 8));
    to_k = register_module("to_k", di::models::Linear(8, 4, false));
    conv = register_module("conv", di::models::Conv2d(2, 3, 3, 1, 1));
  }
};
TORCH_MODULE(LoraTarget);
Target g_target = Target::kIdx;
std::string g_input;  // the per-process file each input is written to
std::unique_ptr<tiny::Trainer> g_trainer;

void write_file(const std::string& path, const uint8_t* data, size_t size) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
}

/// A stored (uncompressed) zip archive of `records`, as torch.save lays one out, with valid CRC-32s.
std::string stored_zip(const std::vector<std::pair<std::string, std::string>>& records) {
  auto le = [](std::string& out, uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out += static_cast<char>((v >> (8 * i)) & 0xFF);
  };
  std::string body, directory;
  for (const auto& [name, data] : records) {
    const uint32_t crc = static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(data.data()), static_cast<uInt>(data.size())));
    const uint64_t offset = body.size();
    std::string local;
    le(local, 0x04034b50u, 4), le(local, 20, 2), le(local, 0, 2), le(local, 0, 2), le(local, 0, 4), le(local, crc, 4);
    le(local, data.size(), 4), le(local, data.size(), 4), le(local, name.size(), 2), le(local, 0, 2);
    body += local + name + data;
    le(directory, 0x02014b50u, 4), le(directory, 20, 2), le(directory, 20, 2), le(directory, 0, 2), le(directory, 0, 2), le(directory, 0, 4);
    le(directory, crc, 4), le(directory, data.size(), 4), le(directory, data.size(), 4), le(directory, name.size(), 2), le(directory, 0, 2);
    le(directory, 0, 2), le(directory, 0, 2), le(directory, 0, 2), le(directory, 0, 4), le(directory, offset, 4);
    directory += name;
  }
  std::string end;
  le(end, 0x06054b50u, 4), le(end, 0, 2), le(end, 0, 2), le(end, records.size(), 2), le(end, records.size(), 2);
  le(end, directory.size(), 4), le(end, body.size(), 4), le(end, 0, 2);
  return body + directory + end;
}

void read_torch_checkpoint(const std::string& path) {
  di::io::TorchCheckpoint ckpt(path, "the fuzzed file");
  (void)ckpt.keys();
  for (const auto& s : ckpt.state_dict()) (void)s.read().sum().item<double>();
}

void run_one() {
  switch (g_target) {
    case Target::kIdx: {
      const auto t = di::data::read_idx(g_input);
      (void)t.sum().item<int64_t>();
      break;
    }
    case Target::kSafetensors: {
      di::io::SafetensorsFile f(g_input);
      for (const auto& e : f.tensors()) {
        if (e.bytes() <= (uint64_t{1} << 20)) (void)f.read(e.name);
      }
      if (f.has_checksums()) f.verify_checksums();
      break;
    }
    case Target::kCheckpoint: g_trainer->load(g_input, di::ResumeMode::kKeepLiveOptions); break;
    case Target::kTorchscript: {
      auto m = di::load_torchscript(g_input, di::ModelRole::kGenerator);
      (void)m;
      break;
    }
    case Target::kConfig: {
      std::string text;
      {
        std::ifstream in(g_input, std::ios::binary);
        text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      }
      try {
        (void)di::models::UNet2DConditionConfig::from_json(text).to_json();
      } catch (const c10::Error&) {
      }
      (void)di::models::AutoencoderKLConfig::from_json(text);
      break;
    }
    case Target::kIndex: {
      di::io::SafetensorsCheckpoint ckpt(g_input);  // beside s1.safetensors, written at start-up
      for (const auto& n : ckpt.names()) (void)ckpt.read(n);
      break;
    }
    case Target::kTokenizer: {
      // The input is vocab.json, a NUL, merges.txt, a NUL, then a text to tokenize and decode; or
      // tokenizer.json, a NUL, then the text.
      std::string bytes;
      {
        std::ifstream in(g_input, std::ios::binary);
        bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      }
      const size_t a = bytes.find('\0'), b = a == std::string::npos ? a : bytes.find('\0', a + 1);
      if (a == std::string::npos) break;
      const di::text::ClipTokenizer tok = b == std::string::npos
                                              ? di::text::ClipTokenizer::from_tokenizer_json(bytes.substr(0, a))
                                              : di::text::ClipTokenizer(bytes.substr(0, a), bytes.substr(a + 1, b - a - 1));
      const std::string text = bytes.substr((b == std::string::npos ? a : b) + 1);
      const auto ids = tok.encode(text);
      (void)tok.decode(ids);
      (void)tok.batch({text});
      break;
    }
    case Target::kPt: read_torch_checkpoint(g_input); break;
    case Target::kPickle: {
      // The input is data.pkl; the archive around it holds two storages, "0" (6 floats) and "1" (2 bytes).
      std::string pkl;
      {
        std::ifstream in(g_input, std::ios::binary);
        pkl.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      }
      std::string floats(24, '\0');
      std::ofstream(g_input + ".pt", std::ios::binary)
          << stored_zip({{"archive/data.pkl", pkl}, {"archive/byteorder", "little"}, {"archive/data/0", floats}, {"archive/data/1", "\x01\x02"}});
      read_torch_checkpoint(g_input + ".pt");
      break;
    }
    case Target::kLora: {
      LoraTarget model;  // a fresh model each time: a loaded file adds adapters to it
      const auto lora = di::adapters::load_lora(*model, g_input);
      for (const auto& p : lora.parameters()) (void)p.sum().item<double>();
      break;
    }
  }
}

/// A small CLIP-layout vocabulary (tests/text/tiny_vocab.hpp), its merges and a prompt, as the
/// tokenizer target's input.
std::string tokenizer_seed() {
  const std::string vocab = test_text::TinyVocab({"ca", "cat</w>", "ph", "pho", "photo</w>"}).json();
  const std::string merges = "#version: 0.2\nc a\nca t</w>\np h\nph o\npho to</w>\n";
  return vocab + std::string(1, '\0') + merges + std::string(1, '\0') + "A photo of a CAT, caf\xC3\xA9 <|endoftext|> 42 don't!!";
}

/// The same tokenizer as a tokenizer.json (what transformers 5 writes), a NUL, then the prompt.
std::string tokenizer_json_seed() {
  const std::string vocab = test_text::TinyVocab({"ca", "cat</w>", "ph", "pho", "photo</w>"}).json();
  return R"({"model": {"type": "BPE", "end_of_word_suffix": "</w>", "vocab": )" + vocab +
         R"(, "merges": [["c", "a"], ["ca", "t</w>"], "p h", ["ph", "o"], ["pho", "to</w>"]]}})" + std::string(1, '\0') +
         "A photo of a CAT, caf\xC3\xA9 <|endoftext|> 42 don't!!";
}

void make_corpus(const std::string& dir) {
  for (const char* t : {"idx", "safetensors", "checkpoint", "torchscript", "config", "index", "tokenizer", "lora", "pt", "pickle"})
    fs::create_directories(fs::path(dir) / t);
  // IDX: a plain and a gzipped file.
  std::string idx = {0, 0, 8, 2, 0, 0, 0, 3, 0, 0, 0, 4};
  for (int i = 0; i < 12; ++i) idx += static_cast<char>(i * 7);
  std::ofstream(fs::path(dir) / "idx" / "plain.idx", std::ios::binary) << idx;
  gzFile gz = gzopen((fs::path(dir) / "idx" / "small.idx.gz").string().c_str(), "wb");
  gzwrite(gz, idx.data(), static_cast<unsigned>(idx.size()));
  gzclose(gz);
  // safetensors: plain, and with checksums and metadata.
  di::io::write_safetensors((fs::path(dir) / "safetensors" / "plain.safetensors").string(),
                            {{"w", torch::arange(6, torch::kFloat32).reshape({2, 3})}, {"b", torch::ones({3}, torch::kBFloat16)}});
  di::io::write_safetensors((fs::path(dir) / "safetensors" / "checked.safetensors").string(),
                            {{"i", torch::arange(4, torch::kLong)}, {"m", torch::ones({2, 2}, torch::kBool)}}, {{"format", "pt"}},
                            /*checksums=*/true);
  // A checkpoint of the fuzzed trainer's own shape, and a TorchScript generator.
  auto t = tiny::make(1, tiny::di::DiStarTrainerOptions().batch_size(4), 4);
  t->step();
  t->save((fs::path(dir) / "checkpoint" / "tiny.ckpt").string());
  torch::jit::Module m("Gen");
  m.register_parameter("w", torch::ones({2, 2}), false);
  m.define("def forward(self, z):\n    return z.matmul(self.w)\n");
  m.save((fs::path(dir) / "torchscript" / "gen.pt").string());
  // diffusers configs: the published SD1.5/SDXL UNets and SD's VAE (tests/models/configs/), and the
  // writer's own output; a valid index and a partial one.
  for (const char* f : {"sd15_unet.json", "sdxl_unet.json", "sd15_vae.json"})
    fs::copy_file(fs::path("tests/models/configs") / f, fs::path(dir) / "config" / f, fs::copy_options::overwrite_existing);
  std::ofstream(fs::path(dir) / "config" / "written.json") << di::models::UNet2DConditionConfig().to_json();
  std::ofstream(fs::path(dir) / "index" / "valid.json")
      << "{\n  \"metadata\": {\"total_size\": 20},\n  \"weight_map\": {\"w\": \"s1.safetensors\", \"v\": \"s1.safetensors\"}\n}\n";
  std::ofstream(fs::path(dir) / "index" / "partial.json") << "{\"weight_map\": {\"w\": \"s1.safetensors\"}}";
  std::ofstream(fs::path(dir) / "tokenizer" / "clip.bin", std::ios::binary) << tokenizer_seed();
  std::ofstream(fs::path(dir) / "tokenizer" / "clip_tokenizer_json.bin", std::ios::binary) << tokenizer_json_seed();
  // torch.save files (tests/io/torch_checkpoints/, written by PyTorch), and their data.pkl records.
  for (const char* f : {"state_dict.pt", "checkpoint.pt", "object_in_state.pt"}) {
    const fs::path from = fs::path("tests/io/torch_checkpoints") / f;
    fs::copy_file(from, fs::path(dir) / "pt" / f, fs::copy_options::overwrite_existing);
    for (const auto& r : di::io::verify_zip_archive(from.string()))
      if (r.name.size() > 9 && r.name.compare(r.name.size() - 9, 9, "/data.pkl") == 0) {
        std::ifstream in(from, std::ios::binary);
        std::string bytes(static_cast<size_t>(r.size), '\0');
        in.seekg(static_cast<std::streamoff>(r.data_offset));
        in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
        std::ofstream(fs::path(dir) / "pickle" / (std::string(f) + ".pkl"), std::ios::binary) << bytes;
      }
  }
  // LoRA files as save_lora writes them: every layer, and only the projections at another rank.
  {
    torch::manual_seed(3);
    LoraTarget all;
    const auto lora = di::adapters::add_lora(*all, di::adapters::LoraOptions().rank(2).alpha(4).target_modules({"to_q", "to_k", "conv"}));
    di::adapters::save_lora(lora, (fs::path(dir) / "lora" / "all.safetensors").string());
    LoraTarget some;
    const auto lora2 = di::adapters::add_lora(*some, di::adapters::LoraOptions().rank(1).target_modules({"to_q"}));
    di::adapters::save_lora(lora2, (fs::path(dir) / "lora" / "to_q.safetensors").string());
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  at::set_num_threads(1);
  if (const char* dir = std::getenv("DIFFINSTRUCT_FUZZ_MAKE_CORPUS")) {
    make_corpus(dir);
    std::printf("seed corpus written to %s\n", dir);
    std::exit(0);
  }
  const char* target = std::getenv("DIFFINSTRUCT_FUZZ_TARGET");
  const std::string name = target ? target : "";
  if (name == "idx") g_target = Target::kIdx;
  else if (name == "safetensors") g_target = Target::kSafetensors;
  else if (name == "checkpoint") g_target = Target::kCheckpoint;
  else if (name == "torchscript") g_target = Target::kTorchscript;
  else if (name == "config") g_target = Target::kConfig;
  else if (name == "index") g_target = Target::kIndex;
  else if (name == "tokenizer") g_target = Target::kTokenizer;
  else if (name == "lora") g_target = Target::kLora;
  else if (name == "pt") g_target = Target::kPt;
  else if (name == "pickle") g_target = Target::kPickle;
  else {
    std::fprintf(stderr, "set DIFFINSTRUCT_FUZZ_TARGET to idx, safetensors, checkpoint, torchscript, config, index, tokenizer, lora, pt or pickle\n");
    std::exit(2);
  }
  const char* tmp = std::getenv("TMPDIR");
  g_input = (fs::path(tmp ? tmp : "/tmp") / ("diffinstruct_fuzz_" + name + "_" + std::to_string(::getpid()))).string();
  if (name == "idx") g_input += ".gz";  // the name does not matter to the reader; zlib sniffs the content
  if (name == "index") {
    g_input += ".safetensors.index.json";  // the name says "index" to SafetensorsCheckpoint
    di::io::write_safetensors((fs::path(g_input).parent_path() / "s1.safetensors").string(),
                              {{"w", torch::ones({2})}, {"v", torch::arange(3, torch::kLong)}});
  }
  if (g_target == Target::kCheckpoint) g_trainer = tiny::make(1, tiny::di::DiStarTrainerOptions().batch_size(4), 4);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  write_file(g_input, data, size);
  try {
    run_one();
  } catch (const c10::Error&) {
    // the documented outcome for a bad file
  }
  return 0;
}
