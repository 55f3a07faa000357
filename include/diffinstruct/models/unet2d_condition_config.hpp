#pragma once
/// \file The configuration of a `UNet2DConditionModel`, read from and written to diffusers'
/// `config.json`, with diffusers' key names and defaults. Keys of features not implemented here are
/// refused by name (docs/models.md lists them); keys that diffusers itself ignores for the supported
/// block types (`resnet_skip_time_act`, `resnet_out_scale_factor`, `addition_embed_type_num_heads`)
/// are accepted and ignored the same way.

#include <diffinstruct/io/json.hpp>
#include <diffinstruct/models/config_reader.hpp>

#include <sstream>
#include <string>
#include <vector>

namespace diffinstruct {
namespace models {

struct UNet2DConditionConfig {
  int64_t in_channels = 4;
  int64_t out_channels = 4;
  int64_t sample_size = 64;  // informative: the latent size the model was trained at
  bool center_input_sample = false;
  bool flip_sin_to_cos = true;
  double freq_shift = 0;
  std::vector<std::string> down_block_types{"CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"};
  std::string mid_block_type = "UNetMidBlock2DCrossAttn";
  std::vector<std::string> up_block_types{"UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"};
  std::vector<int64_t> block_out_channels{320, 640, 1280, 1280};
  std::vector<int64_t> layers_per_block{2, 2, 2, 2};
  int64_t downsample_padding = 1;
  double mid_block_scale_factor = 1;
  double dropout = 0;
  std::string act_fn = "silu";
  int64_t norm_num_groups = 32;
  double norm_eps = 1e-5;
  int64_t cross_attention_dim = 1280;
  std::vector<int64_t> transformer_layers_per_block{1, 1, 1, 1};
  /// Heads per level: diffusers' `attention_head_dim` really is the number of heads (its own
  /// comment says so); `num_attention_heads` must stay null there.
  std::vector<int64_t> attention_head_dim{8, 8, 8, 8};
  bool use_linear_projection = false;
  bool upcast_attention = false;
  std::string resnet_time_scale_shift = "default";
  /// Empty (none) or "text_time" (SDXL: pooled text embeddings and size/crop ids).
  std::string addition_embed_type;
  int64_t addition_time_embed_dim = 0;
  int64_t projection_class_embeddings_input_dim = 0;
  int64_t time_embedding_dim = 0;  // 0: 4 × block_out_channels[0]
  std::string time_embedding_act_fn;  // empty: none
  int64_t conv_in_kernel = 3;
  int64_t conv_out_kernel = 3;

  size_t levels() const { return block_out_channels.size(); }
  int64_t time_embed_dim() const { return time_embedding_dim > 0 ? time_embedding_dim : 4 * block_out_channels.at(0); }
  bool text_time() const { return addition_embed_type == "text_time"; }

  /// Checks what the config says against itself, naming the key.
  void validate(const std::string& what = "the UNet config") const {
    const size_t n = levels();
    auto bad = [&](const std::string& msg) { TORCH_CHECK(false, "diffinstruct::models::UNet2DConditionModel: ", what, ": ", msg); };
    if (n == 0) bad("block_out_channels is empty");
    if (down_block_types.size() != n) bad("down_block_types has " + std::to_string(down_block_types.size()) + " entries, block_out_channels " + std::to_string(n));
    if (up_block_types.size() != n) bad("up_block_types has " + std::to_string(up_block_types.size()) + " entries, block_out_channels " + std::to_string(n));
    for (auto* list : {&layers_per_block, &transformer_layers_per_block, &attention_head_dim})
      if (list->size() != n) bad("a per-level list (layers_per_block, transformer_layers_per_block or attention_head_dim) has " +
                                 std::to_string(list->size()) + " entries, expected " + std::to_string(n));
    for (const auto& t : down_block_types)
      if (t != "CrossAttnDownBlock2D" && t != "DownBlock2D") bad("down block type '" + t + "' is not supported (CrossAttnDownBlock2D, DownBlock2D)");
    for (const auto& t : up_block_types)
      if (t != "CrossAttnUpBlock2D" && t != "UpBlock2D") bad("up block type '" + t + "' is not supported (CrossAttnUpBlock2D, UpBlock2D)");
    if (mid_block_type != "UNetMidBlock2DCrossAttn") bad("mid_block_type '" + mid_block_type + "' is not supported (UNetMidBlock2DCrossAttn)");
    if (norm_num_groups <= 0) bad("norm_num_groups must be positive");
    for (auto c : block_out_channels)
      if (c <= 0 || c % norm_num_groups != 0) bad("block_out_channels entry " + std::to_string(c) + " is not a positive multiple of norm_num_groups = " + std::to_string(norm_num_groups));
    for (size_t i = 0; i < n; ++i)
      if (attention_head_dim[i] <= 0 || block_out_channels[i] % attention_head_dim[i] != 0)
        bad("level " + std::to_string(i) + ": " + std::to_string(block_out_channels[i]) + " channels do not split into attention_head_dim = " +
            std::to_string(attention_head_dim[i]) + " heads");
    if (in_channels <= 0 || out_channels <= 0) bad("in_channels and out_channels must be positive");
    if (cross_attention_dim <= 0) bad("cross_attention_dim must be positive");
    if (conv_in_kernel <= 0 || conv_in_kernel % 2 == 0 || conv_out_kernel <= 0 || conv_out_kernel % 2 == 0)
      bad("conv_in_kernel and conv_out_kernel must be odd and positive");
    if (resnet_time_scale_shift != "default" && resnet_time_scale_shift != "scale_shift")
      bad("resnet_time_scale_shift '" + resnet_time_scale_shift + "' is not supported (default, scale_shift)");
    if (!addition_embed_type.empty() && !text_time()) bad("addition_embed_type '" + addition_embed_type + "' is not supported (null, text_time)");
    if (text_time() && (addition_time_embed_dim <= 0 || projection_class_embeddings_input_dim <= addition_time_embed_dim))
      bad("addition_embed_type = text_time needs addition_time_embed_dim > 0 and projection_class_embeddings_input_dim > it (SDXL: 256, 2816)");
    activation_from_name(act_fn, what + ": act_fn");
    if (!time_embedding_act_fn.empty()) activation_from_name(time_embedding_act_fn, what + ": time_embedding_act_fn");
  }

