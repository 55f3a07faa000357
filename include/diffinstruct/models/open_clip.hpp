#pragma once
/// \file OpenCLIP checkpoints (HPSv2 / HPSv2.1, LAION's CLIP models) on the native CLIP towers: the
/// state dict OpenCLIP's `CLIP` class saves — `visual.conv1.weight`, `visual.class_embedding`,
/// `visual.positional_embedding`, `visual.ln_pre`, `visual.transformer.resblocks.N.{ln_1, attn.
/// in_proj_weight, attn.in_proj_bias, attn.out_proj, ln_2, mlp.c_fc, mlp.c_proj}`, `visual.ln_post`,
/// `visual.proj`, and on the text side `token_embedding`, `positional_embedding`, `transformer.
/// resblocks.N.*`, `ln_final`, `text_projection`, `logit_scale` — mapped onto transformers' names,
/// which the towers of clip_text.hpp and clip_vision.hpp use: the fused in-projection split into
/// q, k and v (rows in that order), the projections (`x @ proj`, a [width, embed] matrix) transposed
/// into Linear weights. The two architectures compute the same function: pre-norm residual blocks,
/// the class token pooled after `ln_post`, the text pooled at the end-of-text token (the largest id,
/// OpenCLIP's argmax: the config's eos_token_id = 2 selects that rule), causal text attention.
///
/// The head counts are not in the weights: an `OpenClipConfig` gives them, by OpenCLIP's model name
/// (`OpenClipConfig::named("ViT-H-14")`, HPSv2's) or from an OpenCLIP model-config JSON.
///
/// Example (HPSv2.1):
///   auto hps = models::load_open_clip("HPS_v2.1_compressed.pt", models::OpenClipConfig::named("ViT-H-14"));
///   // hps.vision and hps.text are ClipVisionModel / ClipTextModel with projections

#include <diffinstruct/io/json.hpp>
#include <diffinstruct/io/small_file.hpp>
#include <diffinstruct/io/tensor_source.hpp>
#include <diffinstruct/io/torch_checkpoint.hpp>
#include <diffinstruct/models/clip_model.hpp>
#include <diffinstruct/models/pretrained.hpp>

#include <cmath>
#include <map>
#include <string>
#include <vector>

namespace diffinstruct {
namespace models {

struct OpenClipConfig {
  int64_t embed_dim = 1024;
  struct Vision {
    int64_t image_size = 224, layers = 32, width = 1280, head_width = 80, patch_size = 14;
    double mlp_ratio = 4.0;
  } vision;
  struct Text {
    int64_t context_length = 77, vocab_size = 49408, width = 1024, heads = 16, layers = 24;
    double mlp_ratio = 4.0;
  } text;
  bool quick_gelu = false;  ///< OpenAI's original weights use quick_gelu; LAION's (and HPS's) exact GELU

  /// OpenCLIP's built-in configurations of the models these rewards use.
  static OpenClipConfig named(const std::string& name) {
    OpenClipConfig c;
    auto set = [&](int64_t embed, Vision v, Text t) { c.embed_dim = embed, c.vision = v, c.text = t; };
    if (name == "ViT-H-14") set(1024, {224, 32, 1280, 80, 14, 4.0}, {77, 49408, 1024, 16, 24, 4.0});
    else if (name == "ViT-L-14") set(768, {224, 24, 1024, 64, 14, 4.0}, {77, 49408, 768, 12, 12, 4.0});
    else if (name == "ViT-B-16") set(512, {224, 12, 768, 64, 16, 4.0}, {77, 49408, 512, 8, 12, 4.0});
    else if (name == "ViT-B-32") set(512, {224, 12, 768, 64, 32, 4.0}, {77, 49408, 512, 8, 12, 4.0});
    else if (name == "ViT-bigG-14") set(1280, {224, 48, 1664, 104, 14, 4.9231}, {77, 49408, 1280, 20, 32, 4.0});
    else
      TORCH_CHECK(false, "diffinstruct::models::OpenClipConfig: no built-in configuration '", name,
                  "' (known: ViT-H-14, ViT-L-14, ViT-B-16, ViT-B-32, ViT-bigG-14); give OpenCLIP's model-config JSON instead");
    return c;
  }

