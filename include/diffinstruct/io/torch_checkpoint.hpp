#pragma once
/// \file PyTorch's own checkpoint files (`.pt`, `.pth`, `.bin`: what `torch.save` writes since 1.6, a
/// zip archive of `<name>/data.pkl` and one record per storage, `<name>/data/<key>`), read natively,
/// without Python and without running the pickle: the archive is verified first (zip_check.hpp:
/// every record inside the file, every stored record's CRC-32), the pickle is read by the restricted
/// reader of pickle.hpp, and a tensor is read from its storage record only when asked for, with its
/// size, stride and offset checked against the record's bytes. No size written in the file can make
/// this reader allocate more than the file holds.
///
/// What it understands is what state dicts contain: dicts (plain and OrderedDict), lists, tuples,
/// strings, numbers, and tensors of the usual dtypes on any saved device (loaded to the CPU). The
/// legacy format (before PyTorch 1.6), TorchScript archives, big-endian files and compressed records
/// are refused with a message that says so.
///
/// Example:
///   io::TorchCheckpoint ckpt("HPS_v2.1_compressed.pt");
///   auto sources = ckpt.state_dict();          // the top-level dict, or its "state_dict" entry
///   io::load_tensor_sources(*model, sources);  // tensor_source.hpp

#include <diffinstruct/io/fd.hpp>
#include <diffinstruct/io/pickle.hpp>
#include <diffinstruct/io/tensor_source.hpp>
#include <diffinstruct/io/zip_check.hpp>

#include <torch/torch.h>

#include <fcntl.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace diffinstruct {
namespace io {

class TorchCheckpoint {
 public:
  /// Opens and verifies `path`; `what` names it in errors ("the HPS checkpoint").
  explicit TorchCheckpoint(const std::string& path, const std::string& what = "the checkpoint") : path_(path), what_(what) {
    refuse_legacy();
    const auto records = verify_zip_archive(path, what);
    const ZipRecord* pkl = nullptr;
    for (const auto& r : records) {
      TORCH_CHECK(r.name.find("/constants.pkl") == std::string::npos, fail("it is a TorchScript archive (torch.jit.save), not a torch.save checkpoint"));
      const auto slash = r.name.find('/');
      if (slash != std::string::npos && r.name.compare(slash, std::string::npos, "/data.pkl") == 0) {
        TORCH_CHECK(!pkl, fail("it holds two data.pkl records"));
        pkl = &r;
        prefix_ = r.name.substr(0, slash + 1);
      }
    }
    TORCH_CHECK(pkl, fail("it is a zip archive without a data.pkl record, not a torch.save checkpoint"));
    const ZipRecord* byteorder = nullptr;
    for (const auto& r : records) {
      if (r.name.compare(0, prefix_.size(), prefix_) != 0) continue;
      const std::string rel = r.name.substr(prefix_.size());
      if (rel.compare(0, 5, "data/") == 0) storages_.emplace(rel.substr(5), r);
      if (rel == "byteorder") byteorder = &r;
    }
    TORCH_CHECK(pkl->stored, fail("its data.pkl is compressed; torch.save never compresses it"));
    TORCH_CHECK(pkl->size <= (uint64_t{256} << 20), fail("its data.pkl has " + std::to_string(pkl->size) + " bytes, more than 256 MiB"));
    if (byteorder) {
      const auto order = read_record(*byteorder, 16);
      TORCH_CHECK(std::string(order.begin(), order.end()) == "little", fail("it was written big-endian; this reader reads little-endian files only"));
    }
    const auto bytes = read_record(*pkl, pkl->size);
    tree_ = pickle::parse(bytes.data(), bytes.size(), "'" + path_ + "' (" + what_ + ")");
  }

  const std::string& path() const { return path_; }
  const pickle::Tree& tree() const { return tree_; }

  /// The string keys of the top-level dict (empty when the file holds something else).
  std::vector<std::string> keys() const {
    std::vector<std::string> out;
    const auto& root = tree_.at(tree_.root);
    if (root.kind != pickle::Kind::kDict) return out;
    for (size_t i = 0; i + 1 < root.items.size(); i += 2)
      if (tree_.at(root.items[i]).kind == pickle::Kind::kString) out.push_back(tree_.at(root.items[i]).text);
    return out;
  }