  /// Reads a config.json's text; refuses unknown keys and unsupported values by name.
  static UNet2DConditionConfig from_json(const std::string& text, const std::string& what = "config.json") {
    ConfigReader r(text, what);
    UNet2DConditionConfig c;
    const std::string cls = r.string("_class_name", "UNet2DConditionModel");
    TORCH_CHECK(cls == "UNet2DConditionModel", "diffinstruct::models: ", what, " describes a ", cls, ", not a UNet2DConditionModel");
    r.ignore({"_diffusers_version", "_name_or_path", "_use_default_values", "_diffinstruct_export", "resnet_skip_time_act", "resnet_out_scale_factor",
              "addition_embed_type_num_heads"});
    c.in_channels = r.integer("in_channels", c.in_channels);
    c.out_channels = r.integer("out_channels", c.out_channels);
    if (const auto* s = r.raw("sample_size"); s && s->is_integer()) c.sample_size = s->integer();
    c.center_input_sample = r.boolean("center_input_sample", c.center_input_sample);
    c.flip_sin_to_cos = r.boolean("flip_sin_to_cos", c.flip_sin_to_cos);
    c.freq_shift = r.number("freq_shift", c.freq_shift);
    c.down_block_types = r.strings("down_block_types", c.down_block_types);
    c.up_block_types = r.strings("up_block_types", c.up_block_types);
    c.mid_block_type = r.string("mid_block_type", c.mid_block_type);
    c.block_out_channels = r.integer_list("block_out_channels", c.block_out_channels);
    const size_t n = c.block_out_channels.size();
    c.layers_per_block = r.integers("layers_per_block", n, std::vector<int64_t>(n, 2));
    c.downsample_padding = r.integer("downsample_padding", c.downsample_padding);
    c.mid_block_scale_factor = r.number("mid_block_scale_factor", c.mid_block_scale_factor);
    c.dropout = r.number("dropout", c.dropout);
    c.act_fn = r.string("act_fn", c.act_fn);
    c.norm_num_groups = r.integer("norm_num_groups", c.norm_num_groups);
    c.norm_eps = r.number("norm_eps", c.norm_eps);
    // One context width for every level: diffusers feeds the same encoder_hidden_states to all.
    const auto cross = r.integers("cross_attention_dim", n, std::vector<int64_t>(n, 1280));
    for (auto v : cross)
      TORCH_CHECK(v == cross[0], "diffinstruct::models: ", what, ": cross_attention_dim differs between levels, which is not supported");
    c.cross_attention_dim = cross.at(0);
    c.transformer_layers_per_block = r.integers("transformer_layers_per_block", n, std::vector<int64_t>(n, 1));
    c.attention_head_dim = r.integers("attention_head_dim", n, std::vector<int64_t>(n, 8));
    c.use_linear_projection = r.boolean("use_linear_projection", c.use_linear_projection);
    c.upcast_attention = r.boolean("upcast_attention", c.upcast_attention);
    c.resnet_time_scale_shift = r.string("resnet_time_scale_shift", c.resnet_time_scale_shift);
    c.addition_embed_type = r.string("addition_embed_type", "");
    c.addition_time_embed_dim = r.integer("addition_time_embed_dim", 0);
    c.projection_class_embeddings_input_dim = r.integer("projection_class_embeddings_input_dim", 0);
    c.time_embedding_dim = r.integer("time_embedding_dim", 0);
    c.time_embedding_act_fn = r.string("time_embedding_act_fn", "");
    c.conv_in_kernel = r.integer("conv_in_kernel", c.conv_in_kernel);
    c.conv_out_kernel = r.integer("conv_out_kernel", c.conv_out_kernel);
    // Features not implemented: only their "off" values load.
    r.require("num_attention_heads", "null");
    r.require("only_cross_attention", "false");
    r.require("dual_cross_attention", "false");
    r.require("class_embed_type", "null");
    r.require("num_class_embeds", "null");
    r.require("encoder_hid_dim", "null");
    r.require("encoder_hid_dim_type", "null");
    r.require("time_embedding_type", "\"positional\"");
    r.require("timestep_post_act", "null");
    r.require("time_cond_proj_dim", "null");
    r.require("attention_type", "\"default\"");
    r.require("class_embeddings_concat", "false");
    r.require("mid_block_only_cross_attention", "null");
    r.require("cross_attention_norm", "null");
    r.require("reverse_transformer_layers_per_block", "null");
    r.finish();
    c.validate(what);
    return c;
  }
  static UNet2DConditionConfig from_file(const std::string& path) {
    return from_json(read_config_text(path), "'" + path + "'");
  }

