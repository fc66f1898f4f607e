// wf_router: the stateless front of a WrinkleFree cluster: an
// OpenAI-compatible HTTP gateway and a gRPC front that send each request to
// the worker most likely to hold its prompt prefix in KV cache.
#include <cstdio>
#include <iostream>
#include <string>

#include "absl/synchronization/mutex.h"
#include "common/flags.h"
#include "common/log.h"
#include "router/server/router_config.h"
#include "router/server/router_server.h"

int main(int argc, char** argv) {
  // The Abseil build we link checks lock order on every absl::Mutex
  // acquisition (gRPC's included), which cost the router about 80 ns per
  // lock pair; tests keep the check.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  wf::router::RouterConfig config;
  wf::FlagSet flags("wf_router (--workers HOST:PORT[,...] | --worker-dns NAME:PORT) [options]");
  wf::router::RegisterRouterFlags(&flags, &config);
  flags.Footer(
      "Endpoints (HTTP port): POST /v1/chat/completions, /v1/completions, /completion (llama.cpp), /tokenize,\n"
      "/detokenize; GET /v1/models, /health (liveness), /ready (503 until a worker is healthy), /metrics.\n"
      "gRPC port: wrinklefree.v1.Router (proto/wrinklefree/v1/router.proto), grpc.health.v1, reflection.\n"
      "Environment: WF_API_KEYS=k1,k2 adds API keys (Authorization: Bearer KEY).\n"
      "Security: without a key only /health, /ready and /metrics answer; keys are never logged.\n"
      "TLS: --tls-cert-file/--tls-key-file serve HTTPS and a TLS gRPC front; --worker-tls-ca-file\n"
      "connects to TLS workers (wf_worker --tls-cert-file/--tls-key-file). See router/README.md.\n"
      "SIGTERM/SIGINT: stop accepting, finish streams in flight (up to 10 s), exit 0.\n"
      "Exit status: 0 on success, 1 on a runtime error (the message names it), 2 on bad usage.");
  absl::Status parsed = flags.Parse(argc, argv);
  if (!parsed.ok()) {
    std::fprintf(stderr, "wf_router: %s\n", std::string(parsed.message()).c_str());
    return 2;
  }
  if (flags.help()) {
    std::cout << flags.Help();
    return 0;
  }
  absl::StatusOr<wf::router::RouterConfig> resolved = wf::router::ResolveRouterConfig(flags, config);
  if (!resolved.ok()) {
    std::fprintf(stderr, "wf_router: %s\n", std::string(resolved.status().message()).c_str());
    return 2;
  }
  wf::LogLevel level;
  if (wf::ParseLogLevel(resolved->log_level, &level)) wf::SetLogLevel(level);
  absl::Status s = wf::router::RunRouterServer(*resolved);
  if (!s.ok()) {
    std::fprintf(stderr, "wf_router: error: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  return 0;
}
