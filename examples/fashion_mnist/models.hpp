#pragma once
// The networks of the Fashion-MNIST miniature (16×16 grey images, 10 classes + a null class for CFG):
//   TinyUNet          the teacher's (and the assistant's) ε-prediction network, class-conditional
//   OneStepGenerator  the teacher's architecture run once at a fixed time t*: z -> x0
//   RewardClassifier  the explicit reward r(x, c) = log p(c | x) used in training
//   EvalClassifier    held out: a different architecture, trained with another seed, used only to
//                     evaluate (accuracy, log-probability, and the feature space of the Fréchet distance)
#include <diffinstruct/di_star.hpp>

#include <cmath>

namespace fashion {

inline constexpr int64_t kClasses = 10;
inline constexpr int64_t kNullClass = 10;  // the "empty prompt" of classifier-free guidance
inline constexpr int64_t kSize = 16;       // images are 16×16 (Fashion-MNIST's 28×28, padded to 32, 2×2-averaged)

/// Sinusoidal features of t ∈ [0, 1] (the transformer / DDPM time embedding).
inline torch::Tensor time_features(const torch::Tensor& t, int64_t dim) {
  const int64_t half = dim / 2;
  const auto freqs = torch::exp(-std::log(1000.0) * torch::arange(half, t.options()) / half);
  const auto args = (1000.0 * t).unsqueeze(1) * freqs.unsqueeze(0);
  return torch::cat({torch::sin(args), torch::cos(args)}, 1);
}

/// Pre-activation residual block with the embedding added between its two convolutions.
struct ResBlockImpl : torch::nn::Module {
  torch::nn::GroupNorm norm1{nullptr}, norm2{nullptr};
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, skip{nullptr};
  torch::nn::Linear emb{nullptr};
  ResBlockImpl(int64_t in, int64_t out, int64_t emb_dim) {
    norm1 = register_module("norm1", torch::nn::GroupNorm(8, in));
    conv1 = register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).padding(1)));
    emb = register_module("emb", torch::nn::Linear(emb_dim, out));
    norm2 = register_module("norm2", torch::nn::GroupNorm(8, out));
    conv2 = register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(out, out, 3).padding(1)));
    if (in != out) skip = register_module("skip", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 1)));
  }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& e) {
    auto h = conv1(torch::silu(norm1(x)));
    h = h + emb(e).unsqueeze(-1).unsqueeze(-1);
    h = conv2(torch::silu(norm2(h)));
    return h + (skip ? skip(x) : x);
  }
};
TORCH_MODULE(ResBlock);

/// A two-level UNet (16×16 -> 8×8 -> 4×4 and back, skips by concatenation) predicting ε from
/// (x_t, t, class); class 10 is the null class.
struct TinyUNetImpl : torch::nn::Module {
  int64_t emb_dim;
  torch::nn::Sequential time_mlp{nullptr};
  torch::nn::Embedding class_emb{nullptr};
  torch::nn::Conv2d conv_in{nullptr}, down1{nullptr}, down2{nullptr}, conv_out{nullptr};
  ResBlock rb1{nullptr}, rb2{nullptr}, mid{nullptr}, up2{nullptr}, up1{nullptr};
  torch::nn::GroupNorm norm_out{nullptr};

  explicit TinyUNetImpl(int64_t ch = 32, int64_t emb = 64) : emb_dim(emb) {
    time_mlp = register_module("time_mlp", torch::nn::Sequential(torch::nn::Linear(emb, emb), torch::nn::SiLU(), torch::nn::Linear(emb, emb)));
    class_emb = register_module("class_emb", torch::nn::Embedding(kClasses + 1, emb));
    conv_in = register_module("conv_in", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, ch, 3).padding(1)));
    rb1 = register_module("rb1", ResBlock(ch, ch, emb));
    down1 = register_module("down1", torch::nn::Conv2d(torch::nn::Conv2dOptions(ch, 2 * ch, 3).stride(2).padding(1)));
    rb2 = register_module("rb2", ResBlock(2 * ch, 2 * ch, emb));
    down2 = register_module("down2", torch::nn::Conv2d(torch::nn::Conv2dOptions(2 * ch, 2 * ch, 3).stride(2).padding(1)));
    mid = register_module("mid", ResBlock(2 * ch, 2 * ch, emb));
    up2 = register_module("up2", ResBlock(4 * ch, 2 * ch, emb));
    up1 = register_module("up1", ResBlock(3 * ch, ch, emb));
    norm_out = register_module("norm_out", torch::nn::GroupNorm(8, ch));
    conv_out = register_module("conv_out", torch::nn::Conv2d(torch::nn::Conv2dOptions(ch, 1, 3).padding(1)));
  }

  torch::Tensor forward(const torch::Tensor& x_t, const torch::Tensor& t, const torch::Tensor& label) {
    const auto e = torch::silu(time_mlp->forward(time_features(t.to(x_t.scalar_type()), emb_dim)) + class_emb(label));
    const auto h1 = rb1(conv_in(x_t), e);                 // 16×16
    const auto h2 = rb2(down1(h1), e);                    // 8×8
    auto h = mid(down2(h2), e);                           // 4×4
    h = torch::upsample_nearest2d(h, {kSize / 2, kSize / 2});
    h = up2(torch::cat({h, h2}, 1), e);                   // 8×8
    h = torch::upsample_nearest2d(h, {kSize, kSize});
    h = up1(torch::cat({h, h1}, 1), e);                   // 16×16
    return conv_out(torch::silu(norm_out(h)));
  }
};
TORCH_MODULE(TinyUNet);

