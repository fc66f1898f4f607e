#include "router/dispatch/worker_pool.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <mutex>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/kv/block_hash.h"
#include "common/log.h"
#include "common/string_view_compat.h"

namespace wf::router {

namespace v1 = ::wrinklefree::v1;

namespace {

std::chrono::system_clock::time_point Deadline(absl::Duration d) {
  return std::chrono::system_clock::now() + absl::ToChronoMilliseconds(d);
}

}  // namespace

// ------------------------------------------------------------------ Worker

// One worker: its channel, the thread that keeps its WatchLoad stream open,
// and everything the reports tell. All state is guarded by mu_.
class WorkerPool::Worker {
 public:
  Worker(WorkerPool* pool, std::string id) : pool_(pool), id_(std::move(id)) {
    const WorkerPoolOptions& o = pool->options_;
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(o.max_message_bytes);
    // A restarted worker must be reachable again within about a second, not
    // after gRPC's default reconnect backoff (1 s growing to 120 s).
    const int max_backoff_ms = static_cast<int>(absl::ToInt64Milliseconds(o.reconnect_backoff_max));
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, std::min(100, max_backoff_ms));
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, std::min(100, max_backoff_ms));
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, max_backoff_ms);
    // Own subchannels: a worker's connection state never leaks into another
    // channel to the same address (e.g. after a removal and re-add).
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    if (o.channel_credentials != nullptr && !o.tls_server_name.empty()) {
      args.SetSslTargetNameOverride(o.tls_server_name);
    }
    channel_ = grpc::CreateCustomChannel(
        id_, o.channel_credentials != nullptr ? o.channel_credentials : grpc::InsecureChannelCredentials(), args);
    stub_ = v1::Worker::NewStub(channel_);
    breaker_ = CircuitBreaker(o.breaker);
    thread_ = std::thread([this] { Run(); });
  }

  ~Worker() { Shutdown(); }

  // Stops the thread (cancelling any call in flight) and joins it. Idempotent;
  // never called from the worker's own thread.
  void Shutdown() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      if (stream_ctx_ != nullptr) stream_ctx_->TryCancel();
      if (unary_ctx_ != nullptr) unary_ctx_->TryCancel();
    }
    stopping_cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  // Cancels the stream if it has been silent for longer than `idle`.
  void CancelIfIdle(absl::Time now, absl::Duration idle) {
    std::lock_guard<std::mutex> lock(mu_);
    if (stream_ctx_ != nullptr && now - std::max(last_report_, stream_started_) > idle) {
      WF_LOG(WARNING) << "worker " << id_ << ": no load report for " << absl::FormatDuration(now - last_report_)
                      << "; reopening WatchLoad";
      stream_ctx_->TryCancel();
    }
  }

  WorkerView View(absl::Span<const uint64_t> hashes, absl::Time now) const {
    std::lock_guard<std::mutex> lock(mu_);
    WorkerView v;
    v.id = id_;
    v.healthy = HealthyLocked(now);
    for (uint64_t h : hashes) {
      if (!cached_.contains(h)) break;
      ++v.matched_blocks;
    }
    v.running = load_.running();
    v.waiting = load_.waiting();
    v.max_running = load_.max_running();
    v.kv_used = load_.kv_used_blocks();
    v.kv_total = load_.kv_total_blocks();
    v.pending = static_cast<int>(pending_.size());
    return v;
  }

  WorkerStatus Status(absl::Time now) const {
    std::lock_guard<std::mutex> lock(mu_);
    WorkerStatus s;
    s.id = id_;
    s.healthy = HealthyLocked(now);
    s.connected = connected_;
    s.model_accepted = model_accepted_;
    s.model_mismatch = model_mismatch_;
    s.instance_id = instance_id_;
    s.breaker = breaker_.state(now);
    s.consecutive_failures = breaker_.consecutive_failures();
    s.cached_blocks = cached_.size();
    s.last_sequence_number = last_seq_;
    s.load = load_;
    s.pending = static_cast<int>(pending_.size());
    s.last_report = last_report_;
    s.streams_opened = streams_opened_;
    s.resyncs = resyncs_;
    s.restarts = restarts_;
    return s;
  }

  bool Silent(absl::Time now, absl::Duration limit) const {
    std::lock_guard<std::mutex> lock(mu_);
    return SilentLocked(now, limit);
  }

  std::vector<uint64_t> CachedHashes() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<uint64_t> out(cached_.begin(), cached_.end());
    std::sort(out.begin(), out.end());
    return out;
  }

  void MarkDispatched(absl::Time now) {
    std::lock_guard<std::mutex> lock(mu_);
    pending_.push_back(now);
    breaker_.OnDispatch(now);
  }

  void MarkFinished(bool ok, absl::Time now) {
    std::lock_guard<std::mutex> lock(mu_);
    breaker_.OnResult(ok, now);
  }

  const std::string& id() const { return id_; }
  std::shared_ptr<grpc::Channel> channel() const { return channel_; }
  std::shared_ptr<v1::Worker::Stub> stub() const { return stub_; }

 private:
  enum class ReportResult { kOk, kResync, kFail };

  bool HealthyLocked(absl::Time now) const {  // requires mu_ held
    const WorkerPoolOptions& o = pool_->options_;
    return connected_ && model_accepted_ && !load_.draining() &&
           !SilentLocked(now, o.stale_reports * absl::Milliseconds(o.report_interval_ms)) &&
           breaker_.AllowsDispatch(now);
  }

  // No report for longer than `limit` while the pool kept receiving other
  // workers' reports. When all reports are late alike, the router itself fell
  // behind (CPU starvation) and no worker is blamed: the freshest never is.
  bool SilentLocked(absl::Time now, absl::Duration limit) const {  // requires mu_ held
    return now - last_report_ > limit && pool_->NewestReport() - last_report_ > limit;
  }

  void Run() {
    const WorkerPoolOptions& o = pool_->options_;
    absl::Duration backoff = o.reconnect_backoff_initial;
    while (true) {
      bool got_report = false;
      const ReportResult r = RunStream(&got_report);
      std::unique_lock<std::mutex> lock(mu_);
      if (stopping_) return;
      if (r == ReportResult::kResync) continue;  // A fresh snapshot, at once.
      if (got_report) backoff = o.reconnect_backoff_initial;
      // Out of the backoff as soon as the channel has connected (a restarted
      // worker): the channel keeps its own reconnect schedule, and waiting
      // for both in turn would add the two up.
      const absl::Time until = absl::Now() + backoff;
      for (absl::Duration left = backoff; left > absl::ZeroDuration() && !stopping_; left = until - absl::Now()) {
        stopping_cv_.wait_for(lock, absl::ToChronoNanoseconds(std::min(left, absl::Milliseconds(20))),
                              [this] { return stopping_; });
        if (channel_->GetState(/*try_to_connect=*/true) == GRPC_CHANNEL_READY) break;
      }
      if (stopping_) return;
      backoff = std::min(backoff * 2, o.reconnect_backoff_max);
    }
  }

  // One WatchLoad stream, until it ends, fails or must be resubscribed.
  ReportResult RunStream(bool* got_report) {
    grpc::ClientContext ctx;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return ReportResult::kFail;
      stream_ctx_ = &ctx;
      stream_started_ = absl::Now();
      ++streams_opened_;
    }
    v1::WatchLoadRequest request;
    request.set_report_interval_ms(pool_->options_.report_interval_ms);
    request.set_include_kv_events(true);
    std::unique_ptr<grpc::ClientReader<v1::LoadReport>> reader = stub_->WatchLoad(&ctx, request);
    v1::LoadReport report;
    ReportResult result = ReportResult::kFail;
    while (reader->Read(&report)) {
      *got_report = true;
      result = HandleReport(report);
      if (result != ReportResult::kOk) {
        ctx.TryCancel();
        break;
      }
    }
    const grpc::Status status = reader->Finish();
    std::lock_guard<std::mutex> lock(mu_);
    stream_ctx_ = nullptr;
    connected_ = false;
    have_snapshot_ = false;
    if (!stopping_ && result != ReportResult::kResync) {
      WF_LOG(INFO) << "worker " << id_ << ": WatchLoad ended (" << static_cast<int>(status.error_code()) << " "
                   << status.error_message() << "); reconnecting";
    }
    // Once per outage, louder: a worker never reached is often a plaintext
    // or TLS mismatch, which the gRPC message alone does not say.
    if (*got_report) {
      warned_unreachable_ = false;
    } else if (!stopping_ && !warned_unreachable_ && status.error_code() == grpc::StatusCode::UNAVAILABLE) {
      warned_unreachable_ = true;
      WF_LOG(WARNING) << "worker " << id_ << ": cannot reach it over "
                      << (pool_->options_.channel_credentials != nullptr ? "TLS" : "plaintext") << " gRPC ("
                      << status.error_message() << "); check the address, and that router and worker agree on TLS "
                      << "(--worker-tls-ca-file here, --tls-cert-file there)";
    }
    return result == ReportResult::kResync ? result : ReportResult::kFail;
  }

  ReportResult HandleReport(const v1::LoadReport& report) {
    bool check_model = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (report.instance_id() != instance_id_) {
        if (!instance_id_.empty()) {
          WF_LOG(INFO) << "worker " << id_ << ": restarted (instance " << instance_id_ << " -> "
                       << report.instance_id() << "); resetting its state";
          ++restarts_;
        }
        instance_id_ = report.instance_id();
        cached_.clear();
        have_snapshot_ = false;
        last_seq_ = 0;
        model_accepted_ = false;
        model_mismatch_ = false;
        pending_.clear();
        breaker_.Reset();
      }
      check_model = !model_accepted_ && !model_mismatch_;
    }
    // The stream buffers reports while the model is checked.
    if (check_model && !CheckModel()) return ReportResult::kFail;

    const absl::Time now = absl::Now();
    std::lock_guard<std::mutex> lock(mu_);
    if (report.has_snapshot()) {
      cached_.clear();
      cached_.reserve(report.snapshot().block_hashes_size());
      cached_.insert(report.snapshot().block_hashes().begin(), report.snapshot().block_hashes().end());
      last_seq_ = report.snapshot().last_sequence_number();
      have_snapshot_ = true;
    }
    for (const v1::KvEvent& e : report.events()) {
      if (!have_snapshot_ || e.sequence_number() != last_seq_ + 1) {
        WF_LOG(WARNING) << "worker " << id_ << ": KV event " << e.sequence_number() << " after " << last_seq_
                        << (have_snapshot_ ? " (gap)" : " without a snapshot") << "; resubscribing";
        ++resyncs_;
        have_snapshot_ = false;
        return ReportResult::kResync;
      }
      last_seq_ = e.sequence_number();
      switch (e.event_case()) {
        case v1::KvEvent::kStored:
          cached_.insert(e.stored().block_hashes().begin(), e.stored().block_hashes().end());
          break;
        case v1::KvEvent::kRemoved:
          for (uint64_t h : e.removed().block_hashes()) cached_.erase(h);
          break;
        case v1::KvEvent::kAllCleared:
          cached_.clear();
          break;
        case v1::KvEvent::EVENT_NOT_SET:
          break;  // A newer event kind: nothing we can apply, the sequence still advances.
      }
    }
    if (report.has_load()) load_ = report.load();
    last_report_ = now;
    pool_->NoteReport(now);
    connected_ = true;
    const absl::Time absorbed_before = now - pool_->options_.pending_grace;
    while (!pending_.empty() && pending_.front() <= absorbed_before) pending_.pop_front();
    return ReportResult::kOk;
  }

  // Fetches the model info and asks the pool to accept it. False on an RPC
  // failure (the stream is reopened after a backoff).
  bool CheckModel() {
    absl::StatusOr<v1::ModelInfo> info = FetchModelInfo(/*include_tokenizer=*/false);
    if (!info.ok()) return false;
    bool need_model = false;
    std::optional<std::string> mismatch = pool_->MatchModel(*info, &need_model);
    if (need_model) {
      absl::StatusOr<v1::ModelInfo> full = FetchModelInfo(/*include_tokenizer=*/true);
      if (!full.ok()) return false;
      pool_->OfferModel(*std::move(full));
      mismatch = pool_->MatchModel(*info, &need_model);
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (mismatch.has_value()) {
      WF_LOG(WARNING) << "worker " << id_ << " excluded: " << *mismatch;
      model_mismatch_ = true;
    } else {
      model_accepted_ = true;
      WF_LOG(INFO) << "worker " << id_ << ": model '" << info->model_name() << "' accepted (instance "
                   << instance_id_ << ")";
    }
    return true;
  }

  absl::StatusOr<v1::ModelInfo> FetchModelInfo(bool include_tokenizer) {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline(pool_->options_.rpc_timeout));
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return absl::CancelledError("stopping");
      unary_ctx_ = &ctx;
    }
    v1::GetModelInfoRequest request;
    request.set_include_tokenizer(include_tokenizer);
    v1::ModelInfo info;
    const grpc::Status status = stub_->GetModelInfo(&ctx, request, &info);
    {
      std::lock_guard<std::mutex> lock(mu_);
      unary_ctx_ = nullptr;
    }
    if (!status.ok()) {
      WF_LOG(WARNING) << "worker " << id_ << ": GetModelInfo failed: " << status.error_message();
      return absl::UnavailableError(status.error_message());
    }
    return info;
  }

  WorkerPool* const pool_;
  const std::string id_;
  std::shared_ptr<grpc::Channel> channel_;
  std::shared_ptr<v1::Worker::Stub> stub_;
  std::thread thread_;

  // std::mutex rather than absl::Mutex: ThreadSanitizer sees its
  // synchronization (Debian's Abseil is not built with TSan annotations).
  mutable std::mutex mu_;
  std::condition_variable stopping_cv_;  // stopping_ became true
  bool stopping_ = false;  // guarded by mu_
  grpc::ClientContext* stream_ctx_ = nullptr;  // guarded by mu_
  grpc::ClientContext* unary_ctx_ = nullptr;  // guarded by mu_
  absl::Time stream_started_ = absl::InfinitePast();  // guarded by mu_
  bool connected_ = false;  // guarded by mu_
  bool warned_unreachable_ = false;  // guarded by mu_
  std::string instance_id_;  // guarded by mu_
  bool model_accepted_ = false;  // guarded by mu_
  bool model_mismatch_ = false;  // guarded by mu_
  bool have_snapshot_ = false;  // guarded by mu_
  uint64_t last_seq_ = 0;  // guarded by mu_
  absl::flat_hash_set<uint64_t> cached_;  // guarded by mu_
  v1::Load load_;  // guarded by mu_
  absl::Time last_report_ = absl::InfinitePast();  // guarded by mu_
  std::deque<absl::Time> pending_;  // guarded by mu_
  CircuitBreaker breaker_;  // guarded by mu_
  int64_t streams_opened_ = 0;  // guarded by mu_
  int64_t resyncs_ = 0;  // guarded by mu_
  int64_t restarts_ = 0;  // guarded by mu_
};

