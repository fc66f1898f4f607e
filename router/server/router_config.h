// wf_router's settings: command-line flags and an optional YAML file
// (--config FILE) whose keys are the flag names with '_' for '-'
// (workers: [a:1, b:2], http_port: 8080, ...). Flags given on the command
// line win over the file.
//
// Example:
//   RouterConfig config;
//   FlagSet flags("wf_router ...");
//   RegisterRouterFlags(&flags, &config);
//   BN_RETURN_IF_ERROR(flags.Parse(argc, argv));
//   BN_ASSIGN_OR_RETURN(config, ResolveRouterConfig(flags, config));
#ifndef WF_ROUTER_SERVER_ROUTER_CONFIG_H_
#define WF_ROUTER_SERVER_ROUTER_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/flags.h"

namespace wf::router {

struct RouterConfig {
  std::vector<std::string> workers;     // host:port, static
  std::vector<std::string> worker_dns;  // name:port, re-resolved (Kubernetes headless Service)
  double dns_refresh_seconds = 5;
  std::string host = "0.0.0.0";
  int64_t http_port = 8080;  // OpenAI gateway + /health /ready /metrics; 0 = any free port
  int64_t grpc_port = 50061;  // wrinklefree.v1.Router; 0 = any free port; -1 = off
  std::string policy = "kv_affinity";  // kv_affinity | least_load | round_robin | consistent_hash
  std::string session_header = "x-session-id";  // key for consistent_hash
  double prefix_weight = 2.0;  // kv_affinity score weights
  double queue_weight = 1.0;
  double kv_weight = 1.0;
  int64_t balance_abs_threshold = 8;  // imbalance guard: fall back to least load when max-min load
  double balance_rel_threshold = 1.5;  // exceeds both
  std::string api_key_file;  // one key per line; also env WF_API_KEYS=k1,k2
  int64_t max_streams_per_key = 0;  // concurrent generation requests per API key (429 beyond); 0 = unlimited
  std::string tls_cert_file;  // PEM chain: HTTPS gateway and TLS gRPC front; with tls_key_file
  std::string tls_key_file;   // PEM private key (unencrypted)
  std::string worker_tls_ca_file;      // PEM CA bundle: connect to the workers over TLS; empty = plaintext
  std::string worker_tls_server_name;  // name the workers' certificates must hold; empty = each address's host
  double request_timeout_seconds = 600;
  int64_t max_retries = 2;  // other workers tried before the first token
  // A request still waiting for its first token on a worker whose load reports
  // stopped (while other workers' arrive) for this long is retried elsewhere;
  // 0 = never.
  double stall_timeout_seconds = 1;
  int64_t max_body_bytes = 4 << 20;
  int64_t max_header_bytes = 16 << 10;  // request line + header fields (431 beyond)
  int64_t max_prompt_tokens = 0;  // 0 = the workers' context limit
  int64_t max_output_tokens = 0;  // largest max_tokens, and the default when a request sets none; 0 = context
  int64_t max_n = 8;
  int64_t io_threads = 2;
  int64_t max_connections = 4096;
  double read_timeout_seconds = 30;  // for a request's header, then again for its body (408)
  int64_t worker_report_interval_ms = 100;
  std::string model_name;  // served name; empty = the workers' model name
  bool log_requests = false;  // one line per request (never the prompt text)
  std::string log_level = "info";
  std::string config_file;  // --config
};

void RegisterRouterFlags(FlagSet* flags, RouterConfig* config);

// Applies config.config_file (keys not given as flags), then validates:
// INVALID_ARGUMENT naming the flag/key and the value; the YAML file's errors
// name the file, the key and the line.
absl::StatusOr<RouterConfig> ResolveRouterConfig(const FlagSet& flags, const RouterConfig& parsed);

absl::Status ValidateRouterConfig(const RouterConfig& config);

// Keys from api_key_file and WF_API_KEYS (empty: no authentication).
absl::StatusOr<std::vector<std::string>> LoadApiKeys(const RouterConfig& config);

}  // namespace wf::router

#endif  // WF_ROUTER_SERVER_ROUTER_CONFIG_H_
