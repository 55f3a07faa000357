#pragma once
// The prompts 05_text_to_image trains on when no --prompts file is given: short, varied scenes in
// the style of the prompt sets of the field (PartiPrompts, DrawBench, the HPSv2 test set), no two
// alike. The first --eval-prompts of them are the fixed evaluation prompts.
#include <string>
#include <vector>

namespace text_to_image {

inline std::vector<std::string> default_prompts() {
  return {
      "a photo of a red fox sitting in fresh snow",
      "an astronaut riding a horse on the moon, digital art",
      "a bowl of ramen with a soft-boiled egg, studio lighting",
      "a lighthouse on a rocky coast at sunset, oil painting",
      "a cozy reading nook with a cat asleep on a pile of books",
      "a futuristic city skyline at night with flying cars",
      "a watercolor painting of cherry blossoms by a river",
      "a close-up portrait of an old fisherman, black and white photo",
      "a steaming cup of coffee on a wooden table in the morning light",
      "a small robot watering plants in a greenhouse",
      "a mountain lake reflecting snowy peaks, wide angle",
      "a vintage red bicycle leaning against a yellow wall",
      "a corgi wearing sunglasses on a beach",
      "a medieval castle on a hill surrounded by fog",
      "a plate of colorful macarons, pastel colors",
      "a hot air balloon over a field of lavender",
  };
}

}  // namespace text_to_image
