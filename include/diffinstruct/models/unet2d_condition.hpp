#pragma once
/// \file diffusers' `UNet2DConditionModel` (SD 1.x, SD 2.x, SDXL and their one-step descendants:
/// SD-Turbo, SDXL-Turbo, DMD2), built from its config.json, with diffusers' parameter names so its
/// `diffusion_pytorch_model.safetensors` loads without a renaming table.
///
///   emb   = time_embedding(timestep_features(t)) [+ add_embedding([text_embeds, features(time_ids)])]
///   h     = conv_in(x);  down levels (keeping skips);  mid block;  up levels (consuming skips)
///   out   = conv_out(act(conv_norm_out(h)))
///
/// It is a denoiser for the trainer as it stands: `Denoiser<UNet2DConditionModel, EpsPrediction>`
/// (SD 1.x, SDXL) or `VPrediction` (SD 2.x 768-v), conditioned on a `TextCondition`.
///
/// Example:
///   auto unet = models::load_unet("stable-diffusion-v1-5/unet");          // models/pretrained.hpp
///   models::TextCondition c{clip_hidden_states};                          // [B, 77, 768]
///   torch::Tensor eps = unet->forward(latents, timesteps, c);

#include <diffinstruct/core/condition.hpp>
#include <diffinstruct/memory/activation_checkpoint.hpp>
#include <diffinstruct/models/blocks/embeddings.hpp>
#include <diffinstruct/models/blocks/unet_blocks.hpp>
#include <diffinstruct/models/unet2d_condition_config.hpp>

namespace diffinstruct {
namespace models {

/// What a text-to-image UNet is conditioned on: the text encoder's hidden states, plus SDXL's
/// pooled text embeddings and its six size/crop ids (`addition_embed_type = "text_time"`).
struct TextCondition {
  TextCondition() = default;
  explicit TextCondition(torch::Tensor encoder_hidden_states, torch::Tensor text_embeds = {}, torch::Tensor time_ids = {})
      : encoder_hidden_states(std::move(encoder_hidden_states)), text_embeds(std::move(text_embeds)), time_ids(std::move(time_ids)) {}
  torch::Tensor encoder_hidden_states;  ///< [B, L, cross_attention_dim]
  torch::Tensor text_embeds;            ///< [B, P] (SDXL only)
  torch::Tensor time_ids;               ///< [B, 6] (SDXL only)
};

class UNet2DConditionModelImpl : public torch::nn::Module {
 public:
  explicit UNet2DConditionModelImpl(UNet2DConditionConfig config, const BuildOptions& b = {}) : config_(std::move(config)) {
    const auto& c = config_;
    c.validate();
    act_ = activation_from_name(c.act_fn, "act_fn");
    if (!c.time_embedding_act_fn.empty()) time_embed_act_ = activation_from_name(c.time_embedding_act_fn, "time_embedding_act_fn");
    const size_t n = c.levels();
    const int64_t temb = c.time_embed_dim(), c0 = c.block_out_channels[0];
    conv_in = register_module("conv_in", Conv2d(c.in_channels, c0, c.conv_in_kernel, 1, (c.conv_in_kernel - 1) / 2, true, b));
    time_embedding = register_module("time_embedding", TimestepEmbedding(c0, temb, act_, b));
    if (c.text_time()) add_embedding = register_module("add_embedding", TimestepEmbedding(c.projection_class_embeddings_input_dim, temb, Activation::kSilu, b));

    LevelOptions lo;
    lo.temb_channels = temb;
    lo.groups = c.norm_num_groups;
    lo.eps = c.norm_eps;
    lo.act = act_;
    lo.scale_shift = c.resnet_time_scale_shift == "scale_shift";
    lo.dropout = c.dropout;
    lo.cross_attention_dim = c.cross_attention_dim;
    lo.use_linear_projection = c.use_linear_projection;
    lo.upcast_attention = c.upcast_attention;

    down_blocks = register_module("down_blocks", torch::nn::ModuleList());
    int64_t out = c0;
    for (size_t i = 0; i < n; ++i) {
      const int64_t in = out;
      out = c.block_out_channels[i];
      lo.heads = c.attention_head_dim[i];
      const bool cross = c.down_block_types[i] == "CrossAttnDownBlock2D";
      const auto tl = cross ? std::vector<int64_t>(c.layers_per_block[i], c.transformer_layers_per_block[i]) : std::vector<int64_t>{};
      down_.push_back(DownBlock2D(in, out, c.layers_per_block[i], tl, i + 1 < n, c.downsample_padding, lo, b));
      down_blocks->push_back(down_.back());
    }

    LevelOptions mid = lo;
    mid.heads = c.attention_head_dim.back();
    mid.output_scale_factor = c.mid_block_scale_factor;
    mid_block = register_module("mid_block", MidBlock2DCrossAttn(c.block_out_channels.back(), c.transformer_layers_per_block.back(), mid, b));

    up_blocks = register_module("up_blocks", torch::nn::ModuleList());
    out = c.block_out_channels.back();
    for (size_t i = 0; i < n; ++i) {
      const size_t level = n - 1 - i;  // the down level this up level mirrors
      const int64_t prev = out;
      out = c.block_out_channels[level];
      const int64_t in = c.block_out_channels[level == 0 ? 0 : level - 1];
      lo.heads = c.attention_head_dim[level];
      const int64_t layers = c.layers_per_block[level] + 1;
      const bool cross = c.up_block_types[i] == "CrossAttnUpBlock2D";
      const auto tl = cross ? std::vector<int64_t>(layers, c.transformer_layers_per_block[level]) : std::vector<int64_t>{};
      up_.push_back(UpBlock2D(in, out, prev, layers, tl, i + 1 < n, lo, b));
      up_blocks->push_back(up_.back());
    }
    conv_norm_out = register_module("conv_norm_out", GroupNorm(c.norm_num_groups, c0, c.norm_eps, b));
    conv_out = register_module("conv_out", Conv2d(c0, c.out_channels, c.conv_out_kernel, 1, (c.conv_out_kernel - 1) / 2, true, b));
  }

