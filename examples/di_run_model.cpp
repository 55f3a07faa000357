// di_run_model: load a diffusers model folder and run it on tensors from a safetensors file — how a
// user checks that a real checkpoint loads and reproduces Python's numbers.
//
//   di_run_model --model DIR --kind unet|vae-decoder|clip-text|clip-vision --inputs IN.safetensors --outputs OUT.safetensors
//   di_run_model --model TOKENIZER_DIR --kind clip-tokenizer --text PROMPTS.txt --outputs OUT.safetensors
//   di_run_model --model HPS_v2.1_compressed.pt --kind open-clip [--open-clip-config ViT-H-14|FILE.json] --inputs IN --outputs OUT
//   di_run_model --model CLIP_DIR --kind aesthetic --head sac+logos+ava1-l14-linearMSE.pth --inputs IN --outputs OUT
//   di_run_model --model ImageReward.pt --kind image-reward [--med-config med_config.json] --inputs IN --outputs OUT
//   di_run_model --model bert-base-uncased/vocab.txt --kind wordpiece-tokenizer --text PROMPTS.txt --outputs OUT
//
// unet:        inputs `sample`, `timestep`, `encoder_hidden_states` (+ `text_embeds`, `time_ids` for
//              SDXL); output `sample` = UNet2DConditionModel(sample, timestep, encoder_hidden_states).
// vae-decoder: input `latents`; output `sample` = AutoencoderKL.decode(latents), as diffusers computes
//              it (scaling_factor is not applied: divide by it first, as diffusers' pipelines do).
// clip-text:   (a CLIPTextModel[WithProjection] folder, or a CLIPModel folder's text tower)
//              input `input_ids` (int64 [N, L]); outputs `last_hidden_state`, `pooler_output`, the
//              penultimate layer `hidden_states_penultimate` (SDXL's), and `text_embeds` with a projection.
// clip-vision: (a CLIPVisionModel[WithProjection] folder, or a CLIPModel folder's vision tower)
//              input `pixel_values` (preprocessed); outputs `last_hidden_state`, `pooler_output`, and
//              `image_embeds` with a projection.
// clip-tokenizer: a transformers CLIPTokenizer folder (vocab.json, merges.txt, tokenizer_config.json);
//              --text has one prompt per line (every line, blank ones too, is a prompt); output
//              `input_ids` (int64 [N, 77]: padded and truncated as transformers does with
//              padding="max_length", truncation=True); with --open-clip-cleaning, the text is cleaned as
//              OpenCLIP's tokenizer does first (HPSv2's ids, up to the padding: OpenCLIP pads with 0).
// open-clip:   an OpenCLIP checkpoint (.pt as HPSv2 ships it, or .safetensors; models/open_clip.hpp) with
//              its configuration (a built-in name or OpenCLIP's model-config JSON); inputs `images`
//              (float [B, 3, H, W] in [0, 1], preprocessed here as HPSv2 does: resize the long side,
//              pad) or `pixel_values` (already preprocessed), and/or `input_ids` (int64 [B, L], from
//              OpenCLIP's tokenizer); outputs the unit-norm `image_features` and `text_features`, and
//              with both, `score` = their cosine per row (HPSv2's score for an HPS checkpoint).
// aesthetic:   a transformers CLIPModel folder (CLIP ViT-L/14) and the LAION head (--head); input
//              `images` (float [B, 3, H, W] in [0, 1]: CLIP's resize and crop here) or `pixel_values`;
//              outputs the unit-norm `image_embeds` and `score` [B].
// image-reward: ImageReward.pt (ViT-L/16 at 224 and BLIP's med_config.json, or --med-config FILE);
//              inputs `images` (float [B, 3, H, W] in [0, 1]: resized and cropped here) or
//              `pixel_values`, and `input_ids`, `attention_mask` (int64 [B, L], from wordpiece-tokenizer);
//              outputs `score` [B] (ImageReward's standardised score).
// wordpiece-tokenizer: a BERT vocab.txt (uncased), with BLIP's [DEC] and [ENC] added as ImageReward
//              does; --text one prompt per line; outputs `input_ids` and `attention_mask` (int64 [N, 35]).
// Inputs are cast to --dtype and moved to --device; float outputs are written as float32.
#include <diffinstruct/util/error_report.hpp>
#include <diffinstruct/models/aesthetic_head.hpp>
#include <diffinstruct/models/image_reward.hpp>
#include <diffinstruct/text/wordpiece_tokenizer.hpp>
#include <diffinstruct/text2image/image_reward_reward.hpp>
#include <diffinstruct/models/open_clip.hpp>
#include <diffinstruct/models/pretrained.hpp>
#include <diffinstruct/text/clip_tokenizer.hpp>
#include <diffinstruct/text/prompt_file.hpp>

