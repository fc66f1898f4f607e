#include "converter/hf_config.h"

#include <cmath>
#include <exception>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "converter/internal/json_util.h"
#include "common/string_view_compat.h"
#include "nlohmann/json.hpp"

namespace wf::convert {
namespace {

using Json = nlohmann::ordered_json;
using ::wf::Av;

constexpr size_t kMaxConfigBytes = size_t{16} << 20;
constexpr size_t kMaxTokenizerConfigBytes = size_t{64} << 20;

// Bounds far above any real model; they keep products of these sizes (and
// the tensor byte counts derived from them) inside int64.
constexpr int64_t kMaxWidth = int64_t{1} << 20;
constexpr int64_t kMaxVocab = int64_t{1} << 24;
constexpr int64_t kMaxLayers = 4096;
constexpr int64_t kMaxHeads = 4096;
constexpr int64_t kMaxPositions = int64_t{1} << 24;

// Typed access to one JSON object; every error names `prefix` + key.
class Fields {
 public:
  Fields(const Json& object, std::string source, std::string prefix = "")
      : object_(object), source_(std::move(source)), prefix_(std::move(prefix)) {}

  const Json* Find(std::string_view key) const {
    auto it = object_.find(std::string(key));
    if (it == object_.end() || it->is_null()) return nullptr;
    return &*it;
  }

  absl::Status Error(std::string_view key, std::string_view problem) const {
    return absl::InvalidArgumentError(
        absl::StrCat(source_, ": \"", prefix_, Av(key), "\" ", Av(problem)));
  }
  absl::Status Missing(std::string_view key) const { return Error(key, "is missing"); }
  absl::Status WrongType(std::string_view key, const Json& v, std::string_view want) const {
    return Error(key,
                 absl::StrCat("must be ", Av(want), ", got a JSON ", internal::JsonTypeName(v)));
  }

  absl::StatusOr<std::optional<int64_t>> OptionalInt(std::string_view key) const {
    const Json* v = Find(key);
    if (v == nullptr) return std::optional<int64_t>();
    if (!v->is_number_integer()) return WrongType(key, *v, "an integer");
    if (v->is_number_unsigned() &&
        v->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Error(key, "is out of range");
    }
    return std::optional<int64_t>(v->get<int64_t>());
  }

  absl::StatusOr<int64_t> PositiveInt(std::string_view key, int64_t max,
                                      std::optional<int64_t> fallback = std::nullopt) const {
    BN_ASSIGN_OR_RETURN(std::optional<int64_t> v, OptionalInt(key));
    if (!v.has_value()) {
      if (fallback.has_value()) return *fallback;
      return Missing(key);
    }
    if (*v <= 0) return Error(key, absl::StrCat("must be positive, got ", *v));
    if (*v > max) return Error(key, absl::StrCat("is ", *v, ", above the limit ", max));
    return *v;
  }

  absl::StatusOr<double> PositiveNumber(std::string_view key) const {
    const Json* v = Find(key);
    if (v == nullptr) return Missing(key);
    if (!v->is_number()) return WrongType(key, *v, "a number");
    const double d = v->get<double>();
    if (!std::isfinite(d) || d <= 0) return Error(key, absl::StrCat("must be positive, got ", d));
    return d;
  }

  absl::StatusOr<std::optional<std::string>> OptionalString(std::string_view key) const {
    const Json* v = Find(key);
    if (v == nullptr) return std::optional<std::string>();
    if (!v->is_string()) return WrongType(key, *v, "a string");
    return std::optional<std::string>(v->get<std::string>());
  }

  absl::StatusOr<std::optional<bool>> OptionalBool(std::string_view key) const {
    const Json* v = Find(key);
    if (v == nullptr) return std::optional<bool>();
    if (!v->is_boolean()) return WrongType(key, *v, "a boolean");
    return std::optional<bool>(v->get<bool>());
  }

  const std::string& source() const { return source_; }

