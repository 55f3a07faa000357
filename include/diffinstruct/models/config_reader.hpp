#pragma once
/// \file Reading a diffusers/transformers `config.json` strictly: every key must be either read by
/// the model, known to be harmless (bookkeeping such as `_class_name`), or held at the value the
/// model implements. Anything else is refused with a message naming the key, so a config that asks
/// for a feature this library does not implement never loads as a silently different model.

#include <diffinstruct/io/json.hpp>
#include <diffinstruct/io/small_file.hpp>

#include <torch/torch.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace diffinstruct {
namespace models {

/// The text of a config file, refusing what cannot be one (missing, unreadable, over 16 MB).
inline std::string read_config_text(const std::string& path) {
  return io::read_small_file(path, uint64_t{16} << 20, "a model config.json (at most 16 MB)");
}

/// A config.json being read; `finish()` refuses whatever was not read.
class ConfigReader {
 public:
  /// `what` names the source in errors (a path, or "the SD1.5 UNet config").
  ConfigReader(const std::string& json_text, std::string what) : what_(std::move(what)) {
    root_ = io::parse_json(json_text, what_, /*max_depth=*/16);
    TORCH_CHECK(root_.is_object(), "diffinstruct::models: ", what_, " is not a JSON object");
  }
  /// A config that is part of another (a CLIPModel's text_config, say).
  ConfigReader(const io::JsonValue& root, std::string what) : what_(std::move(what)), root_(root) {
    TORCH_CHECK(root_.is_object(), "diffinstruct::models: ", what_, " is not a JSON object");
  }
  static ConfigReader from_file(const std::string& path) { return ConfigReader(read_config_text(path), "'" + path + "'"); }

  const std::string& what() const { return what_; }
  bool has(const std::string& key) const {
    const auto* v = root_.find(key);
    return v && !v->is_null();
  }
  /// Keys that describe the file, not the model (`_class_name`, `_diffusers_version`, ...).
  void ignore(std::initializer_list<const char*> keys) {
    for (const char* k : keys) used_.insert(k);
  }
  /// transformers' generic PretrainedConfig bookkeeping, none of which changes a model's computation.
  void ignore_transformers_bookkeeping() {
    ignore({"_name_or_path", "transformers_version", "torch_dtype", "dtype", "initializer_range", "initializer_factor", "attention_dropout",
            "dropout", "output_attentions", "output_hidden_states", "return_dict", "use_cache", "tie_word_embeddings", "is_decoder",
            "is_encoder_decoder", "id2label", "label2id", "problem_type", "tokenizer_class", "prefix", "chunk_size_feed_forward",
            "add_cross_attention", "pruned_heads", "torchscript", "_attn_implementation_autoset", "_commit_hash"});
    // transformers 4.x writes every generation default into each sub-config of a composite model
    // (a CLIPModel's text_config and vision_config); an encoder never generates.
    ignore({"bad_words_ids", "begin_suppress_tokens", "cross_attention_hidden_size", "decoder_start_token_id", "diversity_penalty",
            "do_sample", "early_stopping", "encoder_no_repeat_ngram_size", "exponential_decay_length_penalty", "finetuning_task",
            "forced_bos_token_id", "forced_eos_token_id", "length_penalty", "max_length", "min_length", "no_repeat_ngram_size",
            "num_beam_groups", "num_beams", "num_return_sequences", "output_scores", "remove_invalid_values", "repetition_penalty",
            "return_dict_in_generate", "sep_token_id", "suppress_tokens", "task_specific_params", "temperature", "tf_legacy_loss",
            "tie_encoder_decoder", "top_k", "top_p", "typical_p", "use_bfloat16"});
  }

