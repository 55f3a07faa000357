#pragma once
/// \file transformers' `CLIPModel` (the two towers and the learnt temperature), as the CLIP-based
/// rewards ship it: OpenAI's CLIP, PickScore (yuvalkirstain/PickScore_v1), and HPSv2 or any
/// open_clip model once converted to a transformers folder. Its config.json nests a `text_config`
/// and a `vision_config`; its weights hold `text_model.*`, `text_projection.weight`,
/// `vision_model.*`, `visual_projection.weight` and the scalar `logit_scale` (log of the temperature
/// that multiplies the cosine: exp(logit_scale) = 100 for OpenAI's CLIP).
///
/// Example:
///   auto clip = models::load_clip_model("PickScore_v1");                       // models/pretrained.hpp
///   auto img = clip.vision->forward(models::clip_preprocess(images)).image_embeds;
///   auto txt = clip.text->forward(ids).text_embeds;

#include <diffinstruct/models/clip_text.hpp>
#include <diffinstruct/models/clip_vision.hpp>

#include <string>

namespace diffinstruct {
namespace models {

struct ClipModelConfig {
  ClipTextConfig text;      // with_projection = true, projection_dim = the outer one
  ClipVisionConfig vision;  // the same
  int64_t projection_dim = 512;

  static ClipModelConfig from_json(const std::string& json, const std::string& what = "config.json") {
    ConfigReader r(json, what);
    const auto arch = r.strings("architectures", {"CLIPModel"});
    TORCH_CHECK(arch.size() == 1 && arch[0] == "CLIPModel", "diffinstruct::models: ", what, " describes ",
                arch.empty() ? std::string("no architecture") : arch[0], ", not a CLIPModel");
    const auto type = r.string("model_type", "clip");
    TORCH_CHECK(type == "clip", "diffinstruct::models: ", what, " has model_type '", type, "', expected clip");
    r.ignore_transformers_bookkeeping();
    // The initial value of logit_scale: the checkpoint's own logit_scale is what counts.
    r.ignore({"logit_scale_init_value", "text_config_dict", "vision_config_dict"});
    ClipModelConfig c;
    c.projection_dim = r.integer("projection_dim", c.projection_dim);
    const io::JsonValue* text = r.raw("text_config");
    const io::JsonValue* vision = r.raw("vision_config");
    TORCH_CHECK(text && text->is_object() && vision && vision->is_object(), "diffinstruct::models: ", what,
                " must hold a text_config and a vision_config object (a CLIPModel's config.json)");
    c.text = ClipTextConfig::from_clip_model(*text, c.projection_dim, what + " text_config");
    c.vision = ClipVisionConfig::from_clip_model(*vision, c.projection_dim, what + " vision_config");
    r.finish();
    return c;
  }
  static ClipModelConfig from_file(const std::string& path) { return from_json(read_config_text(path), "'" + path + "'"); }
};

/// A CLIPModel's parts: each tower is the same module as a CLIP*ModelWithProjection.
struct ClipModelParts {
  ClipTextModel text{nullptr};
  ClipVisionModel vision{nullptr};
  torch::Tensor logit_scale;  ///< the checkpoint's scalar (a log): the reward multiplies by exp(logit_scale)
};

}  // namespace models
}  // namespace diffinstruct
