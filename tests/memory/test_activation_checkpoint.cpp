// Activation checkpointing (memory/activation_checkpoint.hpp): the gradients of a checkpointed
// function equal the plain pass's bit for bit on CPU float32 (with dropout, with autograd::grad and
// backward(), for input-gradient-only graphs, under bf16 autocast), the program's random stream is
// untouched, the recompute runs in the forward's autocast state, and the activations are not kept
// (measured with the counting allocator).
#include "../test_skip.hpp"
#include <diffinstruct/memory/activation_checkpoint.hpp>
#include <diffinstruct/memory/counting_allocator.hpp>

#include <catch2/catch.hpp>
#include <torch/torch.h>

namespace di = diffinstruct;

namespace {

struct DropMlpImpl : torch::nn::Module {
  torch::nn::Linear a{nullptr}, b{nullptr};
  torch::nn::Dropout drop{nullptr};
  std::vector<c10::ScalarType>* seen = nullptr;  // the dtype of the hidden layer, each call
  DropMlpImpl(int64_t width, double p) {
    a = register_module("a", torch::nn::Linear(8, width));
    b = register_module("b", torch::nn::Linear(width, 3));
    drop = register_module("drop", torch::nn::Dropout(p));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto h = a(x);
    if (seen) seen->push_back(h.scalar_type());
    return b(drop(torch::tanh(h)));
  }
};
TORCH_MODULE(DropMlp);

struct Grads {
  torch::Tensor out, dx;
  std::vector<torch::Tensor> dparams;
  torch::Tensor next_random;  // the draw after backward: the program's random stream
};

Grads run(DropMlp& m, const torch::Tensor& x0, bool checkpointed, bool use_grad_api, uint64_t seed) {
  const auto x = x0.detach().clone().requires_grad_(x0.requires_grad());
  torch::manual_seed(seed);
  const auto y = checkpointed ? di::checkpoint_module(m, x) : m->forward(x);
  const auto loss = (y * y).sum();
  Grads g;
  g.out = y.detach();
  std::vector<torch::Tensor> wrt;
  for (const auto& p : m->parameters())
    if (p.requires_grad()) wrt.push_back(p);
  if (x.requires_grad()) wrt.push_back(x);
  if (use_grad_api) {
    auto d = torch::autograd::grad({loss}, wrt);
    if (x.requires_grad()) {
      g.dx = d.back();
      d.pop_back();
    }
    g.dparams = d;
  } else {
    for (auto& p : m->parameters()) p.mutable_grad() = torch::Tensor();
    loss.backward();
    for (const auto& p : m->parameters())
      if (p.requires_grad()) g.dparams.push_back(p.grad().clone());
    if (x.requires_grad()) g.dx = x.grad();
  }
  g.next_random = torch::rand({4});
  return g;
}

void require_identical(const Grads& a, const Grads& b) {
  CHECK(torch::equal(a.out, b.out));
  REQUIRE(a.dparams.size() == b.dparams.size());
  for (size_t i = 0; i < a.dparams.size(); ++i) CHECK(torch::equal(a.dparams[i], b.dparams[i]));
  REQUIRE(a.dx.defined() == b.dx.defined());
  if (a.dx.defined()) CHECK(torch::equal(a.dx, b.dx));
  CHECK(torch::equal(a.next_random, b.next_random));
}

}  // namespace

TEST_CASE("checkpoint: gradients equal the plain pass bit for bit, with dropout, through backward() and autograd::grad",
          "[memory][checkpoint]") {
  torch::manual_seed(0);
  DropMlp m(32, 0.3);
  m->train();
  const auto x = torch::randn({16, 8}).requires_grad_(true);
  for (const bool grad_api : {true, false}) {
    INFO((grad_api ? "autograd::grad" : "backward()"));
    const auto plain = run(m, x, false, grad_api, 7), ckpt = run(m, x, true, grad_api, 7);
    REQUIRE(ckpt.dx.defined());
    require_identical(plain, ckpt);
    // Dropout really drew: another seed gives other gradients.
    CHECK_FALSE(torch::equal(run(m, x, true, grad_api, 8).dparams[0], ckpt.dparams[0]));
  }
}

TEST_CASE("checkpoint: a frozen model's input-gradient-only graph (a teacher's) gets the same input gradient", "[memory][checkpoint]") {
  torch::manual_seed(1);
  DropMlp m(16, 0.0);
  for (auto& p : m->parameters()) p.requires_grad_(false);
  const auto x = torch::randn({5, 8}).requires_grad_(true);
  const auto plain = run(m, x, false, true, 3), ckpt = run(m, x, true, true, 3);
  REQUIRE(ckpt.dx.defined());
  CHECK(ckpt.dparams.empty());
  require_identical(plain, ckpt);
  // Nothing requires grad: a plain call, no node.
  torch::NoGradGuard ng;
  CHECK_FALSE(di::checkpoint_module(m, x.detach()).requires_grad());
}

