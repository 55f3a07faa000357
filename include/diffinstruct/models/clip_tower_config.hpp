#pragma once
/// \file What the configs of the two CLIP towers (clip_text.hpp, clip_vision.hpp) share: the checks
/// of the transformer's shape, reading `architectures` (the model, or its WithProjection form) and
/// `model_type`, and the tower's config inside a CLIPModel's config.json (whose projection is the
/// CLIPModel's).

#include <diffinstruct/models/config_reader.hpp>

#include <string>
#include <vector>

namespace diffinstruct {
namespace models {
namespace detail {

/// The checks every CLIP tower's transformer meets; `model` names it in the error.
inline void check_clip_tower(const char* model, const std::string& what, int64_t hidden_size, int64_t num_attention_heads,
                             bool with_projection, int64_t projection_dim, const std::string& hidden_act) {
  auto bad = [&](const std::string& m) { TORCH_CHECK(false, "diffinstruct::models::", model, ": ", what, ": ", m); };
  if (num_attention_heads <= 0 || hidden_size % num_attention_heads != 0)
    bad("hidden_size " + std::to_string(hidden_size) + " does not split into " + std::to_string(num_attention_heads) + " heads");
  if (with_projection && projection_dim <= 0) bad("projection_dim must be positive");
  if (hidden_act != "quick_gelu" && hidden_act != "gelu") bad("hidden_act '" + hidden_act + "' is not supported (quick_gelu, gelu)");
}

/// Reads `architectures` and `model_type` of a tower's config.json: `model` ("CLIPTextModel") or its
/// WithProjection form, of `model_type`. Inside a CLIPModel's config there is no `architectures`
/// (the outer config has one). Returns whether the tower has its projection.
inline bool read_clip_tower_kind(ConfigReader& r, const std::string& what, const std::string& model, const std::string& model_type,
                                 bool in_clip_model) {
  if (in_clip_model) r.ignore({"architectures"});
  const auto arch = in_clip_model ? std::vector<std::string>{model} : r.strings("architectures", {model});
  TORCH_CHECK(arch.size() == 1 && (arch[0] == model || arch[0] == model + "WithProjection"), "diffinstruct::models: ", what, " describes ",
              arch.empty() ? std::string("no architecture") : arch[0], ", not a ", model, "[WithProjection]");
  const auto type = r.string("model_type", model_type);
  TORCH_CHECK(type == model_type, "diffinstruct::models: ", what, " has model_type '", type, "', expected ", model_type);
  r.ignore_transformers_bookkeeping();
  return arch[0] != model;
}

/// A tower's config from the `text_config` / `vision_config` of a CLIPModel's config.json: its
/// projection is the CLIPModel's (projection_dim comes from the outer config).
template <class Config>
Config clip_tower_in_model(const io::JsonValue& sub, int64_t projection_dim, const std::string& what) {
  ConfigReader r(sub, what);
  Config c = Config::read(r, what, /*in_clip_model=*/true);
  c.with_projection = true;
  c.projection_dim = projection_dim;
  c.validate(what);
  return c;
}

}  // namespace detail
}  // namespace models
}  // namespace diffinstruct