#include <CLI/CLI.hpp>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <set>
#include <string>

namespace di = diffinstruct;

namespace {

c10::ScalarType parse_dtype(const std::string& s) {
  if (s == "fp32" || s == "float32") return torch::kFloat;
  if (s == "fp16" || s == "float16") return torch::kHalf;
  if (s == "bf16" || s == "bfloat16") return torch::kBFloat16;
  TORCH_CHECK(false, "--dtype: expected fp32, fp16 or bf16, got '", s, "'");
}

torch::Tensor input(const di::io::SafetensorsFile& f, const std::string& name, bool required, const std::string& kind) {
  if (!f.find(name)) {
    TORCH_CHECK(!required, "di_run_model: --kind ", kind, " needs a tensor '", name, "' in '", f.path(), "'; it has: ", [&] {
      std::string s;
      for (const auto& e : f.tensors()) s += (s.empty() ? "" : ", ") + e.name;
      return s.empty() ? std::string("none") : s;
    }());
    return {};
  }
  return f.read(name);
}

/// A transformers CLIPModel folder (both towers, as PickScore and the miniature's CLIP are): clip-text
/// and clip-vision then run its text or vision tower, with its projection.
bool describes_clip_model(const std::string& dir) {
  auto r = di::models::ConfigReader::from_file((std::filesystem::path(dir) / "config.json").string());
  const auto arch = r.strings("architectures", {});
  return arch.size() == 1 && arch[0] == "CLIPModel";
}

/// `r` is null for a tower of a CLIPModel folder (load_clip_model reads it strictly and keeps no report).
void print_load(const std::string& what, const torch::nn::Module& m, const di::io::LoadReport* r, c10::ScalarType dtype, const torch::Device& device,
                double seconds) {
  std::printf("loaded %s: %.3f M parameters, computing in %s on %s, in %.2f s\n", what.c_str(), static_cast<double>(di::models::count_parameters(m)) / 1e6,
              c10::toString(dtype), device.str().c_str(), seconds);
  if (r) std::printf("  %s\n", r->summary().c_str());
  else std::printf("  the tower of a CLIPModel folder, every weight of it read (a strict load)\n");
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"Run a diffusers model folder on tensors from a safetensors file"};
  std::string model_dir, kind, inputs_path, text_path, outputs_path, dtype_name = "fp32", device_name = "cpu", variant;
  bool lenient = false;
  app.add_option("--model", model_dir, "model folder (config.json + *.safetensors), or a tokenizer folder")->required();
  app.add_option("--kind", kind, "unet | vae-decoder | clip-text | clip-vision | clip-tokenizer | open-clip | aesthetic | image-reward | wordpiece-tokenizer")
      ->required()
      ->check(CLI::IsMember({"unet", "vae-decoder", "clip-text", "clip-vision", "clip-tokenizer", "open-clip", "aesthetic", "image-reward",
                              "wordpiece-tokenizer"}));
  std::string med_config;
  app.add_option("--med-config", med_config, "image-reward: BLIP's med_config.json (default: the published one's values)");
  std::string open_clip_config = "ViT-H-14", head_path;
  app.add_option("--open-clip-config", open_clip_config, "open-clip: a built-in OpenCLIP model name, or its model-config JSON file");
  app.add_option("--head", head_path, "aesthetic: the head's .pth (or .safetensors)");
  bool open_clip_cleaning = false;
  app.add_flag("--open-clip-cleaning", open_clip_cleaning, "clip-tokenizer: clean the text as OpenCLIP does first (ftfy, html.unescape; HPSv2's tokenizer)");
  app.add_option("--inputs", inputs_path, "safetensors file with the inputs (every kind but clip-tokenizer)");
  app.add_option("--text", text_path, "clip-tokenizer: text file, one prompt per line");
  std::string decoded_path;
  app.add_option("--decoded", decoded_path, "clip-tokenizer: also write each row decoded back to text, as a JSON list");
  app.add_option("--outputs", outputs_path, "safetensors file to write (tensor 'sample')")->required();
  app.add_option("--dtype", dtype_name, "fp32 | fp16 | bf16 (weights and computation)");
  app.add_option("--device", device_name, "cpu, cuda, cuda:1, ...");
  app.add_option("--variant", variant, "weights variant, e.g. fp16 for diffusion_pytorch_model.fp16.safetensors");
  app.add_flag("--non-strict", lenient, "load even if names or shapes differ (missing ones stay random); report them");
  CLI11_PARSE(app, argc, argv);
  try {
    if (kind == "clip-tokenizer") {
      TORCH_CHECK(!text_path.empty() && inputs_path.empty(), "di_run_model: --kind clip-tokenizer takes --text FILE and no --inputs");
      const auto t0 = std::chrono::steady_clock::now();
      const auto tokenizer = di::text::ClipTokenizer::from_folder(model_dir).with_open_clip_cleaning(open_clip_cleaning);
      const auto prompts = di::text::read_prompt_file(text_path, {/*skip_blank_lines=*/false});
      const torch::Tensor ids = tokenizer.batch(prompts);
      std::printf("CLIP tokenizer from '%s': %lld tokens, %lld merges, pad id %lld; %zu prompts tokenized in %.3f s\n", model_dir.c_str(),
                  static_cast<long long>(tokenizer.vocab_size()), static_cast<long long>(tokenizer.num_merges()),
                  static_cast<long long>(tokenizer.pad_id()), prompts.size(),
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      di::io::write_safetensors(outputs_path, {{"input_ids", ids}}, {{"format", "pt"}, {"producer", "di_run_model"}});
      std::printf("wrote 'input_ids' %s to '%s'\n", c10::str(ids.sizes()).c_str(), outputs_path.c_str());
      if (!decoded_path.empty()) {
        std::string json = "[";
        for (int64_t i = 0; i < ids.size(0); ++i) {
          const auto row = ids[i].contiguous();
          const std::vector<int64_t> v(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + row.numel());
          json += i ? ",\n" : "\n";
          json += di::io::json_quote(tokenizer.decode(v));
        }
        di::io::write_text_file_atomically(decoded_path, json + "\n]\n");
      }
      return 0;
    }
    if (kind == "wordpiece-tokenizer") {
      TORCH_CHECK(!text_path.empty() && inputs_path.empty(), "di_run_model: --kind wordpiece-tokenizer takes --text FILE and no --inputs");
      const auto tokenizer = di::text::WordPieceTokenizer::from_vocab_file(model_dir).with_added_tokens({"[DEC]", "[ENC]"});
      const auto prompts = di::text::read_prompt_file(text_path, {/*skip_blank_lines=*/false});
      const auto [ids, mask] = tokenizer.batch(prompts, di::text2image::ImageRewardReward::kMaxLength);
      std::printf("WordPiece tokenizer from '%s': %lld tokens (with [DEC], [ENC]); %zu prompts\n", model_dir.c_str(),
                  static_cast<long long>(tokenizer.vocab_size()), prompts.size());
      di::io::write_safetensors(outputs_path, {{"input_ids", ids}, {"attention_mask", mask}}, {{"format", "pt"}, {"producer", "di_run_model"}});
      std::printf("wrote 'input_ids', 'attention_mask' %s to '%s'\n", c10::str(ids.sizes()).c_str(), outputs_path.c_str());
      return 0;
    }
    TORCH_CHECK(!inputs_path.empty() && text_path.empty(), "di_run_model: --kind ", kind, " takes --inputs FILE (and no --text)");
    const auto dtype = parse_dtype(dtype_name);
    const torch::Device device(device_name);
    TORCH_CHECK(!device.is_cuda() || torch::cuda::is_available(), "di_run_model: --device ", device_name, " but no CUDA device is available");
    const auto opts = di::models::PretrainedOptions().dtype(dtype).device(device).strict(!lenient).variant(variant);
    di::io::SafetensorsFile in(inputs_path);
    auto to = [&](const torch::Tensor& t) { return t.defined() ? t.to(device, t.is_floating_point() ? dtype : t.scalar_type()) : t; };
    torch::NoGradGuard no_grad;
    torch::Tensor out;
    std::vector<std::pair<std::string, torch::Tensor>> extra;  // outputs besides `sample`
    const auto t0 = std::chrono::steady_clock::now();
    auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
    di::io::LoadReport report;
    if (kind == "unet") {
      auto unet = di::models::load_unet(model_dir, opts, &report);
      print_load("UNet2DConditionModel from '" + model_dir + "'", *unet, &report, dtype, device, seconds());
      di::models::TextCondition c(to(input(in, "encoder_hidden_states", true, kind)));
      const bool sdxl = unet->config().text_time();
      c.text_embeds = to(input(in, "text_embeds", sdxl, kind));
      c.time_ids = to(input(in, "time_ids", sdxl, kind));
      if (!sdxl) c.text_embeds = c.time_ids = torch::Tensor();
      const auto t1 = std::chrono::steady_clock::now();
      out = unet->forward(to(input(in, "sample", true, kind)), input(in, "timestep", true, kind).to(device), c);
      std::printf("forward: %.3f s\n", std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count());
    } else if (kind == "clip-text") {
      const bool tower = describes_clip_model(model_dir);
      auto clip = tower ? di::models::load_clip_model(model_dir, opts, di::models::ClipTowers::kText).text : di::models::load_clip_text(model_dir, opts, &report);
      print_load("CLIPText" + std::string(clip->config().with_projection ? "ModelWithProjection" : "Model") + " from '" + model_dir + "'", *clip,
                 tower ? nullptr : &report, dtype, device, seconds());
      const auto r = clip->forward(input(in, "input_ids", true, kind).to(device), /*keep_hidden_states=*/true);
      extra = {{"last_hidden_state", r.last_hidden_state}, {"pooler_output", r.pooler_output},
               {"hidden_states_penultimate", r.hidden_states[r.hidden_states.size() - 2]}};
      if (r.text_embeds.defined()) extra.emplace_back("text_embeds", r.text_embeds);
    } else if (kind == "clip-vision") {
      const bool tower = describes_clip_model(model_dir);
      auto clip = tower ? di::models::load_clip_model(model_dir, opts, di::models::ClipTowers::kVision).vision
                        : di::models::load_clip_vision(model_dir, opts, &report);
      print_load("CLIPVision" + std::string(clip->config().with_projection ? "ModelWithProjection" : "Model") + " from '" + model_dir + "'",
                 *clip, tower ? nullptr : &report, dtype, device, seconds());
      const auto r = clip->forward(to(input(in, "pixel_values", true, kind)));
      extra = {{"last_hidden_state", r.last_hidden_state}, {"pooler_output", r.pooler_output}};
      if (r.image_embeds.defined()) extra.emplace_back("image_embeds", r.image_embeds);
    } else if (kind == "open-clip") {
      const auto config = open_clip_config.size() > 5 && open_clip_config.compare(open_clip_config.size() - 5, 5, ".json") == 0
                              ? di::models::OpenClipConfig::from_file(open_clip_config)
                              : di::models::OpenClipConfig::named(open_clip_config);
      const auto images = input(in, "images", false, kind), pixels = input(in, "pixel_values", false, kind), ids = input(in, "input_ids", false, kind);
      TORCH_CHECK(images.defined() || pixels.defined() || ids.defined(), "di_run_model: --kind open-clip needs 'images', 'pixel_values' or 'input_ids'");
      const auto towers = !ids.defined() ? di::models::ClipTowers::kVision : (images.defined() || pixels.defined()) ? di::models::ClipTowers::kBoth
                                                                                                                  : di::models::ClipTowers::kText;
      auto clip = di::models::load_open_clip(model_dir, config, opts, towers);
      std::printf("OpenCLIP model from '%s' (%s) on %s, %s, in %.2f s\n", model_dir.c_str(), open_clip_config.c_str(), device.str().c_str(),
                  c10::toString(dtype), seconds());
      auto unit = [](const torch::Tensor& t) { return t / t.norm(2, -1, true); };
      if (images.defined() || pixels.defined()) {
        const auto pv = pixels.defined() ? to(pixels) : di::models::clip_preprocess_pad(to(images), config.vision.image_size);
        extra.emplace_back("image_features", unit(clip.vision->forward(pv).image_embeds.to(torch::kFloat)));
      }
      if (ids.defined()) extra.emplace_back("text_features", unit(clip.text->forward(ids.to(device, torch::kLong)).text_embeds.to(torch::kFloat)));
      if (extra.size() == 2) {
        TORCH_CHECK(extra[0].second.size(0) == extra[1].second.size(0), "di_run_model: ", extra[0].second.size(0), " images but ",
                    extra[1].second.size(0), " texts: the score pairs them row by row");
        extra.emplace_back("score", (extra[0].second * extra[1].second).sum(-1));
      }
    } else if (kind == "image-reward") {
      di::models::ImageRewardConfig config;
      if (!med_config.empty()) config.text = di::models::BertConfig::from_file(med_config);
      auto model = di::models::load_image_reward(model_dir, config, opts);
      std::printf("ImageReward from '%s' on %s, %s, in %.2f s\n", model_dir.c_str(), device.str().c_str(), c10::toString(dtype), seconds());
      const auto images = input(in, "images", false, kind), pixels = input(in, "pixel_values", false, kind);
      TORCH_CHECK(images.defined() != pixels.defined(), "di_run_model: --kind image-reward needs one of 'images' or 'pixel_values'");
      const auto pv = pixels.defined() ? to(pixels) : di::models::blip_preprocess(to(images), config.vision.image_size);
      extra = {{"score", model->forward(pv, input(in, "input_ids", true, kind).to(device, torch::kLong),
                                        input(in, "attention_mask", true, kind).to(device, torch::kLong))}};
    } else if (kind == "aesthetic") {
      TORCH_CHECK(!head_path.empty(), "di_run_model: --kind aesthetic needs --head FILE (the predictor's .pth)");
      auto clip = di::models::load_clip_model(model_dir, opts, di::models::ClipTowers::kVision);
      auto head = di::models::load_aesthetic_head(head_path, opts);
      std::printf("CLIP vision tower from '%s' and aesthetic head '%s' on %s, %s, in %.2f s\n", model_dir.c_str(), head_path.c_str(),
                  device.str().c_str(), c10::toString(dtype), seconds());
      const auto images = input(in, "images", false, kind), pixels = input(in, "pixel_values", false, kind);
      TORCH_CHECK(images.defined() != pixels.defined(), "di_run_model: --kind aesthetic needs one of 'images' or 'pixel_values'");
      const auto pv = pixels.defined() ? to(pixels) : di::models::clip_preprocess(to(images), clip.vision->config().image_size);
      auto e = clip.vision->forward(pv).image_embeds.to(torch::kFloat);
      e = e / e.norm(2, -1, true);
      extra = {{"image_embeds", e}, {"score", head(e.to(dtype)).squeeze(-1)}};
    } else {
      auto vae = di::models::load_vae(model_dir, opts, di::models::VaeParts::kDecoderOnly, &report);
      print_load("AutoencoderKL decoder from '" + model_dir + "'", *vae, &report, dtype, device, seconds());
      const auto t1 = std::chrono::steady_clock::now();
      out = vae->decode(to(input(in, "latents", true, kind)));
      std::printf("decode: %.3f s\n", std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count());
    }
    if (out.defined()) extra.insert(extra.begin(), {"sample", out});
    for (auto& [name, t] : extra) {
      t = t.to(torch::kCPU, torch::kFloat).contiguous();
      TORCH_CHECK(torch::isfinite(t).all().item<bool>(), "di_run_model: output '", name,
                  "' has non-finite values (wrong dtype for this model? try --dtype fp32)");
    }
    di::io::write_safetensors(outputs_path, extra, {{"format", "pt"}, {"producer", "di_run_model"}});
    for (const auto& [name, t] : extra) std::printf("wrote '%s' %s to '%s'\n", name.c_str(), c10::str(t.sizes()).c_str(), outputs_path.c_str());
  } catch (const std::exception& e) {
    return di::report_error("di_run_model", e);
  }
  return 0;
}
