#pragma once
/// \file BLIP's BERT with cross-attention to an image (`models/BLIP/med.py`'s `BertModel`, without the
/// pooler), the text encoder of ImageReward, with med.py's parameter names
/// (`embeddings.word_embeddings`, `encoder.layer.N.attention.self.query`, `...crossattention...`,
/// `intermediate.dense`, `output.LayerNorm`, ...). Post-norm layers, as BERT:
///
///   h_0 = LayerNorm(word_embeddings(ids) + position_embeddings(0..L−1))     (no token-type embeddings)
///   a = LayerNorm(h + dense(self_attention(h, mask)))                        mask: −10000 on padding
///   a = LayerNorm(a + dense(cross_attention(a, image)))                      keys and values from the image
///   h = LayerNorm(a + dense(gelu(dense(a))))                                 exact GELU
///
/// The configuration is BLIP's `med_config.json` (a transformers BertConfig plus `encoder_width` and
/// `add_cross_attention`); BLIP overwrites `encoder_width` with the vision width, and so does
/// `BertConfig::with_encoder_width`.

#include <diffinstruct/io/json.hpp>
#include <diffinstruct/io/small_file.hpp>
#include <diffinstruct/models/layers.hpp>

#include <cmath>
#include <string>
#include <vector>

namespace diffinstruct {
namespace models {

struct BertConfig {
  int64_t vocab_size = 30524, hidden_size = 768, num_hidden_layers = 12, num_attention_heads = 12, intermediate_size = 3072;
  int64_t max_position_embeddings = 512, encoder_width = 768;
  double layer_norm_eps = 1e-12;
  bool add_cross_attention = true;

  void validate(const std::string& what) const {
    TORCH_CHECK(vocab_size > 0 && hidden_size > 0 && num_hidden_layers > 0 && num_attention_heads > 0 && intermediate_size > 0 &&
                    max_position_embeddings > 0 && encoder_width > 0,
                "diffinstruct::models::BertModel: ", what, ": sizes must be positive");
    TORCH_CHECK(hidden_size % num_attention_heads == 0, "diffinstruct::models::BertModel: ", what, ": hidden_size ", hidden_size,
                " is not a multiple of ", num_attention_heads, " heads");
  }
  BertConfig with_encoder_width(int64_t width) const {
    BertConfig c = *this;
    c.encoder_width = width;
    return c;
  }