  /// OpenCLIP's model-config JSON (`open_clip/model_configs/ViT-H-14.json`): `embed_dim`,
  /// `vision_cfg` {image_size, layers, width, head_width, patch_size, mlp_ratio}, `text_cfg`
  /// {context_length, vocab_size, width, heads, layers, mlp_ratio}, `quick_gelu`. A key that selects
  /// another architecture (a timm or Hugging Face tower, attentional pooling, layer scale, ...) is
  /// refused by name.
  static OpenClipConfig from_json(const std::string& text, const std::string& what = "the OpenCLIP config") {
    const auto root = io::parse_json(text, what, 8);
    auto bad = [&](const std::string& why) { TORCH_CHECK(false, "diffinstruct::models::OpenClipConfig: ", what, ": ", why); };
    if (!root.is_object()) bad("not a JSON object");
    OpenClipConfig c;
    auto integer = [&](const io::JsonValue& o, const std::string& key, int64_t& out) {
      if (const auto* v = o.find(key)) {
        if (!v->is_number() || v->number() != std::floor(v->number()) || v->number() <= 0 || v->number() > 1e7)
          bad("'" + key + "' must be a positive integer");
        out = static_cast<int64_t>(v->number());
      }
    };
    auto real = [&](const io::JsonValue& o, const std::string& key, double& out) {
      if (const auto* v = o.find(key)) {
        if (!v->is_number() || !(v->number() > 0) || v->number() > 64) bad("'" + key + "' must be a positive number");
        out = v->number();
      }
    };
    auto only = [&](const io::JsonValue& o, const std::string& where, const std::vector<std::string>& known) {
      for (const auto& [k, v] : o.object()) {
        bool ok = false;
        for (const auto& n : known) ok = ok || n == k;
        if (!ok) bad("'" + where + k + "' is not supported (this loader builds OpenCLIP's plain ViT towers)");
      }
    };
    only(root, "", {"embed_dim", "vision_cfg", "text_cfg", "quick_gelu"});
    integer(root, "embed_dim", c.embed_dim);
    if (const auto* q = root.find("quick_gelu")) {
      if (!q->is_bool()) bad("'quick_gelu' must be true or false");
      c.quick_gelu = q->boolean();
    }
    const auto* v = root.find("vision_cfg");
    const auto* t = root.find("text_cfg");
    if (!v || !v->is_object() || !t || !t->is_object()) bad("it needs a vision_cfg and a text_cfg object");
    only(*v, "vision_cfg.", {"image_size", "layers", "width", "head_width", "patch_size", "mlp_ratio"});
    only(*t, "text_cfg.", {"context_length", "vocab_size", "width", "heads", "layers", "mlp_ratio"});
    integer(*v, "image_size", c.vision.image_size), integer(*v, "layers", c.vision.layers), integer(*v, "width", c.vision.width);
    integer(*v, "head_width", c.vision.head_width), integer(*v, "patch_size", c.vision.patch_size), real(*v, "mlp_ratio", c.vision.mlp_ratio);
    integer(*t, "context_length", c.text.context_length), integer(*t, "vocab_size", c.text.vocab_size), integer(*t, "width", c.text.width);
    integer(*t, "heads", c.text.heads), integer(*t, "layers", c.text.layers), real(*t, "mlp_ratio", c.text.mlp_ratio);
    if (c.vision.width % c.vision.head_width != 0) bad("vision width is not a multiple of head_width");
    return c;
  }
  static OpenClipConfig from_file(const std::string& path) { return from_json(io::read_small_file(path, 1 << 20, "an OpenCLIP config"), "'" + path + "'"); }