 private:
  const Json& object_;
  std::string source_;
  std::string prefix_;
};

absl::StatusOr<Json> ParseObject(std::string_view text, std::string_view source) {
  BN_ASSIGN_OR_RETURN(Json root, internal::ParseJson(text, source));
  if (!root.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(
        Av(source), ": top level is a JSON ", internal::JsonTypeName(root), ", not an object"));
  }
  return root;
}

absl::StatusOr<std::optional<BitNetQuantizationConfig>> ParseQuantization(const Fields& top) {
  const Json* q = top.Find("quantization_config");
  if (q == nullptr) return std::optional<BitNetQuantizationConfig>();
  if (!q->is_object()) return top.WrongType("quantization_config", *q, "an object");
  Fields f(*q, top.source(), "quantization_config.");
  BitNetQuantizationConfig out;
  BN_ASSIGN_OR_RETURN(std::optional<std::string> method, f.OptionalString("quant_method"));
  if (!method.has_value()) return f.Missing("quant_method");
  out.quant_method = *method;
  BN_ASSIGN_OR_RETURN(std::optional<std::string> linear_class, f.OptionalString("linear_class"));
  if (linear_class.has_value()) out.linear_class = *linear_class;
  BN_ASSIGN_OR_RETURN(std::optional<std::string> mode, f.OptionalString("quantization_mode"));
  if (mode.has_value()) out.quantization_mode = *mode;
  BN_ASSIGN_OR_RETURN(std::optional<bool> use_rms_norm, f.OptionalBool("use_rms_norm"));
  out.use_rms_norm = use_rms_norm.value_or(false);
  if (f.Find("rms_norm_eps") != nullptr) {
    BN_ASSIGN_OR_RETURN(double eps, f.PositiveNumber("rms_norm_eps"));
    out.rms_norm_eps = eps;
  }
  if (const Json* m = f.Find("modules_to_not_convert")) {
    if (!m->is_array()) return f.WrongType("modules_to_not_convert", *m, "a list of strings");
    for (const Json& name : *m) {
      if (!name.is_string())
        return f.WrongType("modules_to_not_convert", name, "a list of strings");
      out.modules_to_not_convert.push_back(name.get<std::string>());
    }
  }
  return std::optional<BitNetQuantizationConfig>(std::move(out));
}

absl::StatusOr<BitNetConfig> ParseConfigObject(const Json& root, std::string_view source) {
  Fields f(root, std::string(source));
  BitNetConfig c;

  BN_ASSIGN_OR_RETURN(std::optional<std::string> model_type, f.OptionalString("model_type"));
  if (const Json* archs = f.Find("architectures")) {
    if (!archs->is_array() || archs->empty() || !(*archs)[0].is_string()) {
      return f.WrongType("architectures", *archs, "a non-empty list of strings");
    }
    c.architecture = (*archs)[0].get<std::string>();
  } else if (!model_type.has_value()) {
    return f.Missing("architectures");
  }
  if (model_type.has_value()) c.model_type = *model_type;

  BN_ASSIGN_OR_RETURN(c.hidden_size, f.PositiveInt("hidden_size", kMaxWidth));
  BN_ASSIGN_OR_RETURN(c.intermediate_size, f.PositiveInt("intermediate_size", kMaxWidth));
  BN_ASSIGN_OR_RETURN(c.num_hidden_layers, f.PositiveInt("num_hidden_layers", kMaxLayers));
  BN_ASSIGN_OR_RETURN(c.num_attention_heads, f.PositiveInt("num_attention_heads", kMaxHeads));
  BN_ASSIGN_OR_RETURN(c.num_key_value_heads,
                      f.PositiveInt("num_key_value_heads", kMaxHeads, c.num_attention_heads));
  BN_ASSIGN_OR_RETURN(c.vocab_size, f.PositiveInt("vocab_size", kMaxVocab));
  BN_ASSIGN_OR_RETURN(c.max_position_embeddings,
                      f.PositiveInt("max_position_embeddings", kMaxPositions));
  BN_ASSIGN_OR_RETURN(c.rms_norm_eps, f.PositiveNumber("rms_norm_eps"));
  BN_ASSIGN_OR_RETURN(c.rope_theta, f.PositiveNumber("rope_theta"));
  BN_ASSIGN_OR_RETURN(std::optional<bool> tie, f.OptionalBool("tie_word_embeddings"));
  c.tie_word_embeddings = tie.value_or(true);
  BN_ASSIGN_OR_RETURN(std::optional<std::string> act, f.OptionalString("hidden_act"));
  if (act.has_value()) c.hidden_act = *act;

  BN_ASSIGN_OR_RETURN(c.bos_token_id, f.OptionalInt("bos_token_id"));
  BN_ASSIGN_OR_RETURN(c.pad_token_id, f.OptionalInt("pad_token_id"));
  if (const Json* eos = f.Find("eos_token_id")) {
    if (eos->is_array()) {
      for (const Json& id : *eos) {
        if (!id.is_number_integer())
          return f.WrongType("eos_token_id", id, "an integer or a list of integers");
        c.eos_token_ids.push_back(id.get<int64_t>());
      }
    } else {
      BN_ASSIGN_OR_RETURN(std::optional<int64_t> id, f.OptionalInt("eos_token_id"));
      c.eos_token_ids.push_back(*id);
    }
  }
  for (const auto& [key, id] :
       {std::pair<std::string_view, std::optional<int64_t>>{"bos_token_id", c.bos_token_id},
        {"pad_token_id", c.pad_token_id}}) {
    if (id.has_value() && (*id < 0 || *id >= c.vocab_size)) {
      return f.Error(key,
                     absl::StrCat("is ", *id, ", outside the vocabulary [0, ", c.vocab_size, ")"));
    }
  }
  for (int64_t id : c.eos_token_ids) {
    if (id < 0 || id >= c.vocab_size) {
      return f.Error("eos_token_id", absl::StrCat("holds ", id, ", outside the vocabulary [0, ",
                                                  c.vocab_size, ")"));
    }
  }

  // Newer transformers write "dtype" instead of "torch_dtype".
  BN_ASSIGN_OR_RETURN(std::optional<std::string> dtype, f.OptionalString("torch_dtype"));
  if (!dtype.has_value()) {
    BN_ASSIGN_OR_RETURN(dtype, f.OptionalString("dtype"));
  }
  c.torch_dtype = dtype.value_or("");

  if (c.hidden_size % c.num_attention_heads != 0) {
    return f.Error("num_attention_heads",
                   absl::StrCat("(", c.num_attention_heads, ") does not divide hidden_size (",
                                c.hidden_size, ")"));
  }
  c.head_dim = c.hidden_size / c.num_attention_heads;
  BN_ASSIGN_OR_RETURN(std::optional<int64_t> head_dim, f.OptionalInt("head_dim"));
  if (head_dim.has_value() && *head_dim != c.head_dim) {
    return f.Error("head_dim",
                   absl::StrCat("is ", *head_dim, " but hidden_size / num_attention_heads is ",
                                c.head_dim, "; only the derived value is supported"));
  }
  BN_ASSIGN_OR_RETURN(c.quantization_config, ParseQuantization(f));

  absl::Status valid = ValidateBitNetConfig(c);
  if (!valid.ok()) {
    return absl::Status(valid.code(), absl::StrCat(Av(source), ": ", valid.message()));
  }
  return c;
}

}  // namespace

