#pragma once
/// \file transformers' `CLIPTextModel` and `CLIPTextModelWithProjection` (the text encoders of SD 1.x,
/// SD 2.x and SDXL), built from a transformers `config.json`, with its parameter names
/// (`text_model.embeddings.token_embedding.weight`, ..., `text_projection.weight`).
///
///   h_0 = token_embedding(ids) + position_embedding(0..L−1)
///   h_i = h_{i−1} + attn(ln1(h_{i−1})) (causal);  h_i += mlp(ln2(h_i)),  mlp = fc2(act(fc1(·)))
///   last_hidden_state = final_layer_norm(h_N);  pooled = last_hidden_state at the end-of-text token
///   text_embeds = text_projection(pooled)  (WithProjection only)
///
/// `hidden_states[i]` is h_i as transformers returns it (SDXL conditions on hidden_states[-2], the
/// penultimate layer's output before the final layer norm).

#include <diffinstruct/models/blocks/clip_encoder.hpp>
#include <diffinstruct/models/clip_tower_config.hpp>
#include <diffinstruct/models/config_reader.hpp>

#include <string>
#include <vector>

namespace diffinstruct {
namespace models {

struct ClipTextConfig {
  int64_t vocab_size = 49408;
  int64_t hidden_size = 512;
  int64_t intermediate_size = 2048;
  int64_t projection_dim = 512;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 8;
  int64_t max_position_embeddings = 77;
  std::string hidden_act = "quick_gelu";
  double layer_norm_eps = 1e-5;
  int64_t eos_token_id = 49407;  // 2 in configs older than transformers PR #24773: then the pooled token is argmax(ids)
  int64_t bos_token_id = 49406;
  int64_t pad_token_id = 1;
  bool with_projection = false;  // from `architectures`

  void validate(const std::string& what) const {
    auto bad = [&](const std::string& m) { TORCH_CHECK(false, "diffinstruct::models::CLIPTextModel: ", what, ": ", m); };
    if (vocab_size <= 0 || hidden_size <= 0 || intermediate_size <= 0 || num_hidden_layers <= 0 || max_position_embeddings <= 0)
      bad("sizes must be positive");
    detail::check_clip_tower("CLIPTextModel", what, hidden_size, num_attention_heads, with_projection, projection_dim, hidden_act);
  }

  static ClipTextConfig from_json(const std::string& text, const std::string& what = "config.json") {
    ConfigReader r(text, what);
    return read(r, what);
  }
  /// From the `text_config` of a CLIPModel's config.json (detail::clip_tower_in_model).
  static ClipTextConfig from_clip_model(const io::JsonValue& sub, int64_t projection_dim, const std::string& what) {
    return detail::clip_tower_in_model<ClipTextConfig>(sub, projection_dim, what);
  }
  static ClipTextConfig read(ConfigReader& r, const std::string& what, bool in_clip_model = false) {
    ClipTextConfig c;
    c.with_projection = detail::read_clip_tower_kind(r, what, "CLIPTextModel", "clip_text_model", in_clip_model);
    c.vocab_size = r.integer("vocab_size", c.vocab_size);
    c.hidden_size = r.integer("hidden_size", c.hidden_size);
    c.intermediate_size = r.integer("intermediate_size", c.intermediate_size);
    c.projection_dim = r.integer("projection_dim", c.projection_dim);
    c.num_hidden_layers = r.integer("num_hidden_layers", c.num_hidden_layers);
    c.num_attention_heads = r.integer("num_attention_heads", c.num_attention_heads);
    c.max_position_embeddings = r.integer("max_position_embeddings", c.max_position_embeddings);
    c.hidden_act = r.string("hidden_act", c.hidden_act);
    c.layer_norm_eps = r.number("layer_norm_eps", c.layer_norm_eps);
    c.eos_token_id = r.integer("eos_token_id", c.eos_token_id);
    c.bos_token_id = r.integer("bos_token_id", c.bos_token_id);
    c.pad_token_id = r.integer("pad_token_id", c.pad_token_id);
    r.finish();
    c.validate(what);
    return c;
  }
  static ClipTextConfig from_file(const std::string& path) { return from_json(read_config_text(path), "'" + path + "'"); }
};

struct ClipTextOutput {
  torch::Tensor last_hidden_state;           ///< [B, L, hidden] after the final layer norm
  torch::Tensor pooler_output;               ///< [B, hidden] at the end-of-text token
  torch::Tensor text_embeds;                 ///< [B, projection_dim] (with projection only)
  std::vector<torch::Tensor> hidden_states;  ///< h_0 (embeddings) ... h_N, as transformers' hidden_states
};

class ClipTextModelImpl : public torch::nn::Module {
 public:
  explicit ClipTextModelImpl(ClipTextConfig config, const BuildOptions& b = {}) : config_(std::move(config)) {
    const auto& c = config_;
    c.validate("the CLIP text config");
    text_model = register_module("text_model", std::make_shared<torch::nn::Module>());
    embeddings = text_model->register_module("embeddings", std::make_shared<torch::nn::Module>());
    token_embedding = embeddings->register_module("token_embedding", std::make_shared<torch::nn::Module>())
                          ->register_parameter("weight", torch::empty({c.vocab_size, c.hidden_size}, b.tensor_options()));
    position_embedding = embeddings->register_module("position_embedding", std::make_shared<torch::nn::Module>())
                             ->register_parameter("weight", torch::empty({c.max_position_embeddings, c.hidden_size}, b.tensor_options()));
    encoder = text_model->register_module("encoder", std::make_shared<torch::nn::Module>());
    auto list = encoder->register_module("layers", torch::nn::ModuleList());
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
      layers_.push_back(ClipEncoderLayer(ClipLayerOptions{c.hidden_size, c.num_attention_heads, c.intermediate_size, c.hidden_act == "gelu", c.layer_norm_eps, /*causal=*/true}, b));
      list->push_back(layers_.back());
    }
    final_layer_norm = text_model->register_module("final_layer_norm", LayerNorm(c.hidden_size, c.layer_norm_eps, b));
    if (c.with_projection) text_projection = register_module("text_projection", Linear(c.hidden_size, c.projection_dim, false, b));
    if (b.randomize()) {  // transformers' initialisation: N(0, 0.02) embeddings
      torch::NoGradGuard ng;
      token_embedding.normal_(0, 0.02);
      position_embedding.normal_(0, 0.01);
    }
  }

