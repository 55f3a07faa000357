#pragma once
/// \file IDX files (the MNIST / Fashion-MNIST format), plain or gzip-compressed, read with zlib; and
/// the Fashion-MNIST splits as tensors. Needs zlib at link time (CMake: ZLIB::ZLIB).
///
/// An IDX file is a big-endian header — two zero bytes, a type code (0x08 = unsigned byte), the number
/// of dimensions — then one 32-bit size per dimension, then the data. Every failure names the file and
/// what was expected: missing, not gzip/IDX, wrong type, truncated, trailing bytes, or images and
/// labels that do not belong together.

#include <torch/torch.h>

#include <zlib.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace diffinstruct {
namespace data {

/// The contents of an unsigned-byte IDX file: shape and bytes (uint8 tensor of that shape).
///
/// Hostile files: the declared size is compared with what the file can hold before anything is
/// allocated (a plain file must hold exactly the header plus the data; a gzip stream cannot expand
/// more than 1032-fold, deflate's limit), and a gzip stream must end with its trailer intact (CRC
/// and length, checked by zlib when the stream is closed).
inline torch::Tensor read_idx(const std::string& path) {
  TORCH_CHECK(std::filesystem::is_regular_file(path), "diffinstruct::read_idx: no such file: '", path, "'");
  const auto file_bytes = static_cast<int64_t>(std::filesystem::file_size(path));
  gzFile file = gzopen(path.c_str(), "rb");  // reads plain files too (transparently)
  TORCH_CHECK(file != nullptr, "diffinstruct::read_idx: cannot open '", path, "'");
  struct Closer {
    gzFile f;
    ~Closer() {
      if (f) gzclose(f);
    }
  } closer{file};
  auto read_exact = [&](void* dst, size_t bytes, const char* what) {
    size_t done = 0;
    while (done < bytes) {
      const unsigned chunk = static_cast<unsigned>(std::min<size_t>(bytes - done, size_t{1} << 30));
      const int got = gzread(file, static_cast<char*>(dst) + done, chunk);
      if (got < 0) {
        int code = 0;
        const char* msg = gzerror(file, &code);
        TORCH_CHECK(false, "diffinstruct::read_idx: '", path, "' is corrupt while reading the ", what, ": ", msg);
      }
      TORCH_CHECK(got > 0, "diffinstruct::read_idx: '", path, "' is truncated: expected ", bytes, " bytes of ", what, ", got ", done + got);
      done += static_cast<size_t>(got);
    }
  };
  std::array<uint8_t, 4> magic{};
  read_exact(magic.data(), 4, "header");
  TORCH_CHECK(magic[0] == 0 && magic[1] == 0, "diffinstruct::read_idx: '", path, "' is not an IDX file (expected the magic 00 00 .. .., got ",
              int(magic[0]), " ", int(magic[1]), " ...)");
  TORCH_CHECK(magic[2] == 0x08, "diffinstruct::read_idx: '", path, "' holds type code 0x", std::hex, int(magic[2]),
              "; only unsigned bytes (0x08) are supported");
  const int dims = magic[3];
  TORCH_CHECK(dims >= 1 && dims <= 4, "diffinstruct::read_idx: '", path, "' claims ", dims, " dimensions; expected 1 to 4");
  std::vector<int64_t> shape(static_cast<size_t>(dims));
  int64_t count = 1;
  for (auto& d : shape) {
    std::array<uint8_t, 4> b{};
    read_exact(b.data(), 4, "header");
    d = (int64_t{b[0]} << 24) | (int64_t{b[1]} << 16) | (int64_t{b[2]} << 8) | int64_t{b[3]};
    TORCH_CHECK(d > 0 && d < (int64_t{1} << 28), "diffinstruct::read_idx: '", path, "' has an implausible dimension ", d);
    // Checked before multiplying: four dimensions below 2^28 can overflow 64 bits (found by fuzzing).
    TORCH_CHECK(count <= (int64_t{1} << 34) / d, "diffinstruct::read_idx: '", path, "' claims more than 2^34 elements (dimensions ",
                c10::IntArrayRef(shape.data(), static_cast<size_t>(&d - shape.data()) + 1), ")");
    count *= d;
  }
  // Nothing is allocated that the file cannot hold.
  const int64_t header_bytes = 4 + 4 * int64_t{dims};
  if (gzdirect(file)) {
    TORCH_CHECK(header_bytes + count == file_bytes, "diffinstruct::read_idx: '", path, "' declares ", c10::IntArrayRef(shape), " (",
                count, " bytes of data) but holds ", file_bytes - header_bytes, " bytes after its header (truncated, or not that file)");
  } else {
    constexpr int64_t kMaxDeflateRatio = 1032;
    TORCH_CHECK(count <= kMaxDeflateRatio * file_bytes, "diffinstruct::read_idx: '", path, "' declares ", c10::IntArrayRef(shape), " (",
                count, " bytes of data), more than a gzip file of ", file_bytes, " bytes can hold (at most ", kMaxDeflateRatio,
                " times its size)");
  }
  auto out = torch::empty(shape, torch::kUInt8);
  read_exact(out.data_ptr<uint8_t>(), static_cast<size_t>(count), "data");
  char extra = 0;
  const int more = gzread(file, &extra, 1);
  TORCH_CHECK(more <= 0, "diffinstruct::read_idx: '", path, "' has bytes after the ", count,
              " its header declares (wrong or concatenated file?)");
  int code = Z_OK;
  const char* msg = gzerror(file, &code);
  TORCH_CHECK(more == 0 && (code == Z_OK || code == Z_STREAM_END), "diffinstruct::read_idx: '", path,
              "' is truncated or corrupt after its data: ", msg);
  const int closed = gzclose(file);
  closer.f = nullptr;
  TORCH_CHECK(closed == Z_OK, "diffinstruct::read_idx: '", path, "' is truncated: its gzip stream ends without its trailer (CRC and length)",
              " or the trailer does not match (zlib code ", closed, ")");
  return out;
}

/// One split of Fashion-MNIST: images [N, 1, 28, 28] float in [-1, 1], labels [N] int64 in 0..9.
struct LabelledImages {
  torch::Tensor images, labels;
};

/// The ten classes, which play the prompts.
inline const std::array<const char*, 10>& fashion_mnist_classes() {
  static const std::array<const char*, 10> names{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                 "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return names;
}

/// Where Debian's `dataset-fashion-mnist` package puts the files.
inline const char* kDebianFashionMnistDir = "/usr/share/datasets/fashion-mnist";

/// Reads `train` (60 000) or `test` (10 000) from `dir` (files `{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`).
inline LabelledImages load_fashion_mnist(const std::string& dir, const std::string& split) {
  TORCH_CHECK(split == "train" || split == "test", "diffinstruct::load_fashion_mnist: split must be 'train' or 'test', got '", split, "'");
  TORCH_CHECK(std::filesystem::is_directory(dir), "diffinstruct::load_fashion_mnist: no such folder '", dir,
              "' (install Debian's dataset-fashion-mnist, or point at a copy of the four .gz files)");
  const std::string prefix = split == "train" ? "train" : "t10k";
  const std::string image_path = (std::filesystem::path(dir) / (prefix + "-images-idx3-ubyte.gz")).string();
  const std::string label_path = (std::filesystem::path(dir) / (prefix + "-labels-idx1-ubyte.gz")).string();
  const auto images = read_idx(image_path);
  const auto labels = read_idx(label_path);
  TORCH_CHECK(images.dim() == 3 && images.size(1) == 28 && images.size(2) == 28, "diffinstruct::load_fashion_mnist: '", image_path,
              "' holds ", images.sizes(), "; expected [N, 28, 28] images");
  TORCH_CHECK(labels.dim() == 1, "diffinstruct::load_fashion_mnist: '", label_path, "' holds ", labels.sizes(), "; expected [N] labels");
  TORCH_CHECK(images.size(0) == labels.size(0), "diffinstruct::load_fashion_mnist: ", images.size(0), " images in '", image_path, "' but ",
              labels.size(0), " labels in '", label_path, "'");
  TORCH_CHECK(labels.max().item<int64_t>() <= 9, "diffinstruct::load_fashion_mnist: '", label_path, "' holds label ",
              labels.max().item<int64_t>(), "; expected 0..9");
  return {images.unsqueeze(1).to(torch::kFloat32).div_(127.5).sub_(1.0), labels.to(torch::kInt64)};
}

}  // namespace data
}  // namespace diffinstruct