/// The teacher's architecture as a one-step generator (SiD / DMD style): the network sees σ* z as a
/// noisy image at the fixed time t* and returns its x0 prediction, (σ* z − σ* ε̂)/α*. Initialised
/// from the teacher's weights, it starts as the teacher's one-step denoiser of pure noise.
struct OneStepGeneratorImpl : torch::nn::Module {
  TinyUNet net{nullptr};
  double t_star, alpha_star, sigma_star;
  OneStepGeneratorImpl(int64_t ch, double t_star_, double alpha_star_, double sigma_star_)
      : t_star(t_star_), alpha_star(alpha_star_), sigma_star(sigma_star_) {
    net = register_module("net", TinyUNet(ch));
  }
  torch::Tensor forward(const torch::Tensor& z, const torch::Tensor& label) {
    const auto x = sigma_star * z;
    const auto t = torch::full({z.size(0)}, t_star, z.options());
    return (x - sigma_star * net(x, t, label)) / alpha_star;
  }
};
TORCH_MODULE(OneStepGenerator);

/// Explicit reward model: a strided CNN with SiLU. forward -> logits [B, 10].
struct RewardClassifierImpl : torch::nn::Module {
  torch::nn::Sequential net{nullptr};
  RewardClassifierImpl() {
    namespace nn = torch::nn;
    net = register_module("net", nn::Sequential(nn::Conv2d(nn::Conv2dOptions(1, 32, 3).padding(1)), nn::SiLU(),
                                                nn::Conv2d(nn::Conv2dOptions(32, 32, 3).stride(2).padding(1)), nn::SiLU(),
                                                nn::Conv2d(nn::Conv2dOptions(32, 64, 3).stride(2).padding(1)), nn::SiLU(), nn::Flatten(),
                                                nn::Linear(64 * 4 * 4, 128), nn::SiLU(), nn::Linear(128, kClasses)));
  }
  torch::Tensor forward(const torch::Tensor& x) { return net->forward(x); }
};
TORCH_MODULE(RewardClassifier);

/// Held-out evaluator: a different architecture (5×5 conv, max-pooling, ReLU, a 64-d feature layer).
struct EvalClassifierImpl : torch::nn::Module {
  torch::nn::Sequential features{nullptr};
  torch::nn::Linear head{nullptr};
  EvalClassifierImpl() {
    namespace nn = torch::nn;
    features = register_module("features", nn::Sequential(nn::Conv2d(nn::Conv2dOptions(1, 24, 5).padding(2)), nn::ReLU(), nn::MaxPool2d(2),
                                                          nn::Conv2d(nn::Conv2dOptions(24, 48, 3).padding(1)), nn::ReLU(), nn::MaxPool2d(2),
                                                          nn::Flatten(), nn::Linear(48 * 4 * 4, 64), nn::ReLU()));
    head = register_module("head", nn::Linear(64, kClasses));
  }
  torch::Tensor forward(const torch::Tensor& x) { return head(features->forward(x)); }
  torch::Tensor embed(const torch::Tensor& x) { return features->forward(x); }
};
TORCH_MODULE(EvalClassifier);

/// Fashion-MNIST's 28×28 in [-1, 1] -> 16×16: pad to 32 with background (-1), average 2×2.
inline torch::Tensor to_16x16(const torch::Tensor& images28) {
  return torch::avg_pool2d(torch::constant_pad_nd(images28, {2, 2, 2, 2}, -1.0), 2);
}

}  // namespace fashion
