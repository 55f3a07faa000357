#pragma once
/// \file A `torch::nn::Module`'s parameters and buffers to and from safetensors, by name: one file,
/// or a sharded checkpoint (`*.safetensors.index.json` + shards, as diffusers and transformers
/// write them).
///
/// Loading converts each tensor to the module's dtype and moves it to the module's device, one
/// tensor at a time (never a second copy of the model in memory). Before a single byte is copied,
/// every name and shape is checked; in strict mode (the default) any missing, unexpected or
/// mis-shaped name is an error listing them, and the module is left untouched. Non-strict loading
/// copies what matches and returns the report.
///
/// Example:
///   auto report = io::load_safetensors(*unet, "unet/diffusion_pytorch_model.safetensors");
///   io::save_safetensors(*unet, "out/model.safetensors", {.dtype = torch::kHalf});

#include <diffinstruct/io/atomic_file.hpp>
#include <diffinstruct/io/json.hpp>
#include <diffinstruct/io/safetensors.hpp>
#include <diffinstruct/io/small_file.hpp>

#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace diffinstruct {
namespace io {

/// What a load found.
struct LoadReport {
  int64_t loaded = 0;                   ///< tensors copied into the module
  int64_t parameters = 0;               ///< elements of the module's parameters and buffers
  std::vector<std::string> missing;     ///< in the module, not in the file(s)
  std::vector<std::string> unexpected;  ///< in the file(s), not in the module
  std::vector<std::string> mismatched;  ///< in both, with different shapes ("name: file [..] vs module [..]")
  std::map<std::string, int64_t> file_dtypes;  ///< dtype name -> tensors of that dtype in the file(s)
  bool clean() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
  /// One paragraph: counts, then up to `max_names` names of each kind.
  std::string summary(size_t max_names = 10) const {
    std::ostringstream os;
    os << loaded << " tensors loaded (" << parameters << " elements)";
    if (!file_dtypes.empty()) {
      os << "; file dtypes:";
      for (const auto& [d, n] : file_dtypes) os << " " << d << " ×" << n;
    }
    auto list = [&](const char* what, const std::vector<std::string>& v) {
      if (v.empty()) return;
      os << "; " << v.size() << " " << what << ":";
      for (size_t i = 0; i < v.size() && i < max_names; ++i) os << (i ? ", " : " ") << v[i];
      if (v.size() > max_names) os << ", ... (" << v.size() - max_names << " more)";
    };
    list("missing", missing);
    list("unexpected", unexpected);
    list("mis-shaped", mismatched);
    return os.str();
  }
};

struct LoadOptions {
  /// Refuse (and copy nothing) unless names and shapes match exactly.
  TORCH_ARG(bool, strict) = true;
  /// Maps a name in the file to the module's name (e.g. old diffusers VAE attention names); identity if unset.
  TORCH_ARG(std::function<std::string(const std::string&)>, rename) = nullptr;
};

struct SaveOptions {
  /// Dtype of the floating-point tensors written (integer and bool tensors keep theirs); unset: as in the module.
  c10::optional<c10::ScalarType> dtype;
  std::map<std::string, std::string> metadata{{"format", "pt"}};
  /// Shard when the tensors exceed this many bytes (0: never), as `<stem>-00001-of-0000N.safetensors`
  /// with `<stem>.safetensors.index.json`.
  uint64_t max_shard_bytes = 0;
};

/// The safetensors files of a checkpoint: one file, or the shards named by an index.
class SafetensorsCheckpoint {
 public:
  /// `path`: a `.safetensors` file, or a `.safetensors.index.json` whose `weight_map` names the shards
  /// (file names in the index's own folder; paths that leave it are refused).
  explicit SafetensorsCheckpoint(const std::string& path) {
    namespace fs = std::filesystem;
    const bool index = path.size() > 5 && path.compare(path.size() - 5, 5, ".json") == 0;
    if (!index) {
      files_.push_back(std::make_unique<SafetensorsFile>(path));
      for (const auto& e : files_[0]->tensors()) where_.emplace(e.name, 0);
      return;
    }
    const std::string text = read_small_file(path, uint64_t{64} << 20, "a safetensors index");
    const auto root = parse_json(text, "the index '" + path + "'", 8);
    auto bad = [&](const std::string& why) { TORCH_CHECK(false, "diffinstruct::io: '", path, "' is not a valid safetensors index: ", why); };
    if (!root.is_object()) bad("it is not a JSON object");
    const auto* map = root.find("weight_map");
    if (!map || !map->is_object()) bad("it has no weight_map object");
    std::map<std::string, size_t> shard_of_file;
    const fs::path dir = fs::path(path).parent_path();
    for (const auto& [name, file] : map->object()) {
      if (!file.is_string()) bad("the entry of '" + name + "' is not a file name");
      const std::string& f = file.string();
      if (f.empty() || f.find('/') != std::string::npos || f.find('\\') != std::string::npos || f == "." || f == "..")
        bad("tensor '" + name + "' points at '" + f + "'; shards must be plain file names beside the index");
      auto it = shard_of_file.find(f);
      if (it == shard_of_file.end()) {
        files_.push_back(std::make_unique<SafetensorsFile>((dir / f).string()));
        it = shard_of_file.emplace(f, files_.size() - 1).first;
      }
      if (!files_[it->second]->find(name)) bad("tensor '" + name + "' is not in its shard '" + f + "'");
      where_.emplace(name, it->second);
    }
    // A tensor in a shard but not in the map would be silently ignored by other loaders; refuse it.
    for (const auto& [f, i] : shard_of_file)
      for (const auto& e : files_[i]->tensors())
        if (!where_.count(e.name)) bad("shard '" + f + "' holds tensor '" + e.name + "', which the weight_map does not list");
  }

