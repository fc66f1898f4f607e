#include "common/tokenizer/vocab.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace wf::tokenizer {
namespace {

using Json = nlohmann::json;

// The same split with the case-insensitive group spelled out; older Llama 3
// conversions wrote this form.
constexpr std::string_view kLlama3SplitRegexExpanded =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

constexpr std::string_view kBosText = "<|begin_of_text|>";
constexpr std::string_view kEosText = "<|end_of_text|>";
constexpr std::string_view kEotTexts[] = {"<|eot_id|>", "<|im_end|>"};

int32_t FindToken(const std::vector<std::string>& tokens, std::string_view text) {
  for (size_t i = tokens.size(); i-- > 0;) {
    if (tokens[i] == text) return static_cast<int32_t>(i);
  }
  return -1;
}

int32_t FindEot(const std::vector<std::string>& tokens) {
  for (std::string_view text : kEotTexts) {
    const int32_t id = FindToken(tokens, text);
    if (id >= 0) return id;
  }
  return -1;
}

std::string Abbreviate(const Json& j) {
  std::string s = j.dump();
  if (s.size() > 200) s = s.substr(0, 200) + "...";
  return s;
}

bool BoolOr(const Json& obj, const char* key, bool fallback) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_boolean()) return fallback;
  return it->get<bool>();
}

// Maps the tokenizer.json pre_tokenizer to a tokenizer.ggml.pre name.
absl::StatusOr<std::string> PreTokenizerName(const Json& pre) {
  if (pre.is_null()) return std::string();
  std::vector<const Json*> steps;
  if (pre.value("type", "") == "Sequence") {
    auto it = pre.find("pretokenizers");
    if (it == pre.end() || !it->is_array()) {
      return absl::InvalidArgumentError("pre_tokenizer: Sequence without a 'pretokenizers' array");
    }
    for (const Json& step : *it) steps.push_back(&step);
  } else {
    steps.push_back(&pre);
  }
  auto is_byte_level = [](const Json& j, bool use_regex) {
    return j.value("type", "") == "ByteLevel" && !BoolOr(j, "add_prefix_space", false) &&
           BoolOr(j, "use_regex", true) == use_regex;
  };
  if (steps.size() == 2 && steps[0]->value("type", "") == "Split" &&
      is_byte_level(*steps[1], /*use_regex=*/false)) {
    const Json& split = *steps[0];
    std::string regex;
    if (auto p = split.find("pattern"); p != split.end() && p->is_object()) {
      regex = p->value("Regex", "");
    }
    if ((regex == kLlama3SplitRegex || regex == kLlama3SplitRegexExpanded) &&
        split.value("behavior", "") == "Isolated" && !BoolOr(split, "invert", false)) {
      return std::string(kPreLlama3);
    }
  }
  if (steps.size() == 1 && is_byte_level(*steps[0], /*use_regex=*/true)) {
    return std::string(kPreGpt2);
  }
  return absl::UnimplementedError(
      absl::StrCat("pre_tokenizer not supported (only the Llama 3 Split + ByteLevel, or a plain "
                   "GPT-2 ByteLevel without add_prefix_space): ",
                   Abbreviate(pre)));
}

// SAX reader for tokenizer.json: model.vocab and model.merges (nearly all of
// the 9 MB of a Llama 3 file) go straight into vectors, and an ordinary DOM is
// built only for the rest. A full DOM would put 128k vocabulary entries into a
// std::map, which dominates load time.
class HfJsonReader : public nlohmann::json_sax<Json> {
 public:
  Json root;
  bool has_vocab = false;
  std::vector<std::pair<std::string, int64_t>> vocab_entries;
  bool has_merges = false;
  std::vector<std::string> merges;
  std::string error;

  bool null() override { return Value(nullptr); }
  bool boolean(bool v) override { return Value(v); }
  bool number_integer(number_integer_t v) override {
    if (mode_ == kVocab) return VocabId(v);
    return Value(v);
  }
  bool number_unsigned(number_unsigned_t v) override {
    if (mode_ == kVocab) {
      if (v > static_cast<number_unsigned_t>(std::numeric_limits<int64_t>::max())) return VocabId(-1);
      return VocabId(static_cast<int64_t>(v));
    }
    return Value(v);
  }
  bool number_float(number_float_t v, const string_t&) override { return Value(v); }
  bool string(string_t& v) override {
    if (mode_ == kMerges) {
      merges.push_back(std::move(v));
      return true;
    }
    if (mode_ == kMergePair) {
      pair_.push_back(std::move(v));
      return true;
    }
    return Value(std::move(v));
  }
  bool binary(binary_t&) override { return Fail("unexpected binary value"); }

