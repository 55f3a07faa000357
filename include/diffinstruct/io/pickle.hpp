#pragma once
/// \file A restricted reader of the pickles inside PyTorch's `torch.save` archives (`data.pkl`). It
/// builds plain values — None, booleans, integers, floats, strings, bytes, lists, tuples, dicts —
/// plus the two things a state dict needs: storages (`BINPERSID` ids `('storage', torch.FloatStorage,
/// key, location, numel)`) and tensors (`torch._utils._rebuild_tensor_v2`, `_rebuild_parameter`). It
/// never executes or imports anything: every other `module.name` a pickle mentions becomes an opaque
/// value that remembers its name, so an unused entry (a numpy scalar in a training checkpoint's
/// metadata) does not stop a state dict from loading, and one that is used is an error naming it.
///
/// Values live in one arena and refer to each other by index, so a hostile pickle cannot build a
/// reference cycle that leaks or recurses; readers of the tree bound their depth. Every length and
/// count is checked against the bytes left, and the arena against `kMaxPickleValues`.

#include <c10/core/ScalarType.h>
#include <c10/util/Exception.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

namespace diffinstruct {
namespace io {
namespace pickle {

enum class Kind : uint8_t { kNone, kBool, kInt, kFloat, kString, kBytes, kList, kTuple, kDict, kGlobal, kObject, kStorage, kTensor };

inline const char* kind_name(Kind k) {
  static const char* names[] = {"None", "bool", "int", "float", "str", "bytes", "list", "tuple", "dict", "global", "object", "storage", "tensor"};
  return names[static_cast<int>(k)];
}

/// One value. Containers hold arena indices (a dict: key, value, key, value, ...).
struct Value {
  Kind kind = Kind::kNone;
  int64_t integer = 0;               ///< bool, int; storage: its element count; tensor: storage offset
  double real = 0;                   ///< float
  std::string text;                  ///< str, bytes; global and object: "module.name"; storage: its key
  std::vector<uint32_t> items;       ///< list, tuple, dict; tensor: {its storage}
  std::vector<int64_t> sizes, strides;  ///< tensor
  c10::ScalarType dtype = c10::ScalarType::Float;  ///< storage
};

struct Tree {
  std::vector<Value> values;
  uint32_t root = 0;
  const Value& at(uint32_t i) const { return values.at(i); }
};

constexpr size_t kMaxPickleValues = size_t{1} << 24;

namespace detail {

/// torch.save's storage classes, as `GLOBAL 'torch FloatStorage'` names them.
inline bool storage_dtype(const std::string& name, c10::ScalarType* out) {
  static const std::pair<const char*, c10::ScalarType> table[] = {
      {"torch.FloatStorage", c10::ScalarType::Float},   {"torch.DoubleStorage", c10::ScalarType::Double},
      {"torch.HalfStorage", c10::ScalarType::Half},     {"torch.BFloat16Storage", c10::ScalarType::BFloat16},
      {"torch.LongStorage", c10::ScalarType::Long},     {"torch.IntStorage", c10::ScalarType::Int},
      {"torch.ShortStorage", c10::ScalarType::Short},   {"torch.CharStorage", c10::ScalarType::Char},
      {"torch.ByteStorage", c10::ScalarType::Byte},     {"torch.BoolStorage", c10::ScalarType::Bool}};
  for (const auto& [n, t] : table)
    if (name == n) return *out = t, true;
  return false;
}

class Parser {
 public:
  Parser(const unsigned char* data, size_t size, std::string what) : p_(data), end_(data + size), what_(std::move(what)) {}

  Tree run() {
    while (true) {
      TORCH_CHECK(p_ < end_, bad("it ends without a STOP opcode"));
      const unsigned char op = *p_++;
      if (op == '.') break;
      step(op);
    }
    TORCH_CHECK(stack_.size() == 1 && marks_.empty(), bad("STOP leaves " + std::to_string(stack_.size()) + " values on the stack"));
    tree_.root = stack_.back();
    return std::move(tree_);
  }

 private:
  std::string bad(const std::string& why) const {
    return "diffinstruct::io: " + what_ + " holds a pickle this reader refuses (at byte " + std::to_string(offset()) + "): " + why;
  }
  size_t offset() const { return static_cast<size_t>(p_ - begin()); }
  const unsigned char* begin() const { return end_ - size_; }

