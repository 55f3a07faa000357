// Gradient accumulation (DiStarTrainerOptions::micro_batches): n micro-batches of B/n make the same
// update as one batch of B (up to float round-off), with checkpointing too, communicate once per
// update under data parallel, and keep less memory live. And release_gradients: the same
// trajectory with fewer bytes at the peak.
#include "tiny_trainer.hpp"

#include <diffinstruct/memory/counting_allocator.hpp>

#include <catch2/catch.hpp>

namespace di = diffinstruct;

namespace {

double max_relative(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double scale = b[i].abs().max().item<double>() + 1e-30;
    worst = std::max(worst, (a[i] - b[i]).abs().max().item<double>() / scale);
  }
  return worst;
}

// A one-rank "data-parallel" group that counts the collectives the trainer calls.
class CountingCollectives : public di::Collectives {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  void average(std::vector<torch::Tensor>&) override { ++averages; }
  void broadcast(std::vector<torch::Tensor>&, int) override { ++broadcasts; }
  void barrier() override {}
  int averages = 0, broadcasts = 0;
};

}  // namespace

TEST_CASE("n micro-batches of B/n give the same update as one batch of B (1, 2, 4, 8 micro-batches, with checkpointing)",
          "[trainer][micro-batches]") {
  const auto base = di::DiStarTrainerOptions().batch_size(32).assistant_steps(2).alpha_rew(0.2).seed(9);
  auto one = tiny::make(4, base, 48);
  std::vector<di::StepStats> reference;
  for (int i = 0; i < 6; ++i) reference.push_back(one->step());
  for (int64_t n : {1, 2, 4, 8}) {
    for (bool checkpointed : {false, true}) {
      INFO(n << " micro-batches, checkpointing " << checkpointed);
      auto split = tiny::make(4, di::DiStarTrainerOptions(base)
                                     .micro_batches(n)
                                     .checkpoint_generator(checkpointed)
                                     .checkpoint_teacher(checkpointed)
                                     .checkpoint_assistant(checkpointed)
                                     .checkpoint_reward(checkpointed),
                              48);
      di::StepStats last;
      double worst_loss = 0;
      for (int i = 0; i < 6; ++i) {
        last = split->step();
        worst_loss = std::max({worst_loss, std::abs(last.generator_loss - reference[i].generator_loss) / std::abs(reference[i].generator_loss),
                               std::abs(last.assistant_loss - reference[i].assistant_loss) / std::abs(reference[i].assistant_loss)});
      }
      const double rel = std::max(max_relative(split->generator_parameters(), one->generator_parameters()),
                                  max_relative(split->assistant_parameters(), one->assistant_parameters()));
      WARN(n << " micro-batches" << (checkpointed ? " + checkpointing" : "") << ": weights after 6 steps within " << rel
             << " (relative) of one batch, losses within " << worst_loss);
      CHECK(rel <= 1e-6);
      CHECK(worst_loss <= 1e-6);
      if (n == 1 && !checkpointed) CHECK(rel == 0);  // one micro-batch is the plain step itself
      CHECK(std::abs(last.generator_grad_norm - reference.back().generator_grad_norm) <= 1e-5 * reference.back().generator_grad_norm);
    }
  }
}

TEST_CASE("with micro-batches, data parallel communicates once per update", "[trainer][micro-batches][distributed]") {
  for (int64_t n : {1, 4}) {
    auto trainer = tiny::make(5, di::DiStarTrainerOptions().batch_size(16).assistant_steps(3).micro_batches(n));
    auto dp = std::make_shared<CountingCollectives>();
    trainer->set_data_parallel(dp);
    const int broadcasts_at_start = dp->broadcasts;
    trainer->fit(2);
    CHECK(dp->averages == 2 * (3 + 1));  // K assistant updates + 1 generator update, per step
    CHECK(dp->broadcasts == broadcasts_at_start);
  }
}

TEST_CASE("micro-batches keep less memory live (measured per step, counting allocator)", "[trainer][micro-batches][memory]") {
  int64_t peak1 = 0, peak4 = 0;
  for (int64_t n : {1, 4}) {
    auto trainer = tiny::make(6, di::DiStarTrainerOptions().batch_size(256).micro_batches(n).measure_memory(true), 1024);
    trainer->step();  // the first step also allocates Adam's moments
    const auto s = trainer->step();
    REQUIRE(s.peak_bytes > 0);
    (n == 1 ? peak1 : peak4) = s.peak_bytes;
  }
  WARN("tiny MLP (1024 wide, batch 256): peak bytes of a step " << peak1 << " in one batch, " << peak4 << " in 4 micro-batches");
  CHECK(peak4 < peak1);
  CHECK(di::DiStarTrainerOptions().measure_memory() == false);
}

TEST_CASE("micro_batches is validated and need not match on resume", "[trainer][micro-batches][errors]") {
  CHECK_THROWS_WITH(tiny::make(1, di::DiStarTrainerOptions().batch_size(10).micro_batches(4)),
                    Catch::Contains("micro_batches >= 1 dividing batch_size 10, got 4"));
  CHECK_THROWS_WITH(tiny::make(1, di::DiStarTrainerOptions().batch_size(10).micro_batches(0)), Catch::Contains("got 0"));
  // How a step is computed is not part of the run definition: a run resumes with other micro-batches.
  auto a = tiny::make(2, di::DiStarTrainerOptions().batch_size(8));
  a->fit(2);
  const auto path = std::string(DIFFINSTRUCT_TEST_TMPDIR) + "/micro.ckpt";
  a->save(path);
  auto b = tiny::make(2, di::DiStarTrainerOptions().batch_size(8).micro_batches(2));  // the same frozen teacher
  CHECK_NOTHROW(b->load(path));
  CHECK(b->options().micro_batches() == 2);
  a->fit(2);
  b->fit(2);
  CHECK(max_relative(b->generator_parameters(), a->generator_parameters()) <= 1e-6);
  std::remove(path.c_str());
}

TEST_CASE("release_gradients: no role holds gradients between updates, the same trajectory, fewer bytes at the peak",
          "[trainer][memory]") {
  static auto& counter = *new di::CountingCpuAllocator();  // never destroyed: tensors it counted may outlive the test
  std::vector<torch::Tensor> after[2];
  int64_t peak[2] = {0, 0}, trained = 0;
  for (const bool release : {false, true}) {
    di::CpuAllocationScope scope(counter);
    const int64_t start = counter.live_bytes();
    auto trainer = tiny::make(7, di::DiStarTrainerOptions().batch_size(64).release_gradients(release), 512);
    trainer->step();  // Adam's moments
    counter.reset_peak();
    trainer->step();
    trainer->step();
    peak[release] = counter.peak_bytes() - start;
    for (const auto& p : trainer->generator_parameters()) {
      CHECK(p.grad().defined() == !release);
      after[release].push_back(p.detach().clone());
    }
    for (const auto& p : trainer->assistant_parameters()) CHECK(p.grad().defined() == !release);
    trained = 0;
    for (const auto& p : trainer->assistant_parameters()) trained += p.numel();
  }
  for (size_t i = 0; i < after[0].size(); ++i) CHECK(after[0][i].equal(after[1][i]));  // bit for bit
  WARN("tiny MLP (512 wide): run peak " << peak[0] << " bytes keeping gradients, " << peak[1] << " releasing them ("
                                         << trained << " trained assistant parameters)");
  CHECK(peak[0] - peak[1] >= 4 * trained);  // at least the assistant's gradients are gone at the generator phase's peak
  CHECK(di::DiStarTrainerOptions().release_gradients());
}