  bool start_object(std::size_t) override {
    if (mode_ == kDom && InModel() && key_ == "vocab") {
      mode_ = kVocab;
      has_vocab = true;
      return true;
    }
    if (mode_ != kDom) return Value(Json::object());  // Reports the misplaced object.
    return Open(Json::object());
  }
  bool key(string_t& k) override {
    key_ = std::move(k);
    return true;
  }
  bool end_object() override {
    if (mode_ == kVocab) {
      mode_ = kDom;
      return true;
    }
    return Close();
  }
  bool start_array(std::size_t) override {
    if (mode_ == kDom && InModel() && key_ == "merges") {
      mode_ = kMerges;
      has_merges = true;
      return true;
    }
    if (mode_ == kMerges) {
      mode_ = kMergePair;
      pair_.clear();
      return true;
    }
    if (mode_ != kDom) return Value(Json::array());
    return Open(Json::array());
  }
  bool end_array() override {
    if (mode_ == kMerges) {
      mode_ = kDom;
      return true;
    }
    if (mode_ == kMergePair) {
      mode_ = kMerges;
      const size_t index = merges.size();
      if (pair_.size() != 2) {
        return Fail(absl::StrCat("model.merges[", index, "]: expected a string or a pair of strings"));
      }
      if (pair_[0].find(' ') != std::string::npos || pair_[1].find(' ') != std::string::npos) {
        return Fail(absl::StrCat("model.merges[", index,
                                 "]: a part contains a space, which the \"a b\" form cannot hold"));
      }
      merges.push_back(absl::StrCat(pair_[0], " ", pair_[1]));
      return true;
    }
    return Close();
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    return Fail(e.what());
  }

 private:
  enum Mode { kDom, kVocab, kMerges, kMergePair };

  bool Fail(std::string message) {
    if (error.empty()) error = std::move(message);
    return false;
  }
  // Directly inside the top-level "model" object.
  bool InModel() const {
    return stack_.size() == 2 && open_keys_[1] == "model" && stack_.back()->is_object();
  }
  bool VocabId(int64_t id) {
    vocab_entries.emplace_back(std::move(key_), id);
    return true;
  }
  // Places `v` in the innermost open container; returns where it went.
  Json* Place(Json v) {
    if (stack_.empty()) {
      root = std::move(v);
      return &root;
    }
    Json& parent = *stack_.back();
    if (parent.is_array()) {
      parent.push_back(std::move(v));
      return &parent.back();
    }
    Json& slot = parent[key_];
    slot = std::move(v);
    return &slot;
  }
  bool Value(Json v) {
    switch (mode_) {
      case kDom:
        Place(std::move(v));
        return true;
      case kVocab:
        return Fail(absl::StrCat("model.vocab['", key_, "']: id is not an integer"));
      case kMerges:
      case kMergePair:
        return Fail(
            absl::StrCat("model.merges[", merges.size(), "]: expected a string or a pair of strings"));
    }
    return false;
  }
  bool Open(Json container) {
    // Pointers into a parent array stay valid: nothing is appended to it
    // until this container is closed.
    std::string opened_under = !stack_.empty() && stack_.back()->is_object() ? key_ : std::string();
    stack_.push_back(Place(std::move(container)));
    open_keys_.push_back(std::move(opened_under));
    return true;
  }
  bool Close() {
    if (stack_.empty()) return Fail("unbalanced JSON");
    stack_.pop_back();
    open_keys_.pop_back();
    return true;
  }

  Mode mode_ = kDom;
  std::vector<Json*> stack_;
  std::vector<std::string> open_keys_;  // Key under which each open container sits.
  std::string key_;
  std::vector<std::string> pair_;
};

