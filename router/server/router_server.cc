#include "router/server/router_server.h"

#include <signal.h>

#include <chrono>
#include <cstdio>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/grpc/callback_queue_warmer.h"
#include "common/grpc/reaction_order.h"
#include "common/status_macros.h"
#include "common/tls/tls_files.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "router/dispatch/routing_policy.h"
#include "router/dispatch/worker_pool.h"
#include "router/http/http_server.h"
#include "router/server/dispatcher.h"
#include "router/server/gateway.h"
#include "router/server/router_grpc.h"
#include "router/server/router_metrics.h"

namespace wf::router {
namespace {

void Say(const std::string& line) {
  std::printf("wf_router: %s\n", line.c_str());
  std::fflush(stdout);
}

}  // namespace

absl::Status RunRouterServer(const RouterConfig& config) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  BN_ASSIGN_OR_RETURN(std::vector<std::string> api_keys, LoadApiKeys(config));
  BN_ASSIGN_OR_RETURN(PolicyKind policy_kind, ParsePolicyKind(config.policy));
  RoutingOptions ro;
  ro.policy = policy_kind;
  ro.prefix_weight = config.prefix_weight;
  ro.queue_weight = config.queue_weight;
  ro.kv_weight = config.kv_weight;
  ro.balance_abs_threshold = static_cast<int>(config.balance_abs_threshold);
  ro.balance_rel_threshold = config.balance_rel_threshold;
  BN_ASSIGN_OR_RETURN(std::unique_ptr<RoutingPolicy> policy, RoutingPolicy::Create(ro));

  // TLS files are read once, here, so that a bad one stops the start-up
  // before anything listens (the errors name the file).
  std::optional<tls::KeyPair> server_tls;
  if (!config.tls_cert_file.empty()) {
    absl::StatusOr<tls::KeyPair> pair = tls::LoadKeyPair(config.tls_cert_file, config.tls_key_file);
    if (!pair.ok()) return pair.status();
    server_tls = *std::move(pair);
  }
  WorkerPoolOptions po;
  if (!config.worker_tls_ca_file.empty()) {
    BN_ASSIGN_OR_RETURN(std::string roots, tls::LoadCaBundle(config.worker_tls_ca_file));
    grpc::SslCredentialsOptions so;
    so.pem_root_certs = std::move(roots);
    po.channel_credentials = grpc::SslCredentials(so);
    po.tls_server_name = config.worker_tls_server_name;
  }
  po.static_workers = config.workers;
  po.dns_workers = config.worker_dns;
  po.dns_refresh = absl::Seconds(config.dns_refresh_seconds);
  po.report_interval_ms = static_cast<int>(config.worker_report_interval_ms);
  BN_ASSIGN_OR_RETURN(std::unique_ptr<WorkerPool> pool, WorkerPool::Create(po));

  RouterMetrics metrics;
  Dispatcher dispatcher(pool.get(), policy.get(), &metrics, absl::Seconds(config.request_timeout_seconds),
                        static_cast<int>(config.max_retries), absl::Seconds(config.stall_timeout_seconds));
  GatewayOptions go;
  go.api_keys = api_keys;
  go.session_header = config.session_header;
  go.model_name = config.model_name;
  go.log_requests = config.log_requests;
  go.limits.max_body_bytes = static_cast<size_t>(config.max_body_bytes);
  go.limits.max_n = static_cast<int>(config.max_n);
  go.max_streams_per_key = static_cast<int>(config.max_streams_per_key);
  go.max_prompt_tokens = static_cast<int>(config.max_prompt_tokens);
  go.max_output_tokens = static_cast<int>(config.max_output_tokens);
  if (go.max_streams_per_key > 0 && api_keys.empty()) {
    WF_LOG(WARNING) << "--max-streams-per-key counts per API key, and no key is configured: it limits nothing";
  }
  Gateway gateway(pool.get(), &dispatcher, &metrics, go);