  /// input_ids [B, L] (int64, L ≤ max_position_embeddings).
  ClipTextOutput forward(const torch::Tensor& input_ids, bool keep_hidden_states = false) {
    const auto& c = config_;
    TORCH_CHECK(input_ids.defined() && input_ids.dim() == 2 && input_ids.scalar_type() == torch::kLong, "diffinstruct::models::CLIPTextModel: ",
                "expected input_ids [B, L] of int64, got ", input_ids.defined() ? c10::str(input_ids.sizes(), " ", input_ids.scalar_type()) : "none");
    const int64_t len = input_ids.size(1);
    TORCH_CHECK(len >= 1 && len <= c.max_position_embeddings, "diffinstruct::models::CLIPTextModel: ", len, " tokens; at most ",
                c.max_position_embeddings, " (max_position_embeddings)");
    TORCH_CHECK(!(input_ids < 0).logical_or(input_ids >= c.vocab_size).any().item<bool>(), "diffinstruct::models::CLIPTextModel: ",
                "token ids must lie in [0, ", c.vocab_size, ")");
    const auto ids = input_ids.to(token_embedding.device());
    ClipTextOutput out;
    auto h = torch::embedding(token_embedding, ids) + position_embedding.slice(0, 0, len).unsqueeze(0);
    if (keep_hidden_states) out.hidden_states.push_back(h);
    for (auto& layer : layers_) {
      h = layer(h);
      if (keep_hidden_states) out.hidden_states.push_back(h);
    }
    out.last_hidden_state = final_layer_norm(h);
    const auto eos = c.eos_token_id == 2 ? ids.to(torch::kInt).argmax(-1) : (ids == c.eos_token_id).to(torch::kInt).argmax(-1);
    out.pooler_output = out.last_hidden_state.index({torch::arange(ids.size(0), ids.options()), eos});
    if (text_projection) out.text_embeds = text_projection(out.pooler_output);
    return out;
  }

  const ClipTextConfig& config() const { return config_; }

  std::shared_ptr<torch::nn::Module> text_model, embeddings, encoder;
  torch::Tensor token_embedding, position_embedding;
  LayerNorm final_layer_norm{nullptr};
  Linear text_projection{nullptr};

 private:
  ClipTextConfig config_;
  std::vector<ClipEncoderLayer> layers_;
};
TORCH_MODULE(ClipTextModel);

/// transformers 5 saves a plain CLIPTextModel without the `text_model.` prefix that every earlier
/// checkpoint (and CLIPTextModelWithProjection) has; both load.
inline std::string clip_text_canonical_name(const std::string& name) {
  if (name.rfind("text_model.", 0) == 0 || name.rfind("text_projection.", 0) == 0) return name;
  return "text_model." + name;
}

} // namespace models
} // namespace diffinstruct