  uint64_t take_le(int n) {
    TORCH_CHECK(end_ - p_ >= n, bad("an operand runs past the end"));
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | p_[i];
    p_ += n;
    return v;
  }
  std::string take_bytes(uint64_t n) {
    TORCH_CHECK(n <= static_cast<uint64_t>(end_ - p_), bad("a string of " + std::to_string(n) + " bytes runs past the end"));
    std::string s(reinterpret_cast<const char*>(p_), static_cast<size_t>(n));
    p_ += n;
    return s;
  }
  std::string take_line() {
    const unsigned char* nl = static_cast<const unsigned char*>(std::memchr(p_, '\n', static_cast<size_t>(std::min<ptrdiff_t>(end_ - p_, 256))));
    TORCH_CHECK(nl, bad("a GLOBAL name without its newline within 256 bytes"));
    std::string s(reinterpret_cast<const char*>(p_), static_cast<size_t>(nl - p_));
    p_ = nl + 1;
    return s;
  }

  uint32_t make(Value v) {
    TORCH_CHECK(tree_.values.size() < kMaxPickleValues, bad("more than " + std::to_string(kMaxPickleValues) + " values"));
    tree_.values.push_back(std::move(v));
    return static_cast<uint32_t>(tree_.values.size() - 1);
  }
  void push(Value v) { stack_.push_back(make(std::move(v))); }
  uint32_t pop() {
    TORCH_CHECK(stack_.size() > (marks_.empty() ? 0 : marks_.back()), bad("an opcode pops an empty stack"));
    const uint32_t v = stack_.back();
    stack_.pop_back();
    return v;
  }
  uint32_t top() const {
    TORCH_CHECK(stack_.size() > (marks_.empty() ? 0 : marks_.back()), bad("an opcode reads an empty stack"));
    return stack_.back();
  }
  std::vector<uint32_t> pop_mark() {
    TORCH_CHECK(!marks_.empty(), bad("an opcode needs a MARK that is not there"));
    std::vector<uint32_t> items(stack_.begin() + static_cast<ptrdiff_t>(marks_.back()), stack_.end());
    stack_.resize(marks_.back());
    marks_.pop_back();
    return items;
  }
  Value& value(uint32_t i) { return tree_.values[i]; }
  Value& container(uint32_t i, Kind k, const char* op) {
    Value& v = value(i);
    TORCH_CHECK(v.kind == k || v.kind == Kind::kObject, bad(std::string(op) + " on a " + kind_name(v.kind) + ", expected a " + kind_name(k)));
    return v;
  }
  void memo_put(uint64_t index) {
    TORCH_CHECK(memo_.size() < kMaxPickleValues || memo_.count(index), bad("too many memo entries"));
    memo_[index] = top();
  }
  void memo_get(uint64_t index) {
    const auto it = memo_.find(index);
    TORCH_CHECK(it != memo_.end(), bad("memo entry " + std::to_string(index) + " was never stored"));
    stack_.push_back(it->second);
  }
  Value integer(int64_t i, Kind k = Kind::kInt) {
    Value v;
    v.kind = k, v.integer = i;
    return v;
  }
  Value sequence(Kind k, std::vector<uint32_t> items) {
    Value v;
    v.kind = k, v.items = std::move(items);
    return v;
  }
  void setitems(uint32_t dict, const std::vector<uint32_t>& kv, const char* op) {
    TORCH_CHECK(kv.size() % 2 == 0, bad(std::string(op) + " with an odd number of items"));
    Value& d = container(dict, Kind::kDict, op);
    if (d.kind == Kind::kObject) return;  // an opaque object's state: dropped
    d.items.insert(d.items.end(), kv.begin(), kv.end());
  }