  /// BLIP's med_config.json. Keys that change the architecture away from med.py's absolute-position,
  /// GELU, cross-attending BERT are refused by name; training-only keys (dropouts, initializer) are
  /// read and ignored.
  static BertConfig from_json(const std::string& text, const std::string& what = "med_config.json") {
    const auto root = io::parse_json(text, what, 8);
    auto bad = [&](const std::string& why) { TORCH_CHECK(false, "diffinstruct::models::BertConfig: ", what, ": ", why); };
    if (!root.is_object()) bad("not a JSON object");
    BertConfig c;
    static const char* ignored[] = {"architectures", "attention_probs_dropout_prob", "hidden_dropout_prob", "initializer_range", "model_type",
                                    "pad_token_id", "type_vocab_size", "transformers_version", "gradient_checkpointing", "use_cache",
                                    "torch_dtype", "bos_token_id", "eos_token_id"};
    for (const auto& [k, v] : root.object()) {
      bool known = false;
      for (const char* n : ignored) known = known || k == n;
      auto integer = [&](int64_t& out) {
        if (!v.is_number() || v.number() != std::floor(v.number()) || v.number() <= 0 || v.number() > 1e7) bad("'" + k + "' must be a positive integer");
        out = static_cast<int64_t>(v.number());
      };
      if (k == "vocab_size") integer(c.vocab_size);
      else if (k == "hidden_size") integer(c.hidden_size);
      else if (k == "num_hidden_layers") integer(c.num_hidden_layers);
      else if (k == "num_attention_heads") integer(c.num_attention_heads);
      else if (k == "intermediate_size") integer(c.intermediate_size);
      else if (k == "max_position_embeddings") integer(c.max_position_embeddings);
      else if (k == "encoder_width") integer(c.encoder_width);
      else if (k == "layer_norm_eps") {
        if (!v.is_number() || !(v.number() > 0) || v.number() > 1) bad("'layer_norm_eps' must be a small positive number");
        c.layer_norm_eps = v.number();
      } else if (k == "add_cross_attention") {
        if (!v.is_bool()) bad("'add_cross_attention' must be true or false");
        c.add_cross_attention = v.boolean();
      } else if (k == "hidden_act") {
        if (!v.is_string() || v.string() != "gelu") bad("hidden_act must be \"gelu\" (med.py's BERT), got " + (v.is_string() ? v.string() : "a non-string"));
      } else if (k == "position_embedding_type") {
        if (!v.is_string() || v.string() != "absolute") bad("position_embedding_type must be \"absolute\"");
      } else if (!known) {
        bad("'" + k + "' is not a key of BLIP's med_config.json that this loader knows");
      }
    }
    c.validate(what);
    return c;
  }
  static BertConfig from_file(const std::string& path) { return from_json(io::read_small_file(path, 1 << 20, "a med_config.json"), "'" + path + "'"); }
};

/// med.py's BertAttention: `self.{query, key, value}` and `output.{dense, LayerNorm}` (residual, post-norm).
class BertAttentionImpl : public torch::nn::Module {
 public:
  BertAttentionImpl(const BertConfig& c, bool cross, const BuildOptions& b) : heads_(c.num_attention_heads) {
    auto self = register_module("self", std::make_shared<torch::nn::Module>());
    const int64_t kv_in = cross ? c.encoder_width : c.hidden_size;
    query = self->register_module("query", Linear(c.hidden_size, c.hidden_size, true, b));
    key = self->register_module("key", Linear(kv_in, c.hidden_size, true, b));
    value = self->register_module("value", Linear(kv_in, c.hidden_size, true, b));
    auto output = register_module("output", std::make_shared<torch::nn::Module>());
    dense = output->register_module("dense", Linear(c.hidden_size, c.hidden_size, true, b));
    norm = output->register_module("LayerNorm", LayerNorm(c.hidden_size, c.layer_norm_eps, b));
  }
  /// h [B, L, D] attends to `context` [B, S, *] (h itself for self-attention); `additive_mask`
  /// [B, 1, 1, S] (or undefined) is added to the scores.
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& context, const torch::Tensor& additive_mask) {
    const int64_t batch = h.size(0), len = h.size(1), dim = h.size(2), head = dim / heads_, keys = context.size(1);
    auto split = [&](const torch::Tensor& t, int64_t n) { return t.view({batch, n, heads_, head}).transpose(1, 2); };
    auto scores = torch::matmul(split(query(h), len), split(key(context), keys).transpose(-1, -2)) / std::sqrt(static_cast<double>(head));
    if (additive_mask.defined()) scores = scores + additive_mask.to(scores.scalar_type());
    const auto o = torch::matmul(scores.softmax(-1), split(value(context), keys)).transpose(1, 2).reshape({batch, len, dim});
    return norm(dense(o) + h);
  }
  Linear query{nullptr}, key{nullptr}, value{nullptr}, dense{nullptr};
  LayerNorm norm{nullptr};

 private:
  int64_t heads_;
};
TORCH_MODULE(BertAttention);

class BertLayerImpl : public torch::nn::Module {
 public:
  BertLayerImpl(const BertConfig& c, const BuildOptions& b) {
    attention = register_module("attention", BertAttention(c, false, b));
    if (c.add_cross_attention) crossattention = register_module("crossattention", BertAttention(c, true, b));
    intermediate = register_module("intermediate", std::make_shared<torch::nn::Module>())->register_module("dense", Linear(c.hidden_size, c.intermediate_size, true, b));
    auto output = register_module("output", std::make_shared<torch::nn::Module>());
    out_dense = output->register_module("dense", Linear(c.intermediate_size, c.hidden_size, true, b));
    out_norm = output->register_module("LayerNorm", LayerNorm(c.hidden_size, c.layer_norm_eps, b));
  }
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& self_mask, const torch::Tensor& image) {
    auto a = attention(h, h, self_mask);
    if (crossattention) a = crossattention(a, image, torch::Tensor());  // med.py: every image token attended
    return out_norm(out_dense(torch::gelu(intermediate(a))) + a);
  }
  BertAttention attention{nullptr}, crossattention{nullptr};
  Linear intermediate{nullptr}, out_dense{nullptr};
  LayerNorm out_norm{nullptr};
};
TORCH_MODULE(BertLayer);

