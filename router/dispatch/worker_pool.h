// The router's view of its workers: connections, KV-cache mirrors, load,
// health and circuit breakers, for a set of workers that may change at any
// time.
//
// Workers come from a static list of "host:port" and from DNS names
// ("name:port") re-resolved every `dns_refresh` (a Kubernetes headless Service
// returns one A record per pod): addresses that appear are added, those that
// disappear are removed. A worker's id is its address as given ("host:port")
// or as resolved ("10.0.0.7:50051", "[fd00::7]:50051").
//
// Per worker, one thread keeps a WatchLoad stream (KV events on) open,
// reconnecting with exponential backoff. From the reports it keeps:
//   * the set of cached block hashes: replaced by each snapshot, updated by
//     each event; a gap in event sequence numbers drops the stream and
//     resubscribes for a fresh snapshot;
//   * the latest Load;
//   * the worker's instance id: a new one (the worker restarted) resets the
//     mirror and the breaker, and GetModelInfo is called again.
// The first worker whose model is accepted defines the pool's model (fetched
// with include_tokenizer, see ModelInfo()); a worker serving another model
// (name, architecture, vocabulary size, KV block size or hash scheme, chat
// format, BOS policy, pre-tokenizer) is logged once and never healthy.
//
// A worker is healthy when its stream is up, its model is accepted, it is not
// silent (see SilentWorkers: no report for longer than stale_reports x
// report_interval while other workers' reports keep arriving), it is not
// draining, and its circuit breaker lets requests through. A stream silent
// for longer than stream_idle_timeout is cancelled and reopened; a stream
// that ended is reopened after a backoff, or as soon as the worker's channel
// connects again.
//
// "pending" counts requests this router dispatched (MarkDispatched) that no
// later report can reflect yet: a dispatch is taken as included in the first
// report received more than pending_grace after it.
//
// Example:
//   WorkerPoolOptions o;
//   o.static_workers = {"10.0.0.5:50051"};
//   o.dns_workers = {"wf-worker.default.svc.cluster.local:50051"};
//   BN_ASSIGN_OR_RETURN(auto pool, WorkerPool::Create(std::move(o)));
//   BN_RETURN_IF_ERROR(pool->WaitForHealthy(1, absl::Seconds(30)));
//   std::vector<WorkerView> views = pool->Views(hashes);
//   ... choose views[i] with a RoutingPolicy ...
//   pool->MarkDispatched(id);
//   auto stub = pool->Stub(id);  // Generate(...)
//   pool->MarkFinished(id, /*ok=*/status_is_not_a_worker_failure);
//
// Threading: every public method is thread-safe. The pool owns one thread per
// worker and one housekeeping thread (DNS refresh, idle-stream watchdog); the
// destructor stops and joins them all.
#ifndef WF_ROUTER_DISPATCH_WORKER_POOL_H_
#define WF_ROUTER_DISPATCH_WORKER_POOL_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "grpcpp/grpcpp.h"
#include "router/dispatch/circuit_breaker.h"
#include "router/dispatch/routing_policy.h"
#include "wrinklefree/v1/worker.grpc.pb.h"
#include "wrinklefree/v1/worker.pb.h"

namespace wf::router {

// Resolves a host to "ip:port" addresses. An empty list means the name has no
// addresses (all pods gone); an error means "unknown now" (the pool keeps the
// workers it has).
using HostResolver = std::function<absl::StatusOr<std::vector<std::string>>(const std::string& host, int port)>;

// getaddrinfo over TCP; IPv4 only unless `ipv6`. NXDOMAIN / no data -> empty
// list; other failures -> Unavailable with gai_strerror's text.
absl::StatusOr<std::vector<std::string>> ResolveHost(const std::string& host, int port, bool ipv6);

// Splits "host:port" or "[v6]:port". InvalidArgument naming `what` and the
// text for a missing host, a missing port or a port outside 1..65535.
absl::Status SplitHostPort(std::string_view address, std::string_view what, std::string* host, int* port);

struct WorkerPoolOptions {
  std::vector<std::string> static_workers;  // "host:port"
  std::vector<std::string> dns_workers;     // "name:port", re-resolved
  absl::Duration dns_refresh = absl::Seconds(5);
  bool dns_ipv6 = false;  // Also use AAAA records.
  HostResolver resolver;  // Unset: ResolveHost(host, port, dns_ipv6).

  int report_interval_ms = 100;  // Requested WatchLoad interval, 10..10000.
  int stale_reports = 3;         // Unhealthy after this many intervals without a report, >= 1.
  absl::Duration stream_idle_timeout = absl::Seconds(2);  // Reopen a silent stream after this.
  absl::Duration reconnect_backoff_initial = absl::Milliseconds(50);
  absl::Duration reconnect_backoff_max = absl::Seconds(1);  // Also the channel's reconnect backoff limit.
  absl::Duration rpc_timeout = absl::Seconds(10);  // GetModelInfo.
  absl::Duration pending_grace = absl::Milliseconds(20);
  int max_message_bytes = 64 << 20;  // ModelInfo with a 128k vocabulary is several MB.
  // Credentials of every worker channel; null = plaintext. With TLS,
  // `tls_server_name` (non-empty) replaces each address's host as the name
  // the worker's certificate must hold.
  std::shared_ptr<grpc::ChannelCredentials> channel_credentials;
  std::string tls_server_name;