absl::StatusOr<Vocab> ParseHfTokenizerJsonImpl(HfJsonReader& reader) {
  const Json& root = reader.root;
  if (!root.is_object()) return absl::InvalidArgumentError("tokenizer.json: top level is not an object");
  auto model_it = root.find("model");
  if (model_it == root.end() || !model_it->is_object()) {
    return absl::InvalidArgumentError("tokenizer.json: missing 'model' object");
  }
  const Json& model = *model_it;
  const std::string type = model.value("type", "");
  if (type != "BPE") {
    return absl::UnimplementedError(
        absl::StrCat("tokenizer.json: model.type '", type, "' is not supported (only BPE)"));
  }
  if (BoolOr(model, "byte_fallback", false)) {
    return absl::UnimplementedError("tokenizer.json: model.byte_fallback is not supported");
  }
  if (auto n = root.find("normalizer"); n != root.end() && !n->is_null()) {
    return absl::UnimplementedError(
        absl::StrCat("tokenizer.json: normalizer not supported: ", Abbreviate(*n)));
  }

  Vocab vocab;
  if (auto p = root.find("pre_tokenizer"); p != root.end()) {
    BN_ASSIGN_OR_RETURN(vocab.pre, PreTokenizerName(*p));
  }
  if (auto im = model.find("ignore_merges"); im != model.end() && im->is_boolean()) {
    vocab.ignore_merges = im->get<bool>();
  } else {
    vocab.ignore_merges = false;
  }

  if (!reader.has_vocab) return absl::InvalidArgumentError("tokenizer.json: missing 'model.vocab' object");
  // Ids index the final vectors; collect (id, text, type) first.
  struct Entry {
    int64_t id;
    std::string text;
    int32_t type;
  };
  std::vector<Entry> entries;
  entries.reserve(reader.vocab_entries.size() + 512);
  for (auto& [text, id] : reader.vocab_entries) entries.push_back({id, std::move(text), kTokenNormal});
  if (auto added = root.find("added_tokens"); added != root.end() && added->is_array()) {
    for (size_t i = 0; i < added->size(); ++i) {
      const Json& t = (*added)[i];
      if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() || !t.contains("content") ||
          !t["content"].is_string()) {
        return absl::InvalidArgumentError(
            absl::StrCat("added_tokens[", i, "]: needs integer 'id' and string 'content'"));
      }
      entries.push_back({t["id"].get<int64_t>(), t["content"].get<std::string>(),
                         BoolOr(t, "special", false) ? kTokenControl : kTokenUserDefined});
    }
  }
  int64_t max_id = -1;
  for (const Entry& e : entries) {
    if (e.id < 0 || e.id >= std::numeric_limits<int32_t>::max()) {
      return absl::InvalidArgumentError(absl::StrCat("token '", e.text, "': id ", e.id, " out of range"));
    }
    max_id = std::max(max_id, e.id);
  }
  if (max_id < 0) return absl::InvalidArgumentError("tokenizer.json: empty vocabulary");
  vocab.tokens.resize(static_cast<size_t>(max_id) + 1);
  vocab.token_types.assign(vocab.tokens.size(), 0);
  for (Entry& e : entries) {
    // An added token that is also a model token keeps the same text; it only
    // changes the type.
    vocab.tokens[e.id] = std::move(e.text);
    vocab.token_types[e.id] = e.type;
  }
  for (size_t i = 0; i < vocab.tokens.size(); ++i) {
    if (vocab.token_types[i] == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("tokenizer.json: token id ", i, " has no entry (ids must be dense)"));
    }
  }

  if (model.contains("merges")) return absl::InvalidArgumentError("model.merges: not an array");
  vocab.merges = std::move(reader.merges);

  vocab.bos_id = FindToken(vocab.tokens, kBosText);
  vocab.eos_id = FindToken(vocab.tokens, kEosText);
  vocab.eot_id = FindEot(vocab.tokens);
  vocab.add_bos = vocab.bos_id >= 0;
  return vocab;
}

absl::StatusOr<std::string> TokenContent(const Json& j, const char* key) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_object() && j.contains("content") && j["content"].is_string())
    return j["content"].get<std::string>();
  return absl::InvalidArgumentError(
      absl::StrCat("tokenizer_config.json: '", key, "' is neither a string nor {content}"));
}