  /// The towers as transformers' configs (with projections), which the native models take.
  ClipTextConfig text_config() const {
    ClipTextConfig t;
    t.vocab_size = text.vocab_size, t.hidden_size = text.width, t.num_attention_heads = text.heads, t.num_hidden_layers = text.layers;
    t.intermediate_size = static_cast<int64_t>(static_cast<double>(text.width) * text.mlp_ratio);  // OpenCLIP: int(width * mlp_ratio)
    t.max_position_embeddings = text.context_length, t.projection_dim = embed_dim, t.with_projection = true;
    t.hidden_act = quick_gelu ? "quick_gelu" : "gelu";
    t.eos_token_id = 2;  // pool at argmax(ids), as OpenCLIP does
    t.validate("the OpenCLIP text tower");
    return t;
  }
  ClipVisionConfig vision_config() const {
    ClipVisionConfig v;
    v.hidden_size = vision.width, v.num_attention_heads = vision.width / vision.head_width, v.num_hidden_layers = vision.layers;
    v.intermediate_size = static_cast<int64_t>(static_cast<double>(vision.width) * vision.mlp_ratio);
    v.image_size = vision.image_size, v.patch_size = vision.patch_size, v.projection_dim = embed_dim, v.with_projection = true;
    v.hidden_act = quick_gelu ? "quick_gelu" : "gelu";
    v.validate("the OpenCLIP vision tower");
    return v;
  }
};

namespace detail {

inline bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

/// One residual block's tensor (`rest` after `resblocks.N.`) under transformers' names, appended to
/// `out`: the fused in-projection becomes q, k, v.
inline bool map_open_clip_block(const io::TensorSource& s, const std::string& layer, const std::string& rest, std::vector<io::TensorSource>& out) {
  static const std::pair<const char*, const char*> renames[] = {{"ln_1.", "layer_norm1."},   {"ln_2.", "layer_norm2."},
                                                                {"mlp.c_fc.", "mlp.fc1."},   {"mlp.c_proj.", "mlp.fc2."},
                                                                {"attn.out_proj.", "self_attn.out_proj."}};
  for (const auto& [from, to] : renames)
    if (starts_with(rest, from)) return out.push_back(io::renamed(s, layer + to + rest.substr(std::strlen(from)))), true;
  const bool weight = rest == "attn.in_proj_weight", bias = rest == "attn.in_proj_bias";
  if (!weight && !bias) return false;
  TORCH_CHECK(!s.shape.empty() && s.shape[0] % 3 == 0, "diffinstruct::models: '", s.name, "' has ", s.shape[0], " rows, not 3 × width");
  const int64_t d = s.shape[0] / 3;
  const char* names[] = {"q_proj", "k_proj", "v_proj"};
  for (int i = 0; i < 3; ++i) out.push_back(io::row_slice(s, layer + "self_attn." + names[i] + (weight ? ".weight" : ".bias"), i * d, (i + 1) * d));
  return true;
}

} // namespace detail

/// An OpenCLIP state dict's tensors under the native towers' names, sorted into the vision tower's,
/// the text tower's and `logit_scale`. A name OpenCLIP's plain CLIP does not have is an error.
struct OpenClipSources {
  std::vector<io::TensorSource> vision, text;
  std::vector<io::TensorSource> logit_scale;  // one, or none
};

inline OpenClipSources map_open_clip(const std::vector<io::TensorSource>& state, const std::string& what) {
  using detail::starts_with;
  OpenClipSources out;
  std::vector<std::string> unknown;
  for (const auto& s : state) {
    const std::string& n = s.name;
    const bool visual = starts_with(n, "visual.");
    const std::string r = visual ? n.substr(7) : n;
    auto& dst = visual ? out.vision : out.text;
    const std::string tower = visual ? "vision_model." : "text_model.";
    if (starts_with(r, "transformer.resblocks.")) {
      const auto dot = r.find('.', 22);
      const std::string index = dot == std::string::npos ? "" : r.substr(22, dot - 22);
      if (!index.empty() && index.find_first_not_of("0123456789") == std::string::npos &&
          detail::map_open_clip_block(s, tower + "encoder.layers." + index + ".", r.substr(dot + 1), dst))
        continue;
    } else if (visual && r == "class_embedding") {
      dst.push_back(io::renamed(s, "vision_model.embeddings.class_embedding"));
      continue;
    } else if (visual && r == "positional_embedding") {
      dst.push_back(io::renamed(s, "vision_model.embeddings.position_embedding.weight"));
      continue;
    } else if (visual && r == "conv1.weight") {
      dst.push_back(io::renamed(s, "vision_model.embeddings.patch_embedding.weight"));
      continue;
    } else if (visual && (starts_with(r, "ln_pre.") || starts_with(r, "ln_post."))) {
      dst.push_back(io::renamed(s, std::string("vision_model.") + (starts_with(r, "ln_pre.") ? "pre_layrnorm." + r.substr(7) : "post_layernorm." + r.substr(8))));
      continue;
    } else if (visual && r == "proj") {
      dst.push_back(io::transposed(s, "visual_projection.weight"));
      continue;
    } else if (!visual && r == "token_embedding.weight") {
      dst.push_back(io::renamed(s, "text_model.embeddings.token_embedding.weight"));
      continue;
    } else if (!visual && r == "positional_embedding") {
      dst.push_back(io::renamed(s, "text_model.embeddings.position_embedding.weight"));
      continue;
    } else if (!visual && starts_with(r, "ln_final.")) {
      dst.push_back(io::renamed(s, "text_model.final_layer_norm." + r.substr(9)));
      continue;
    } else if (!visual && r == "text_projection") {
      dst.push_back(io::transposed(s, "text_projection.weight"));
      continue;
    } else if (!visual && r == "logit_scale") {
      out.logit_scale.push_back(s);
      continue;
    } else if (!visual && r == "attn_mask") {
      continue;  // the causal mask, saved by old OpenCLIP versions: a constant, never a weight
    }
    unknown.push_back(n);
  }
  if (!unknown.empty()) {
    std::string list;
    for (size_t i = 0; i < unknown.size() && i < 8; ++i) list += (i ? ", " : "") + unknown[i];
    TORCH_CHECK(false, "diffinstruct::models: ", what, " holds ", unknown.size(), " tensor(s) that OpenCLIP's plain CLIP does not have (",
                list, unknown.size() > 8 ? ", ..." : "", "): not an OpenCLIP ViT checkpoint, or one with parts this loader does not build");
  }
  return out;
}

/// The tensors of an OpenCLIP checkpoint file: a `torch.save` file (`.pt`, `.pth`, `.bin`; the
/// state dict at its top level or under "state_dict", as HPS ships it) or a `.safetensors` file.
inline std::vector<io::TensorSource> open_clip_state(const std::string& path) { return io::state_dict_sources(path, "the OpenCLIP checkpoint"); }

/// An OpenCLIP checkpoint as native towers (both, or the one `towers` names) and its logit_scale.
/// Strict loading (the default) checks every name and shape against `config` before copying.
inline ClipModelParts load_open_clip(const std::string& path, const OpenClipConfig& config, const PretrainedOptions& o = {},
                                     ClipTowers towers = ClipTowers::kBoth) {
  const std::string what = "'" + path + "'";
  const auto mapped = map_open_clip(open_clip_state(path), what);
  ClipModelParts parts;
  // Strict: names and shapes checked on a model without storage, before anything is allocated.
  auto load = [&](auto build, const std::vector<io::TensorSource>& sources, const std::string& tower) {
    if (o.strict()) {
      const auto report = io::compare_tensor_sources(*build(BuildOptions().device(torch::kMeta).init(Init::kEmpty)), sources);
      TORCH_CHECK(report.clean(), "diffinstruct::models: ", what, "'s ", tower, " does not match the configuration (nothing was loaded): ",
                  report.summary());
    }
    auto model = build(detail::build_options_for(o));
    io::load_tensor_sources(*model, sources, io::LoadOptions().strict(o.strict()), what + " (" + tower + ")");
    model->eval();
    return model;
  };
  if (towers != ClipTowers::kVision)
    parts.text = load([&](const BuildOptions& b) { return ClipTextModel(config.text_config(), b); }, mapped.text, "text tower");
  if (towers != ClipTowers::kText)
    parts.vision = load([&](const BuildOptions& b) { return ClipVisionModel(config.vision_config(), b); }, mapped.vision, "vision tower");
  TORCH_CHECK(mapped.logit_scale.size() == 1, "diffinstruct::models: ", what, " has no logit_scale: not an OpenCLIP CLIP checkpoint");
  parts.logit_scale = mapped.logit_scale[0].read().to(torch::kFloat).reshape({});
  TORCH_CHECK(std::isfinite(parts.logit_scale.item<float>()), "diffinstruct::models: ", what, ": logit_scale is not finite");
  return parts;
}

}  // namespace models
}  // namespace diffinstruct
