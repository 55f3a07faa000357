// PyTorch's checkpoint files (torch.save's zip archives) read natively: every dtype, views into a
// shared storage, nested dicts, the state dict inside a training checkpoint, objects that are never
// constructed, and the refusals (legacy format, TorchScript, a view past its storage, an expanded view,
// a storage larger than its record, an unknown opcode, a cut pickle, a cut file). The files were
// written by torch.save (tests/io/make_torch_checkpoints.py) and are committed beside this test.
#include "../test_files.hpp"
#include <diffinstruct/io/safetensors.hpp>
#include <diffinstruct/io/torch_checkpoint.hpp>

#include <catch2/catch.hpp>

#include <filesystem>
#include <map>
#include <string>

namespace io = diffinstruct::io;
namespace fs = std::filesystem;

namespace {
std::string torch_file(const std::string& name) { return (fs::path(DIFFINSTRUCT_TEST_SOURCE_DIR) / "io" / "torch_checkpoints" / name).string(); }

std::map<std::string, torch::Tensor> read_sources(const std::vector<io::TensorSource>& sources) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& s : sources) {
    auto t = s.read();
    CHECK(t.sizes() == c10::IntArrayRef(s.shape));
    CHECK(t.scalar_type() == s.dtype);
    out.emplace(s.name, t);
  }
  return out;
}

std::string load_error(const std::string& name, const std::string& key = "") {
  try {
    io::TorchCheckpoint ckpt(torch_file(name), "the test file");
    read_sources(ckpt.state_dict(key));
  } catch (const c10::Error& e) {
    return e.what_without_backtrace();
  }
  return "";
}
}  // namespace

TEST_CASE("torch.save files: every dtype, views into one storage, parameters, bit for bit", "[io][torch_checkpoint]") {
  io::SafetensorsFile expected(torch_file("expected.safetensors"));
  const auto got = read_sources(io::load_torch_state_dict(torch_file("state_dict.pt"), "the test file"));
  std::vector<std::string> names;
  for (const auto& [n, t] : got) names.push_back(n);
  CHECK(names == std::vector<std::string>{"bf16", "bool", "double", "empty", "half", "int", "linear.bias", "linear.weight", "long", "param",
                                          "scalar", "sliced", "transposed", "uint8"});
  for (const auto& [n, t] : got) {
    INFO(n);
    const auto want = expected.read(n);
    REQUIRE(t.scalar_type() == want.scalar_type());
    REQUIRE(t.sizes() == want.sizes());
    CHECK(t.is_contiguous());
    CHECK(torch::equal(t, want));
  }
}

TEST_CASE("torch.save files: the state dict of a training checkpoint, nested dicts flattened, other entries left alone", "[io][torch_checkpoint]") {
  io::SafetensorsFile expected(torch_file("expected.safetensors"));
  io::TorchCheckpoint ckpt(torch_file("checkpoint.pt"), "the test file");
  CHECK(ckpt.keys() == std::vector<std::string>{"state_dict", "epoch", "name", "lr", "big", "neg", "when", "flags"});
  // Not a dict of tensors at the top: the "state_dict" entry is taken, by default and by name.
  for (const std::string key : {"", "state_dict"}) {
    const auto got = read_sources(ckpt.state_dict(key));
    REQUIRE(got.size() == 3);
    for (const std::string n : {"visual.proj", "visual.ln.weight", "logit_scale"}) CHECK(torch::equal(got.at(n), expected.read("nested." + n)));
  }
  // The plain values were read as what they are.
  const auto& tree = ckpt.tree();
  const auto& root = tree.at(tree.root);
  std::map<std::string, const io::pickle::Value*> v;
  for (size_t i = 0; i + 1 < root.items.size(); i += 2) v[tree.at(root.items[i]).text] = &tree.at(root.items[i + 1]);
  CHECK(v["epoch"]->integer == 3);
  CHECK(v["name"]->text == "run");
  CHECK(v["lr"]->real == 1e-4);
  CHECK(v["big"]->integer == (int64_t{1} << 40));
  CHECK(v["neg"]->integer == -5);
  CHECK(v["when"]->kind == io::pickle::Kind::kObject);
  CHECK(v["when"]->text == "fractions.Fraction");
  CHECK(v["flags"]->items.size() == 3);
  const auto error = [&](const std::string& key) {
    try {
      ckpt.state_dict(key);
    } catch (const c10::Error& e) {
      return std::string(e.what_without_backtrace());
    }
    return std::string();
  };
  CHECK_THAT(error("optimizer"), Catch::Contains("no 'optimizer' entry") && Catch::Contains("state_dict, epoch, name"));
  CHECK_THAT(error("epoch"), Catch::Contains("is a int, not a dict of tensors"));
}

TEST_CASE("torch.save files: what the reader refuses, each with a message naming the file and why", "[io][torch_checkpoint]") {
  CHECK_THAT(load_error("object_in_state.pt"), Catch::Contains("the test file") && Catch::Contains("'odd' is a object (fractions.Fraction), not a tensor"));
  CHECK_THAT(load_error("legacy.pt"), Catch::Contains("legacy torch.save format"));
  CHECK_THAT(load_error("torchscript.pt"), Catch::Contains("TorchScript archive"));
  CHECK_THAT(load_error("past_storage.pt"), Catch::Contains("'w' (size [3, 3], stride [3, 1], offset 0) reaches past its storage of 6"));
  CHECK_THAT(load_error("expanded.pt"), Catch::Contains("'w'") && Catch::Contains("more elements than its storage"));
  CHECK_THAT(load_error("huge_storage.pt"), Catch::Contains("claims a storage of 1073741824 elements; its record holds 24 bytes"));
  CHECK_THAT(load_error("bad_opcode.pt"), Catch::Contains("opcode 0xff is not one torch.save writes"));
  CHECK_THAT(load_error("truncated_pickle.pt"), Catch::Contains("refuses"));
  CHECK_THAT(load_error("truncated.pt"), Catch::Contains("corrupt or truncated"));
  CHECK_THAT(load_error("no_such_file.pt"), Catch::Contains("cannot open"));
}

TEST_CASE("torch.save files load into a module through tensor sources, checked before anything is copied", "[io][torch_checkpoint]") {
  torch::nn::Linear linear(torch::nn::LinearOptions(5, 3));
  auto sources = io::load_torch_state_dict(torch_file("state_dict.pt"), "the test file");
  const auto before = linear->weight.clone();
  // Strict: the file's other tensors are unexpected, nothing is copied.
  CHECK_THROWS_WITH(io::load_tensor_sources(*linear, sources, {}, "the test file"), Catch::Contains("unexpected") && Catch::Contains("nothing was loaded"));
  CHECK(torch::equal(linear->weight, before));
  std::vector<io::TensorSource> mine;
  for (const auto& s : sources)
    if (s.name.rfind("linear.", 0) == 0) mine.push_back(io::renamed(s, s.name.substr(7)));
  const auto report = io::load_tensor_sources(*linear, mine, {}, "the test file");
  CHECK(report.loaded == 2);
  io::SafetensorsFile expected(torch_file("expected.safetensors"));
  CHECK(torch::equal(linear->weight, expected.read("linear.weight")));
  // Slices and transposes as a model's loader uses them.
  const auto w = expected.read("linear.weight");
  const auto& weight = *std::find_if(sources.begin(), sources.end(), [](const io::TensorSource& s) { return s.name == "linear.weight"; });
  CHECK(torch::equal(io::row_slice(weight, "rows", 1, 3).read(), w.slice(0, 1, 3)));
  CHECK(torch::equal(io::transposed(weight, "t").read(), w.t()));
}