// ------------------------------------------------------------- free helpers

absl::Status SplitHostPort(std::string_view address_sv, std::string_view what_sv, std::string* host, int* port) {
  const absl::string_view address = Av(address_sv);
  const absl::string_view what = Av(what_sv);
  const size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos || colon == 0) {
    return absl::InvalidArgumentError(absl::StrCat(what, " '", address, "' must be host:port"));
  }
  absl::string_view h = address.substr(0, colon);
  if (h.front() == '[') {
    if (h.size() < 3 || h.back() != ']') {
      return absl::InvalidArgumentError(absl::StrCat(what, " '", address, "' has a malformed [IPv6] host"));
    }
    h = h.substr(1, h.size() - 2);
  }
  int p = 0;
  if (!absl::SimpleAtoi(address.substr(colon + 1), &p) || p < 1 || p > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " '", address, "' has port '", address.substr(colon + 1), "'; expected 1..65535"));
  }
  *host = std::string(h);
  *port = p;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> ResolveHost(const std::string& host, int port, bool ipv6) {
  addrinfo hints{};
  hints.ai_family = ipv6 ? AF_UNSPEC : AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc == EAI_NONAME || rc == EAI_NODATA) return std::vector<std::string>{};
  if (rc != 0) {
    return absl::UnavailableError(absl::StrCat("cannot resolve '", host, "': ", ::gai_strerror(rc)));
  }
  std::vector<std::string> out;
  for (const addrinfo* a = res; a != nullptr; a = a->ai_next) {
    char text[INET6_ADDRSTRLEN] = {};
    if (a->ai_family == AF_INET) {
      const auto* sin = reinterpret_cast<const sockaddr_in*>(a->ai_addr);
      if (::inet_ntop(AF_INET, &sin->sin_addr, text, sizeof(text)) != nullptr) {
        out.push_back(absl::StrCat(text, ":", port));
      }
    } else if (a->ai_family == AF_INET6) {
      const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(a->ai_addr);
      if (::inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof(text)) != nullptr) {
        out.push_back(absl::StrCat("[", text, "]:", port));
      }
    }
  }
  ::freeaddrinfo(res);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// -------------------------------------------------------------- WorkerPool