  void step(unsigned char op) {
    switch (op) {
      case 0x80: take_le(1); break;  // PROTO
      case 0x95: take_le(8); break;  // FRAME: a hint only
      case '(': marks_.push_back(stack_.size()); break;
      case 'N': push(Value{}); break;
      case 0x88: push(integer(1, Kind::kBool)); break;
      case 0x89: push(integer(0, Kind::kBool)); break;
      case 'K': push(integer(static_cast<int64_t>(take_le(1)))); break;
      case 'M': push(integer(static_cast<int64_t>(take_le(2)))); break;
      case 'J': push(integer(static_cast<int32_t>(static_cast<uint32_t>(take_le(4))))); break;
      case 0x8a: {  // LONG1: little-endian two's complement, up to 8 bytes here
        const auto n = take_le(1);
        TORCH_CHECK(n <= 8, bad("an integer of " + std::to_string(n) + " bytes"));
        uint64_t v = n ? take_le(static_cast<int>(n)) : 0;
        if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t{0} << (8 * n);
        push(integer(static_cast<int64_t>(v)));
        break;
      }
      case 'G': {  // BINFLOAT: big-endian double
        uint64_t bits = 0;
        TORCH_CHECK(end_ - p_ >= 8, bad("a float runs past the end"));
        for (int i = 0; i < 8; ++i) bits = (bits << 8) | *p_++;
        Value v;
        v.kind = Kind::kFloat;
        std::memcpy(&v.real, &bits, 8);
        push(std::move(v));
        break;
      }
      case 'X': case 0x8c: case 0x8d: case 'B': case 'C': case 0x8e: case 'T': case 'U': {
        const bool bytes = op == 'B' || op == 'C' || op == 0x8e;
        const int width = (op == 0x8c || op == 'C' || op == 'U') ? 1 : (op == 0x8d || op == 0x8e) ? 8 : 4;
        Value v;
        v.kind = bytes ? Kind::kBytes : Kind::kString;
        v.text = take_bytes(take_le(width));
        push(std::move(v));
        break;
      }
      case ']': push(sequence(Kind::kList, {})); break;
      case '}': push(sequence(Kind::kDict, {})); break;
      case ')': push(sequence(Kind::kTuple, {})); break;
      case 'l': push(sequence(Kind::kList, pop_mark())); break;
      case 't': push(sequence(Kind::kTuple, pop_mark())); break;
      case 'd': { auto kv = pop_mark(); const uint32_t d = make(sequence(Kind::kDict, {})); setitems(d, kv, "DICT"); stack_.push_back(d); break; }
      case 0x85: case 0x86: case 0x87: {
        std::vector<uint32_t> items(op - 0x84);
        for (size_t i = items.size(); i-- > 0;) items[i] = pop();
        push(sequence(Kind::kTuple, std::move(items)));
        break;
      }
      case 'a': { const uint32_t item = pop(); Value& l = container(top(), Kind::kList, "APPEND"); if (l.kind == Kind::kList) l.items.push_back(item); break; }
      case 'e': { auto items = pop_mark(); Value& l = container(top(), Kind::kList, "APPENDS"); if (l.kind == Kind::kList) l.items.insert(l.items.end(), items.begin(), items.end()); break; }
      case 's': { const uint32_t v = pop(), k = pop(); setitems(top(), {k, v}, "SETITEM"); break; }
      case 'u': { auto kv = pop_mark(); setitems(top(), kv, "SETITEMS"); break; }
      case 'q': memo_put(take_le(1)); break;
      case 'r': memo_put(take_le(4)); break;
      case 0x94: memo_put(memo_.size()); break;  // MEMOIZE
      case 'h': memo_get(take_le(1)); break;
      case 'j': memo_get(take_le(4)); break;
      case '0': pop(); break;
      case '2': stack_.push_back(top()); break;
      case '1': pop_mark(); break;
      case 'c': {
        Value v;
        v.kind = Kind::kGlobal;
        v.text = take_line();
        v.text += "." + take_line();
        push(std::move(v));
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        const Value name = value(pop()), module = value(pop());
        TORCH_CHECK(module.kind == Kind::kString && name.kind == Kind::kString, bad("STACK_GLOBAL without two strings"));
        Value v;
        v.kind = Kind::kGlobal;
        v.text = module.text + "." + name.text;
        push(std::move(v));
        break;
      }
      case 'Q': persistent(pop()); break;
      case 'R': { const uint32_t args = pop(), callable = pop(); reduce(callable, args); break; }
      case 0x81: { pop(); const std::string cls = value(pop()).text; Value v; v.kind = Kind::kObject; v.text = cls; push(std::move(v)); break; }
      case 'b': pop(); break;  // BUILD: an OrderedDict's `_metadata`, an object's state: neither is needed
      default: {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", op);
        TORCH_CHECK(false, bad(std::string("opcode ") + hex + " is not one torch.save writes"));
      }
    }
  }

