#pragma once
// The compositional miniature's scenes: one or two Fashion-MNIST items, each tinted with one of four
// colours, on a 32×32 black RGB canvas divided into four 16×16 quadrants, and the captions that
// describe them in several phrasings:
//
//   one item    "a red sneaker in the top left", "top left: a red sneaker", ...
//   two items   "a blue bag to the right of a yellow shirt" (and the same scene as "a yellow shirt to
//               the left of a blue bag"), "above", "below"; the row (or column) the pair sits in is
//               not named, so a caption has two correct layouts
//
// Splits: items by Fashion-MNIST's own train/test split; attribute combinations by a fixed set of
// colour–class pairs (each class has one) that never appear in training, so that a test prompt with
// one of them asks for a composition no model has seen. Every scene is a pure function of its
// sampling generator: deterministic from a seed.
#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace compositional {

inline constexpr int64_t kClasses = 10, kColours = 4, kQuadrants = 4, kPhrasings = 4;
inline constexpr int64_t kCanvas = 32, kCell = 16;  // canvas side, quadrant side (pixels)

inline const std::array<const char*, kClasses>& class_names() {
  static const std::array<const char*, kClasses> names{"t-shirt", "trouser", "pullover", "dress", "coat",
                                                       "sandal",  "shirt",   "sneaker",  "bag",   "ankle boot"};
  return names;
}
inline const std::array<const char*, kColours>& colour_names() {
  static const std::array<const char*, kColours> names{"red", "green", "blue", "yellow"};
  return names;
}
/// The tint of each colour (RGB in [0, 1]): an item's pixel is its grey intensity times this. Their
/// chromaticities are far apart, so the colour of a quadrant is read back exactly from its pixels.
inline const std::array<std::array<float, 3>, kColours>& colour_rgb() {
  static const std::array<std::array<float, 3>, kColours> rgb{{{1.0f, 0.12f, 0.12f}, {0.12f, 0.9f, 0.12f}, {0.2f, 0.35f, 1.0f}, {1.0f, 0.9f, 0.1f}}};
  return rgb;
}
/// Quadrants in reading order: 0 top left, 1 top right, 2 bottom left, 3 bottom right.
inline const std::array<const char*, kQuadrants>& quadrant_names() {
  static const std::array<const char*, kQuadrants> names{"top left", "top right", "bottom left", "bottom right"};
  return names;
}
inline int64_t quadrant_row(int64_t q) { return q / 2; }
inline int64_t quadrant_col(int64_t q) { return q % 2; }
inline int64_t quadrant_at(int64_t row, int64_t col) { return 2 * row + col; }

/// The colour–class pairs held out of training: class k's held-out colour is k mod 4 (10 of the 40
/// pairs: every class has one held-out colour, every colour two or three held-out classes).
inline bool held_out_pair(int64_t cls, int64_t colour) { return colour == cls % kColours; }

/// How two items relate: item 0 is <relation> item 1.
enum class Relation : int64_t { kLeftOf = 0, kRightOf = 1, kAbove = 2, kBelow = 3 };
inline const char* relation_words(Relation r) {
  static const std::array<const char*, 4> words{"to the left of", "to the right of", "above", "below"};
  return words.at(static_cast<size_t>(r));
}
inline Relation inverse(Relation r) {
  static const std::array<Relation, 4> inv{Relation::kRightOf, Relation::kLeftOf, Relation::kBelow, Relation::kAbove};
  return inv.at(static_cast<size_t>(r));
}

struct Item {
  int64_t cls = 0, colour = 0;
};

/// What a caption asks for, and where this rendering of it put the items.
struct Scene {
  int64_t count = 1;              // 1 or 2 items
  std::array<Item, 2> items{};    // items[1] only when count == 2
  int64_t quadrant = 0;           // count 1: the requested quadrant
  Relation relation = Relation::kLeftOf;  // count 2: item 0 <relation> item 1
  int64_t phrasing = 0;           // which of the caption forms
  /// count 2: the row (left/right) or column (above/below) the pair sits in; not in the caption.
  int64_t free_line = 0;

  bool uses_held_out_pair() const {
    for (int64_t i = 0; i < count; ++i)
      if (held_out_pair(items[static_cast<size_t>(i)].cls, items[static_cast<size_t>(i)].colour)) return true;
    return false;
  }

  /// The quadrant of each item when the free row/column is `line` (count 1: `line` is ignored).
  std::array<int64_t, 2> quadrants_for(int64_t line) const {
    if (count == 1) return {quadrant, -1};
    switch (relation) {
      case Relation::kLeftOf: return {quadrant_at(line, 0), quadrant_at(line, 1)};
      case Relation::kRightOf: return {quadrant_at(line, 1), quadrant_at(line, 0)};
      case Relation::kAbove: return {quadrant_at(0, line), quadrant_at(1, line)};
      case Relation::kBelow: return {quadrant_at(1, line), quadrant_at(0, line)};
    }
    return {-1, -1};
  }
  /// The layouts that satisfy the caption: one for a single item, two (either row or column) for a pair.
  int64_t layouts() const { return count == 1 ? 1 : 2; }
  std::array<int64_t, 2> placed_quadrants() const { return quadrants_for(free_line); }

  std::string caption() const {
    auto noun = [&](const Item& it) { return std::string(colour_names()[static_cast<size_t>(it.colour)]) + " " + class_names()[static_cast<size_t>(it.cls)]; };
    if (count == 1) {
      const std::string pos = quadrant_names()[static_cast<size_t>(quadrant)], thing = noun(items[0]);
      switch (phrasing) {
        case 0: return "a " + thing + " in the " + pos;
        case 1: return "a " + thing + " at the " + pos;
        case 2: return pos + ": a " + thing;
        default: return "the " + pos + " holds a " + thing;
      }
    }
    const std::string a = noun(items[0]), b = noun(items[1]);
    switch (phrasing) {
      case 0: return "a " + a + " " + relation_words(relation) + " a " + b;
      case 1: return "a " + b + " " + relation_words(inverse(relation)) + " a " + a;  // the same scene, the other way round
      case 2: return a + " " + relation_words(relation) + " " + b;
      default: return "there is a " + a + " " + relation_words(relation) + " a " + b;
    }
  }
};

/// Which combinations a sampler draws.
enum class Combinations { kSeen, kHeldOut, kAny };

/// Draws a scene: one item with probability `p_single`, otherwise two of different classes.
/// kSeen: no held-out pair anywhere (training); kHeldOut: at least one item is a held-out pair.
inline Scene sample_scene(at::Generator& gen, Combinations which, double p_single = 0.5) {
  auto draw = [&](int64_t n) { return torch::randint(n, {1}, gen, torch::kLong).item<int64_t>(); };
  for (;;) {  // rejection: at most a few tries (a quarter of the pairs are held out)
    Scene s;
    s.count = torch::rand({1}, gen).item<double>() < p_single ? 1 : 2;
    for (int64_t i = 0; i < s.count; ++i) s.items[static_cast<size_t>(i)] = {draw(kClasses), draw(kColours)};
    if (s.count == 2 && s.items[0].cls == s.items[1].cls) continue;
    s.quadrant = draw(kQuadrants);
    s.relation = static_cast<Relation>(draw(4));
    s.free_line = draw(2);
    s.phrasing = draw(kPhrasings);
    if (s.count == 1) s.relation = Relation::kLeftOf, s.free_line = 0;
    else s.quadrant = 0;
    const bool held = s.uses_held_out_pair();
    if ((which == Combinations::kSeen && held) || (which == Combinations::kHeldOut && !held)) continue;
    return s;
  }
}

}  // namespace compositional
