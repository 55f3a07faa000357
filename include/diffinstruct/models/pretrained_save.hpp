#pragma once
/// \file Writes models trained here as the folders transformers and diffusers read — a
/// CLIPTextModel[WithProjection], a CLIPModel (both towers, projections and logit_scale) and an
/// AutoencoderKL — each as config.json plus safetensors under the published parameter names, every
/// file atomically. load_clip_text, load_clip_model and load_vae (models/pretrained.hpp) read them
/// back, and so do transformers' and diffusers' from_pretrained (the configs hold the keys they need).
/// The UNet's writer is save_pretrained in models/pretrained.hpp.
#include <diffinstruct/io/atomic_file.hpp>
#include <diffinstruct/io/json.hpp>
#include <diffinstruct/io/module_state.hpp>
#include <diffinstruct/io/safetensors.hpp>
#include <diffinstruct/models/autoencoder_kl.hpp>
#include <diffinstruct/models/clip_model.hpp>

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

namespace diffinstruct {
namespace models {
namespace detail {

/// The keys one CLIP tower's config shares with transformers' (text or vision), without braces.
inline std::string clip_text_keys(const ClipTextConfig& c, const std::string& indent) {
  std::ostringstream o;
  o << indent << "\"model_type\": \"clip_text_model\",\n"
    << indent << "\"vocab_size\": " << c.vocab_size << ",\n"
    << indent << "\"hidden_size\": " << c.hidden_size << ",\n"
    << indent << "\"intermediate_size\": " << c.intermediate_size << ",\n"
    << indent << "\"projection_dim\": " << c.projection_dim << ",\n"
    << indent << "\"num_hidden_layers\": " << c.num_hidden_layers << ",\n"
    << indent << "\"num_attention_heads\": " << c.num_attention_heads << ",\n"
    << indent << "\"max_position_embeddings\": " << c.max_position_embeddings << ",\n"
    << indent << "\"hidden_act\": " << io::json_quote(c.hidden_act) << ",\n"
    << indent << "\"layer_norm_eps\": " << io::json_number(c.layer_norm_eps) << ",\n"
    << indent << "\"bos_token_id\": " << c.bos_token_id << ",\n"
    << indent << "\"eos_token_id\": " << c.eos_token_id << ",\n"
    << indent << "\"pad_token_id\": " << c.pad_token_id << "\n";
  return o.str();
}

inline std::string clip_vision_keys(const ClipVisionConfig& c, const std::string& indent) {
  std::ostringstream o;
  o << indent << "\"model_type\": \"clip_vision_model\",\n"
    << indent << "\"hidden_size\": " << c.hidden_size << ",\n"
    << indent << "\"intermediate_size\": " << c.intermediate_size << ",\n"
    << indent << "\"projection_dim\": " << c.projection_dim << ",\n"
    << indent << "\"num_hidden_layers\": " << c.num_hidden_layers << ",\n"
    << indent << "\"num_attention_heads\": " << c.num_attention_heads << ",\n"
    << indent << "\"num_channels\": " << c.num_channels << ",\n"
    << indent << "\"image_size\": " << c.image_size << ",\n"
    << indent << "\"patch_size\": " << c.patch_size << ",\n"
    << indent << "\"hidden_act\": " << io::json_quote(c.hidden_act) << ",\n"
    << indent << "\"layer_norm_eps\": " << io::json_number(c.layer_norm_eps) << "\n";
  return o.str();
}

inline std::vector<std::pair<std::string, torch::Tensor>> named_tensors(const torch::nn::Module& m) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& p : m.named_parameters(true)) out.emplace_back(p.key(), p.value().detach().to(torch::kCPU).contiguous());
  return out;
}

}  // namespace detail

/// A CLIPTextModel folder (CLIPTextModelWithProjection when the model has its projection), as a
/// pipeline's text_encoder/ is.
inline void save_pretrained(const ClipTextModel& model, const std::string& dir) {
  std::filesystem::create_directories(dir);
  const auto& c = model->config();
  io::save_safetensors(*model, (std::filesystem::path(dir) / "model.safetensors").string());
  const std::string arch = c.with_projection ? "CLIPTextModelWithProjection" : "CLIPTextModel";
  io::write_text_file_atomically((std::filesystem::path(dir) / "config.json").string(),
                                 "{\n  \"architectures\": [\"" + arch + "\"],\n" + detail::clip_text_keys(c, "  ") + "}\n", "the text model's config");
}