  /// The tensors of a state dict, with their names as saved. `key` picks the entry of the top-level
  /// dict that holds it; empty: the top level's "state_dict" entry when it has a dict there (a
  /// training checkpoint), else the top level itself. Nested dicts of tensors are flattened with '.', as PyTorch names
  /// submodules. A value that is not a tensor or a dict is an error naming it.
  std::vector<TensorSource> state_dict(const std::string& key = "") const {
    uint32_t dict = tree_.root;
    const auto& root = tree_.at(dict);
    TORCH_CHECK(root.kind == pickle::Kind::kDict, fail(std::string("it holds a ") + pickle::kind_name(root.kind) + ", not a dict of tensors"));
    const uint32_t* inner = find(dict, "state_dict");
    const std::string pick = key.empty() && inner && tree_.at(*inner).kind == pickle::Kind::kDict ? "state_dict" : key;
    if (!pick.empty()) {
      const auto* v = find(dict, pick);
      std::string have;
      for (const auto& k : keys()) have += (have.empty() ? "" : ", ") + k;
      TORCH_CHECK(v, fail("it has no '" + pick + "' entry (its top-level keys: " + have + ")"));
      dict = *v;
    }
    std::vector<TensorSource> out;
    flatten(dict, "", 0, out);
    return out;
  }

 private:
  std::string fail(const std::string& why) const { return "diffinstruct::io: '" + path_ + "' (" + what_ + "): " + why; }

  // Before 1.6 torch.save wrote a bare pickle starting with a magic number: say so, not "not a zip".
  void refuse_legacy() const {
    detail::Fd fd(::open(path_.c_str(), O_RDONLY | O_CLOEXEC));
    TORCH_CHECK(fd.get() >= 0, fail(std::string("cannot open it: ") + std::strerror(errno)));
    unsigned char head[2] = {0, 0};
    const auto got = ::pread(fd.get(), head, 2, 0);
    TORCH_CHECK(!(got == 2 && head[0] == 0x80 && head[1] <= 5),
                fail("it is in the legacy torch.save format (before PyTorch 1.6), which this reader does not read; re-save it with a current "
                     "PyTorch: torch.save(torch.load(f, weights_only=True), f2)"));
  }

  std::vector<unsigned char> read_record(const ZipRecord& r, uint64_t max) const {
    TORCH_CHECK(r.stored, fail("record '" + r.name + "' is compressed"));
    std::vector<unsigned char> buf(static_cast<size_t>(std::min(r.size, max)));
    detail::Fd fd(::open(path_.c_str(), O_RDONLY | O_CLOEXEC));
    TORCH_CHECK(fd.get() >= 0, fail(std::string("cannot open it: ") + std::strerror(errno)));
    detail::pread_exact(fd.get(), buf.data(), buf.size(), r.data_offset, path_, "a record");
    return buf;
  }

  const uint32_t* find(uint32_t dict, const std::string& key) const {
    const auto& d = tree_.at(dict);
    for (size_t i = 0; i + 1 < d.items.size(); i += 2)
      if (tree_.at(d.items[i]).kind == pickle::Kind::kString && tree_.at(d.items[i]).text == key) return &d.items[i + 1];
    return nullptr;
  }

  void flatten(uint32_t dict, const std::string& prefix, int depth, std::vector<TensorSource>& out) const {
    TORCH_CHECK(depth <= 16, fail("its dicts nest deeper than 16 levels at '" + prefix + "'"));
    const auto& d = tree_.at(dict);
    TORCH_CHECK(d.kind == pickle::Kind::kDict, fail("'" + prefix + "' is a " + pickle::kind_name(d.kind) + ", not a dict of tensors"));
    for (size_t i = 0; i + 1 < d.items.size(); i += 2) {
      const auto& k = tree_.at(d.items[i]);
      TORCH_CHECK(k.kind == pickle::Kind::kString, fail("a key under '" + prefix + "' is a " + pickle::kind_name(k.kind) + ", not a string"));
      const std::string name = prefix.empty() ? k.text : prefix + "." + k.text;
      const auto& v = tree_.at(d.items[i + 1]);
      if (v.kind == pickle::Kind::kDict) flatten(d.items[i + 1], name, depth + 1, out);
      else if (v.kind == pickle::Kind::kTensor) out.push_back(source(name, v));
      else
        TORCH_CHECK(false, fail("'" + name + "' is a " + pickle::kind_name(v.kind) + (v.text.empty() || v.kind == pickle::Kind::kString ? "" : " (" + v.text + ")") +
                                ", not a tensor"));
    }
  }

