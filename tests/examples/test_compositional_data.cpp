// The compositional miniature's data and exact evaluator (examples/compositional): captions say what
// the scene holds, the held-out colour–class pairs never reach a kSeen draw, and the evaluator reads
// position and colour back exactly from real rendered images — and rejects images that moved an item,
// recoloured it, dropped it, or added one (the negative controls). The recogniser learns classes well
// above chance in a short run.
#include "common/training_state.hpp"
#include "compositional/measure.hpp"

#include "../test_skip.hpp"

#include <catch2/catch.hpp>

#include <filesystem>

namespace cm = compositional;

namespace {
cm::Scene pair_scene(int64_t c0, int64_t k0, cm::Relation r, int64_t c1, int64_t k1, int64_t phrasing, int64_t line = 0) {
  cm::Scene s;
  s.count = 2;
  s.items = {cm::Item{k0, c0}, cm::Item{k1, c1}};
  s.relation = r;
  s.phrasing = phrasing;
  s.free_line = line;
  return s;
}
}  // namespace

TEST_CASE("compositional scenes: captions, layouts, held-out pairs", "[examples][compositional]") {
  cm::Scene one;
  one.items[0] = {7, 0};  // a red sneaker
  one.quadrant = 0;
  CHECK(one.caption() == "a red sneaker in the top left");
  one.phrasing = 2;
  one.quadrant = 3;
  CHECK(one.caption() == "bottom right: a red sneaker");
  const auto s = pair_scene(2, 8, cm::Relation::kRightOf, 3, 6, 0, 1);  // a blue bag to the right of a yellow shirt, bottom row
  CHECK(s.caption() == "a blue bag to the right of a yellow shirt");
  CHECK(pair_scene(2, 8, cm::Relation::kRightOf, 3, 6, 1).caption() == "a yellow shirt to the left of a blue bag");
  CHECK(s.placed_quadrants() == std::array<int64_t, 2>{3, 2});
  CHECK(s.quadrants_for(0) == std::array<int64_t, 2>{1, 0});
  CHECK(pair_scene(0, 0, cm::Relation::kAbove, 1, 1, 0, 1).placed_quadrants() == std::array<int64_t, 2>{1, 3});
  CHECK(cm::held_out_pair(5, 1));
  CHECK_FALSE(cm::held_out_pair(5, 0));
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  int held = 0, singles = 0;
  for (int i = 0; i < 400; ++i) {
    const auto seen = cm::sample_scene(gen, cm::Combinations::kSeen);
    CHECK_FALSE(seen.uses_held_out_pair());
    if (seen.count == 2) CHECK(seen.items[0].cls != seen.items[1].cls);
    singles += seen.count == 1;
    held += cm::sample_scene(gen, cm::Combinations::kHeldOut).uses_held_out_pair();
  }
  CHECK(held == 400);
  CHECK(singles > 150);
  CHECK(singles < 250);
  // Deterministic from the seed.
  auto g1 = at::make_generator<at::CPUGeneratorImpl>(9), g2 = at::make_generator<at::CPUGeneratorImpl>(9);
  CHECK(cm::captions_of(cm::sample_scenes(20, g1, cm::Combinations::kAny)) == cm::captions_of(cm::sample_scenes(20, g2, cm::Combinations::kAny)));
}