absl::StatusOr<std::unique_ptr<WorkerPool>> WorkerPool::Create(WorkerPoolOptions options) {
  std::string host;
  int port = 0;
  for (const std::string& a : options.static_workers) {
    if (absl::Status s = SplitHostPort(a, "static worker", &host, &port); !s.ok()) return s;
  }
  for (const std::string& a : options.dns_workers) {
    if (absl::Status s = SplitHostPort(a, "DNS worker", &host, &port); !s.ok()) return s;
  }
  auto invalid = [](absl::string_view name, auto value, absl::string_view limit) {
    return absl::InvalidArgumentError(absl::StrCat("worker pool option ", name, " is ", value, "; ", limit));
  };
  if (options.report_interval_ms < 10 || options.report_interval_ms > 10000) {
    return invalid("report_interval_ms", options.report_interval_ms, "expected 10..10000");
  }
  if (options.stale_reports < 1) return invalid("stale_reports", options.stale_reports, "expected >= 1");
  if (options.max_message_bytes < (1 << 20)) {
    return invalid("max_message_bytes", options.max_message_bytes, "expected >= 1 MiB");
  }
  for (auto [name, d] : {std::pair<const char*, absl::Duration>{"dns_refresh", options.dns_refresh},
                         {"stream_idle_timeout", options.stream_idle_timeout},
                         {"reconnect_backoff_initial", options.reconnect_backoff_initial},
                         {"reconnect_backoff_max", options.reconnect_backoff_max},
                         {"rpc_timeout", options.rpc_timeout}}) {
    if (d <= absl::ZeroDuration()) return invalid(name, absl::FormatDuration(d), "expected > 0");
  }
  if (options.pending_grace < absl::ZeroDuration()) {
    return invalid("pending_grace", absl::FormatDuration(options.pending_grace), "expected >= 0");
  }
  if (!options.resolver) {
    const bool ipv6 = options.dns_ipv6;
    options.resolver = [ipv6](const std::string& h, int p) { return ResolveHost(h, p, ipv6); };
  }
  auto pool = std::unique_ptr<WorkerPool>(new WorkerPool(std::move(options)));
  {
    std::lock_guard<std::mutex> lock(pool->mu_);
    for (const std::string& a : pool->options_.static_workers) pool->AddWorkerLocked(a, true, false);
  }
  pool->RefreshDns();
  pool->housekeeping_ = std::thread([p = pool.get()] { p->Housekeeping(); });
  return pool;
}