class BertModelImpl : public torch::nn::Module {
 public:
  explicit BertModelImpl(BertConfig config, const BuildOptions& b = {}) : config_(config) {
    const auto& c = config_;
    c.validate("the BERT config");
    auto emb = register_module("embeddings", std::make_shared<torch::nn::Module>());
    word_embeddings = emb->register_module("word_embeddings", std::make_shared<torch::nn::Module>())
                          ->register_parameter("weight", torch::empty({c.vocab_size, c.hidden_size}, b.tensor_options()));
    position_embeddings = emb->register_module("position_embeddings", std::make_shared<torch::nn::Module>())
                              ->register_parameter("weight", torch::empty({c.max_position_embeddings, c.hidden_size}, b.tensor_options()));
    embedding_norm = emb->register_module("LayerNorm", LayerNorm(c.hidden_size, c.layer_norm_eps, b));
    auto list = register_module("encoder", std::make_shared<torch::nn::Module>())->register_module("layer", torch::nn::ModuleList());
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
      layers_.push_back(BertLayer(c, b));
      list->push_back(layers_.back());
    }
    if (b.randomize()) {
      torch::NoGradGuard ng;
      word_embeddings.normal_(0, 0.02);
      position_embeddings.normal_(0, 0.02);
    }
  }

  /// input_ids [B, L] int64, attention_mask [B, L] (1: a token, 0: padding), image [B, S, encoder_width]
  /// (the vision encoder's tokens) -> last_hidden_state [B, L, hidden].
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask, const torch::Tensor& image) {
    const auto& c = config_;
    TORCH_CHECK(input_ids.defined() && input_ids.dim() == 2 && input_ids.scalar_type() == torch::kLong && input_ids.size(1) <= c.max_position_embeddings,
                "diffinstruct::models::BertModel: expected input_ids int64 [B, L ≤ ", c.max_position_embeddings, "], got ",
                input_ids.defined() ? c10::str(input_ids.sizes(), " ", input_ids.scalar_type()) : std::string("none"));
    TORCH_CHECK(!attention_mask.defined() || attention_mask.sizes() == input_ids.sizes(), "diffinstruct::models::BertModel: attention_mask ",
                attention_mask.defined() ? c10::str(attention_mask.sizes()) : std::string(), " does not match input_ids ", input_ids.sizes());
    TORCH_CHECK(!c.add_cross_attention || (image.defined() && image.dim() == 3 && image.size(0) == input_ids.size(0) && image.size(2) == c.encoder_width),
                "diffinstruct::models::BertModel: expected the image tokens [", input_ids.size(0), ", S, ", c.encoder_width, "], got ",
                image.defined() ? c10::str(image.sizes()) : std::string("none"));
    TORCH_CHECK(input_ids.numel() == 0 || (input_ids.min().item<int64_t>() >= 0 && input_ids.max().item<int64_t>() < c.vocab_size),
                "diffinstruct::models::BertModel: token ids must lie in [0, ", c.vocab_size, ")");
    const int64_t len = input_ids.size(1);
    auto h = word_embeddings.index_select(0, input_ids.flatten()).view({input_ids.size(0), len, c.hidden_size}) + position_embeddings.slice(0, 0, len);
    h = embedding_norm(h);
    torch::Tensor mask;  // med.py: (1 − mask) · −10000, added to the scores
    if (attention_mask.defined()) mask = ((1 - attention_mask.to(h.scalar_type())) * -10000.0).view({input_ids.size(0), 1, 1, len});
    const auto img = image.defined() ? image.to(h.scalar_type()) : image;
    for (auto& layer : layers_) h = layer(h, mask, img);
    return h;
  }
  const BertConfig& config() const { return config_; }

  torch::Tensor word_embeddings, position_embeddings;
  LayerNorm embedding_norm{nullptr};

 private:
  BertConfig config_;
  std::vector<BertLayer> layers_;
};
TORCH_MODULE(BertModel);

}  // namespace models
}  // namespace diffinstruct
