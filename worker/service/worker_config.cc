#include "worker/service/worker_config.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <set>
#include <type_traits>
#include <variant>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "common/file_util.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "yaml-cpp/yaml.h"

namespace wf::service {
namespace {

using FieldPtr =
    std::variant<std::string WorkerConfig::*, int64_t WorkerConfig::*, double WorkerConfig::*, bool WorkerConfig::*>;

struct Setting {
  const char* key;    // YAML key; the flag is the same with '-' for '_'
  const char* alias;  // one-dash short flag or ""
  FieldPtr field;
  const char* help;
};

// One table drives the flags, the YAML keys and the flag-over-file overlay,
// so the three cannot disagree.
const Setting kSettings[] = {
    {"model_path", "m", &WorkerConfig::model_path, "GGUF model file (bitnet-b1.58: I2_S, TQ1_0 or TQ2_0)"},
    {"model_name", "", &WorkerConfig::model_name, "model name for the router and metrics; empty = file name"},
    {"max_context", "", &WorkerConfig::max_context, "context limit in tokens; 0 = the model's training context"},
    {"head_type", "", &WorkerConfig::head_type,
     "output head: f16 (exact) or q8 (int8 per row, quantized at load; faster, logits drift slightly)"},
    {"host", "", &WorkerConfig::host, "gRPC listen address"},
    {"port", "", &WorkerConfig::port, "gRPC port; 0 = any free port (printed at start-up)"},
    {"metrics_host", "", &WorkerConfig::metrics_host, "Prometheus /metrics listen address"},
    {"metrics_port", "", &WorkerConfig::metrics_port, "Prometheus /metrics port; 0 = any free port, -1 = off"},
    {"max_message_bytes", "", &WorkerConfig::max_message_bytes, "largest gRPC message in bytes"},
    {"tls_cert_file", "", &WorkerConfig::tls_cert_file,
     "PEM certificate chain: serve gRPC over TLS (with --tls-key-file); empty = plaintext"},
    {"tls_key_file", "", &WorkerConfig::tls_key_file, "PEM private key (unencrypted) of --tls-cert-file"},
    {"threads", "", &WorkerConfig::threads, "compute threads; 0 = all cores"},
    {"max_running", "", &WorkerConfig::max_running, "requests decoded together"},
    {"max_waiting", "", &WorkerConfig::max_waiting, "requests queued beyond --max-running; more are refused"},
    {"max_step_tokens", "", &WorkerConfig::max_step_tokens, "token positions per engine step"},
    {"max_new_tokens", "", &WorkerConfig::max_new_tokens, "generation limit when a request sets none"},
    {"kv_cache_tokens", "", &WorkerConfig::kv_cache_tokens,
     "KV pool in token positions; 0 (and --kv-cache-mb 0) = max(max-running x 1024, context)"},
    {"kv_cache_mb", "", &WorkerConfig::kv_cache_mb, "KV pool in MiB, instead of --kv-cache-tokens"},
    {"kv_cache_type", "", &WorkerConfig::kv_cache_type,
     "KV cache elements: f16 (exact) or q8 (int8 per 32 values; 0.56x the bytes, logits drift slightly)"},
    {"block_size", "", &WorkerConfig::block_size, "token positions per KV block (power of two)"},
    {"prefix_caching", "", &WorkerConfig::prefix_caching, "reuse KV blocks of identical prompt prefixes"},
    {"drain_timeout_seconds", "", &WorkerConfig::drain_timeout_seconds,
     "on SIGTERM, seconds running requests get to finish"},
    {"load_report_interval_ms", "", &WorkerConfig::load_report_interval_ms, "period of load reports to the router, ms"},
    {"log_level", "", &WorkerConfig::log_level, "debug, info, warning or error"},
};

std::string FlagName(const char* key) { return absl::StrReplaceAll(key, {{"_", "-"}}); }

const Setting* FindSetting(const std::string& key) {
  for (const Setting& s : kSettings) {
    if (key == s.key) return &s;
  }
  return nullptr;
}

// "file:LINE" (1-based) when the node has a position, else "file".
std::string Where(const std::string& path, const YAML::Mark& mark) {
  if (mark.is_null() || mark.line < 0) return path;
  return absl::StrCat(path, ":", mark.line + 1);
}

absl::Status SetFromYaml(const std::string& path, const YAML::Node& key_node, const YAML::Node& value,
                         const FieldPtr& field, WorkerConfig* config) {
  // A missing value is positioned after its key, often on the next line.
  const YAML::Mark mark = value.IsNull() ? key_node.Mark() : value.Mark();
  const std::string where = absl::StrCat(Where(path, mark), ": key '", key_node.Scalar(), "'");
  if (value.IsNull()) return absl::InvalidArgumentError(absl::StrCat(where, " has no value"));
  if (!value.IsScalar()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, " needs a single value, got a ", value.IsSequence() ? "list" : "mapping"));
  }
  const std::string& text = value.Scalar();
  return std::visit(
      [&](auto member) -> absl::Status {
        using T = std::remove_reference_t<decltype(config->*member)>;
        if constexpr (std::is_same_v<T, std::string>) {
          config->*member = text;
        } else if constexpr (std::is_same_v<T, int64_t>) {
          int64_t v = 0;
          if (!absl::SimpleAtoi(text, &v)) {
            return absl::InvalidArgumentError(absl::StrCat(where, " needs an integer, got '", text, "'"));
          }
          config->*member = v;
        } else if constexpr (std::is_same_v<T, double>) {
          double v = 0;
          if (!absl::SimpleAtod(text, &v) || !std::isfinite(v)) {
            return absl::InvalidArgumentError(absl::StrCat(where, " needs a number, got '", text, "'"));
          }
          config->*member = v;
        } else {
          static_assert(std::is_same_v<T, bool>);
          bool v = false;
          if (!YAML::convert<bool>::decode(value, v)) {
            return absl::InvalidArgumentError(absl::StrCat(where, " needs true or false, got '", text, "'"));
          }
          config->*member = v;
        }
        return absl::OkStatus();
      },
      field);
}