absl::Status ApplyHfTokenizerConfigImpl(const Json& root, Vocab* vocab) {
  if (!root.is_object())
    return absl::InvalidArgumentError("tokenizer_config.json: top level is not an object");
  struct Special {
    const char* key;
    int32_t* id;
  };
  for (const Special& s : {Special{"bos_token", &vocab->bos_id}, Special{"eos_token", &vocab->eos_id}}) {
    auto it = root.find(s.key);
    if (it == root.end() || it->is_null()) continue;
    BN_ASSIGN_OR_RETURN(std::string text, TokenContent(*it, s.key));
    const int32_t id = FindToken(vocab->tokens, text);
    if (id < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("tokenizer_config.json: ", s.key, " '", text, "' is not in the vocabulary"));
    }
    *s.id = id;
  }
  if (auto it = root.find("add_bos_token"); it != root.end() && it->is_boolean()) {
    vocab->add_bos = it->get<bool>();
  }
  if (auto it = root.find("chat_template"); it != root.end() && it->is_string()) {
    vocab->chat_template = it->get<std::string>();
  }
  return absl::OkStatus();
}

}  // namespace

bool IsLlama3Vocabulary(const std::vector<std::string>& tokens) {
  return tokens.size() >= 128010 && tokens[128000] == kBosText && tokens[128009] == "<|eot_id|>";
}

absl::StatusOr<Vocab> ParseHfTokenizerJson(std::string_view json) {
  // nlohmann::json throws on malformed input and on type errors; keep every
  // exception inside this function.
  try {
    HfJsonReader reader;
    if (!Json::sax_parse(json.begin(), json.end(), &reader)) {
      return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: ", reader.error));
    }
    return ParseHfTokenizerJsonImpl(reader);
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: ", e.what()));
  }
}

absl::Status ApplyHfTokenizerConfig(std::string_view json, Vocab* vocab) {
  try {
    const Json root = Json::parse(json.begin(), json.end());
    return ApplyHfTokenizerConfigImpl(root, vocab);
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer_config.json: ", e.what()));
  }
}

absl::StatusOr<Vocab> VocabFromGgufMetadata(GgufTokenizerMetadata md) {
  if (md.model != "gpt2") {
    return absl::UnimplementedError(
        absl::StrCat("tokenizer.ggml.model '", md.model, "' is not supported (only 'gpt2' byte-level BPE)"));
  }
  if (md.tokens.empty()) return absl::InvalidArgumentError("tokenizer.ggml.tokens is missing or empty");
  if (md.tokens.size() >= static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    return absl::InvalidArgumentError("tokenizer.ggml.tokens: too many tokens");
  }
  const int64_t n = static_cast<int64_t>(md.tokens.size());
  Vocab vocab;
  if (md.token_types.empty()) {
    vocab.token_types.assign(md.tokens.size(), kTokenNormal);
  } else if (md.token_types.size() != md.tokens.size()) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer.ggml.token_type has ", md.token_types.size(),
                                                   " entries but tokenizer.ggml.tokens has ", n));
  } else {
    for (size_t i = 0; i < md.token_types.size(); ++i) {
      if (md.token_types[i] < kTokenNormal || md.token_types[i] > kTokenByte) {
        return absl::InvalidArgumentError(absl::StrCat(
            "tokenizer.ggml.token_type[", i, "] = ", md.token_types[i], " is not a known token type"));
      }
    }
    vocab.token_types = std::move(md.token_types);
  }
  struct IdKey {
    const char* key;
    const std::optional<int64_t>& value;
    int32_t* out;
  };
  for (const IdKey& k : {IdKey{"tokenizer.ggml.bos_token_id", md.bos_id, &vocab.bos_id},
                         IdKey{"tokenizer.ggml.eos_token_id", md.eos_id, &vocab.eos_id},
                         IdKey{"tokenizer.ggml.eot_token_id", md.eot_id, &vocab.eot_id}}) {
    if (!k.value.has_value()) continue;
    if (*k.value < 0 || *k.value >= n) {
      return absl::InvalidArgumentError(
          absl::StrCat(k.key, " = ", *k.value, " is outside the vocabulary [0, ", n, ")"));
    }
    *k.out = static_cast<int32_t>(*k.value);
  }
  if (!md.eot_id.has_value()) vocab.eot_id = FindEot(md.tokens);
  if (md.pre.has_value()) vocab.pre = std::move(*md.pre);
  vocab.add_bos = md.add_bos.value_or(IsLlama3Vocabulary(md.tokens)) && vocab.bos_id >= 0;
  if (md.chat_template.has_value()) vocab.chat_template = std::move(*md.chat_template);
  vocab.tokens = std::move(md.tokens);
  vocab.merges = std::move(md.merges);
  return vocab;
}

}  // namespace wf::tokenizer