  TensorSource source(const std::string& name, const pickle::Value& t) const {
    const auto& s = tree_.at(t.items.at(0));
    const auto it = storages_.find(s.text);
    TORCH_CHECK(it != storages_.end(), fail("tensor '" + name + "' uses storage '" + s.text + "', which has no record"));
    const ZipRecord& r = it->second;
    TORCH_CHECK(r.stored, fail("the storage of '" + name + "' is compressed"));
    const auto item = static_cast<uint64_t>(c10::elementSize(s.dtype));
    TORCH_CHECK(static_cast<uint64_t>(s.integer) <= r.size / item,
                fail("tensor '" + name + "' claims a storage of " + std::to_string(s.integer) + " elements; its record holds " + std::to_string(r.size) + " bytes"));
    // The view must lie inside the storage, and hold no more elements than it (an expanded view
    // would let a few bytes of header ask for an arbitrary allocation); checked without overflow.
    const auto numel = static_cast<uint64_t>(s.integer);
    uint64_t last = static_cast<uint64_t>(t.integer), count = 1;
    bool empty = false;
    for (const int64_t n : t.sizes) empty = empty || n == 0;
    if (!empty) {
      for (size_t d = 0; d < t.sizes.size(); ++d) {
        const auto n = static_cast<uint64_t>(t.sizes[d]), stride = static_cast<uint64_t>(t.strides[d]);
        TORCH_CHECK(n <= numel && count <= numel / n, fail("tensor '" + name + "' (size " + c10::str(c10::IntArrayRef(t.sizes)) +
                                                          ") has more elements than its storage of " + std::to_string(numel)));
        count *= n;
        if (n > 1) {
          TORCH_CHECK(stride <= numel && last < numel && (stride == 0 || n - 1 <= (numel - 1 - last) / stride),
                      fail("tensor '" + name + "' (size " + c10::str(c10::IntArrayRef(t.sizes)) + ", stride " + c10::str(c10::IntArrayRef(t.strides)) +
                           ", offset " + std::to_string(t.integer) + ") reaches past its storage of " + std::to_string(numel) + " elements"));
          last += (n - 1) * stride;
        }
      }
      TORCH_CHECK(last < numel, fail("tensor '" + name + "' starts at element " + std::to_string(t.integer) + " of a storage of " + std::to_string(numel)));
    }
    TensorSource out;
    out.name = name;
    out.shape = t.sizes;
    out.dtype = s.dtype;
    const std::string path = path_;
    const uint64_t first = static_cast<uint64_t>(t.integer), span = empty ? 0 : last - first + 1, data_offset = r.data_offset;
    const auto sizes = t.sizes, strides = t.strides;
    const auto dtype = s.dtype;
    out.read = [path, first, span, data_offset, item, sizes, strides, dtype]() {
      auto flat = torch::empty({static_cast<int64_t>(span)}, torch::TensorOptions().dtype(dtype));
      if (span > 0) {
        detail::Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
        TORCH_CHECK(fd.get() >= 0, "diffinstruct::io: cannot open '", path, "': ", std::strerror(errno));
        detail::pread_exact(fd.get(), flat.data_ptr(), span * item, data_offset + first * item, path, "a tensor");
      }
      if (span == 0) return torch::empty(sizes, torch::TensorOptions().dtype(dtype));
      return flat.as_strided(sizes, strides, 0).contiguous();
    };
    return out;
  }

  std::string path_, what_, prefix_;
  std::map<std::string, ZipRecord> storages_;
  pickle::Tree tree_;
};

/// The state dict of a `.pt`/`.pth` file (see TorchCheckpoint::state_dict).
inline std::vector<TensorSource> load_torch_state_dict(const std::string& path, const std::string& what = "the checkpoint", const std::string& key = "") {
  return TorchCheckpoint(path, what).state_dict(key);
}

/// The tensors of a checkpoint as the reward models ship theirs: a `.safetensors` file, or else a
/// torch.save file (`.pt`, `.pth`, `.bin`; its state dict as TorchCheckpoint::state_dict finds it).
inline std::vector<TensorSource> state_dict_sources(const std::string& path, const std::string& what = "the checkpoint") {
  const bool safetensors = path.size() > 12 && path.compare(path.size() - 12, 12, ".safetensors") == 0;
  return safetensors ? safetensors_sources(path) : load_torch_state_dict(path, what);
}

} // namespace io
} // namespace diffinstruct