/// A CLIPModel folder: both towers with their projections (the same projection_dim) and logit_scale.
inline void save_pretrained(const ClipModelParts& parts, const std::string& dir) {
  TORCH_CHECK(parts.text && parts.vision && parts.logit_scale.defined() && parts.logit_scale.numel() == 1,
              "diffinstruct::models::save_pretrained: a CLIPModel needs both towers and logit_scale");
  const auto& t = parts.text->config();
  const auto& v = parts.vision->config();
  TORCH_CHECK(t.with_projection && v.with_projection && t.projection_dim == v.projection_dim,
              "diffinstruct::models::save_pretrained: a CLIPModel's towers need projections of one size, got ", t.projection_dim, " and ",
              v.projection_dim);
  std::filesystem::create_directories(dir);
  auto tensors = detail::named_tensors(*parts.text);
  for (auto& p : detail::named_tensors(*parts.vision)) tensors.push_back(std::move(p));
  tensors.emplace_back("logit_scale", parts.logit_scale.detach().to(torch::kCPU, torch::kFloat).reshape({}).contiguous());
  io::write_safetensors((std::filesystem::path(dir) / "model.safetensors").string(), tensors, {{"format", "pt"}});
  std::ostringstream o;
  o << "{\n  \"architectures\": [\"CLIPModel\"],\n  \"model_type\": \"clip\",\n  \"projection_dim\": " << t.projection_dim
    << ",\n  \"logit_scale_init_value\": 2.6592,\n  \"text_config\": {\n"
    << detail::clip_text_keys(t, "    ") << "  },\n  \"vision_config\": {\n"
    << detail::clip_vision_keys(v, "    ") << "  }\n}\n";
  io::write_text_file_atomically((std::filesystem::path(dir) / "config.json").string(), o.str(), "the CLIP model's config");
}

/// An AutoencoderKL folder, as a pipeline's vae/ is.
inline void save_pretrained(const AutoencoderKL& vae, const std::string& dir) {
  std::filesystem::create_directories(dir);
  const auto& c = vae->config();
  io::save_safetensors(*vae, (std::filesystem::path(dir) / "diffusion_pytorch_model.safetensors").string());
  std::ostringstream o;
  o << "{\n  \"_class_name\": \"AutoencoderKL\",\n"
    << "  \"in_channels\": " << c.in_channels << ",\n  \"out_channels\": " << c.out_channels << ",\n"
    << "  \"down_block_types\": " << io::json_strings(c.down_block_types) << ",\n  \"up_block_types\": " << io::json_strings(c.up_block_types) << ",\n"
    << "  \"block_out_channels\": " << io::json_ints(c.block_out_channels) << ",\n  \"layers_per_block\": " << c.layers_per_block << ",\n"
    << "  \"act_fn\": " << io::json_quote(c.act_fn) << ",\n  \"latent_channels\": " << c.latent_channels << ",\n"
    << "  \"norm_num_groups\": " << c.norm_num_groups << ",\n  \"sample_size\": " << c.sample_size << ",\n"
    << "  \"scaling_factor\": " << io::json_number(c.scaling_factor) << ",\n"
    << (c.has_shift_factor ? "  \"shift_factor\": " + io::json_number(c.shift_factor) + ",\n" : std::string())
    << "  \"use_quant_conv\": " << (c.use_quant_conv ? "true" : "false") << ",\n"
    << "  \"use_post_quant_conv\": " << (c.use_post_quant_conv ? "true" : "false") << ",\n"
    << "  \"mid_block_add_attention\": " << (c.mid_block_add_attention ? "true" : "false") << ",\n"
    << "  \"force_upcast\": " << (c.force_upcast ? "true" : "false") << "\n}\n";
  io::write_text_file_atomically((std::filesystem::path(dir) / "config.json").string(), o.str(), "the VAE config");
}

}  // namespace models
}  // namespace diffinstruct
