#pragma once
/// \file Loading models exported from Python (`torch.jit.script(model).save(path)`) for a role in
/// DI* training, with errors that name the role, the file and what was expected.
///
/// The role wrappers (core/roles.hpp) call a TorchScript module's `forward` with IValues, so a
/// loaded module is used exactly like a native one: the generator and the assistant stay trainable
/// (the trainer optimises `module.parameters()`), the teacher and the reward are frozen by the
/// trainer and stay differentiable with respect to their inputs.
///
/// The arguments each role's `forward` takes (after self):
///   generator  (z) or (z, c)
///   denoiser   (x_t, t) or (x_t, t, c)       teacher and assistant
///   reward     (x0) or (x0, c)
/// `c` is one argument per tensor of the condition (ConditionTraits::append_ivalues).
///
/// The archive is verified first (io/zip_check.hpp: structure, and each record against its CRC-32),
/// so a damaged file is an error naming it. A TorchScript file is a program: load only trusted ones.

#include <diffinstruct/io/zip_check.hpp>

#include <torch/script.h>

#include <filesystem>
#include <string>

namespace diffinstruct {

enum class ModelRole { kGenerator, kDenoiser, kReward };

inline const char* role_name(ModelRole role) {
  switch (role) {
    case ModelRole::kGenerator: return "generator";
    case ModelRole::kDenoiser: return "denoiser";
    case ModelRole::kReward: return "reward";
  }
  return "model";
}

/// Loads a TorchScript module for `role` and checks its forward's arity: `condition_inputs` is the
/// number of condition arguments (0 for unconditional, 1 for a tensor condition).
inline torch::jit::Module load_torchscript(const std::string& path, ModelRole role, int condition_inputs = 0,
                                           const torch::Device& device = torch::kCPU) {
  const char* what = role_name(role);
  TORCH_CHECK(std::filesystem::is_regular_file(path), "diffinstruct::load_torchscript: no TorchScript file for the ", what, " at '",
              path, "' (export one with torch.jit.script(model).save(path))");
  // The zip structure and every record's CRC-32 first: LibTorch's reader checks neither.
  io::verify_zip_archive(path, std::string("the ") + what + ", a TorchScript archive");
  torch::jit::Module m;
  try {
    m = torch::jit::load(path, device);
  } catch (const c10::Error& e) {
    TORCH_CHECK(false, "diffinstruct::load_torchscript: '", path, "' (the ", what,
                ") is not a loadable TorchScript archive (truncated, corrupt, or saved with torch.save instead of torch.jit.save): ",
                e.what_without_backtrace());
  } catch (const std::exception& e) {  // the archive reader also throws std::out_of_range and others on damaged files
    TORCH_CHECK(false, "diffinstruct::load_torchscript: '", path, "' (the ", what, ") is corrupt or truncated: ", e.what());
  }
  c10::optional<torch::jit::Method> forward;
  try {
    forward = m.find_method("forward");
    if (forward) (void)forward->function().getSchema();
  } catch (const std::exception& e) {
    TORCH_CHECK(false, "diffinstruct::load_torchscript: '", path, "' (the ", what, ") is corrupt: its forward cannot be read: ", e.what());
  }
  TORCH_CHECK(forward.has_value(), "diffinstruct::load_torchscript: the ", what, " module in '", path, "' has no forward method");
  const int base = role == ModelRole::kDenoiser ? 2 : 1;
  const int expected = base + condition_inputs;
  const int got = static_cast<int>(forward->function().getSchema().arguments().size()) - 1;  // minus self
  TORCH_CHECK(got == expected, "diffinstruct::load_torchscript: the ", what, " module in '", path, "' has forward with ", got,
              " argument(s); expected ", expected, " (",
              role == ModelRole::kDenoiser ? "x_t, t" : role == ModelRole::kGenerator ? "z" : "x0",
              condition_inputs > 0 ? ", then the condition" : "", ")");
  return m;
}

}  // namespace diffinstruct