  /// The config.json diffusers' `UNet2DConditionModel.from_pretrained` reads back into this model.
  std::string to_json() const {
    std::ostringstream os;
    const auto strs = io::json_strings;
    const auto ints = io::json_ints;
    const auto num = io::json_number;
    auto opt_str = [](const std::string& s) { return s.empty() ? std::string("null") : io::json_quote(s); };
    auto opt_int = [](int64_t v) { return v > 0 ? std::to_string(v) : std::string("null"); };
    os << "{\n"
       << "  \"_class_name\": \"UNet2DConditionModel\",\n"
       << "  \"_diffinstruct_export\": true,\n"
       << "  \"act_fn\": " << io::json_quote(act_fn) << ",\n"
       << "  \"addition_embed_type\": " << opt_str(addition_embed_type) << ",\n"
       << "  \"addition_time_embed_dim\": " << opt_int(addition_time_embed_dim) << ",\n"
       << "  \"attention_head_dim\": " << ints(attention_head_dim) << ",\n"
       << "  \"block_out_channels\": " << ints(block_out_channels) << ",\n"
       << "  \"center_input_sample\": " << (center_input_sample ? "true" : "false") << ",\n"
       << "  \"conv_in_kernel\": " << conv_in_kernel << ",\n"
       << "  \"conv_out_kernel\": " << conv_out_kernel << ",\n"
       << "  \"cross_attention_dim\": " << cross_attention_dim << ",\n"
       << "  \"down_block_types\": " << strs(down_block_types) << ",\n"
       << "  \"downsample_padding\": " << downsample_padding << ",\n"
       << "  \"dropout\": " << num(dropout) << ",\n"
       << "  \"flip_sin_to_cos\": " << (flip_sin_to_cos ? "true" : "false") << ",\n"
       << "  \"freq_shift\": " << num(freq_shift) << ",\n"
       << "  \"in_channels\": " << in_channels << ",\n"
       << "  \"layers_per_block\": " << ints(layers_per_block) << ",\n"
       << "  \"mid_block_scale_factor\": " << num(mid_block_scale_factor) << ",\n"
       << "  \"mid_block_type\": " << io::json_quote(mid_block_type) << ",\n"
       << "  \"norm_eps\": " << num(norm_eps) << ",\n"
       << "  \"norm_num_groups\": " << norm_num_groups << ",\n"
       << "  \"out_channels\": " << out_channels << ",\n"
       << "  \"projection_class_embeddings_input_dim\": " << opt_int(projection_class_embeddings_input_dim) << ",\n"
       << "  \"resnet_time_scale_shift\": " << io::json_quote(resnet_time_scale_shift) << ",\n"
       << "  \"sample_size\": " << sample_size << ",\n"
       << "  \"time_embedding_act_fn\": " << opt_str(time_embedding_act_fn) << ",\n"
       << "  \"time_embedding_dim\": " << opt_int(time_embedding_dim) << ",\n"
       << "  \"transformer_layers_per_block\": " << ints(transformer_layers_per_block) << ",\n"
       << "  \"up_block_types\": " << strs(up_block_types) << ",\n"
       << "  \"upcast_attention\": " << (upcast_attention ? "true" : "false") << ",\n"
       << "  \"use_linear_projection\": " << (use_linear_projection ? "true" : "false") << "\n"
       << "}\n";
    return os.str();
  }

};

} // namespace models
} // namespace diffinstruct