  int64_t integer(const std::string& key, int64_t fallback) {
    const auto* v = take(key);
    if (!v) return fallback;
    TORCH_CHECK(v->is_integer(), error(key, "an integer", *v));
    return v->integer();
  }
  double number(const std::string& key, double fallback) {
    const auto* v = take(key);
    if (!v) return fallback;
    TORCH_CHECK(v->is_number(), error(key, "a number", *v));
    return v->number();
  }
  bool boolean(const std::string& key, bool fallback) {
    const auto* v = take(key);
    if (!v) return fallback;
    TORCH_CHECK(v->is_bool(), error(key, "true or false", *v));
    return v->boolean();
  }
  std::string string(const std::string& key, const std::string& fallback) {
    const auto* v = take(key);
    if (!v) return fallback;
    TORCH_CHECK(v->is_string(), error(key, "a string", *v));
    return v->string();
  }
  std::vector<std::string> strings(const std::string& key, std::vector<std::string> fallback) {
    const auto* v = take(key);
    if (!v) return fallback;
    TORCH_CHECK(v->is_array(), error(key, "a list of strings", *v));
    std::vector<std::string> out;
    for (const auto& e : v->array()) {
      TORCH_CHECK(e.is_string(), error(key, "a list of strings", *v));
      out.push_back(e.string());
    }
    return out;
  }
  /// An integer, or a list of `n` integers (one per block); an integer is repeated n times.
  std::vector<int64_t> integers(const std::string& key, size_t n, std::vector<int64_t> fallback) {
    const auto* v = take(key);
    if (!v) return fallback;
    if (v->is_integer()) return std::vector<int64_t>(n, v->integer());
    TORCH_CHECK(v->is_array() && v->array().size() == n, error(key, "an integer or a list of " + std::to_string(n) + " integers", *v));
    std::vector<int64_t> out;
    for (const auto& e : v->array()) {
      TORCH_CHECK(e.is_integer(), error(key, "an integer or a list of " + std::to_string(n) + " integers", *v));
      out.push_back(e.integer());
    }
    return out;
  }
  /// A list of integers of any length.
  std::vector<int64_t> integer_list(const std::string& key, std::vector<int64_t> fallback) {
    const auto* v = take(key);
    if (!v) return fallback;
    TORCH_CHECK(v->is_array(), error(key, "a list of integers", *v));
    std::vector<int64_t> out;
    for (const auto& e : v->array()) {
      TORCH_CHECK(e.is_integer(), error(key, "a list of integers", *v));
      out.push_back(e.integer());
    }
    return out;
  }
  /// The raw value (null when absent), marked as read.
  const io::JsonValue* raw(const std::string& key) { return take(key); }

  /// A key of a feature this library does not implement: accepted only when absent, null, or equal
  /// to `implemented` (written as JSON: "null", "false", "\"default\"", "1.0").
  void require(const std::string& key, const std::string& implemented) {
    used_.insert(key);
    const auto* v = root_.find(key);
    if (!v || v->is_null()) return;
    const auto want = io::parse_json(implemented, "the implemented value of " + key);
    TORCH_CHECK(same(*v, want), "diffinstruct::models: ", what_, " sets ", key, " = ", show(*v),
                ", which is not supported (supported: ", implemented, "); see docs/models.md");
  }

  /// Refuses every key that was neither read nor declared.
  void finish() const {
    std::vector<std::string> unknown;
    for (const auto& [k, v] : root_.object())
      if (!used_.count(k)) unknown.push_back(k);
    if (unknown.empty()) return;
    std::ostringstream os;
    for (size_t i = 0; i < unknown.size(); ++i) os << (i ? ", " : "") << unknown[i];
    TORCH_CHECK(false, "diffinstruct::models: ", what_, " has config key", unknown.size() > 1 ? "s " : " ", os.str(),
                " that this implementation does not know; refusing rather than building a different model (see docs/models.md)");
  }

 private:
  const io::JsonValue* take(const std::string& key) {
    used_.insert(key);
    const auto* v = root_.find(key);
    return v && !v->is_null() ? v : nullptr;
  }
  std::string error(const std::string& key, const std::string& expected, const io::JsonValue& got) const {
    return "diffinstruct::models: " + what_ + ": " + key + " must be " + expected + ", got " + show(got);
  }
  static bool same(const io::JsonValue& a, const io::JsonValue& b) {
    if (a.is_number() && b.is_number()) return a.number() == b.number();
    if (a.kind() != b.kind()) return false;
    switch (a.kind()) {
      case io::JsonValue::Kind::kNull: return true;
      case io::JsonValue::Kind::kBool: return a.boolean() == b.boolean();
      case io::JsonValue::Kind::kString: return a.string() == b.string();
      case io::JsonValue::Kind::kArray: {
        if (a.array().size() != b.array().size()) return false;
        for (size_t i = 0; i < a.array().size(); ++i)
          if (!same(a.array()[i], b.array()[i])) return false;
        return true;
      }
      default: return false;
    }
  }
  static std::string show(const io::JsonValue& v) {
    switch (v.kind()) {
      case io::JsonValue::Kind::kNull: return "null";
      case io::JsonValue::Kind::kBool: return v.boolean() ? "true" : "false";
      case io::JsonValue::Kind::kInteger: return std::to_string(v.integer());
      case io::JsonValue::Kind::kNumber: {
        std::ostringstream os;
        os << v.number();
        return os.str();
      }
      case io::JsonValue::Kind::kString: return io::json_quote(v.string());
      case io::JsonValue::Kind::kArray: {
        std::string s = "[";
        for (size_t i = 0; i < v.array().size(); ++i) s += (i ? ", " : "") + show(v.array()[i]);
        return s + "]";
      }
      case io::JsonValue::Kind::kObject: return "{...}";
    }
    return "?";
  }

  std::string what_;
  io::JsonValue root_;
  std::set<std::string> used_;
};

} // namespace models
} // namespace diffinstruct
