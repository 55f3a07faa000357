#pragma once
/// \file LoRA adapters to and from safetensors files in diffusers' format (what
/// `pipeline.save_lora_weights` writes and `pipeline.load_lora_weights` reads):
///
///   "<prefix>.<module>.lora_A.weight", "<prefix>.<module>.lora_B.weight"
///
/// with prefix "unet" for a UNet ("text_encoder" for a CLIP text model), and the adapter's peft
/// LoraConfig as JSON in the header's `__metadata__` under "lora_adapter_metadata"
/// ({"unet.r": 8, "unet.lora_alpha": 8.0, "unet.target_modules": [...], ...}), which is where diffusers
/// reads alpha from. A file without that metadata gets alpha = rank (scale 1), diffusers' rule.
///
/// Example:
///   adapters::save_lora(lora, "out/pytorch_lora_weights.safetensors");         // prefix "unet"
///   adapters::save_lora({{"unet", unet_lora}, {"text_encoder", text_lora}}, path);   // a pipeline's adapters
///   auto lora = adapters::load_lora(*unet, "pytorch_lora_weights.safetensors");  // adds the adapters

#include <diffinstruct/adapters/lora.hpp>
#include <diffinstruct/io/atomic_file.hpp>
#include <diffinstruct/io/json.hpp>
#include <diffinstruct/io/safetensors.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace diffinstruct {
namespace adapters {

/// diffusers' safetensors metadata key for the adapter's LoraConfig.
inline constexpr const char* kLoraMetadataKey = "lora_adapter_metadata";

namespace detail {
inline std::string json_number(double v) {
  std::ostringstream s;
  s.precision(17);
  s << v;
  auto out = s.str();
  if (out.find_first_of(".eE") == std::string::npos) out += ".0";
  return out;
}
inline std::string with_prefix(const std::string& prefix, const std::string& key) { return prefix.empty() ? key : prefix + "." + key; }
}  // namespace detail

/// The peft LoraConfig of `lora` as diffusers' metadata JSON, keys under `prefix`: r and lora_alpha
/// (of the first layer), rank_pattern / alpha_pattern for the layers that differ, the target module
/// names in full, lora_dropout.
inline std::string lora_metadata_json(const Lora& lora, const std::string& prefix) {
  TORCH_CHECK(!lora.empty(), "diffinstruct::adapters::lora_metadata_json: the LoRA has no layers");
  const auto& first = *lora.layers().front().second;
  std::string targets, ranks, alphas;
  for (const auto& [name, layer] : lora.layers()) {
    // transformers 5's CLIP text models are flat (no text_model.), older ones are not; peft matches a
    // target as a dotted suffix, so the name without text_model. finds the layer in both. (The
    // tensor names keep it: diffusers drops it for a flat model.)
    const std::string target = name.rfind("text_model.", 0) == 0 ? name.substr(11) : name;
    targets += (targets.empty() ? "" : ", ") + io::json_quote(target);
    if (layer->rank() != first.rank()) ranks += (ranks.empty() ? "" : ", ") + io::json_quote(target) + ": " + std::to_string(layer->rank());
    if (layer->alpha() != first.alpha()) alphas += (alphas.empty() ? "" : ", ") + io::json_quote(target) + ": " + detail::json_number(layer->alpha());
  }
  auto key = [&](const char* k) { return io::json_quote(detail::with_prefix(prefix, k)); };
  std::string j = "{";
  j += key("r") + ": " + std::to_string(first.rank());
  j += ", " + key("lora_alpha") + ": " + detail::json_number(first.alpha());
  j += ", " + key("lora_dropout") + ": " + detail::json_number(first.dropout());
  j += ", " + key("target_modules") + ": [" + targets + "]";
  j += ", " + key("rank_pattern") + ": {" + ranks + "}";
  j += ", " + key("alpha_pattern") + ": {" + alphas + "}";
  j += ", " + key("init_lora_weights") + ": true";
  j += ", " + key("use_dora") + ": false";
  j += ", " + key("use_rslora") + ": false";
  return j + "}";
}

/// Writes the adapters of several models into one file, each under its prefix (a pipeline's file:
/// {"unet", unet_lora}, {"text_encoder", text_lora}), float32 unless `dtype` says otherwise, with names
/// and metadata diffusers loads; atomic (a temporary file renamed into place). A merged adapter is
/// written too (its A and B are what it is).
inline void save_lora(const std::vector<std::pair<std::string, Lora>>& parts, const std::string& path,
                      c10::optional<c10::ScalarType> dtype = c10::nullopt) {
  TORCH_CHECK(!parts.empty(), "diffinstruct::adapters::save_lora: nothing to save to '", path, "'");
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  std::string meta;
  std::vector<std::string> prefixes;
  for (const auto& [prefix, lora] : parts) {
    TORCH_CHECK(!lora.empty(), "diffinstruct::adapters::save_lora: the LoRA under '", prefix, "' has no layers (nothing to save to '", path, "')");
    TORCH_CHECK(std::find(prefixes.begin(), prefixes.end(), prefix) == prefixes.end(), "diffinstruct::adapters::save_lora: the prefix '", prefix,
                "' is given twice");
    prefixes.push_back(prefix);
    for (const auto& [name, t] : lora.named_parameters()) {
      auto cpu = t.detach().to(torch::kCPU);
      if (dtype) cpu = cpu.to(*dtype);
      tensors.emplace_back(detail::with_prefix(prefix, name), cpu.contiguous());
    }
    const std::string j = lora_metadata_json(lora, prefix);  // "{...}": the members go into one object
    meta += (meta.empty() ? "" : ", ") + j.substr(1, j.size() - 2);
  }
  std::map<std::string, std::string> metadata{{"format", "pt"}, {kLoraMetadataKey, "{" + meta + "}"}};
  io::replace_file_atomically(
      path, [&](const std::string& tmp) { io::write_safetensors(tmp, tensors, metadata, /*checksums=*/false, /*durable=*/true); }, 1,
      "LoRA file '" + path + "'");
}

/// Writes the adapters of one model under `prefix` ("unet"; "text_encoder" for a CLIP text model).
inline void save_lora(const Lora& lora, const std::string& path, const std::string& prefix = "unet",
                      c10::optional<c10::ScalarType> dtype = c10::nullopt) {
  save_lora(std::vector<std::pair<std::string, Lora>>{{prefix, lora}}, path, dtype);
}

/// How load_lora() builds what the file holds.
struct LoraLoadOptions {
  /// The adapters' dtype; unset: float32 (float64 for a float64 base).
  TORCH_ARG(c10::optional<c10::ScalarType>, dtype) = c10::nullopt;
  /// Freeze every parameter of the model that is not an adapter's (as add_lora).
  TORCH_ARG(bool, freeze_base) = true;
  /// Whether the loaded adapters train (requires_grad). false: a published LoRA kept as it is, part
  /// of a generator's frozen base (DMD2's one-step LoRA under a LoRA that trains).
  TORCH_ARG(bool, trainable) = true;
  /// The adapters' name on their layers ("": each layer's only adapter; LoraOptions::adapter_name).
  TORCH_ARG(std::string, adapter_name) = "";
  /// Dropout of the adapters built (the file does not say how it was trained).
  TORCH_ARG(double, dropout) = 0;
  /// Maps a module name of the file to the model's (identity when unset). A text encoder's LoRA saved
  /// with transformers 5 names its modules without the `text_model.` prefix that older files and
  /// models::ClipTextModel have: load it with `.rename(models::clip_text_canonical_name)`.
  TORCH_ARG(std::function<std::string(const std::string&)>, rename) = nullptr;
};

namespace detail {

struct LoraFileLayer {
  std::string module;
  const io::SafetensorsEntry* a = nullptr;
  const io::SafetensorsEntry* b = nullptr;
  double alpha = 0;
};

/// peft's pattern rule for rank_pattern / alpha_pattern keys, in its common form: a key names a
/// module whole or as the end of a dotted name.
inline const io::JsonValue* pattern_value(const io::JsonValue* pattern, const std::string& module) {
  if (!pattern || !pattern->is_object()) return nullptr;
  for (const auto& [k, v] : pattern->object()) {
    if (lora_target_matches(module, {k})) return &v;
  }
  return nullptr;
}

}  // namespace detail

/// Reads the LoRA in `path` (diffusers' format, the keys under `prefix`) into `model`: builds an
/// adapter on each named layer (or fills the adapter already there, which must have the file's rank
/// and alpha) and returns every adapter of the model with the options' adapter_name (all of them when
/// it has only unnamed ones). Tensors under other prefixes (a pipeline's
/// file holds the text encoder's adapters too) are left alone. Everything is checked before the model
/// is touched: unknown or missing modules, keys of other formats (kohya, the old attention-processor
/// format), shapes that do not fit the layer, non-floating or non-finite values, unsupported options
/// (DoRA, rsLoRA) all throw, naming the file and the tensor, and leave the model as it was.
inline Lora load_lora(torch::nn::Module& model, const std::string& path, const std::string& prefix = "unet", const LoraLoadOptions& o = {}) {
  const std::string where = "diffinstruct::adapters::load_lora: '" + path + "'";
  check_adapter_name(o.adapter_name(), "diffinstruct::adapters::load_lora");
  io::SafetensorsFile file(path);
  // The adapter's config, when the file has diffusers' metadata.
  const io::JsonValue* meta_alpha = nullptr;
  const io::JsonValue* alpha_pattern = nullptr;
  io::JsonValue meta;
  if (const auto it = file.metadata().find(kLoraMetadataKey); it != file.metadata().end()) {
    meta = io::parse_json(it->second, path + " __metadata__." + kLoraMetadataKey);
    TORCH_CHECK(meta.is_object(), where, ": its ", kLoraMetadataKey, " is not a JSON object");
    auto get = [&](const char* k) { return meta.find(detail::with_prefix(prefix, k)); };
    for (const char* unsupported : {"use_dora", "use_rslora"}) {
      const auto* v = get(unsupported);
      TORCH_CHECK(!v || (v->is_bool() && !v->boolean()) || v->is_null(), where, ": ", unsupported, " adapters are not supported");
    }
    meta_alpha = get("lora_alpha");
    TORCH_CHECK(!meta_alpha || meta_alpha->is_number(), where, ": its ", detail::with_prefix(prefix, "lora_alpha"), " is not a number");
    alpha_pattern = get("alpha_pattern");
  }
  // Group the tensors by module.
  const std::string head = prefix.empty() ? "" : prefix + ".";
  std::map<std::string, detail::LoraFileLayer> by_module;
  std::vector<std::string> order;
  for (const auto& e : file.tensors()) {
    if (e.name.compare(0, head.size(), head) != 0) continue;  // another model's adapter (a pipeline file holds several)
    const auto rest = e.name.substr(head.size());
    bool is_a = false;
    std::string module;
    for (const char* suffix : {".lora_A.weight", ".lora_B.weight"}) {
      const std::string s = suffix;
      if (rest.size() > s.size() && rest.compare(rest.size() - s.size(), s.size(), s) == 0) {
        module = rest.substr(0, rest.size() - s.size());
        is_a = s == ".lora_A.weight";
      }
    }
    TORCH_CHECK(!module.empty(), where, ": tensor '", e.name, "' is not a LoRA weight in diffusers' peft format (<module>.lora_A.weight / "
                ".lora_B.weight); files in the kohya or the old attention-processor format need converting with diffusers first");
    TORCH_CHECK(c10::isFloatingType(e.dtype), where, ": tensor '", e.name, "' has dtype ", e.dtype, ", expected a floating type");
    if (o.rename()) module = o.rename()(module);
    auto& layer = by_module[module];
    if (layer.module.empty()) {
      layer.module = module;
      order.push_back(module);
    }
    (is_a ? layer.a : layer.b) = &e;
  }
  TORCH_CHECK(!order.empty(), where, ": no tensors under the prefix '", prefix, "' (expected names like '", head,
              "<module>.lora_A.weight'; files in the kohya format, 'lora_unet_...', need converting with diffusers first)");
  std::map<std::string, std::shared_ptr<torch::nn::Module>> modules;
  for (const auto& item : model.named_modules()) modules.emplace(item.key(), item.value());
  // Check every layer against the model before changing anything.
  std::vector<std::pair<detail::LoraFileLayer, std::shared_ptr<torch::nn::Module>>> plan;
  for (const auto& name : order) {
    auto layer = by_module[name];
    TORCH_CHECK(layer.a && layer.b, where, ": module '", name, "' has ", layer.a ? "lora_A" : "lora_B", " but no ", layer.a ? "lora_B" : "lora_A");
    const auto it = modules.find(name);
    TORCH_CHECK(it != modules.end(), where, ": module '", name, "' does not exist in the model");
    TORCH_CHECK(detail::is_adaptable(*it->second), where, ": module '", name, "' is a ", it->second->name(),
                ", not a diffinstruct::models Linear or Conv2d");
    const auto w = detail::base_weight_of(*it->second);
    const auto& as = layer.a->shape;
    const auto& bs = layer.b->shape;
    const int64_t rank = as.empty() ? 0 : as[0];
    std::vector<int64_t> want_a, want_b;
    if (w.dim() == 2) {
      want_a = {rank, w.size(1)};
      want_b = {w.size(0), rank};
    } else {
      want_a = {rank, w.size(1), w.size(2), w.size(3)};
      want_b = {w.size(0), rank, 1, 1};
    }
    std::string rest_a;
    for (size_t i = 1; i < want_a.size(); ++i) rest_a += ", " + std::to_string(want_a[i]);
    TORCH_CHECK(rank > 0 && as == want_a, where, ": '", layer.a->name, "' has shape ", c10::IntArrayRef(as), ", expected [rank", rest_a,
                "] for a layer whose weight is ", w.sizes());
    TORCH_CHECK(bs == want_b, where, ": '", layer.b->name, "' has shape ", c10::IntArrayRef(bs), ", expected ", c10::IntArrayRef(want_b));
    layer.alpha = static_cast<double>(rank);
    if (const auto* v = detail::pattern_value(alpha_pattern, name)) layer.alpha = v->number();
    else if (meta_alpha) layer.alpha = meta_alpha->number();
    TORCH_CHECK(std::isfinite(layer.alpha) && layer.alpha > 0, where, ": module '", name, "' has lora_alpha ", layer.alpha, ", expected positive");
    if (auto existing = detail::lora_of(*it->second, o.adapter_name())) {
      TORCH_CHECK(existing->rank() == rank && existing->alpha() == layer.alpha, where, ": module '", name, "' already has an adapter of rank ",
                  existing->rank(), " and alpha ", existing->alpha(), "; the file's has rank ", rank, " and alpha ", layer.alpha);
      TORCH_CHECK(!existing->merged(), where, ": module '", name, "' has a merged adapter; unmerge() it before loading");
    } else {
      const auto why = detail::why_no_room(*it->second, o.adapter_name());
      TORCH_CHECK(why.empty(), where, ": module '", name, "' ", why);
    }
    plan.emplace_back(layer, it->second);
  }
  // Read every tensor and check its values, still without touching the model.
  std::vector<std::pair<torch::Tensor, torch::Tensor>> values;
  for (const auto& [layer, module] : plan) {
    auto a = file.read(layer.a->name), b = file.read(layer.b->name);
    TORCH_CHECK(torch::isfinite(a).all().item<bool>(), where, ": tensor '", layer.a->name, "' holds non-finite values");
    TORCH_CHECK(torch::isfinite(b).all().item<bool>(), where, ": tensor '", layer.b->name, "' holds non-finite values");
    values.emplace_back(std::move(a), std::move(b));
  }
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < plan.size(); ++i) {
    auto& [layer, module] = plan[i];
    auto lora = detail::lora_of(*module, o.adapter_name());
    if (!lora) {
      const auto dt = detail::adapter_dtype(o.dtype(), detail::base_weight_of(*module));
      lora = std::make_shared<LoraLayer>(*module, layer.a->shape[0], layer.alpha, o.dropout(), LoraInit::kKaimingUniform, dt, o.adapter_name());
      detail::adapters_of(*module)->push_back(lora);
    }
    lora->lora_A().copy_(values[i].first);
    lora->lora_B().copy_(values[i].second);
  }
  auto all = find_lora(model, o.adapter_name());
  if (o.freeze_base()) detail::freeze_base_of(model, all, o.trainable());
  else for (auto& p : all.parameters()) p.requires_grad_(o.trainable());
  return all;
}

} // namespace adapters
} // namespace diffinstruct