absl::Status ApplyYamlText(const std::string& path, const std::string& text, WorkerConfig* config) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(Where(path, e.mark), ": malformed YAML: ", e.msg));
  }
  if (root.IsNull()) return absl::OkStatus();  // empty file or only comments
  if (!root.IsMap()) {
    return absl::InvalidArgumentError(
        absl::StrCat(Where(path, root.Mark()), ": the top level must be a mapping of key: value"));
  }
  std::set<std::string> seen;
  for (auto it = root.begin(); it != root.end(); ++it) {
    // The iterator yields a temporary pair; copy the (cheap, shared) nodes.
    const YAML::Node key_node = it->first;
    const YAML::Node value_node = it->second;
    if (!key_node.IsScalar()) {
      return absl::InvalidArgumentError(absl::StrCat(Where(path, key_node.Mark()), ": keys must be plain names"));
    }
    const std::string key = key_node.Scalar();
    const Setting* setting = FindSetting(key);
    if (setting == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(Where(path, key_node.Mark()), ": unknown key '", key,
                                                     "'; known keys: ", absl::StrJoin(WorkerConfigKeys(), ", ")));
    }
    if (!seen.insert(key).second) {
      return absl::InvalidArgumentError(absl::StrCat(Where(path, key_node.Mark()), ": duplicate key '", key, "'"));
    }
    BN_RETURN_IF_ERROR(SetFromYaml(path, key_node, value_node, setting->field, config));
  }
  return absl::OkStatus();
}

bool IsPowerOfTwo(int64_t v) { return v > 0 && (v & (v - 1)) == 0; }

}  // namespace