WorkerPool::WorkerPool(WorkerPoolOptions options) : options_(std::move(options)) {}

WorkerPool::~WorkerPool() {
  absl::flat_hash_map<std::string, Entry> workers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    workers.swap(workers_);
  }
  stopping_cv_.notify_all();
  if (housekeeping_.joinable()) housekeeping_.join();
  for (auto& [id, entry] : workers) entry.worker->Shutdown();
}

void WorkerPool::AddWorkerLocked(const std::string& id, bool from_static, bool from_dns) {
  Entry& e = workers_[id];
  if (e.worker == nullptr) {
    WF_LOG(INFO) << "worker " << id << " added (" << (from_static ? "static" : "DNS") << ")";
    e.worker = std::make_shared<Worker>(this, id);
  }
  e.from_static |= from_static;
  e.from_dns |= from_dns;
}

void WorkerPool::RefreshDns() {
  if (options_.dns_workers.empty()) return;
  absl::flat_hash_set<std::string> found;
  bool complete = true;  // Every name answered (possibly with no address).
  for (const std::string& target : options_.dns_workers) {
    std::string host;
    int port = 0;
    if (!SplitHostPort(target, "DNS worker", &host, &port).ok()) continue;  // Validated in Create().
    absl::StatusOr<std::vector<std::string>> addresses = options_.resolver(host, port);
    if (!addresses.ok()) {
      WF_LOG(WARNING) << "DNS worker " << target << ": " << addresses.status().message()
                      << "; keeping the workers it had";
      complete = false;
      continue;
    }
    found.insert(addresses->begin(), addresses->end());
  }
  std::vector<std::shared_ptr<Worker>> removed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    for (const std::string& id : found) AddWorkerLocked(id, false, true);
    if (complete) {
      for (auto it = workers_.begin(); it != workers_.end();) {
        Entry& e = it->second;
        if (e.from_dns && !found.contains(it->first)) {
          e.from_dns = false;
          if (!e.from_static) {
            WF_LOG(INFO) << "worker " << it->first << " removed (no longer in DNS)";
            removed.push_back(std::move(e.worker));
            workers_.erase(it++);
            continue;
          }
        }
        ++it;
      }
    }
  }
  // Joined outside the lock: a worker thread may be waiting for the pool.
  for (auto& w : removed) w->Shutdown();
}