bool BitNetConfig::HasPackedWeights() const {
  return quantization_config.has_value() && quantization_config->quantization_mode == "offline";
}

absl::Status ValidateBitNetConfig(const BitNetConfig& c) {
  if (c.architecture != kBitNetArchitecture) {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported architecture \"", c.architecture,
                     "\" in \"architectures\" (supported: ", Av(kBitNetArchitecture), ")"));
  }
  if (c.model_type != kBitNetModelType) {
    return absl::InvalidArgumentError(absl::StrCat("\"model_type\" is \"", c.model_type,
                                                   "\", expected \"", Av(kBitNetModelType), "\""));
  }
  const std::pair<std::string_view, int64_t> sizes[] = {
      {"hidden_size", c.hidden_size},
      {"intermediate_size", c.intermediate_size},
      {"num_hidden_layers", c.num_hidden_layers},
      {"num_attention_heads", c.num_attention_heads},
      {"num_key_value_heads", c.num_key_value_heads},
      {"vocab_size", c.vocab_size},
      {"max_position_embeddings", c.max_position_embeddings},
  };
  for (const auto& [key, value] : sizes) {
    if (value <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", Av(key), "\" must be positive, got ", value));
    }
  }
  if (!(c.rms_norm_eps > 0) || !std::isfinite(c.rms_norm_eps)) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"rms_norm_eps\" must be positive, got ", c.rms_norm_eps));
  }
  if (!(c.rope_theta > 0) || !std::isfinite(c.rope_theta)) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"rope_theta\" must be positive, got ", c.rope_theta));
  }
  if (c.hidden_size % c.num_attention_heads != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"num_attention_heads\" (", c.num_attention_heads,
                     ") does not divide hidden_size (", c.hidden_size, ")"));
  }
  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"num_key_value_heads\" (", c.num_key_value_heads,
                     ") does not divide num_attention_heads (", c.num_attention_heads, ")"));
  }
  if (c.head_dim != c.hidden_size / c.num_attention_heads) {
    return absl::InvalidArgumentError(
        absl::StrCat("head_dim ", c.head_dim, " != hidden_size / ",
                     "num_attention_heads = ", c.hidden_size / c.num_attention_heads));
  }
  if (c.hidden_act != "relu2") {
    return absl::InvalidArgumentError(
        absl::StrCat("\"hidden_act\" is \"", c.hidden_act, "\"; BitNet b1.58 uses \"relu2\""));
  }
  if (c.quantization_config.has_value()) {
    const BitNetQuantizationConfig& q = *c.quantization_config;
    if (q.quant_method != "bitnet") {
      return absl::InvalidArgumentError(absl::StrCat("\"quantization_config.quant_method\" is \"",
                                                     q.quant_method,
                                                     "\"; only \"bitnet\" is supported"));
    }
    if (q.linear_class != "bitlinear" && q.linear_class != "autobitlinear") {
      return absl::InvalidArgumentError(
          absl::StrCat("\"quantization_config.linear_class\" is \"", q.linear_class,
                       "\"; expected \"bitlinear\" or \"autobitlinear\""));
    }
    if (q.quantization_mode != "offline" && q.quantization_mode != "online") {
      return absl::InvalidArgumentError(
          absl::StrCat("\"quantization_config.quantization_mode\" is \"", q.quantization_mode,
                       "\"; expected \"offline\" or \"online\""));
    }
    if (q.use_rms_norm) {
      return absl::InvalidArgumentError(
          "\"quantization_config.use_rms_norm\" is true; an extra norm inside each linear "
          "layer is not supported");
    }
  }
  return absl::OkStatus();
}