  CircuitBreakerOptions breaker;
  // Non-empty: only workers serving this model name are accepted.
  std::string expected_model_name;
};

// Everything known about one worker, for metrics, /ready and tests.
struct WorkerStatus {
  std::string id;
  bool healthy = false;
  bool connected = false;  // WatchLoad stream delivering reports.
  bool model_accepted = false;
  bool model_mismatch = false;
  std::string instance_id;
  CircuitBreaker::State breaker = CircuitBreaker::State::kClosed;
  int consecutive_failures = 0;
  size_t cached_blocks = 0;
  uint64_t last_sequence_number = 0;
  wrinklefree::v1::Load load;
  int pending = 0;
  absl::Time last_report = absl::InfinitePast();
  int64_t streams_opened = 0;  // Including resubscriptions.
  int64_t resyncs = 0;         // Resubscriptions after an event gap.
  int64_t restarts = 0;        // Instance id changes seen.
};

class WorkerPool {
 public:
  // Validates the options (InvalidArgument naming the option or address),
  // resolves the DNS names once (failures are logged, not fatal) and starts
  // the threads. Returns before any worker is connected.
  static absl::StatusOr<std::unique_ptr<WorkerPool>> Create(WorkerPoolOptions options);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // One view per known worker, sorted by id, with matched_blocks = the longest
  // prefix of `hashes` in that worker's mirror.
  std::vector<WorkerView> Views(absl::Span<const uint64_t> hashes) const;

  // The channel / stub of a known worker; nullptr if `id` is unknown (it may
  // have been removed since Views()). Stubs are thread-safe.
  std::shared_ptr<grpc::Channel> Channel(std::string_view id) const;
  std::shared_ptr<wrinklefree::v1::Worker::Stub> Stub(std::string_view id) const;

  // A request was sent to `id` (counts as pending; in half-open it is the
  // breaker's probe). Unknown ids are ignored.
  void MarkDispatched(std::string_view id);
  // Its outcome: ok = false for failures of the worker (transport errors,
  // UNAVAILABLE, INTERNAL, deadline), not for the client's own errors.
  void MarkFinished(std::string_view id, bool ok);

  // OK once at least `n` workers are healthy; DeadlineExceeded (saying how
  // many are healthy and known) if that does not happen within `timeout`.
  absl::Status WaitForHealthy(int n, absl::Duration timeout) const;

  // The pool's model, with its tokenizer (see the file comment). Unavailable
  // until a worker's model has been accepted.
  absl::StatusOr<wrinklefree::v1::ModelInfo> ModelInfo() const;

  // One entry per known worker, sorted by id.
  std::vector<WorkerStatus> Status() const;
  // The mirrored cached hashes of `id`, sorted (empty if unknown).
  std::vector<uint64_t> CachedHashes(std::string_view id) const;

  // Ids of the workers that sent no load report for longer than `silence`
  // while the pool kept receiving other workers' reports (stopped or hung;
  // never reported counts as silent), sorted. When every report is late
  // alike, it is the router that fell behind, and no worker is listed.
  std::vector<std::string> SilentWorkers(absl::Duration silence) const;

 private:
  class Worker;
  struct Entry {
    std::shared_ptr<Worker> worker;
    bool from_static = false;
    bool from_dns = false;
  };

  explicit WorkerPool(WorkerPoolOptions options);
  std::vector<std::shared_ptr<Worker>> Snapshot() const;
  std::shared_ptr<Worker> Find(std::string_view id) const;
  // Requires mu_ held.
  void AddWorkerLocked(const std::string& id, bool from_static, bool from_dns);
  void RefreshDns();
  void Housekeeping();
  // Model acceptance, called from worker threads: the reason `info` does
  // not match the pool's model, or nullopt if it does. *need_model is set
  // when the pool has no model yet (offer one with OfferModel, then ask again).
  std::optional<std::string> MatchModel(const wrinklefree::v1::ModelInfo& info, bool* need_model) const;
  void OfferModel(wrinklefree::v1::ModelInfo info);
  // The latest report of any worker, against which silence is judged.
  void NoteReport(absl::Time at);
  absl::Time NewestReport() const;

  const WorkerPoolOptions options_;
  // std::mutex rather than absl::Mutex: ThreadSanitizer sees its
  // synchronization (Debian's Abseil is not built with TSan annotations).
  mutable std::mutex mu_;
  std::condition_variable stopping_cv_;  // stopping_ became true
  bool stopping_ = false;  // guarded by mu_
  absl::flat_hash_map<std::string, Entry> workers_;  // guarded by mu_
  std::optional<wrinklefree::v1::ModelInfo> model_;  // guarded by mu_
  std::atomic<int64_t> newest_report_us_{0};  // NoteReport()
  std::thread housekeeping_;
};

}  // namespace wf::router

#endif  // WF_ROUTER_DISPATCH_WORKER_POOL_H_