TEST_CASE("compositional evaluator: exact on real images, negative controls fail", "[examples][compositional]") {
  const std::string dir = diffinstruct::data::kDebianFashionMnistDir;
  if (!std::filesystem::is_directory(dir)) {
    test_util::skip_test("Debian's dataset-fashion-mnist is not installed");
    return;
  }
  const auto train = cm::ItemBank::from_split(diffinstruct::data::load_fashion_mnist(dir, "train"));
  const auto test = cm::ItemBank::from_split(diffinstruct::data::load_fashion_mnist(dir, "test"));
  cm::Evaluator ev;
  ev.recogniser = cm::train_recogniser(train, 120, 1);
  {  // the same seed gives the same network, whatever the global generator held before
    torch::manual_seed(12345);
    torch::rand({7});
    const auto again = cm::train_recogniser(train, 2, 1), once_more = cm::train_recogniser(train, 2, 1);
    const auto a = again->parameters(), b = once_more->parameters();
    for (size_t i = 0; i < a.size(); ++i) CHECK(torch::equal(a[i], b[i]));
  }
  const double acc = cm::recogniser_accuracy(ev.recogniser, test);
  CHECK(acc > 0.5);  // chance is 0.1; the demo trains it far longer (its accuracy is reported)
  ev.threshold = cm::occupancy_threshold(train);
  CHECK(ev.threshold > 0.005);

  auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
  const int64_t seeds = 2;
  std::vector<cm::Scene> scenes;
  for (const auto& s : cm::sample_scenes(40, gen, cm::Combinations::kAny))
    for (int64_t k = 0; k < seeds; ++k) scenes.push_back(s);
  const auto real = cm::render(scenes, test, gen);
  const auto r = ev.score(real, scenes, seeds);
  CHECK(r.position == 1.0);
  CHECK(r.colour == 1.0);
  CHECK(r.layout == 1.0);
  CHECK(r.cls > 0.4);
  CHECK(r.diversity > 0);
  ev.set_reference(real, scenes, seeds);
  CHECK(ev.score(real, scenes, seeds).fd < 1e-6);

  // Negative controls, each breaking one attribute of every image.
  const auto flipped = real.flip({3});  // mirrored left-right: single items move to the other column, pairs swap
  const auto rf = ev.score(flipped, scenes, seeds);
  CHECK(rf.position < 0.9);     // single items are now in the wrong column
  CHECK(rf.all_correct < 0.5);  // and left/right pairs hold each other's items; only pairs in a column stay right
  const auto grey = ((real + 1) / 2).mean(1, true).expand_as(real) * 2 - 1;  // colour removed
  CHECK(ev.score(grey, scenes, seeds).colour < 0.5);
  const auto blank = -torch::ones_like(real);
  const auto rb = ev.score(blank, scenes, seeds);
  CHECK(rb.position == 0.0);
  CHECK(rb.all_correct == 0.0);
  // Every empty quadrant filled with a flat value: an extra item (bright), or haze (above the occupancy
  // threshold but below a real item's level). Both break the strict layout; only the item breaks the
  // layout that forgives haze.
  auto fill_empty = [&](double brightness) {
    auto cells = cm::quadrant_crops(real).clone();
    for (int64_t q = 0; q < cm::kQuadrants; ++q) {
      auto cell = cells.select(1, q);
      const auto empty = (cm::quadrant_brightness(real).select(1, q) < ev.threshold).view({-1, 1, 1, 1});
      cell.copy_(torch::where(empty, torch::full_like(cell, 2 * brightness - 1), cell));
    }
    const auto images = cells.view({-1, 2, 2, 3, cm::kCell, cm::kCell}).permute({0, 3, 1, 4, 2, 5}).reshape(real.sizes());
    CHECK(torch::equal(cm::quadrant_crops(images).select(1, 0), cells.select(1, 0)));
    return ev.score(images, scenes, seeds);
  };
  CHECK(r.layout_items == 1.0);
  CHECK(r.all_correct_items == r.all_correct);
  const auto rc = fill_empty(0.75);
  CHECK(rc.position == 1.0);
  CHECK(rc.layout == 0.0);
  CHECK(rc.layout_items == 0.0);
  CHECK(rc.all_correct_items == 0.0);
  const auto rh = fill_empty(0.5 * (1 + cm::kItemLevel) * ev.threshold);
  CHECK(rh.position == 1.0);
  CHECK(rh.layout == 0.0);
  CHECK(rh.all_correct == 0.0);
  CHECK(rh.layout_items == 1.0);
  CHECK(rh.all_correct_items == r.all_correct_items);  // haze leaves colour and class of the items alone
  CHECK_THROWS_WITH(ev.score(real.slice(0, 0, 3), scenes, seeds), Catch::Contains("3 images for 80 scenes"));
  CHECK_THROWS_WITH(ev.score(real * std::nan(""), scenes, seeds), Catch::Contains("not finite"));
}

TEST_CASE("examples' training state: network, optimizer, EMA and step read back as written", "[examples]") {
  torch::manual_seed(2);
  torch::nn::Linear net(3, 2);
  torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(1e-2));
  diffinstruct::ExponentialMovingAverage ema(net->parameters(), 0.9);
  for (int i = 0; i < 3; ++i) {  // some optimizer state and a shadow that differs from the weights
    opt.zero_grad();
    net(torch::randn({4, 3})).pow(2).sum().backward();
    opt.step();
    ema.update(net->parameters());
  }
  const std::string path = std::string(DIFFINSTRUCT_TEST_TMPDIR) + "/training_state.pt";
  examples_common::save_training_state(path, *net, opt, ema, 3, "a test's training state");
  torch::nn::Linear net2(3, 2);
  torch::optim::Adam opt2(net2->parameters(), torch::optim::AdamOptions(1e-2));
  diffinstruct::ExponentialMovingAverage ema2(net2->parameters(), 0.9);
  CHECK(examples_common::load_training_state(path, *net2, opt2, ema2) == 3);
  CHECK(torch::equal(net2->weight, net->weight));
  CHECK(torch::equal(ema2.shadow()[0], ema.shadow()[0]));
  // The next step is the same step: the optimizer's moments came back too.
  const auto x = torch::randn({4, 3});
  for (auto* p : {&opt, &opt2}) p->zero_grad();
  net(x).pow(2).sum().backward();
  net2(x).pow(2).sum().backward();
  opt.step();
  opt2.step();
  CHECK(torch::equal(net2->weight, net->weight));
}