void WorkerPool::Housekeeping() {
  absl::Time next_dns = absl::Now() + options_.dns_refresh;
  const absl::Duration tick =
      std::min(absl::Milliseconds(options_.report_interval_ms), absl::Milliseconds(250));
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      stopping_cv_.wait_for(lock, absl::ToChronoNanoseconds(tick), [this] { return stopping_; });
      if (stopping_) return;
    }
    const absl::Time now = absl::Now();
    for (const auto& w : Snapshot()) w->CancelIfIdle(now, options_.stream_idle_timeout);
    if (now >= next_dns) {
      RefreshDns();
      next_dns = absl::Now() + options_.dns_refresh;
    }
  }
}

std::vector<std::shared_ptr<WorkerPool::Worker>> WorkerPool::Snapshot() const {
  std::vector<std::shared_ptr<Worker>> out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    out.reserve(workers_.size());
    for (const auto& [id, e] : workers_) out.push_back(e.worker);
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a->id() < b->id(); });
  return out;
}

std::shared_ptr<WorkerPool::Worker> WorkerPool::Find(std::string_view id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = workers_.find(Av(id));
  return it == workers_.end() ? nullptr : it->second.worker;
}

std::vector<WorkerView> WorkerPool::Views(absl::Span<const uint64_t> hashes) const {
  const absl::Time now = absl::Now();
  std::vector<WorkerView> views;
  for (const auto& w : Snapshot()) views.push_back(w->View(hashes, now));
  return views;
}