std::vector<std::string> WorkerConfigKeys() {
  std::vector<std::string> keys;
  for (const Setting& s : kSettings) keys.push_back(s.key);
  return keys;
}

void RegisterWorkerFlags(FlagSet* flags, WorkerConfig* config) {
  for (const Setting& s : kSettings) {
    std::visit(
        [&](auto member) {
          using T = std::remove_reference_t<decltype(config->*member)>;
          if constexpr (std::is_same_v<T, std::string>) {
            flags->String(FlagName(s.key), &(config->*member), s.help, s.alias);
          } else if constexpr (std::is_same_v<T, int64_t>) {
            flags->Int(FlagName(s.key), &(config->*member), s.help, s.alias);
          } else if constexpr (std::is_same_v<T, double>) {
            flags->Double(FlagName(s.key), &(config->*member), s.help, s.alias);
          } else {
            flags->Bool(FlagName(s.key), &(config->*member), s.help, s.alias);
          }
        },
        s.field);
  }
  flags->String("config", &config->config_file,
                "YAML file of settings (keys = these flag names in snake_case); flags given override it");
}

absl::Status ApplyYamlFile(const std::string& path, WorkerConfig* config) {
  absl::StatusOr<std::string> text = ReadFileToString(path, size_t{1} << 20);
  if (!text.ok()) {
    return absl::Status(text.status().code(), absl::StrCat("config file: ", text.status().message()));
  }
  WorkerConfig updated = *config;
  try {
    BN_RETURN_IF_ERROR(ApplyYamlText(path, *text, &updated));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": cannot read YAML: ", e.what()));
  }
  *config = std::move(updated);
  return absl::OkStatus();
}

absl::StatusOr<WorkerConfig> ResolveWorkerConfig(const FlagSet& flags, const WorkerConfig& parsed) {
  WorkerConfig result = parsed;
  if (!parsed.config_file.empty()) {
    BN_RETURN_IF_ERROR(ApplyYamlFile(parsed.config_file, &result));
    for (const Setting& s : kSettings) {
      if (!flags.WasSet(FlagName(s.key))) continue;
      std::visit([&](auto member) { result.*member = parsed.*member; }, s.field);
    }
  }
  BN_RETURN_IF_ERROR(ValidateWorkerConfig(result));
  return result;
}

