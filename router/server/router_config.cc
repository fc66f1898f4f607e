#include "router/server/router_config.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"
#include "common/tls/tls_files.h"
#include "yaml-cpp/yaml.h"

namespace wf::router {
namespace {

std::string ScalarText(const YAML::Node& n) { return n.as<std::string>(); }

}  // namespace

void RegisterRouterFlags(FlagSet* flags, RouterConfig* c) {
  flags->StringList("workers", &c->workers, "worker address host:port (repeat, or comma-separated)");
  flags->StringList("worker-dns", &c->worker_dns,
                    "worker DNS name:port, re-resolved; every address is a worker (Kubernetes headless Service)");
  flags->Double("dns-refresh-seconds", &c->dns_refresh_seconds, "how often --worker-dns names are re-resolved");
  flags->String("host", &c->host, "listen address of the HTTP gateway and the gRPC front");
  flags->Int("http-port", &c->http_port,
             "OpenAI-compatible HTTP gateway port (also /health, /ready, /metrics); 0 = any free port");
  flags->Int("grpc-port", &c->grpc_port, "gRPC front (wrinklefree.v1.Router) port; 0 = any free port, -1 = off");
  flags->String("policy", &c->policy, "routing policy: kv_affinity, least_load, round_robin or consistent_hash");
  flags->String("session-header", &c->session_header,
                "HTTP header (or gRPC session_id) keying the consistent_hash policy");
  flags->Double("prefix-weight", &c->prefix_weight, "kv_affinity: weight of the cached prefix share");
  flags->Double("queue-weight", &c->queue_weight, "kv_affinity: weight of the worker's queue (running + waiting)");
  flags->Double("kv-weight", &c->kv_weight, "kv_affinity: weight of free KV cache");
  flags->Int("balance-abs-threshold", &c->balance_abs_threshold,
             "imbalance guard: load gap (requests) beyond which least load wins");
  flags->Double("balance-rel-threshold", &c->balance_rel_threshold,
                "imbalance guard: load ratio (max/min) beyond which least load wins");
  flags->String("api-key-file", &c->api_key_file,
                "file of API keys, one per line (also env WF_API_KEYS=k1,k2); none = no authentication");
  flags->Int("max-streams-per-key", &c->max_streams_per_key,
             "concurrent generation requests per API key (HTTP and gRPC; 429 / RESOURCE_EXHAUSTED beyond); "
             "0 = unlimited");
  flags->String("tls-cert-file", &c->tls_cert_file,
                "PEM certificate chain: serve the HTTP gateway as HTTPS and the gRPC front with TLS (with --tls-key-file)");
  flags->String("tls-key-file", &c->tls_key_file, "PEM private key (unencrypted) of --tls-cert-file");
  flags->String("worker-tls-ca-file", &c->worker_tls_ca_file,
                "PEM CA bundle: connect to the workers over TLS, trusting these CAs; empty = plaintext gRPC");
  flags->String("worker-tls-server-name", &c->worker_tls_server_name,
                "name the workers' certificates must hold (with --worker-tls-ca-file); empty = each worker's host");
  flags->Double("request-timeout-seconds", &c->request_timeout_seconds, "deadline of one request upstream");
  flags->Int("max-retries", &c->max_retries, "other workers tried when one fails before the first token");
  flags->Double("stall-timeout-seconds", &c->stall_timeout_seconds,
                "a request waiting for its first token on a worker silent this long (reports stopped, others' "
                "arriving) is retried elsewhere; 0 = never");
  flags->Int("max-body-bytes", &c->max_body_bytes, "largest HTTP request body (413 beyond)");
  flags->Int("max-header-bytes", &c->max_header_bytes, "largest HTTP request line + header fields (431 beyond)");
  flags->Int("max-prompt-tokens", &c->max_prompt_tokens,
             "largest prompt in tokens (400 beyond); 0 = the workers' context limit");
  flags->Int("max-output-tokens", &c->max_output_tokens,
             "largest max_tokens a request may ask (400 beyond), also the default when it sets none; "
             "0 = what the context leaves");
  flags->Int("max-n", &c->max_n, "largest n (choices per request)");
  flags->Int("io-threads", &c->io_threads, "HTTP network threads");
  flags->Int("max-connections", &c->max_connections, "open HTTP connections (503 beyond)");
  flags->Double("read-timeout-seconds", &c->read_timeout_seconds,
                "time allowed to receive a request's header, and then its body (408 beyond; bounds slow clients)");
  flags->Int("worker-report-interval-ms", &c->worker_report_interval_ms, "load report period asked of workers");
  flags->String("model-name", &c->model_name, "served model name; empty = the workers' model name");
  flags->Bool("log-requests", &c->log_requests, "log one line per request (never the prompt text)");
  flags->String("log-level", &c->log_level, "debug, info, warning or error");
  flags->String("config", &c->config_file, "YAML file of settings (keys = flag names with '_'); flags win");
}

absl::StatusOr<RouterConfig> ResolveRouterConfig(const FlagSet& flags, const RouterConfig& parsed) {
  RouterConfig config = parsed;
  if (!config.config_file.empty()) {
    YAML::Node root;
    try {
      root = YAML::LoadFile(config.config_file);
    } catch (const YAML::BadFile&) {
      return absl::NotFoundError(absl::StrCat("cannot read config file ", config.config_file));
    } catch (const YAML::Exception& e) {
      return absl::InvalidArgumentError(absl::StrCat(config.config_file, ":", e.mark.line + 1, ": malformed YAML: ", e.msg));
    }
    if (!root.IsNull() && !root.IsMap()) {
      return absl::InvalidArgumentError(absl::StrCat(config.config_file, ": the top level must be a mapping"));
    }
    // The file becomes flags: one parser, one set of checks and messages.
    std::vector<std::string> args = {"wf_router"};
    std::vector<std::string> keys;
    try {
      for (const auto& kv : root) {
        const std::string key = ScalarText(kv.first);
        const std::string flag = absl::StrReplaceAll(key, {{"_", "-"}});
        const int line = kv.first.Mark().line + 1;
        if (key == "config") {
          return absl::InvalidArgumentError(absl::StrCat(config.config_file, ":", line, ": 'config' cannot be set in a config file"));
        }
        if (flags.WasSet(flag)) continue;
        if (kv.second.IsSequence()) {
          for (const auto& item : kv.second) args.push_back(absl::StrCat("--", flag, "=", ScalarText(item)));
        } else if (kv.second.IsScalar()) {
          args.push_back(absl::StrCat("--", flag, "=", ScalarText(kv.second)));
        } else {
          return absl::InvalidArgumentError(
              absl::StrCat(config.config_file, ":", line, ": key '", key, "' needs a value or a list"));
        }
        keys.push_back(absl::StrCat(key, " (line ", line, ")"));
      }
    } catch (const YAML::Exception& e) {
      return absl::InvalidArgumentError(absl::StrCat(config.config_file, ":", e.mark.line + 1, ": ", e.msg));
    }
    RouterConfig from_file = config;
    // List flags append; start the file's lists empty unless the command line set them.
    if (!flags.WasSet("workers")) from_file.workers.clear();
    if (!flags.WasSet("worker-dns")) from_file.worker_dns.clear();
    FlagSet file_flags("");
    RegisterRouterFlags(&file_flags, &from_file);
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    if (absl::Status s = file_flags.Parse(static_cast<int>(argv.size()), argv.data()); !s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(config.config_file, ": ", absl::StrReplaceAll(s.message(), {{"--", ""}, {"flag", "key"}})));
    }
    if (flags.WasSet("workers")) from_file.workers = config.workers;
    if (flags.WasSet("worker-dns")) from_file.worker_dns = config.worker_dns;
    config = std::move(from_file);
  }
  // "--workers a:1,b:2" and YAML lists both end up one address per entry.
  auto split = [](std::vector<std::string>* v) {
    std::vector<std::string> out;
    for (const std::string& s : *v) {
      for (absl::string_view part : absl::StrSplit(s, ',', absl::SkipWhitespace())) {
        out.emplace_back(absl::StripAsciiWhitespace(part));
      }
    }
    *v = std::move(out);
  };
  split(&config.workers);
  split(&config.worker_dns);
  BN_RETURN_IF_ERROR(ValidateRouterConfig(config));
  return config;
}