  // Each client connection is a descriptor; the usual soft limit (1024) is
  // below what one router is meant to hold.
  if (auto fds = http::RaiseOpenFileLimit(static_cast<size_t>(config.max_connections) + 256); !fds.ok()) {
    WF_LOG(WARNING) << "open-file limit: " << fds.status();
  }
  http::ServerOptions ho;
  ho.host = config.host;
  ho.port = static_cast<int>(config.http_port);
  ho.io_threads = static_cast<int>(config.io_threads);
  ho.max_body_bytes = static_cast<size_t>(config.max_body_bytes);
  ho.max_connections = static_cast<int>(config.max_connections);
  ho.max_header_bytes = static_cast<size_t>(config.max_header_bytes);
  ho.tls_cert_file = config.tls_cert_file;
  ho.tls_key_file = config.tls_key_file;
  ho.header_timeout = ho.body_timeout =
      std::chrono::milliseconds(static_cast<int64_t>(config.read_timeout_seconds * 1000));
  BN_ASSIGN_OR_RETURN(std::unique_ptr<http::HttpServer> http,
                      http::HttpServer::Start(ho, [&gateway](http::Request req, std::shared_ptr<http::ResponseWriter> w) {
                        gateway.Handle(std::move(req), std::move(w));
                      }));
  Say(absl::StrCat("http listening on ", config.host, ":", http->port()));

  RouterService router_service(&gateway, pool.get(), &dispatcher, &metrics);
  std::unique_ptr<grpc::Server> grpc_server;
  if (config.grpc_port >= 0) {
    grpc::EnableDefaultHealthCheckService(true);
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
    grpc::ServerBuilder builder;
    int port = 0;
    const std::string address = absl::StrCat(config.host, ":", config.grpc_port);
    std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
    if (server_tls.has_value()) {
      grpc::SslServerCredentialsOptions so;
      so.pem_key_cert_pairs.push_back({server_tls->private_key_pem, server_tls->cert_chain_pem});
      credentials = grpc::SslServerCredentials(so);
    }
    builder.AddListeningPort(address, credentials, &port);
    builder.RegisterService(&router_service);
    grpc_util::PublishToHandlers();
    grpc_server = builder.BuildAndStart();
    if (grpc_server == nullptr || port == 0) {
      return absl::UnavailableError(absl::StrCat("cannot listen for gRPC on ", address));
    }
    Say(absl::StrCat("grpc listening on ", config.host, ":", port));
  }
  // Streams to the workers are callback calls too: without the gRPC front,
  // an in-process-only server answers the warmer's checks (UNIMPLEMENTED).
  grpc::CallbackGenericService warm_service;
  std::unique_ptr<grpc::Server> warm_server;
  if (grpc_server == nullptr) {
    grpc::ServerBuilder builder;
    builder.RegisterCallbackGenericService(&warm_service);
    warm_server = builder.BuildAndStart();
    if (warm_server == nullptr) return absl::InternalError("cannot start the in-process gRPC server");
  }
  grpc::Server* warm_target = grpc_server != nullptr ? grpc_server.get() : warm_server.get();
  auto warmer = std::make_unique<grpc_util::CallbackQueueWarmer>(warm_target->InProcessChannel(grpc::ChannelArguments()));
  WF_LOG(INFO) << "clients: " << (server_tls.has_value() ? "HTTPS and TLS gRPC (" + config.tls_cert_file + ")" : "plain HTTP and gRPC")
               << "; workers: " << (config.worker_tls_ca_file.empty() ? "plaintext gRPC" : "TLS gRPC");
  Say(absl::StrCat("started (", config.workers.size(), " static workers, ", config.worker_dns.size(),
                   " DNS names, policy ", config.policy, ")"));

  // Worker-state gauges and gRPC health follow the pool until a signal.
  std::atomic<bool> stop{false};
  std::thread watcher([&] {
    while (!stop.load()) {
      int healthy = 0, unhealthy = 0, open = 0;
      for (const WorkerStatus& w : pool->Status()) {
        if (w.breaker == CircuitBreaker::State::kOpen) {
          ++open;
        } else if (w.healthy) {
          ++healthy;
        } else {
          ++unhealthy;
        }
      }
      metrics.SetWorkers(healthy, unhealthy, open);
      if (grpc_server != nullptr && grpc_server->GetHealthCheckService() != nullptr) {
        grpc_server->GetHealthCheckService()->SetServingStatus(healthy > 0);
      }
      if (healthy > 0) (void)gateway.Tokenizer();  // warm: the first request should not wait for it
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });

  int sig = 0;
  sigwait(&signals, &sig);
  Say(absl::StrCat("stopping (signal ", sig, ")"));
  stop.store(true);
  watcher.join();
  warmer.reset();
  if (warm_server != nullptr) warm_server->Shutdown();
  if (grpc_server != nullptr) {
    grpc_server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc_server->Wait();
  }
  grpc_util::AfterHandlers();
  http->Stop();
  Say("stopped");
  return absl::OkStatus();
}

}  // namespace wf::router