std::shared_ptr<grpc::Channel> WorkerPool::Channel(std::string_view id) const {
  std::shared_ptr<Worker> w = Find(id);
  return w == nullptr ? nullptr : w->channel();
}

std::shared_ptr<v1::Worker::Stub> WorkerPool::Stub(std::string_view id) const {
  std::shared_ptr<Worker> w = Find(id);
  return w == nullptr ? nullptr : w->stub();
}

void WorkerPool::MarkDispatched(std::string_view id) {
  if (std::shared_ptr<Worker> w = Find(id); w != nullptr) w->MarkDispatched(absl::Now());
}

void WorkerPool::MarkFinished(std::string_view id, bool ok) {
  if (std::shared_ptr<Worker> w = Find(id); w != nullptr) w->MarkFinished(ok, absl::Now());
}

absl::Status WorkerPool::WaitForHealthy(int n, absl::Duration timeout) const {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    const std::vector<WorkerView> views = Views({});
    const int healthy = static_cast<int>(std::count_if(views.begin(), views.end(), [](const WorkerView& v) {
      return v.healthy;
    }));
    if (healthy >= n) return absl::OkStatus();
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat("only ", healthy, " of ", views.size(),
                                                      " known workers are healthy after ",
                                                      absl::FormatDuration(timeout), "; wanted ", n));
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
}