  const Value& arg(const Value& tuple, size_t i, Kind k, const char* what) {
    TORCH_CHECK(i < tuple.items.size(), bad(std::string(what) + " is missing"));
    const Value& v = value(tuple.items[i]);
    TORCH_CHECK(v.kind == k, bad(std::string(what) + " is a " + kind_name(v.kind) + ", expected a " + kind_name(k)));
    return v;
  }
  std::vector<int64_t> int_tuple(const Value& t, const char* what) {
    TORCH_CHECK(t.items.size() <= 64, bad(std::string(what) + " has more than 64 dimensions"));
    std::vector<int64_t> out;
    for (const uint32_t i : t.items) {
      const Value& v = value(i);
      TORCH_CHECK(v.kind == Kind::kInt && v.integer >= 0, bad(std::string(what) + " holds something other than a non-negative integer"));
      out.push_back(v.integer);
    }
    return out;
  }

  void persistent(uint32_t id) {
    const Value pid = value(id);
    TORCH_CHECK(pid.kind == Kind::kTuple && pid.items.size() == 5 && value(pid.items[0]).text == "storage",
                bad("a persistent id that is not ('storage', type, key, location, numel)"));
    Value s;
    s.kind = Kind::kStorage;
    const Value& type = value(pid.items[1]);
    TORCH_CHECK(type.kind == Kind::kGlobal && storage_dtype(type.text, &s.dtype),
                bad("storage type '" + type.text + "' is not one this reader knows (float, double, half, bfloat16, integers, bool)"));
    s.text = arg(pid, 2, Kind::kString, "the storage key").text;
    TORCH_CHECK(!s.text.empty() && s.text.size() <= 32 && s.text.find_first_of("/\\.") == std::string::npos, bad("storage key '" + s.text + "' is not a plain name"));
    arg(pid, 3, Kind::kString, "the storage location");
    s.integer = arg(pid, 4, Kind::kInt, "the storage size").integer;
    TORCH_CHECK(s.integer >= 0, bad("a negative storage size"));
    push(std::move(s));
  }

  void reduce(uint32_t callable, uint32_t args_index) {
    const Value f = value(callable);
    const Value args = value(args_index);
    if (f.kind == Kind::kGlobal && args.kind == Kind::kTuple) {
      if (f.text == "collections.OrderedDict" && args.items.empty()) return push(sequence(Kind::kDict, {}));
      if (f.text == "torch._utils._rebuild_tensor_v2") {
        Value t;
        t.kind = Kind::kTensor;
        TORCH_CHECK(!args.items.empty() && value(args.items[0]).kind == Kind::kStorage, bad("_rebuild_tensor_v2 without a storage"));
        t.items = {args.items[0]};
        t.integer = arg(args, 1, Kind::kInt, "the storage offset").integer;
        TORCH_CHECK(t.integer >= 0, bad("a negative storage offset"));
        t.sizes = int_tuple(arg(args, 2, Kind::kTuple, "the size"), "the size");
        t.strides = int_tuple(arg(args, 3, Kind::kTuple, "the stride"), "the stride");
        TORCH_CHECK(t.sizes.size() == t.strides.size(), bad("size and stride of different lengths"));
        return push(std::move(t));
      }
      if ((f.text == "torch._utils._rebuild_parameter" || f.text == "torch._utils._rebuild_parameter_with_state") && !args.items.empty() &&
          value(args.items[0]).kind == Kind::kTensor)
        return stack_.push_back(args.items[0]);
    }
    Value v;  // anything else: never called, only remembered by name
    v.kind = Kind::kObject;
    v.text = f.kind == Kind::kGlobal || f.kind == Kind::kObject ? f.text : std::string("(a ") + kind_name(f.kind) + ")";
    push(std::move(v));
  }

  const unsigned char* p_;
  const unsigned char* end_;
  size_t size_ = static_cast<size_t>(end_ - p_);
  std::string what_;
  Tree tree_;
  std::vector<uint32_t> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, uint32_t> memo_;
};

} // namespace detail

/// Parses `data` (a pickle of protocol 2 to 5, as torch.save writes); `what` names it in errors.
inline Tree parse(const unsigned char* data, size_t size, const std::string& what) { return detail::Parser(data, size, what).run(); }

} // namespace pickle
} // namespace io
} // namespace diffinstruct