absl::Status ValidateWorkerConfig(const WorkerConfig& c) {
  std::vector<std::string> errors;
  auto bad = [&](const char* key, const std::string& what, const auto& got) {
    errors.push_back(absl::StrCat(key, " (--", FlagName(key), ") ", what, ", got ", got));
  };
  auto range = [&](const char* key, int64_t v, int64_t lo, int64_t hi) {
    if (v < lo || v > hi) bad(key, absl::StrCat("must be in ", lo, "..", hi), v);
  };

  if (c.model_path.empty()) bad("model_path", "is required", "\"\"");
  if (c.host.empty()) bad("host", "must not be empty", "\"\"");
  if (c.metrics_host.empty()) bad("metrics_host", "must not be empty", "\"\"");
  range("port", c.port, 0, 65535);
  range("metrics_port", c.metrics_port, -1, 65535);
  if (c.metrics_port > 0 && c.metrics_port == c.port && c.metrics_host == c.host) {
    bad("metrics_port", "must differ from port on the same host", c.metrics_port);
  }
  range("max_message_bytes", c.max_message_bytes, 1024, (int64_t{1} << 31) - 1);
  if (c.tls_cert_file.empty() != c.tls_key_file.empty()) {
    const bool cert = c.tls_cert_file.empty();
    bad(cert ? "tls_cert_file" : "tls_key_file",
        absl::StrCat("is required with ", cert ? "tls_key_file (--tls-key-file)" : "tls_cert_file (--tls-cert-file)"),
        "\"\"");
  }
  range("threads", c.threads, 0, 1024);
  range("max_running", c.max_running, 1, 4096);
  range("max_waiting", c.max_waiting, 0, 1000000);
  if (c.max_step_tokens < c.max_running || c.max_step_tokens > (int64_t{1} << 20)) {
    bad("max_step_tokens",
        absl::StrCat("must be in max_running..1048576 (one decode per running request), max_running is ",
                     c.max_running),
        c.max_step_tokens);
  }
  range("max_context", c.max_context, 0, int64_t{1} << 24);
  if (c.head_type != "f16" && c.head_type != "q8") bad("head_type", "must be f16 or q8", absl::StrCat("\"", c.head_type, "\""));
  if (c.kv_cache_type != "f16" && c.kv_cache_type != "q8") {
    bad("kv_cache_type", "must be f16 or q8", absl::StrCat("\"", c.kv_cache_type, "\""));
  }
  if (c.max_new_tokens < 1) {
    bad("max_new_tokens", "must be >= 1", c.max_new_tokens);
  }
  range("kv_cache_tokens", c.kv_cache_tokens, 0, int64_t{1} << 32);
  range("kv_cache_mb", c.kv_cache_mb, 0, int64_t{1} << 24);
  if (c.kv_cache_tokens != 0 && c.kv_cache_mb != 0) {
    bad("kv_cache_mb", absl::StrCat("cannot be combined with kv_cache_tokens (", c.kv_cache_tokens, ")"),
        c.kv_cache_mb);
  }
  if (!IsPowerOfTwo(c.block_size) || c.block_size > 256) {
    bad("block_size", "must be a power of two in 1..256", c.block_size);
  } else if (c.kv_cache_tokens > 0 && c.kv_cache_tokens < c.block_size) {
    bad("kv_cache_tokens", absl::StrCat("must hold at least one block of ", c.block_size, " tokens"),
        c.kv_cache_tokens);
  }
  if (!(c.drain_timeout_seconds >= 0 && c.drain_timeout_seconds <= 3600)) {
    bad("drain_timeout_seconds", "must be in 0..3600", c.drain_timeout_seconds);
  }
  range("load_report_interval_ms", c.load_report_interval_ms, 1, 60000);
  LogLevel level;
  if (!ParseLogLevel(c.log_level, &level)) {
    bad("log_level", "must be debug, info, warning or error", absl::StrCat("'", c.log_level, "'"));
  }
  if (errors.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("invalid worker config: ", absl::StrJoin(errors, "; ")));
}

absl::StatusOr<int64_t> ResolveKvCacheTokens(const WorkerConfig& config, int64_t model_context,
                                             int64_t kv_bytes_per_token) {
  if (model_context <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("model context must be positive, got ", model_context));
  }
  if (kv_bytes_per_token <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("KV bytes per token must be positive, got ", kv_bytes_per_token));
  }
  if (!IsPowerOfTwo(config.block_size)) {
    return absl::InvalidArgumentError(absl::StrCat("block_size must be a power of two, got ", config.block_size));
  }
  const int64_t block = config.block_size;
  int64_t tokens = 0;
  std::string source;
  if (config.kv_cache_tokens > 0) {
    tokens = config.kv_cache_tokens / block * block;
    source = absl::StrCat("kv_cache_tokens ", config.kv_cache_tokens);
  } else if (config.kv_cache_mb > 0) {
    tokens = (config.kv_cache_mb << 20) / kv_bytes_per_token / block * block;
    source = absl::StrCat("kv_cache_mb ", config.kv_cache_mb, " at ", kv_bytes_per_token, " bytes per token");
  } else {
    const int64_t context = config.max_context > 0 ? config.max_context : model_context;
    const int64_t wanted = std::max(config.max_running * 1024, context);
    tokens = (wanted + block - 1) / block * block;
    source = absl::StrCat("the default max(max_running x 1024, context ", context, ")");
  }
  if (tokens < block) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, " gives ", tokens, " KV positions, less than one block of ", block));
  }
  return tokens;
}

}  // namespace wf::service