  /// sample [B, in_channels, H, W]; timestep [B] or a scalar (any real dtype; diffusers' discrete
  /// timesteps for SD models); returns [B, out_channels, H, W].
  torch::Tensor forward(const torch::Tensor& sample, const torch::Tensor& timestep, const TextCondition& cond) {
    const auto& c = config_;
    check_inputs(sample, timestep, cond);
    const int64_t batch = sample.size(0);
    auto x = c.center_input_sample ? 2 * sample - 1.0 : sample;

    auto t = timestep.dim() == 0 ? timestep.reshape({1}) : timestep;
    t = t.to(sample.device()).expand({batch});
    auto emb = time_embedding(timestep_features(t, c.block_out_channels[0], c.flip_sin_to_cos, c.freq_shift).to(x.scalar_type()));
    if (add_embedding) {
      auto ids = timestep_features(cond.time_ids.flatten(), c.addition_time_embed_dim, c.flip_sin_to_cos, c.freq_shift).reshape({batch, -1});
      emb = emb + add_embedding(torch::cat({cond.text_embeds.to(emb.scalar_type()), ids.to(emb.scalar_type())}, -1));
    }
    if (time_embed_act_) emb = activate(*time_embed_act_, emb);
    const auto& context = cond.encoder_hidden_states;

    // Sizes that are not multiples of 2^(levels−1) upsample to the skip's size, not by exactly 2.
    const int64_t factor = int64_t{1} << (c.levels() - 1);
    const bool explicit_upsample_size = x.size(2) % factor != 0 || x.size(3) % factor != 0;

    auto h = conv_in(x);
    std::vector<torch::Tensor> skips{h};
    const bool recompute = gradient_checkpointing_ && torch::GradMode::is_enabled();
    for (auto& block : down_) h = recompute ? checkpointed_down(block, h, emb, context, skips) : block(h, emb, context, &skips);
    h = recompute ? checkpoint_module(mid_block, h, emb, context) : mid_block(h, emb, context);
    for (size_t i = 0; i < up_.size(); ++i) {
      c10::optional<std::vector<int64_t>> size;
      if (explicit_upsample_size && i + 1 < up_.size()) size = skips[skips.size() - up_[i]->num_resnets() - 1].sizes().slice(2).vec();
      h = recompute ? checkpointed_up(up_[i], h, skips, emb, context, size) : up_[i](h, skips, emb, context, size);
    }
    return conv_out(activate(act_, conv_norm_out(h)));
  }

