// models/pretrained_save.hpp: a CLIPTextModel, a CLIPModel and an AutoencoderKL written as folders
// read back by the library's loaders with every weight and config value intact (outputs identical),
// and the refusals.
#include <diffinstruct/models/pretrained.hpp>
#include <diffinstruct/models/pretrained_save.hpp>

#include <catch2/catch.hpp>

#include <filesystem>

namespace dm = diffinstruct::models;

namespace {
dm::ClipTextConfig tiny_text() {
  dm::ClipTextConfig t;
  t.vocab_size = 40, t.hidden_size = 16, t.intermediate_size = 24, t.projection_dim = 8, t.num_hidden_layers = 2, t.num_attention_heads = 2;
  t.max_position_embeddings = 10, t.bos_token_id = 38, t.eos_token_id = 39, t.pad_token_id = 39, t.with_projection = true;
  t.hidden_act = "gelu", t.layer_norm_eps = 1e-6;
  return t;
}
dm::ClipVisionConfig tiny_vision() {
  dm::ClipVisionConfig v;
  v.hidden_size = 16, v.intermediate_size = 24, v.projection_dim = 8, v.num_hidden_layers = 1, v.num_attention_heads = 4, v.image_size = 16;
  v.patch_size = 8, v.with_projection = true;
  return v;
}
std::string fresh_dir(const std::string& name) {
  const std::string d = std::string(DIFFINSTRUCT_TEST_TMPDIR) + "/" + name;
  std::filesystem::remove_all(d);
  return d;
}
}  // namespace

TEST_CASE("save_pretrained: CLIP text, CLIPModel and AutoencoderKL folders read back identically", "[models][save]") {
  torch::manual_seed(4);
  const auto ids = torch::randint(38, {2, 10});
  {
    dm::ClipTextModel text(tiny_text());
    const auto dir = fresh_dir("saved_text");
    dm::save_pretrained(text, dir);
    auto back = dm::load_clip_text(dir);
    CHECK(back->config().with_projection);
    CHECK(back->config().eos_token_id == 39);
    CHECK(back->config().hidden_act == "gelu");
    CHECK(back->config().layer_norm_eps == 1e-6);
    torch::NoGradGuard no_grad;
    text->eval();
    CHECK(torch::equal(back->forward(ids).text_embeds, text->forward(ids).text_embeds));
  }
  {
    dm::ClipModelParts parts;
    parts.text = dm::ClipTextModel(tiny_text());
    parts.vision = dm::ClipVisionModel(tiny_vision());
    parts.logit_scale = torch::full({}, 2.5);
    const auto dir = fresh_dir("saved_clip");
    dm::save_pretrained(parts, dir);
    auto back = dm::load_clip_model(dir);
    CHECK(back.logit_scale.item<float>() == 2.5f);
    CHECK(back.vision->config().patch_size == 8);
    torch::NoGradGuard no_grad;
    parts.text->eval();
    parts.vision->eval();
    const auto px = torch::randn({2, 3, 16, 16});
    CHECK(torch::equal(back.vision->forward(px).image_embeds, parts.vision->forward(px).image_embeds));
    CHECK(torch::equal(back.text->forward(ids).text_embeds, parts.text->forward(ids).text_embeds));
    parts.vision = dm::ClipVisionModel([] {
      auto v = tiny_vision();
      v.projection_dim = 6;
      return v;
    }());
    CHECK_THROWS_WITH(dm::save_pretrained(parts, fresh_dir("saved_clip_bad")), Catch::Contains("projections of one size, got 8 and 6"));
  }
  {
    dm::AutoencoderKLConfig c;
    c.down_block_types = {"DownEncoderBlock2D", "DownEncoderBlock2D"};
    c.up_block_types = {"UpDecoderBlock2D", "UpDecoderBlock2D"};
    c.block_out_channels = {8, 16};
    c.norm_num_groups = 4;
    c.scaling_factor = 0.7;
    c.mid_block_add_attention = false;
    dm::AutoencoderKL vae(c);
    const auto dir = fresh_dir("saved_vae");
    dm::save_pretrained(vae, dir);
    auto back = dm::load_vae(dir);
    CHECK(back->config().scaling_factor == 0.7);
    CHECK_FALSE(back->config().has_shift_factor);
    CHECK_FALSE(back->config().mid_block_add_attention);
    torch::NoGradGuard no_grad;
    vae->eval();
    const auto z = torch::randn({1, 4, 4, 4});
    CHECK(torch::equal(back->decode_latents(z), vae->decode_latents(z)));
    const auto x = torch::randn({1, 3, 8, 8});
    CHECK(torch::equal(back->encode(x).mean, vae->encode(x).mean));
  }
}
