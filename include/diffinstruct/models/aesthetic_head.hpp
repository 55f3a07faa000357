#pragma once
/// \file The LAION aesthetic predictor v2's head (`sac+logos+ava1-l14-linearMSE.pth`, from
/// improved-aesthetic-predictor): a chain of linear layers saved as `nn.Sequential` indices
/// `layers.0`, `layers.2`, `layers.4`, `layers.6`, `layers.7` (768 → 1024 → 128 → 64 → 16 → 1 in the
/// published file; the odd indices between are dropouts, which hold no weights). There is no
/// activation between the layers: the published head is affine, and so is this one. Its input is
/// the L2-normalised CLIP ViT-L/14 image embedding (text2image/aesthetic_reward.hpp).
///
/// The sizes are read from the file, so a head trained on another CLIP's embeddings loads too.
///
/// Example:
///   auto head = models::load_aesthetic_head("sac+logos+ava1-l14-linearMSE.pth");
///   auto score = head(unit_image_embeds);   // [B, 1]

#include <diffinstruct/io/torch_checkpoint.hpp>
#include <diffinstruct/models/layers.hpp>
#include <diffinstruct/models/pretrained.hpp>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

namespace diffinstruct {
namespace models {

class AestheticHeadImpl : public torch::nn::Module {
 public:
  /// `layers`: the Sequential index and [out, in] of each linear layer, in order; each `in` must be
  /// the previous `out`, and the last `out` is 1.
  AestheticHeadImpl(const std::vector<std::pair<int64_t, std::pair<int64_t, int64_t>>>& layers, const BuildOptions& b = {}) {
    TORCH_CHECK(!layers.empty(), "diffinstruct::models::AestheticHead: no layers");
    auto seq = register_module("layers", std::make_shared<torch::nn::Module>());
    for (size_t i = 0; i < layers.size(); ++i) {
      const auto [index, shape] = layers[i];
      const auto [out, in] = shape;
      TORCH_CHECK(out > 0 && in > 0, "diffinstruct::models::AestheticHead: layer ", index, " has an empty shape");
      TORCH_CHECK(i == 0 || in == layers[i - 1].second.first, "diffinstruct::models::AestheticHead: layer ", index, " takes ", in,
                  " inputs but the layer before gives ", layers[i - 1].second.first);
      linears_.push_back(seq->register_module(std::to_string(index), Linear(in, out, true, b)));
    }
    TORCH_CHECK(layers.back().second.first == 1, "diffinstruct::models::AestheticHead: the last layer gives ", layers.back().second.first,
                " outputs, expected 1 (a score)");
  }

  /// unit_embeds [B, in] -> scores [B, 1].
  torch::Tensor forward(const torch::Tensor& unit_embeds) {
    TORCH_CHECK(unit_embeds.defined() && unit_embeds.dim() == 2 && unit_embeds.size(1) == input_size(),
                "diffinstruct::models::AestheticHead: expected embeddings [B, ", input_size(), "], got ",
                unit_embeds.defined() ? c10::str(unit_embeds.sizes()) : std::string("none"));
    auto h = unit_embeds.to(linears_.front()->weight.scalar_type());
    for (auto& l : linears_) h = l(h);
    return h;
  }
  int64_t input_size() const { return linears_.front()->weight.size(1); }

 private:
  std::vector<Linear> linears_;
};
TORCH_MODULE(AestheticHead);

namespace detail {

/// The Sequential index and [out, in] of each `<prefix>N.weight` in `sources`, in index order (the
/// head's chain as a file holds it); `path` and `what` name it in errors.
inline std::vector<std::pair<int64_t, std::pair<int64_t, int64_t>>> linear_chain(const std::vector<io::TensorSource>& sources, const std::string& prefix,
                                                                                 const std::string& path, const std::string& what) {
  const std::string suffix = ".weight";
  std::map<int64_t, std::pair<int64_t, int64_t>> shapes;
  for (const auto& s : sources) {
    const auto& n = s.name;
    if (n.size() <= prefix.size() + suffix.size() || n.compare(0, prefix.size(), prefix) != 0 || n.compare(n.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    const std::string index = n.substr(prefix.size(), n.size() - prefix.size() - suffix.size());
    TORCH_CHECK(!index.empty() && index.size() < 6 && index.find_first_not_of("0123456789") == std::string::npos, "diffinstruct::models: '", path,
                "': '", n, "' is not a layer of ", what);
    TORCH_CHECK(s.shape.size() == 2, "diffinstruct::models: '", path, "': '", n, "' is ", c10::IntArrayRef(s.shape), ", not a linear weight");
    shapes[std::stoll(index)] = {s.shape[0], s.shape[1]};
  }
  TORCH_CHECK(!shapes.empty(), "diffinstruct::models: '", path, "' holds no ", prefix, "N.weight: not ", what);
  return {shapes.begin(), shapes.end()};
}

} // namespace detail

/// The head from its `.pth` (a state dict of `layers.N.weight` / `layers.N.bias`) or a
/// `.safetensors` of the same names.
inline AestheticHead load_aesthetic_head(const std::string& path, const PretrainedOptions& o = {}) {
  const auto sources = io::state_dict_sources(path, "the aesthetic head");
  AestheticHead head(detail::linear_chain(sources, "layers.", path, "an aesthetic predictor head"), detail::build_options_for(o));
  io::load_tensor_sources(*head, sources, io::LoadOptions().strict(o.strict()), "'" + path + "'");
  head->eval();
  return head;
}

}  // namespace models
}  // namespace diffinstruct
