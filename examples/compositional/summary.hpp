#pragma once
// Rows of one name (the same model and losses, different post-training seeds) summarised as a mean
// and a sample standard deviation over the seeds, in the order the rows were first listed.
#include "evaluation.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

namespace compositional {

/// A table line: the mean and the spread of every number of the rows that share a name.
struct Summary {
  Row mean, sd;  // sd is 0 everywhere when n == 1
  int64_t n = 0;
};

/// Calls f(a, b) on every number of two rows (the metrics, not the identity fields).
template <class F>
void for_each_number(Row& a, const Row& b, F&& f) {
  f(a.ms_per_image, b.ms_per_image), f(a.train_seconds, b.train_seconds), f(a.reward, b.reward);
  for (auto [pa, pb] : {std::pair<PromptFollowing*, const PromptFollowing*>{&a.all, &b.all}, {&a.seen, &b.seen}, {&a.held, &b.held}}) {
    f(pa->position, pb->position), f(pa->colour, pb->colour), f(pa->cls, pb->cls), f(pa->layout, pb->layout);
    f(pa->all_correct, pb->all_correct), f(pa->layout_items, pb->layout_items), f(pa->all_correct_items, pb->all_correct_items);
    f(pa->fd, pb->fd), f(pa->diversity, pb->diversity);
  }
}

inline std::vector<Summary> summarise(const std::vector<Row>& rows) {
  std::vector<Summary> out;
  std::vector<std::vector<const Row*>> groups;
  for (const auto& r : rows) {
    auto it = std::find_if(out.begin(), out.end(), [&](const Summary& s) { return s.mean.name == r.name; });
    if (it == out.end()) {
      Summary s;
      s.mean = r, s.sd = r;  // identity fields (name, steps, sweep, ...) from the first seed
      s.mean.seed_index = s.sd.seed_index = -1;
      out.push_back(s);
      groups.push_back({});
      it = out.end() - 1;
    }
    groups[static_cast<size_t>(it - out.begin())].push_back(&r);
  }
  for (size_t g = 0; g < out.size(); ++g) {
    Summary& s = out[g];
    const auto& members = groups[g];
    s.n = static_cast<int64_t>(members.size());
    const double n = static_cast<double>(s.n);
    for_each_number(s.mean, s.mean, [](double& a, double) { a = 0; });
    for_each_number(s.sd, s.sd, [](double& a, double) { a = 0; });
    for (const Row* r : members) for_each_number(s.mean, *r, [n](double& a, double b) { a += b / n; });
    if (s.n > 1) {
      for (const Row* r : members) {
        Row dev = *r;
        for_each_number(dev, s.mean, [](double& a, double m) { a = (a - m) * (a - m); });
        for_each_number(s.sd, dev, [n](double& a, double b) { a += b / (n - 1); });
      }
      for_each_number(s.sd, s.sd, [](double& a, double) { a = std::sqrt(a); });
    }
  }
  return out;
}

}  // namespace compositional
