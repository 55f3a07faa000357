// Saves checkpoints of a growing trainer in a loop until killed: the kill -9 test's victim.
//   checkpoint_worker <path> <hidden>
// Prints "ready" once the first checkpoint exists, then keeps saving, stepping before every fourth
// save: the worker spends most of its time writing, so a kill at a random moment lands mid-write
// (under ASan a step costs several saves, and stepping before each save let 20 kills all miss).
#include "tiny_trainer.hpp"

#include <cstdio>
#include <cstdlib>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: checkpoint_worker <path> <hidden>\n");
    return 2;
  }
  at::set_num_threads(1);
  auto trainer = tiny::make(5, tiny::di::DiStarTrainerOptions().batch_size(8).seed(3), std::atoll(argv[2]));
  trainer->step();
  trainer->save(argv[1]);
  std::printf("ready\n");
  std::fflush(stdout);
  for (int64_t save = 0;; ++save) {
    if (save % 4 == 0) trainer->step();
    trainer->save(argv[1]);
  }
}
