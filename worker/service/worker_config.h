// Configuration of a serving wf_worker: command-line flags and an optional
// YAML file (--config FILE), resolved with the precedence
//
//   built-in defaults  <  YAML file  <  flags given on the command line.
//
// Every setting has one flag (kebab-case, --max-running) and one YAML key
// (the same name in snake_case, max_running); worker.example.yaml next to
// this file lists every key with its default.
//
// How wf_worker's main uses it (its other flags, e.g. --prompt, --benchmark,
// live in the same FlagSet; the worker flags include --model-path, --threads
// and --log-level, so main must not register those itself):
//
//   WorkerConfig config;                    // built-in defaults
//   FlagSet flags("wf_worker --model-path FILE [options]");
//   RegisterWorkerFlags(&flags, &config);   // flags write into `config`
//   flags.String("prompt", &prompt, "...");  // mode-specific flags
//   BN_RETURN_IF_ERROR(flags.Parse(argc, argv));
//   BN_ASSIGN_OR_RETURN(config, ResolveWorkerConfig(flags, config));
//
// ResolveWorkerConfig() overlays the --config file on `config` except for the
// keys whose flag was given (FlagSet::WasSet), then validates the result. A
// value pre-set in `config` before RegisterWorkerFlags() acts as the default.
#ifndef WF_WORKER_SERVICE_WORKER_CONFIG_H_
#define WF_WORKER_SERVICE_WORKER_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/flags.h"

namespace wf::service {

struct WorkerConfig {
  // Model.
  std::string model_path;   // GGUF model file; required
  std::string model_name;   // name reported to the router and in metrics; "" = the file name without .gguf
  int64_t max_context = 0;  // context limit (prompt + generated) in tokens; 0 = the model's training context
  // Output head: "f16" (the file's weights, exact) or "q8" (int8 with one
  // scale per row, quantized at load: faster decode, logits drift slightly).
  std::string head_type = "f16";
  std::string kv_cache_type = "f16";  // f16 | q8

  // Network.
  std::string host = "0.0.0.0";  // gRPC listen address
  int64_t port = 50051;          // gRPC port; 0 = any free port (printed at start-up)
  std::string metrics_host = "0.0.0.0";
  int64_t metrics_port = 9091;                   // Prometheus /metrics port; 0 = any free port, -1 = no metrics server
  int64_t max_message_bytes = int64_t{4} << 20;  // largest gRPC message accepted or sent
  std::string tls_cert_file;  // PEM certificate chain: serve gRPC over TLS (with tls_key_file); "" = plaintext
  std::string tls_key_file;   // PEM private key (unencrypted) of tls_cert_file

  // Compute and scheduling.
  int64_t threads = 0;            // compute threads; 0 = all cores
  int64_t max_running = 16;       // requests decoded together (batch slots)
  int64_t max_waiting = 256;      // admitted requests queued beyond max_running; more are RESOURCE_EXHAUSTED
  int64_t max_step_tokens = 256;  // token positions computed per engine step (prefill chunk + decodes)
  int64_t max_new_tokens = 512;   // generation limit when a request sets none (clamped to the context left)

  // KV cache. At most one of kv_cache_tokens / kv_cache_mb may be non-zero;
  // both 0 = max_running x 1024 positions, but at least one full context (see
  // ResolveKvCacheTokens).
  int64_t kv_cache_tokens = 0;  // KV pool size in token positions
  int64_t kv_cache_mb = 0;      // KV pool size in MiB
  int64_t block_size = 16;      // token positions per KV block; power of two, 1..256
  bool prefix_caching = true;   // reuse cached KV blocks of identical prompt prefixes

  // Lifecycle and reporting.
  double drain_timeout_seconds = 30;      // on SIGTERM: time running requests get to finish
  int64_t load_report_interval_ms = 100;  // period of load reports streamed to the router
  std::string log_level = "info";         // debug, info, warning or error

  // The YAML file named by --config ("" = none). Not a YAML key.
  std::string config_file;

  friend bool operator==(const WorkerConfig&, const WorkerConfig&) = default;
};

// The YAML keys, in declaration order (each flag is the key with '-' for '_').
std::vector<std::string> WorkerConfigKeys();

// Registers the flags of every WorkerConfig field on `flags`, writing into
// `*config` (which must outlive `flags`), plus --config FILE. Flags:
//   --model-path/-m --model-name --max-context --host --port --metrics-host
//   --metrics-port --max-message-bytes --tls-cert-file --tls-key-file --threads --max-running --max-waiting
//   --max-step-tokens --max-new-tokens --kv-cache-tokens --kv-cache-mb
//   --block-size --prefix-caching/--no-prefix-caching --drain-timeout-seconds
//   --load-report-interval-ms --log-level --config
void RegisterWorkerFlags(FlagSet* flags, WorkerConfig* config);

// Sets the fields named in the YAML mapping at `path` (keys are the flag names
// in snake_case; an empty file sets nothing). Errors name the file, and for a
// bad entry the line and key: NOT_FOUND or another errno code for a missing or
// unreadable file; INVALID_ARGUMENT for malformed YAML, a top level that is not
// a mapping, an unknown or duplicate key, or a value of the wrong type. On
// error `*config` is unchanged.
absl::Status ApplyYamlFile(const std::string& path, WorkerConfig* config);

// Given the FlagSet after Parse() and the config it filled (see the file
// comment), applies config.config_file if set, with flags given on the
// command line taking precedence over its keys, and validates the result.
absl::StatusOr<WorkerConfig> ResolveWorkerConfig(const FlagSet& flags, const WorkerConfig& parsed);

// OK, or INVALID_ARGUMENT listing every bad setting as "key (--flag) ...,
// got VALUE", separated by "; ". Checks: model_path set; port 0..65535;
// metrics_port -1..65535 and != port on the same host; hosts non-empty;
// tls_cert_file and tls_key_file both set or both empty (their contents are
// checked at start-up, by RunWorkerServer);
// threads 0..1024; max_running 1..4096; max_waiting 0..1000000;
// max_step_tokens max_running..1048576; max_new_tokens >= 1 (a request's
// default is clamped to the room its prompt leaves); max_context >= 0; kv_cache_tokens, kv_cache_mb >= 0 and
// not both set; kv_cache_tokens 0 or >= block_size; block_size a power of two
// in 1..256; drain_timeout_seconds 0..3600; load_report_interval_ms 1..60000;
// max_message_bytes 1 KiB..2 GiB-1; log_level debug|info|warning|error.
absl::Status ValidateWorkerConfig(const WorkerConfig& config);

// The KV pool size in token positions, a multiple of block_size, once the
// model is known: kv_cache_tokens if set; else kv_cache_mb MiB divided by
// `kv_bytes_per_token`; else max(max_running x 1024, context) where context
// is max_context or, if 0, `model_context`. INVALID_ARGUMENT if the result
// cannot hold one block, or for non-positive model_context/kv_bytes_per_token.
absl::StatusOr<int64_t> ResolveKvCacheTokens(const WorkerConfig& config, int64_t model_context,
                                             int64_t kv_bytes_per_token);

}  // namespace wf::service

#endif  // WF_WORKER_SERVICE_WORKER_CONFIG_H_