  /// Every tensor name, sorted.
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& [n, i] : where_) out.push_back(n);
    return out;
  }
  const SafetensorsEntry* find(const std::string& name) const {
    const auto it = where_.find(name);
    return it == where_.end() ? nullptr : files_[it->second]->find(name);
  }
  const SafetensorsFile& file_of(const std::string& name) const { return *files_.at(where_.at(name)); }
  torch::Tensor read(const std::string& name) const { return file_of(name).read(name); }
  size_t num_files() const { return files_.size(); }


 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, size_t> where_;
};
namespace detail {

/// The module's parameters and buffers by their full names.
inline std::vector<std::pair<std::string, torch::Tensor>> module_tensors(const torch::nn::Module& m) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& p : m.named_parameters(true)) out.emplace_back(p.key(), p.value());
  for (const auto& b : m.named_buffers(true)) out.emplace_back(b.key(), b.value());
  return out;
}

} // namespace detail

namespace detail {

/// The comparison of load_safetensors, and the module name -> file name pairs it found.
inline LoadReport compare_names(const torch::nn::Module& module, const SafetensorsCheckpoint& ckpt, const LoadOptions& options,
                                const std::string& what, std::map<std::string, std::string>* pairs) {
  LoadReport report;
  std::map<std::string, torch::Tensor> targets;
  for (auto& [name, t] : module_tensors(module)) {
    targets.emplace(name, t);
    report.parameters += t.numel();
  }
  std::map<std::string, std::string> source_of;  // module name -> file name
  for (const auto& file_name : ckpt.names()) {
    const std::string name = options.rename() ? options.rename()(file_name) : file_name;
    const auto* e = ckpt.find(file_name);
    report.file_dtypes[safetensors_dtype_name(e->dtype)]++;
    const auto it = targets.find(name);
    if (it == targets.end()) {
      report.unexpected.push_back(file_name);
      continue;
    }
    TORCH_CHECK(source_of.emplace(name, file_name).second, "diffinstruct::io: ", what, " has two tensors for '", name, "' ('",
                source_of[name], "' and '", file_name, "')");
    if (it->second.sizes() != c10::IntArrayRef(e->shape))
      report.mismatched.push_back(name + ": file " + c10::str(c10::IntArrayRef(e->shape)) + " vs module " + c10::str(it->second.sizes()));
  }
  for (const auto& [name, t] : targets)
    if (!source_of.count(name)) report.missing.push_back(name);
  if (pairs) *pairs = std::move(source_of);
  return report;
}

} // namespace detail

/// What load_safetensors would find, without copying anything: works on a module built on the
/// `meta` device, so a checkpoint can be checked against a model before the model is allocated.
inline LoadReport compare_safetensors(const torch::nn::Module& module, const SafetensorsCheckpoint& ckpt, const LoadOptions& options = {},
                                      const std::string& what = "the checkpoint") {
  return detail::compare_names(module, ckpt, options, what, nullptr);
}

