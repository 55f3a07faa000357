#pragma once
// The reward models' files as the programs take them (di_evaluate, 05_text_to_image): one flag per
// model (and its tokenizer), the same names in both, each loaded as published.
//
//   --image-reward ImageReward.pt --image-reward-vocab vocab.txt [--med-config med_config.json]
//   --pickscore DIR [--pickscore-tokenizer DIR]     PickScore_v1 (a transformers CLIPModel folder)
//   --clip DIR [--clip-tokenizer DIR]               the CLIP score's CLIP (openai/clip-vit-large-patch14)
//   --hps FILE [--hps-config ViT-H-14|FILE.json] [--hps-tokenizer DIR]   HPSv2 / HPSv2.1 (OpenCLIP)
//   --aesthetic HEAD.pth --aesthetic-clip DIR        the LAION aesthetic predictor v2 on CLIP ViT-L/14
#include <diffinstruct/models/aesthetic_head.hpp>
#include <diffinstruct/models/clip_model.hpp>
#include <diffinstruct/models/image_reward.hpp>
#include <diffinstruct/models/open_clip.hpp>
#include <diffinstruct/text/clip_tokenizer.hpp>
#include <diffinstruct/text/wordpiece_tokenizer.hpp>

#include <CLI/CLI.hpp>

#include <string>

namespace reward_files {

namespace dm = diffinstruct::models;
namespace dt = diffinstruct::text;

struct RewardFiles {
  std::string image_reward, image_reward_vocab, med_config, pickscore, pickscore_tokenizer, clip, clip_tokenizer, hps, hps_config = "ViT-H-14",
      hps_tokenizer, aesthetic, aesthetic_clip;
};

inline void add_options(CLI::App& app, RewardFiles& f) {
  app.add_option("--image-reward", f.image_reward, "ImageReward.pt (ImageReward v1.0)")->check(CLI::ExistingFile);
  app.add_option("--image-reward-vocab", f.image_reward_vocab, "bert-base-uncased's vocab.txt (ImageReward's tokenizer)")->check(CLI::ExistingFile);
  app.add_option("--med-config", f.med_config, "BLIP's med_config.json (default: the published values)")->check(CLI::ExistingFile);
  app.add_option("--pickscore", f.pickscore, "PickScore_v1 as a transformers CLIPModel folder")->check(CLI::ExistingDirectory);
  app.add_option("--pickscore-tokenizer", f.pickscore_tokenizer, "its tokenizer folder (CLIP-ViT-H-14-laion2B's; default: --pickscore)")
      ->check(CLI::ExistingDirectory);
  app.add_option("--clip", f.clip, "the CLIP score's CLIPModel folder (openai/clip-vit-large-patch14)")->check(CLI::ExistingDirectory);
  app.add_option("--clip-tokenizer", f.clip_tokenizer, "its tokenizer folder (default: --clip)")->check(CLI::ExistingDirectory);
  app.add_option("--hps", f.hps, "HPS_v2.1_compressed.pt (or HPSv2's): OpenCLIP's state dict")->check(CLI::ExistingFile);
  app.add_option("--hps-config", f.hps_config, "HPS's OpenCLIP model: a built-in name or its config JSON")->capture_default_str();
  app.add_option("--hps-tokenizer", f.hps_tokenizer, "a CLIP BPE tokenizer folder for HPS (default: the teacher's tokenizer/)")->check(CLI::ExistingDirectory);
  app.add_option("--aesthetic", f.aesthetic, "the aesthetic head, sac+logos+ava1-l14-linearMSE.pth")->check(CLI::ExistingFile);
  app.add_option("--aesthetic-clip", f.aesthetic_clip, "CLIP ViT-L/14 as a transformers folder, for the aesthetic head")->check(CLI::ExistingDirectory);
}

struct ImageRewardParts {
  dm::ImageRewardModel model{nullptr};
  dt::WordPieceTokenizer tokenizer;
};
inline ImageRewardParts load_image_reward(const RewardFiles& f, const dm::PretrainedOptions& o, const char* program) {
  TORCH_CHECK(!f.image_reward_vocab.empty(), program, ": --image-reward needs --image-reward-vocab (bert-base-uncased's vocab.txt)");
  dm::ImageRewardConfig config;
  if (!f.med_config.empty()) config.text = dm::BertConfig::from_file(f.med_config);
  return {dm::load_image_reward(f.image_reward, config, o),
          dt::WordPieceTokenizer::from_vocab_file(f.image_reward_vocab).with_added_tokens({"[DEC]", "[ENC]"})};
}

struct ClipParts {
  dm::ClipModelParts clip;
  dt::ClipTokenizer tokenizer;
};
/// A transformers CLIPModel folder and its tokenizer (`tokenizer_dir`, or the model's own folder).
inline ClipParts load_clip(const std::string& dir, const std::string& tokenizer_dir, const dm::PretrainedOptions& o) {
  return {dm::load_clip_model(dir, o, dm::ClipTowers::kBoth), dt::ClipTokenizer::from_folder(tokenizer_dir.empty() ? dir : tokenizer_dir)};
}
/// HPS: OpenCLIP's model and CLIP's BPE with OpenCLIP's cleaning (`default_tokenizer`: any CLIP
/// tokenizer folder, e.g. an SD pipeline's tokenizer/, when --hps-tokenizer is not given).
inline ClipParts load_hps(const RewardFiles& f, const dm::PretrainedOptions& o, const std::string& default_tokenizer) {
  const bool json = f.hps_config.size() > 5 && f.hps_config.compare(f.hps_config.size() - 5, 5, ".json") == 0;
  const auto config = json ? dm::OpenClipConfig::from_file(f.hps_config) : dm::OpenClipConfig::named(f.hps_config);
  return {dm::load_open_clip(f.hps, config, o, dm::ClipTowers::kBoth),
          dt::ClipTokenizer::from_folder(f.hps_tokenizer.empty() ? default_tokenizer : f.hps_tokenizer).with_open_clip_cleaning()};
}

struct AestheticParts {
  dm::ClipVisionModel vision{nullptr};
  dm::AestheticHead head{nullptr};
};
inline AestheticParts load_aesthetic(const RewardFiles& f, const dm::PretrainedOptions& o, const char* program) {
  TORCH_CHECK(!f.aesthetic_clip.empty(), program, ": --aesthetic needs --aesthetic-clip (a CLIP ViT-L/14 transformers folder)");
  return {dm::load_clip_model(f.aesthetic_clip, o, dm::ClipTowers::kVision).vision, dm::load_aesthetic_head(f.aesthetic, o)};
}

}  // namespace reward_files