std::string BitNetConfig::ToJson() const {
  Json j = Json::object();
  j["architectures"] = Json::array({architecture});
  j["model_type"] = model_type;
  j["hidden_act"] = hidden_act;
  j["hidden_size"] = hidden_size;
  j["intermediate_size"] = intermediate_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["num_attention_heads"] = num_attention_heads;
  j["num_key_value_heads"] = num_key_value_heads;
  j["vocab_size"] = vocab_size;
  j["max_position_embeddings"] = max_position_embeddings;
  j["rms_norm_eps"] = rms_norm_eps;
  j["rope_theta"] = rope_theta;
  j["tie_word_embeddings"] = tie_word_embeddings;
  if (bos_token_id.has_value()) j["bos_token_id"] = *bos_token_id;
  if (eos_token_ids.size() == 1) {
    j["eos_token_id"] = eos_token_ids[0];
  } else if (!eos_token_ids.empty()) {
    j["eos_token_id"] = eos_token_ids;
  }
  if (pad_token_id.has_value()) j["pad_token_id"] = *pad_token_id;
  if (!torch_dtype.empty()) j["torch_dtype"] = torch_dtype;
  if (quantization_config.has_value()) {
    const BitNetQuantizationConfig& q = *quantization_config;
    Json qj = Json::object();
    qj["quant_method"] = q.quant_method;
    qj["linear_class"] = q.linear_class;
    qj["quantization_mode"] = q.quantization_mode;
    if (q.use_rms_norm) qj["use_rms_norm"] = true;
    if (q.rms_norm_eps.has_value()) qj["rms_norm_eps"] = *q.rms_norm_eps;
    if (!q.modules_to_not_convert.empty()) qj["modules_to_not_convert"] = q.modules_to_not_convert;
    j["quantization_config"] = std::move(qj);
  }
  // Strings here come from our own parser (valid UTF-8) or from code; the
  // replace handler keeps dump() from throwing on anything else.
  return j.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

absl::StatusOr<BitNetConfig> ParseBitNetConfig(std::string_view json_text,
                                               std::string_view source) {
  BN_ASSIGN_OR_RETURN(Json root, ParseObject(json_text, source));
  try {
    return ParseConfigObject(root, source);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(Av(source), ": ", e.what()));
  }
}