  /// Recompute each down, mid and up block in backward instead of keeping its activations
  /// (memory/activation_checkpoint.hpp; diffusers' `enable_gradient_checkpointing()`): the same
  /// gradients, each block run twice. It acts only while autograd records.
  void set_gradient_checkpointing(bool on) { gradient_checkpointing_ = on; }
  bool gradient_checkpointing() const { return gradient_checkpointing_; }

  const UNet2DConditionConfig& config() const { return config_; }

  Conv2d conv_in{nullptr}, conv_out{nullptr};
  TimestepEmbedding time_embedding{nullptr}, add_embedding{nullptr};
  torch::nn::ModuleList down_blocks{nullptr}, up_blocks{nullptr};
  MidBlock2DCrossAttn mid_block{nullptr};
  GroupNorm conv_norm_out{nullptr};

 private:
  // A down block's skips are the outputs of the checkpointed call; its result is the last of them.
  static torch::Tensor checkpointed_down(DownBlock2D& block, const torch::Tensor& h, const torch::Tensor& emb, const torch::Tensor& context,
                                         std::vector<torch::Tensor>& skips) {
    auto out = checkpoint(
        [block](const std::vector<torch::Tensor>& in) mutable {
          std::vector<torch::Tensor> res;
          block(in[0], in[1], in[2], &res);
          return res;
        },
        {h, emb, context}, block->parameters(), {ModuleRef::of(block)});
    skips.insert(skips.end(), out.begin(), out.end());
    return out.back();
  }
  // An up block consumes the last num_resnets() skips: they are inputs of the checkpointed call.
  static torch::Tensor checkpointed_up(UpBlock2D& block, const torch::Tensor& h, std::vector<torch::Tensor>& skips, const torch::Tensor& emb,
                                       const torch::Tensor& context, const c10::optional<std::vector<int64_t>>& size) {
    const size_t n = block->num_resnets();
    std::vector<torch::Tensor> in{h, emb, context};
    in.insert(in.end(), skips.end() - static_cast<std::ptrdiff_t>(n), skips.end());
    skips.resize(skips.size() - n);
    return checkpoint(
        [block, n, size](const std::vector<torch::Tensor>& x) mutable {
          std::vector<torch::Tensor> own(x.begin() + 3, x.end());
          TORCH_INTERNAL_ASSERT(own.size() == n);
          return std::vector<torch::Tensor>{block(x[0], own, x[1], x[2], size)};
        },
        in, block->parameters(), {ModuleRef::of(block)})[0];
  }

  void check_inputs(const torch::Tensor& sample, const torch::Tensor& timestep, const TextCondition& cond) const {
    const auto& c = config_;
    const char* who = "diffinstruct::models::UNet2DConditionModel";
    TORCH_CHECK(sample.defined() && sample.dim() == 4 && sample.size(1) == c.in_channels, who, ": expected sample [B, ", c.in_channels,
                ", H, W], got ", sample.defined() ? c10::str(sample.sizes()) : std::string("an undefined tensor"));
    TORCH_CHECK(sample.is_floating_point(), who, ": expected a floating-point sample, got ", sample.scalar_type());
    const int64_t batch = sample.size(0);
    TORCH_CHECK(timestep.defined() && (timestep.dim() == 0 || (timestep.dim() == 1 && (timestep.size(0) == batch || timestep.size(0) == 1))),
                who, ": expected timestep as a scalar or [", batch, "], got ", timestep.defined() ? c10::str(timestep.sizes()) : std::string("none"));
    const auto& e = cond.encoder_hidden_states;
    TORCH_CHECK(e.defined() && e.dim() == 3 && e.size(0) == batch && e.size(2) == c.cross_attention_dim, who,
                ": expected encoder_hidden_states [", batch, ", L, ", c.cross_attention_dim, "], got ",
                e.defined() ? c10::str(e.sizes()) : std::string("none"));
    TORCH_CHECK(e.device() == sample.device(), who, ": encoder_hidden_states is on ", e.device(), ", sample on ", sample.device());
    if (c.text_time()) {
      const int64_t pooled = c.projection_class_embeddings_input_dim - 6 * c.addition_time_embed_dim;
      TORCH_CHECK(cond.text_embeds.defined() && cond.text_embeds.dim() == 2 && cond.text_embeds.size(0) == batch &&
                      cond.text_embeds.size(1) == pooled,
                  who, ": this SDXL-style UNet (addition_embed_type = text_time) needs text_embeds [", batch, ", ", pooled, "], got ",
                  cond.text_embeds.defined() ? c10::str(cond.text_embeds.sizes()) : std::string("none"));
      TORCH_CHECK(cond.time_ids.defined() && cond.time_ids.dim() == 2 && cond.time_ids.size(0) == batch && cond.time_ids.size(1) == 6, who,
                  ": this SDXL-style UNet needs time_ids [", batch, ", 6] (original size, crop top-left, target size), got ",
                  cond.time_ids.defined() ? c10::str(cond.time_ids.sizes()) : std::string("none"));
    } else {
      TORCH_CHECK(!cond.text_embeds.defined() && !cond.time_ids.defined(), who,
                  ": text_embeds/time_ids were given, but this UNet's config has no addition_embed_type = text_time");
    }
  }