absl::Status ValidateRouterConfig(const RouterConfig& c) {
  std::vector<std::string> bad;
  auto range = [&](const char* key, double v, double lo, double hi) {
    if (!(v >= lo && v <= hi)) {
      bad.push_back(absl::StrCat(key, " (--", absl::StrReplaceAll(key, {{"_", "-"}}), ") must be in ", lo, "..", hi,
                                 ", got ", v));
    }
  };
  if (c.workers.empty() && c.worker_dns.empty()) bad.push_back("give at least one of --workers or --worker-dns");
  range("http_port", static_cast<double>(c.http_port), 0, 65535);
  range("grpc_port", static_cast<double>(c.grpc_port), -1, 65535);
  range("dns_refresh_seconds", c.dns_refresh_seconds, 0.1, 3600);
  range("prefix_weight", c.prefix_weight, 0, 1000);
  range("queue_weight", c.queue_weight, 0, 1000);
  range("kv_weight", c.kv_weight, 0, 1000);
  range("balance_abs_threshold", static_cast<double>(c.balance_abs_threshold), 0, 1e6);
  range("balance_rel_threshold", c.balance_rel_threshold, 1, 1e6);
  range("request_timeout_seconds", c.request_timeout_seconds, 0.1, 86400);
  range("max_retries", static_cast<double>(c.max_retries), 0, 16);
  range("stall_timeout_seconds", c.stall_timeout_seconds, 0, 3600);
  range("max_body_bytes", static_cast<double>(c.max_body_bytes), 1024, 1 << 30);
  range("max_header_bytes", static_cast<double>(c.max_header_bytes), 1024, 1 << 20);
  range("max_prompt_tokens", static_cast<double>(c.max_prompt_tokens), 0, 1 << 24);
  range("max_output_tokens", static_cast<double>(c.max_output_tokens), 0, 1 << 24);
  range("max_streams_per_key", static_cast<double>(c.max_streams_per_key), 0, 1000000);
  if (absl::Status s = tls::CheckCertKeyPairSettings(c.tls_cert_file, c.tls_key_file, "--tls-cert-file",
                                                     "--tls-key-file");
      !s.ok()) {
    bad.push_back(std::string(s.message()));
  }
  if (!c.worker_tls_server_name.empty() && c.worker_tls_ca_file.empty()) {
    bad.push_back("--worker-tls-server-name needs --worker-tls-ca-file (TLS to the workers)");
  }
  range("max_n", static_cast<double>(c.max_n), 1, 128);
  range("io_threads", static_cast<double>(c.io_threads), 1, 256);
  range("max_connections", static_cast<double>(c.max_connections), 1, 1000000);
  range("read_timeout_seconds", c.read_timeout_seconds, 0.1, 3600);
  range("worker_report_interval_ms", static_cast<double>(c.worker_report_interval_ms), 10, 10000);
  if (c.policy != "kv_affinity" && c.policy != "least_load" && c.policy != "round_robin" &&
      c.policy != "consistent_hash") {
    bad.push_back(absl::StrCat("policy (--policy) must be kv_affinity, least_load, round_robin or consistent_hash, got '",
                               c.policy, "'"));
  }
  if (c.host.empty()) bad.push_back("host (--host) must not be empty");
  if (c.http_port > 0 && c.http_port == c.grpc_port) bad.push_back("http_port and grpc_port must differ");
  if (c.log_level != "debug" && c.log_level != "info" && c.log_level != "warning" && c.log_level != "error") {
    bad.push_back(absl::StrCat("log_level (--log-level) must be debug, info, warning or error, got '", c.log_level, "'"));
  }
  if (bad.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("invalid router config: ", absl::StrJoin(bad, "; ")));
}

absl::StatusOr<std::vector<std::string>> LoadApiKeys(const RouterConfig& config) {
  std::vector<std::string> keys;
  if (!config.api_key_file.empty()) {
    std::ifstream in(config.api_key_file);
    if (!in) return absl::NotFoundError(absl::StrCat("cannot read --api-key-file ", config.api_key_file));
    std::string line;
    while (std::getline(in, line)) {
      absl::string_view k = absl::StripAsciiWhitespace(line);
      if (!k.empty() && k[0] != '#') keys.emplace_back(k);
    }
    if (keys.empty()) return absl::InvalidArgumentError(absl::StrCat("--api-key-file ", config.api_key_file, " holds no key"));
  }
  if (const char* env = std::getenv("WF_API_KEYS"); env != nullptr) {
    for (absl::string_view k : absl::StrSplit(env, ',', absl::SkipWhitespace())) {
      keys.emplace_back(absl::StripAsciiWhitespace(k));
    }
  }
  return keys;
}

}  // namespace wf::router