absl::StatusOr<BitNetConfig> LoadBitNetConfig(const std::string& path) {
  BN_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path, kMaxConfigBytes));
  return ParseBitNetConfig(text, path);
}

absl::StatusOr<HfTokenizerConfig> ParseHfTokenizerConfig(std::string_view json_text,
                                                         std::string_view source) {
  BN_ASSIGN_OR_RETURN(Json root, ParseObject(json_text, source));
  Fields f(root, std::string(source));
  HfTokenizerConfig out;
  try {
    if (const Json* t = f.Find("chat_template")) {
      if (t->is_string()) {
        out.chat_template = t->get<std::string>();
      } else if (t->is_array()) {
        for (size_t i = 0; i < t->size(); ++i) {
          const Json& e = (*t)[i];
          const std::string key = absl::StrCat("chat_template[", i, "]");
          if (!e.is_object()) return f.WrongType(key, e, "an object {name, template}");
          Fields ef(e, f.source(), key + ".");
          BN_ASSIGN_OR_RETURN(std::optional<std::string> name, ef.OptionalString("name"));
          BN_ASSIGN_OR_RETURN(std::optional<std::string> tmpl, ef.OptionalString("template"));
          if (!name.has_value()) return ef.Missing("name");
          if (!tmpl.has_value()) return ef.Missing("template");
          if (*name == "default") out.chat_template = *tmpl;
          out.named_chat_templates.emplace_back(std::move(*name), std::move(*tmpl));
        }
      } else {
        return f.WrongType("chat_template", *t, "a string or a list of {name, template}");
      }
    }
    for (const std::string_view key : {"bos_token", "eos_token"}) {
      std::optional<std::string>& slot = key == "bos_token" ? out.bos_token : out.eos_token;
      const Json* v = f.Find(key);
      if (v == nullptr) continue;
      if (v->is_string()) {
        slot = v->get<std::string>();
      } else if (v->is_object() && v->contains("content") && (*v)["content"].is_string()) {
        slot = (*v)["content"].get<std::string>();
      } else {
        return f.WrongType(key, *v, "a string or an object with a string \"content\"");
      }
    }
    BN_ASSIGN_OR_RETURN(out.add_bos_token, f.OptionalBool("add_bos_token"));
    BN_ASSIGN_OR_RETURN(out.add_eos_token, f.OptionalBool("add_eos_token"));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(Av(source), ": ", e.what()));
  }
  return out;
}

absl::StatusOr<HfTokenizerConfig> LoadHfTokenizerConfig(const std::string& path) {
  BN_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path, kMaxTokenizerConfigBytes));
  return ParseHfTokenizerConfig(text, path);
}

}  // namespace wf::convert
