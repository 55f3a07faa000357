// Parity of ImageReward (models/image_reward.hpp) with ImageReward 1.5's own code, on the files
// make_image_reward_fixtures.py writes (a tiny random model saved as ImageReward.pt ships, with BLIP's
// unused projections, and its score_gard outputs):
//
//   image_reward_parity FIXTURE_DIR
//
// The vision tokens, BERT's last hidden state and the score within 1e-5, the score's gradient with
// respect to the pixels within 1e-4 (relative L2 per tensor, as every parity test here). Prints a
// table; exits 1 on any miss.
#include <diffinstruct/io/safetensors.hpp>
#include <diffinstruct/models/image_reward.hpp>
#include <diffinstruct/text/prompt_file.hpp>
#include <diffinstruct/text/wordpiece_tokenizer.hpp>
#include <diffinstruct/util/error_report.hpp>

#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <string>

namespace di = diffinstruct;
namespace dm = diffinstruct::models;
namespace fs = std::filesystem;

namespace {

bool g_failed = false;

void row(const std::string& what, const torch::Tensor& got, const torch::Tensor& want, double tol) {
  TORCH_CHECK(got.sizes() == want.sizes(), what, ": shape ", got.sizes(), " vs ", want.sizes());
  const double denom = want.to(torch::kDouble).norm().item<double>();
  const double e = (got.to(torch::kDouble) - want.to(torch::kDouble)).norm().item<double>() / (denom > 0 ? denom : 1);
  const bool ok = e <= tol;
  g_failed |= !ok;
  std::printf("| image-reward | %s | %.2e | %.0e | %s |\n", what.c_str(), e, tol, ok ? "ok" : "FAIL");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: image_reward_parity FIXTURE_DIR\n");
    return 2;
  }
  try {
    const fs::path dir = argv[1];
    dm::ImageRewardConfig config;  // the vision sizes come from the file (width 64: one head of BLIP's 64)
    config.text = dm::BertConfig::from_file((dir / "med_config.json").string());
    auto model = dm::load_image_reward((dir / "ImageReward.pt").string(), config);
    const di::io::SafetensorsFile in((dir / "inputs.safetensors").string()), want((dir / "expected.safetensors").string());
    const auto ids = in.read("input_ids").to(torch::kLong), mask = in.read("attention_mask");
    auto pixels = in.read("pixel_values").clone().requires_grad_(true);
    std::printf("| model | what | relative error | bound | |\n|---|---|---|---|---|\n");
    {
      torch::NoGradGuard ng;
      const auto tokens = model->visual_encoder(pixels);
      row("vision tokens (BLIP ViT)", tokens, want.read("vision_tokens"), 1e-5);
      row("text last hidden state (BERT with cross-attention)", model->text_encoder(ids, mask, tokens), want.read("text_hidden"), 1e-5);
    }
    const auto score = model->forward(pixels, ids, mask);
    row("score", score, want.read("score"), 1e-5);
    (score * in.read("cot")).sum().backward();
    row("d score / d pixel_values", pixels.grad(), want.read("grad.pixel_values"), 1e-4);
    // The tokenizer: BertTokenizer (uncased) with [DEC] and [ENC], on every Parti prompt and hostile strings.
    const auto tok = di::text::WordPieceTokenizer::from_vocab_file((dir / "vocab.txt").string()).with_added_tokens({"[DEC]", "[ENC]"});
    const auto prompts = di::text::read_prompt_file((dir / "prompts.txt").string(), {/*skip_blank_lines=*/false});
    const di::io::SafetensorsFile tokens((dir / "tokens.safetensors").string());
    for (const int64_t len : {35, 128}) {
      const auto [ids_got, mask_got] = tok.batch(prompts, len);
      const auto ids_want = tokens.read("input_ids." + std::to_string(len)), mask_want = tokens.read("attention_mask." + std::to_string(len));
      const int64_t rows_differ = (ids_got != ids_want.to(torch::kLong)).any(1).logical_or((mask_got != mask_want.to(torch::kLong)).any(1)).sum().item<int64_t>();
      const bool ok = rows_differ == 0;
      g_failed |= !ok;
      std::printf("| image-reward | WordPiece ids and mask, %zu texts, max_length %lld | %lld rows differ | 0 | %s |\n", prompts.size(),
                  static_cast<long long>(len), static_cast<long long>(rows_differ), ok ? "ok" : "FAIL");
    }
    // The negative control: without BLIP's added tokens, the text that writes them differs.
    const auto plain = di::text::WordPieceTokenizer::from_vocab_file((dir / "vocab.txt").string());
    const auto control = (plain.batch(prompts, 128).first != tokens.read("input_ids.128").to(torch::kLong)).any(1).sum().item<int64_t>();
    g_failed |= control == 0;
    std::printf("| image-reward | negative control: without [DEC], [ENC] | %lld rows differ | > 0 | %s |\n", static_cast<long long>(control),
                control > 0 ? "ok" : "FAIL");
  } catch (const std::exception& e) {
    return di::report_error("image_reward_parity", e);
  }
  std::printf(g_failed ? "ImageReward parity: FAILED\n" : "ImageReward parity: all checks passed\n");
  return g_failed ? 1 : 0;
}