  UNet2DConditionConfig config_;
  bool gradient_checkpointing_ = false;
  Activation act_ = Activation::kSilu;
  c10::optional<Activation> time_embed_act_;
  std::vector<DownBlock2D> down_;
  std::vector<UpBlock2D> up_;
};
TORCH_MODULE(UNet2DConditionModel);

} // namespace models

/// TextCondition as a trainer condition: every defined field is batched, broadcast and sliced by
/// rows together (the null prompt of classifier-free guidance is a 1-row TextCondition).
template <>
struct ConditionTraits<models::TextCondition> {
  using C = models::TextCondition;
  static int64_t batch_size(const C& c) {
    TORCH_CHECK(c.encoder_hidden_states.defined() && c.encoder_hidden_states.dim() == 3,
                "diffinstruct::TextCondition: expected encoder_hidden_states [B, L, D], got ", detail::shape_str(c.encoder_hidden_states));
    return c.encoder_hidden_states.size(0);
  }
  static C concat(const C& a, const C& b) {
    TORCH_CHECK(a.text_embeds.defined() == b.text_embeds.defined() && a.time_ids.defined() == b.time_ids.defined(),
                "diffinstruct::TextCondition: cannot batch a condition with text_embeds/time_ids and one without");
    return map2(a, b, [](const torch::Tensor& x, const torch::Tensor& y) { return ConditionTraits<torch::Tensor>::concat(x, y); });
  }
  static C broadcast(const C& c, int64_t batch) {
    return map(c, [&](const torch::Tensor& t) { return ConditionTraits<torch::Tensor>::broadcast(t, batch); });
  }
  static void append_ivalues(const C& c, std::vector<torch::jit::IValue>& args) {
    for (const auto* t : {&c.encoder_hidden_states, &c.text_embeds, &c.time_ids})
      if (t->defined()) args.emplace_back(*t);
  }
  static C slice(const C& c, int64_t begin, int64_t end) {
    return map(c, [&](const torch::Tensor& t) { return t.slice(0, begin, end); });
  }
  static C to(const C& c, const c10::Device& device) {
    return map(c, [&](const torch::Tensor& t) { return t.to(device); });
  }

 private:
  template <class F>
  static C map(const C& c, F f) {
    C out;
    out.encoder_hidden_states = f(c.encoder_hidden_states);
    if (c.text_embeds.defined()) out.text_embeds = f(c.text_embeds);
    if (c.time_ids.defined()) out.time_ids = f(c.time_ids);
    return out;
  }
  template <class F>
  static C map2(const C& a, const C& b, F f) {
    C out;
    out.encoder_hidden_states = f(a.encoder_hidden_states, b.encoder_hidden_states);
    if (a.text_embeds.defined()) out.text_embeds = f(a.text_embeds, b.text_embeds);
    if (a.time_ids.defined()) out.time_ids = f(a.time_ids, b.time_ids);
    return out;
  }
};

} // namespace diffinstruct