/// Checks names and shapes of `ckpt` against `module`, then (when strict and clean, or not strict)
/// copies every matching tensor into it. See the file comment.
inline LoadReport load_safetensors(torch::nn::Module& module, const SafetensorsCheckpoint& ckpt, const LoadOptions& options = {},
                                   const std::string& what = "the checkpoint") {
  std::map<std::string, std::string> source_of;
  LoadReport report = detail::compare_names(module, ckpt, options, what, &source_of);
  TORCH_CHECK(!options.strict() || report.clean(), "diffinstruct::io::load_safetensors: ", what,
              " does not match the module (nothing was loaded): ", report.summary());
  std::map<std::string, torch::Tensor> targets;
  for (auto& [name, t] : detail::module_tensors(module)) targets.emplace(name, t);
  for (const auto& [name, file_name] : source_of) {
    auto& dst = targets.at(name);
    const auto* e = ckpt.find(file_name);
    if (dst.sizes() != c10::IntArrayRef(e->shape)) continue;
    TORCH_CHECK(e->dtype != c10::ScalarType::Bool || dst.scalar_type() == c10::ScalarType::Bool, "diffinstruct::io: tensor '", file_name,
                "' is BOOL, but the module's '", name, "' is ", dst.scalar_type());
    ckpt.file_of(file_name).read_into(*e, dst);
    ++report.loaded;
  }
  return report;
}

/// Same, from a `.safetensors` file or a `.safetensors.index.json`.
inline LoadReport load_safetensors(torch::nn::Module& module, const std::string& path, const LoadOptions& options = {}) {
  return load_safetensors(module, SafetensorsCheckpoint(path), options, "'" + path + "'");
}

/// Writes the module's parameters and buffers to `path` (a `.safetensors` name), atomically; with
/// `max_shard_bytes`, as shards plus `<path>.index.json` instead. Returns the files written.
inline std::vector<std::string> save_safetensors(const torch::nn::Module& module, const std::string& path, const SaveOptions& options = {}) {
  namespace fs = std::filesystem;
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  uint64_t total = 0;
  for (auto& [name, t] : detail::module_tensors(module)) {
    auto v = t.detach();
    if (options.dtype && v.is_floating_point()) v = v.to(*options.dtype);
    total += static_cast<uint64_t>(v.numel()) * v.element_size();
    tensors.emplace_back(name, v);
  }
  auto write_one = [&](const std::string& target, const std::vector<std::pair<std::string, torch::Tensor>>& part) {
    replace_file_atomically(target, [&](const std::string& tmp) { write_safetensors(tmp, part, options.metadata, false, /*durable=*/true); },
                            1, "the safetensors file");
  };
  if (options.max_shard_bytes == 0 || total <= options.max_shard_bytes) {
    write_one(path, tensors);
    return {path};
  }
  TORCH_CHECK(path.size() > 12 && path.compare(path.size() - 12, 12, ".safetensors") == 0,
              "diffinstruct::io::save_safetensors: a sharded checkpoint's name must end in .safetensors, got '", path, "'");
  std::vector<std::vector<std::pair<std::string, torch::Tensor>>> shards(1);
  uint64_t in_shard = 0;
  for (auto& nt : tensors) {
    const uint64_t bytes = static_cast<uint64_t>(nt.second.numel()) * nt.second.element_size();
    if (in_shard > 0 && in_shard + bytes > options.max_shard_bytes) {
      shards.emplace_back();
      in_shard = 0;
    }
    shards.back().push_back(nt);
    in_shard += bytes;
  }
  const std::string stem = fs::path(path).filename().string().substr(0, fs::path(path).filename().string().size() - 12);
  const fs::path dir = fs::path(path).parent_path();
  auto shard_name = [&](size_t i) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "-%05zu-of-%05zu.safetensors", i + 1, shards.size());
    return stem + buf;
  };
  std::vector<std::string> written;
  std::string map;
  for (size_t i = 0; i < shards.size(); ++i) {
    const std::string name = shard_name(i);
    write_one((dir / name).string(), shards[i]);
    written.push_back((dir / name).string());
    for (const auto& [tensor, t] : shards[i]) map += std::string(map.empty() ? "" : ",\n") + "    " + json_quote(tensor) + ": " + json_quote(name);
  }
  const std::string index = "{\n  \"metadata\": {\"total_size\": " + std::to_string(total) + "},\n  \"weight_map\": {\n" + map + "\n  }\n}\n";
  const std::string index_path = path + ".index.json";
  write_text_file_atomically(index_path, index, "the safetensors index");
  written.push_back(index_path);
  return written;
}

} // namespace io
} // namespace diffinstruct