TEST_CASE("checkpoint: the recompute runs in the forward's autocast state (bf16 on CPU), even when backward runs outside it",
          "[memory][checkpoint]") {
  torch::manual_seed(2);
  DropMlp m(32, 0.0);
  std::vector<c10::ScalarType> seen;
  m->seen = &seen;
  const auto x = torch::randn({16, 8}).requires_grad_(true);
  auto autocast_on = di::compat::autocast_state();
  autocast_on.cpu = true;
  autocast_on.cpu_dtype = torch::kBFloat16;
  auto pass = [&](bool checkpointed) {
    torch::Tensor y;
    {
      di::compat::AutocastStateGuard guard(autocast_on);
      y = checkpointed ? di::checkpoint_module(m, x) : m->forward(x);
    }
    CHECK_FALSE(di::compat::autocast_state().cpu);  // the guard restored the state
    return torch::autograd::grad({y.to(torch::kFloat).square().sum()}, {x, m->a->weight});
  };
  seen.clear();
  const auto plain = pass(false);
  CHECK(seen == std::vector<c10::ScalarType>{torch::kBFloat16});
  seen.clear();
  const auto ckpt = pass(true);
  // Forward and recompute both in bf16, though backward ran outside the autocast region.
  CHECK(seen == std::vector<c10::ScalarType>{torch::kBFloat16, torch::kBFloat16});
  CHECK(torch::equal(plain[0], ckpt[0]));
  CHECK(torch::equal(plain[1], ckpt[1]));
  CHECK(ckpt[1].scalar_type() == torch::kFloat);  // master weights' gradient stays float32
}

TEST_CASE("checkpoint: activations are not kept between forward and backward (counting allocator)", "[memory][checkpoint]") {
  torch::manual_seed(3);
  torch::nn::Sequential net;
  for (int i = 0; i < 8; ++i) {
    net->push_back(torch::nn::Linear(256, 256));
    net->push_back(torch::nn::Tanh());
  }
  const auto x = torch::randn({512, 256}).requires_grad_(true);
  auto kept_after_forward = [&](bool checkpointed) {
    di::CountingCpuAllocator counter;
    int64_t kept = 0;
    {
      di::CpuAllocationScope scope(counter);
      const auto y = checkpointed ? di::checkpoint([&](const std::vector<torch::Tensor>& in) { return std::vector<torch::Tensor>{net->forward(in[0])}; },
                                                   {x}, net->parameters())[0]
                                  : net->forward(x);
      kept = counter.live_bytes();  // what the graph holds for backward, plus y
      const auto g = torch::autograd::grad({y.sum()}, {x});
      CHECK(g[0].defined());
    }
    return kept;
  };
  const int64_t plain = kept_after_forward(false), ckpt = kept_after_forward(true);
  const int64_t activation = 512 * 256 * 4;  // one layer's output, float32
  INFO("bytes kept after forward: plain " << plain << ", checkpointed " << ckpt);
  CHECK(plain >= 8 * activation);  // each tanh's output (tanh's backward and the next linear's need it)
  // The output, and the CPU generator's state (5 KB) for the recompute; nothing per layer.
  CHECK(ckpt <= activation + 16 * 1024);
}

TEST_CASE("[cuda] checkpoint on the GPU: dropout repeats (the CUDA generator is saved and restored), gradients match the plain pass",
          "[memory][checkpoint][cuda]") {
  DIFFINSTRUCT_REQUIRE_CUDA();
  at::globalContext().setAllowTF32CuBLAS(false);
  torch::manual_seed(4);
  DropMlp m(64, 0.3);
  m->to(torch::kCUDA);
  m->train();
  const auto x = torch::randn({32, 8}, torch::kCUDA).requires_grad_(true);
  auto pass = [&](bool checkpointed) {
    torch::manual_seed(11);  // seeds the CUDA generators too
    const auto y = checkpointed ? di::checkpoint_module(m, x) : m->forward(x);
    auto g = torch::autograd::grad({y.square().sum()}, {x, m->a->weight, m->b->weight});
    g.push_back(torch::rand({4}, torch::kCUDA));  // the stream after backward
    return g;
  };
  const auto plain = pass(false), ckpt = pass(true);
  for (size_t i = 0; i < plain.size(); ++i) {
    INFO("tensor " << i);
    CHECK(torch::allclose(plain[i], ckpt[i], 1e-6, 1e-7));
  }
}
