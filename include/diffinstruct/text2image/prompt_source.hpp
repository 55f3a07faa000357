#pragma once
/// \file The trainer's condition sampler for string prompts: draws prompts uniformly from a list (or
/// a text file, one per line) with the generator the trainer passes, so a run is reproducible and
/// every data-parallel rank draws the same global batch and keeps its own rows (the trainer slices
/// it with ConditionTraits<PromptCondition>::slice). Encoding goes through a shared PromptEncoder,
/// so each prompt is encoded once. The null condition (for CFG) is the empty prompt, as in
/// Stable Diffusion's pipelines.
///
/// Example:
///   auto source = text2image::PromptSource(text::read_prompt_file("prompts.txt"), encoder);
///   DiStarTrainer<...> trainer(..., ConditionSource<PromptCondition>{source, source.null_condition()}, ...);

#include <diffinstruct/text2image/prompt_encoder.hpp>

#include <ATen/core/Generator.h>

#include <memory>
#include <string>
#include <vector>

namespace diffinstruct {
namespace text2image {

class PromptSource {
 public:
  PromptSource(std::vector<std::string> prompts, std::shared_ptr<PromptEncoder> encoder, std::string null_prompt = "")
      : prompts_(std::make_shared<const std::vector<std::string>>(std::move(prompts))), encoder_(std::move(encoder)),
        null_prompt_(std::move(null_prompt)) {
    TORCH_CHECK(!prompts_->empty(), "diffinstruct::PromptSource: no prompts");
    TORCH_CHECK(encoder_ != nullptr, "diffinstruct::PromptSource: no encoder");
  }

  /// `batch` prompts drawn uniformly with replacement with `gen` (the trainer's generator).
  PromptCondition operator()(int64_t batch, at::Generator& gen) const {
    TORCH_CHECK(batch > 0, "diffinstruct::PromptSource: batch must be positive, got ", batch);
    const auto index = torch::randint(static_cast<int64_t>(prompts_->size()), {batch}, gen, torch::TensorOptions().dtype(torch::kLong));
    std::vector<int64_t> rows(index.data_ptr<int64_t>(), index.data_ptr<int64_t>() + batch);
    std::vector<std::string> texts;
    texts.reserve(rows.size());
    for (int64_t i : rows) texts.push_back((*prompts_)[static_cast<size_t>(i)]);
    return encoder_->encode(texts, rows);
  }

  /// One row: the empty prompt (prompt_index −1).
  PromptCondition null_condition() const { return encoder_->encode({null_prompt_}); }

  const std::vector<std::string>& prompts() const { return *prompts_; }
  /// The prompt of a row's prompt_index ("" for the null prompt, −1).
  const std::string& prompt(int64_t index) const {
    if (index == -1) return null_prompt_;
    TORCH_CHECK(index >= 0 && index < static_cast<int64_t>(prompts_->size()), "diffinstruct::PromptSource: prompt index ", index,
                " is outside [0, ", prompts_->size(), ")");
    return (*prompts_)[static_cast<size_t>(index)];
  }
  PromptEncoder& encoder() const { return *encoder_; }

 private:
  std::shared_ptr<const std::vector<std::string>> prompts_;
  std::shared_ptr<PromptEncoder> encoder_;
  std::string null_prompt_;
};

}  // namespace text2image
}  // namespace diffinstruct