absl::StatusOr<v1::ModelInfo> WorkerPool::ModelInfo() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (!model_.has_value()) return absl::UnavailableError("no worker has reported its model yet");
  return *model_;
}

std::vector<WorkerStatus> WorkerPool::Status() const {
  const absl::Time now = absl::Now();
  std::vector<WorkerStatus> out;
  for (const auto& w : Snapshot()) out.push_back(w->Status(now));
  return out;
}

std::vector<std::string> WorkerPool::SilentWorkers(absl::Duration silence) const {
  const absl::Time now = absl::Now();
  std::vector<std::string> out;
  for (const auto& w : Snapshot()) {
    if (w->Silent(now, silence)) out.push_back(w->id());
  }
  return out;
}

void WorkerPool::NoteReport(absl::Time at) {
  const int64_t us = absl::ToUnixMicros(at);
  int64_t seen = newest_report_us_.load(std::memory_order_relaxed);
  while (seen < us && !newest_report_us_.compare_exchange_weak(seen, us, std::memory_order_relaxed)) {
  }
}

absl::Time WorkerPool::NewestReport() const {
  return absl::FromUnixMicros(newest_report_us_.load(std::memory_order_relaxed));
}

std::vector<uint64_t> WorkerPool::CachedHashes(std::string_view id) const {
  std::shared_ptr<Worker> w = Find(id);
  return w == nullptr ? std::vector<uint64_t>{} : w->CachedHashes();
}

std::optional<std::string> WorkerPool::MatchModel(const v1::ModelInfo& info, bool* need_model) const {
  *need_model = false;
  if (info.kv_block_hash_scheme() != kv::kBlockHashScheme) {
    return absl::StrCat("KV block hash scheme '", info.kv_block_hash_scheme(), "' is not ours ('",
                        kv::kBlockHashScheme, "')");
  }
  if (!options_.expected_model_name.empty() && info.model_name() != options_.expected_model_name) {
    return absl::StrCat("serves model '", info.model_name(), "', expected '", options_.expected_model_name, "'");
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (!model_.has_value()) {
    *need_model = true;
    return std::nullopt;
  }
  const v1::ModelInfo& m = *model_;
  auto differs = [](absl::string_view field, const auto& ours, const auto& theirs) {
    return absl::StrCat("serves a different model than the pool: ", field, " is '", theirs, "', the pool's is '",
                        ours, "'");
  };
  if (info.model_name() != m.model_name()) return differs("model_name", m.model_name(), info.model_name());
  if (info.architecture() != m.architecture()) return differs("architecture", m.architecture(), info.architecture());
  if (info.vocab_size() != m.vocab_size()) return differs("vocab_size", m.vocab_size(), info.vocab_size());
  if (info.kv_block_size() != m.kv_block_size()) {
    return differs("kv_block_size", m.kv_block_size(), info.kv_block_size());
  }
  if (info.chat_format() != m.chat_format()) return differs("chat_format", m.chat_format(), info.chat_format());
  if (info.add_bos() != m.add_bos()) return differs("add_bos", m.add_bos(), info.add_bos());
  if (info.tokenizer_pre() != m.tokenizer_pre()) {
    return differs("tokenizer_pre", m.tokenizer_pre(), info.tokenizer_pre());
  }
  return std::nullopt;
}

void WorkerPool::OfferModel(v1::ModelInfo info) {
  std::lock_guard<std::mutex> lock(mu_);
  if (model_.has_value()) return;
  WF_LOG(INFO) << "worker pool model: '" << info.model_name() << "' (" << info.vocab_size() << " tokens, KV block "
               << info.kv_block_size() << ", chat format '" << info.chat_format() << "')";
  model_ = std::move(info);
}

}  // namespace wf::router
