#include "tools/loadgen/loadgen.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <iterator>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "grpcpp/grpcpp.h"
#include "nlohmann/json.hpp"
#include "wrinklefree/v1/worker.grpc.pb.h"

namespace wf::loadgen {
namespace {

namespace v1 = ::wrinklefree::v1;
using Clock = std::chrono::steady_clock;

// GGUF tokenizer.ggml.token_type value of ordinary vocabulary entries.
constexpr int32_t kNormalTokenType = 1;
// The model info with the tokenizer is several MB for large vocabularies.
constexpr int kMaxReceiveBytes = 64 << 20;

std::chrono::system_clock::time_point DeadlineAfter(double seconds) {
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::duration<double>(seconds));
}

uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// A small explicit generator so prompts are the same on every platform
// (std:: distributions are implementation-defined).
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    state_ += 0x9E3779B97F4A7C15ull;
    return SplitMix64(state_);
  }

 private:
  uint64_t state_;
};

absl::Status ToAbsl(const grpc::Status& s) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

std::string FinishReasonName(v1::FinishReason reason) {
  std::string name = v1::FinishReason_Name(reason);
  constexpr absl::string_view kPrefix = "FINISH_REASON_";
  if (absl::StartsWith(name, kPrefix)) name.erase(0, kPrefix.size());
  return name.empty() ? absl::StrCat(static_cast<int>(reason)) : name;
}

}  // namespace

// ------------------------------------------------------------- Statistics

double Percentile(absl::Span<const double> sorted, double p) {
  if (sorted.empty()) return 0;
  const double rank = std::clamp(p, 0.0, 100.0) / 100.0 * static_cast<double>(sorted.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(rank));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  const double frac = rank - static_cast<double>(lo);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * frac;
}

Distribution Summarize(std::vector<double>& values) {
  Distribution d;
  d.count = static_cast<int64_t>(values.size());
  if (values.empty()) return d;
  std::sort(values.begin(), values.end());
  double sum = 0;
  for (double v : values) sum += v;
  d.mean = sum / static_cast<double>(values.size());
  d.min = values.front();
  d.max = values.back();
  d.p50 = Percentile(values, 50);
  d.p90 = Percentile(values, 90);
  d.p99 = Percentile(values, 99);
  return d;
}

int64_t RequestRecord::TokensReceived() const {
  int64_t n = 0;
  for (const TokenBatch& b : batches) n += b.tokens;
  return n;
}

RunStats Summarize(const RunResult& run) {
  RunStats stats;
  stats.concurrency = run.concurrency;
  stats.wall_seconds = run.wall_seconds;
  std::vector<double> ttft, itl, e2e;
  for (const RequestRecord& r : run.requests) {
    stats.generated_tokens += r.TokensReceived();
    stats.prompt_tokens += r.prompt_tokens;
    stats.cached_prompt_tokens += r.cached_prompt_tokens;
    if (!r.ok) {
      ++stats.requests_failed;
      ++stats.failed_by_code[r.failure];
      stats.first_error.emplace(r.failure, r.error);
      continue;
    }
    ++stats.requests_ok;
    e2e.push_back(r.end_seconds - r.start_seconds);
    if (r.batches.empty()) continue;
    ttft.push_back(r.batches.front().seconds - r.start_seconds);
    double previous = r.batches.front().seconds;
    for (size_t i = 0; i < r.batches.size(); ++i) {
      const TokenBatch& b = r.batches[i];
      if (i > 0) itl.push_back(b.seconds - previous);
      // The rest of a batch arrived with its first token.
      for (int32_t k = 1; k < b.tokens; ++k) itl.push_back(0.0);
      previous = b.seconds;
    }
  }
  stats.ttft_seconds = Summarize(ttft);
  stats.itl_seconds = Summarize(itl);
  stats.e2e_seconds = Summarize(e2e);
  if (stats.wall_seconds > 0) {
    stats.generated_tokens_per_second = static_cast<double>(stats.generated_tokens) / stats.wall_seconds;
    stats.requests_per_second = static_cast<double>(stats.requests_ok) / stats.wall_seconds;
  }
  return stats;
}

// ------------------------------------------------------------ Validation

absl::Status ValidateConfig(const LoadgenConfig& c) {
  const size_t colon = c.target.rfind(':');
  int port = 0;
  if (colon == std::string::npos || colon == 0 || !absl::SimpleAtoi(c.target.substr(colon + 1), &port) || port < 1 ||
      port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("target must be HOST:PORT with a port in 1..65535, got '", c.target, "'"));
  }
  if (c.prompt_text.empty()) {
    if (c.prompt_tokens < 1) {
      return absl::InvalidArgumentError(absl::StrCat("prompt_tokens must be >= 1, got ", c.prompt_tokens));
    }
    if (c.shared_prefix_tokens < 0 || c.shared_prefix_tokens > c.prompt_tokens) {
      return absl::InvalidArgumentError(absl::StrCat(
          "shared_prefix_tokens must be in [0, prompt_tokens = ", c.prompt_tokens, "], got ", c.shared_prefix_tokens));
    }
  } else if (c.shared_prefix_tokens != 0) {
    return absl::InvalidArgumentError("shared_prefix_tokens applies to random token prompts, not to prompt_text");
  }
  if (c.max_tokens < 1 || c.max_tokens > (int64_t{1} << 30)) {
    return absl::InvalidArgumentError(absl::StrCat("max_tokens must be in [1, 2^30], got ", c.max_tokens));
  }
  if (!(c.temperature >= 0 && c.temperature <= 2)) {
    return absl::InvalidArgumentError(absl::StrCat("temperature must be in [0, 2], got ", c.temperature));
  }
  if (c.channels < 1 || c.channels > 256) {
    return absl::InvalidArgumentError(absl::StrCat("channels must be in [1, 256], got ", c.channels));
  }
  if (!(c.connect_timeout_seconds > 0) || !(c.request_timeout_seconds > 0)) {
    return absl::InvalidArgumentError(absl::StrCat("timeouts must be > 0, got connect ", c.connect_timeout_seconds,
                                                   " s and request ", c.request_timeout_seconds, " s"));
  }
  return absl::OkStatus();
}

absl::Status ValidateRunSpec(const RunSpec& spec) {
  if (spec.concurrency < 1 || spec.concurrency > kMaxConcurrency) {
    return absl::InvalidArgumentError(
        absl::StrCat("concurrency must be in [1, ", kMaxConcurrency, "], got ", spec.concurrency));
  }
  const bool by_count = spec.requests_per_stream > 0;
  const bool by_time = spec.duration_seconds > 0;
  if (by_count == by_time) {
    return absl::InvalidArgumentError(absl::StrCat("exactly one of requests_per_stream (", spec.requests_per_stream,
                                                   ") and duration_seconds (", spec.duration_seconds,
                                                   ") must be positive"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int32_t>> ParseConcurrencyList(const std::string& text) {
  std::vector<int32_t> out;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    int32_t n = 0;
    if (!absl::SimpleAtoi(part, &n) || n < 1 || n > kMaxConcurrency) {
      return absl::InvalidArgumentError(absl::StrCat("concurrency values must be integers in [1, ", kMaxConcurrency,
                                                     "], got '", part, "' in '", text, "'"));
    }
    out.push_back(n);
  }
  return out;
}

std::vector<int32_t> MakePromptTokens(absl::Span<const int32_t> allowed_ids, int64_t length, int64_t shared_prefix,
                                      uint64_t seed, uint64_t request_key) {
  std::vector<int32_t> ids;
  if (allowed_ids.empty() || length <= 0) return ids;
  ids.reserve(static_cast<size_t>(length));
  const uint64_t n = allowed_ids.size();
  Rng shared(SplitMix64(seed));
  Rng own(SplitMix64(SplitMix64(seed) ^ SplitMix64(request_key + 0x5EED)));
  for (int64_t i = 0; i < length; ++i) {
    Rng& rng = i < shared_prefix ? shared : own;
    ids.push_back(allowed_ids[rng.Next() % n]);
  }
  return ids;
}

// ----------------------------------------------------------------- Driver

namespace {

// Everything a run needs from its generator.
struct Connection {
  LoadgenConfig config;
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  std::vector<std::unique_ptr<v1::Worker::Stub>> stubs;
  std::string model_name;
  int64_t vocab_size = 0;
  int64_t max_context = 0;
  std::vector<int32_t> prompt_ids;
  uint64_t runs_started = 0;
  std::string client_tag = absl::StrCat("lg", ::getpid());
};

class GenerateCall;

// Shared by the calls of one run; lives on Run()'s stack until in_flight is 0.
class RunState {
 public:
  RunState(Connection* impl, const RunSpec& spec, uint64_t run_index)
      : impl_(impl), spec_(spec), run_index_(run_index), issued_(static_cast<size_t>(spec.concurrency), 0) {}

  double Elapsed() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

  // Starts every stream's first request, then blocks until the last one ends.
  RunResult Drive(const std::function<void(const Progress&)>& progress, double interval);

  // Called by a finished call (after it deleted itself): records it and
  // starts the stream's next request if the spec asks for one.
  void OnRequestDone(RequestRecord record);

  void AddTokens(int64_t n) { tokens_.fetch_add(n, std::memory_order_relaxed); }

 private:
  void StartRequest(int32_t stream, int64_t index);
  Progress Snapshot() const;  // mu_ held

  Connection* impl_;
  const RunSpec spec_;
  const uint64_t run_index_;
  Clock::time_point start_;
  std::atomic<int64_t> tokens_{0};

  mutable std::mutex mu_;
  std::condition_variable done_;
  std::vector<int64_t> issued_;  // requests started per stream
  int64_t in_flight_ = 0;
  int64_t ok_ = 0;
  int64_t failed_ = 0;
  std::vector<RequestRecord> records_;
};

class GenerateCall final : public grpc::ClientReadReactor<v1::GenerateResponse> {
 public:
  GenerateCall(RunState* run, int32_t stream, v1::GenerateRequest request) : run_(run), request_(std::move(request)) {
    record_.stream = stream;
  }

  void Start(v1::Worker::Stub* stub, double timeout_seconds) {
    context_.set_deadline(DeadlineAfter(timeout_seconds));
    record_.start_seconds = run_->Elapsed();
    stub->async()->Generate(&context_, &request_, this);
    StartRead(&response_);
    StartCall();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // The stream ended; OnDone follows.
    const double now = run_->Elapsed();
    if (response_.tokens_size() > 0) {
      record_.batches.push_back({now, response_.tokens_size()});
      run_->AddTokens(response_.tokens_size());
    }
    if (response_.finished()) {
      saw_final_ = true;
      record_.prompt_tokens = response_.usage().prompt_tokens();
      record_.completion_tokens = response_.usage().completion_tokens();
      record_.cached_prompt_tokens = response_.usage().cached_prompt_tokens();
      record_.finish_reason = FinishReasonName(response_.finish_reason());
      finish_reason_ = response_.finish_reason();
      final_error_ = response_.error();
    }
    StartRead(&response_);
  }

  void OnDone(const grpc::Status& status) override {
    record_.end_seconds = run_->Elapsed();
    if (!status.ok()) {
      record_.failure = StatusCodeName(status.error_code());
      record_.error = status.error_message();
    } else if (!saw_final_) {
      record_.failure = "NO_FINAL_RESPONSE";
      record_.error = "the stream ended OK without a response marked finished";
    } else if (finish_reason_ == v1::FINISH_REASON_ERROR || finish_reason_ == v1::FINISH_REASON_ABORT) {
      record_.failure = v1::FinishReason_Name(finish_reason_);
      record_.error = final_error_;
    } else {
      record_.ok = true;
    }
    RunState* run = run_;
    RequestRecord record = std::move(record_);
    delete this;
    run->OnRequestDone(std::move(record));
  }

 private:
  RunState* run_;
  grpc::ClientContext context_;
  v1::GenerateRequest request_;
  v1::GenerateResponse response_;
  RequestRecord record_;
  bool saw_final_ = false;
  v1::FinishReason finish_reason_ = v1::FINISH_REASON_UNSPECIFIED;
  std::string final_error_;
};

void RunState::StartRequest(int32_t stream, int64_t index) {
  const LoadgenConfig& c = impl_->config;
  v1::GenerateRequest request;
  request.set_request_id(absl::StrCat(impl_->client_tag, "-r", run_index_, "-s", stream, "-", index));
  const uint64_t key =
      SplitMix64(SplitMix64(SplitMix64(run_index_) ^ static_cast<uint64_t>(stream)) ^ static_cast<uint64_t>(index));
  if (!c.prompt_text.empty()) {
    request.set_text(c.prompt_text);
  } else {
    const std::vector<int32_t> ids =
        MakePromptTokens(impl_->prompt_ids, c.prompt_tokens, c.shared_prefix_tokens, c.seed, key);
    request.mutable_token_ids()->mutable_ids()->Add(ids.begin(), ids.end());
  }
  request.mutable_sampling()->set_temperature(static_cast<float>(c.temperature));
  request.mutable_sampling()->set_seed(SplitMix64(c.seed ^ key));
  request.mutable_stop()->set_max_tokens(static_cast<int32_t>(c.max_tokens));
  request.mutable_stop()->set_ignore_eos(c.ignore_eos);
  auto* call = new GenerateCall(this, stream, std::move(request));
  call->Start(impl_->stubs[static_cast<size_t>(stream) % impl_->stubs.size()].get(), c.request_timeout_seconds);
}

void RunState::OnRequestDone(RequestRecord record) {
  const int32_t stream = record.stream;
  int64_t next_index = -1;
  {
    std::lock_guard<std::mutex> lock(mu_);
    (record.ok ? ok_ : failed_)++;
    records_.push_back(std::move(record));
    int64_t& issued = issued_[static_cast<size_t>(stream)];
    const bool more =
        spec_.requests_per_stream > 0 ? issued < spec_.requests_per_stream : Elapsed() < spec_.duration_seconds;
    if (!more) {
      // Run() may return (destroying *this) once the lock is released.
      if (--in_flight_ == 0) done_.notify_all();
      return;
    }
    next_index = issued++;
  }
  StartRequest(stream, next_index);
}

Progress RunState::Snapshot() const {
  Progress p;
  p.concurrency = spec_.concurrency;
  p.elapsed_seconds = Elapsed();
  p.requests_ok = ok_;
  p.requests_failed = failed_;
  p.in_flight = in_flight_;
  p.generated_tokens = tokens_.load(std::memory_order_relaxed);
  return p;
}

RunResult RunState::Drive(const std::function<void(const Progress&)>& progress, double interval) {
  start_ = Clock::now();
  {
    std::lock_guard<std::mutex> lock(mu_);
    in_flight_ = spec_.concurrency;
    for (int64_t& n : issued_) n = 1;
  }
  for (int32_t s = 0; s < spec_.concurrency; ++s) StartRequest(s, 0);

  std::unique_lock<std::mutex> lock(mu_);
  const auto step = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(interval));
  auto next_report = start_ + step;
  while (in_flight_ > 0) {
    done_.wait_until(lock, next_report, [this] { return in_flight_ == 0; });
    if (in_flight_ > 0 && Clock::now() >= next_report) {
      next_report += step;
      if (progress) {
        const Progress p = Snapshot();
        lock.unlock();
        progress(p);
        lock.lock();
      }
    }
  }
  RunResult result;
  result.concurrency = spec_.concurrency;
  result.requests = std::move(records_);
  if (!result.requests.empty()) {
    double first = result.requests.front().start_seconds, last = result.requests.front().end_seconds;
    for (const RequestRecord& r : result.requests) {
      first = std::min(first, r.start_seconds);
      last = std::max(last, r.end_seconds);
    }
    result.wall_seconds = last - first;
  }
  return result;
}

}  // namespace

struct LoadGenerator::Impl : Connection {};

LoadGenerator::LoadGenerator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
LoadGenerator::~LoadGenerator() = default;

absl::StatusOr<std::unique_ptr<LoadGenerator>> LoadGenerator::Create(const LoadgenConfig& config) {
  if (absl::Status s = ValidateConfig(config); !s.ok()) return s;
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  for (int64_t i = 0; i < config.channels; ++i) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(kMaxReceiveBytes);
    // A private subchannel pool gives every channel its own connection.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt("wf.loadgen.channel", static_cast<int>(i));
    impl->channels.push_back(grpc::CreateCustomChannel(config.target, grpc::InsecureChannelCredentials(), args));
    impl->stubs.push_back(v1::Worker::NewStub(impl->channels.back()));
  }
  for (const auto& channel : impl->channels) {
    if (!channel->WaitForConnected(DeadlineAfter(config.connect_timeout_seconds))) {
      return absl::UnavailableError(absl::StrCat("cannot connect to ", config.target, " within ",
                                                 config.connect_timeout_seconds, " s (is a worker listening there?)"));
    }
  }
  grpc::ClientContext context;
  context.set_deadline(DeadlineAfter(config.connect_timeout_seconds));
  v1::GetModelInfoRequest request;
  request.set_include_tokenizer(true);
  v1::ModelInfo info;
  if (grpc::Status s = impl->stubs.front()->GetModelInfo(&context, request, &info); !s.ok()) {
    const absl::Status status = ToAbsl(s);
    return absl::Status(status.code(), absl::StrCat("GetModelInfo on ", config.target, " failed: ",
                                                    StatusCodeName(s.error_code()), ": ", status.message()));
  }
  impl->model_name = info.model_name();
  impl->vocab_size = info.vocab_size();
  impl->max_context = info.max_context();
  if (info.vocab_size() <= 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(config.target, " reports vocab_size ", info.vocab_size(), "; cannot draw prompt tokens"));
  }
  for (int32_t id = 0; id < info.token_types_size() && id < info.vocab_size(); ++id) {
    if (info.token_types(id) == kNormalTokenType) impl->prompt_ids.push_back(id);
  }
  if (impl->prompt_ids.empty()) {
    // No token types: every id except the named special and end tokens.
    std::vector<bool> special(static_cast<size_t>(info.vocab_size()), false);
    for (const v1::SpecialToken& t : info.special_tokens()) {
      if (t.id() >= 0 && t.id() < info.vocab_size()) special[static_cast<size_t>(t.id())] = true;
    }
    for (int32_t id : info.eog_token_ids()) {
      if (id >= 0 && id < info.vocab_size()) special[static_cast<size_t>(id)] = true;
    }
    for (int32_t id = 0; id < info.vocab_size(); ++id) {
      if (!special[static_cast<size_t>(id)]) impl->prompt_ids.push_back(id);
    }
  }
  if (config.prompt_text.empty() && info.max_context() > 0 &&
      config.prompt_tokens + config.max_tokens > info.max_context()) {
    return absl::InvalidArgumentError(absl::StrCat("prompt_tokens + max_tokens = ", config.prompt_tokens, " + ",
                                                   config.max_tokens, " exceeds the context limit ", info.max_context(),
                                                   " of ", config.target));
  }
  return std::unique_ptr<LoadGenerator>(new LoadGenerator(std::move(impl)));
}

absl::StatusOr<RunResult> LoadGenerator::Run(const RunSpec& spec, const std::function<void(const Progress&)>& progress,
                                             double progress_interval_seconds) {
  if (absl::Status s = ValidateRunSpec(spec); !s.ok()) return s;
  if (!(progress_interval_seconds > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("progress_interval_seconds must be > 0, got ", progress_interval_seconds));
  }
  RunState state(impl_.get(), spec, impl_->runs_started++);
  return state.Drive(progress, progress_interval_seconds);
}

const std::string& LoadGenerator::model_name() const { return impl_->model_name; }
int64_t LoadGenerator::vocab_size() const { return impl_->vocab_size; }
int64_t LoadGenerator::max_context() const { return impl_->max_context; }
const std::vector<int32_t>& LoadGenerator::prompt_token_ids() const { return impl_->prompt_ids; }
const LoadgenConfig& LoadGenerator::config() const { return impl_->config; }

// --------------------------------------------------------------- Reports

std::string StatusCodeName(int code) {
  static constexpr const char* kNames[] = {
      "OK",        "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
      "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
      "ABORTED",   "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
      "DATA_LOSS", "UNAUTHENTICATED"};
  if (code >= 0 && code < static_cast<int>(std::size(kNames))) return kNames[code];
  return absl::StrCat("CODE_", code);
}

namespace {

std::string Triple(const Distribution& d, double scale, int decimals) {
  if (d.count == 0) return "-";
  return absl::StrFormat("%.*f/%.*f/%.*f", decimals, d.p50 * scale, decimals, d.p90 * scale, decimals, d.p99 * scale);
}

std::string DescribeLoad(const TargetDescription& t) {
  const LoadgenConfig& c = t.config;
  std::string prompt = c.prompt_text.empty() ? absl::StrCat(c.prompt_tokens, " random tokens (shared prefix ",
                                                            c.shared_prefix_tokens, ", seed ", c.seed, ")")
                                             : absl::StrCat("text of ", c.prompt_text.size(), " bytes");
  std::string length = t.requests_per_stream > 0 ? absl::StrCat("requests per stream ", t.requests_per_stream)
                                                 : absl::StrCat("duration ", t.duration_seconds, " s per run");
  return absl::StrCat("prompt ", prompt, ", max_tokens ", c.max_tokens, ", temperature ", c.temperature,
                      ", ignore_eos ", c.ignore_eos ? "on" : "off", ", ", length, ", warmup ", t.warmup_requests,
                      ", channels ", c.channels);
}

nlohmann::json DistributionJson(const Distribution& d) {
  nlohmann::json j;
  j["count"] = d.count;
  for (auto [key, value] : {std::pair<const char*, double>{"mean", d.mean},
                            {"min", d.min},
                            {"p50", d.p50},
                            {"p90", d.p90},
                            {"p99", d.p99},
                            {"max", d.max}}) {
    if (d.count == 0) {
      j[key] = nullptr;
    } else {
      j[key] = value;
    }
  }
  return j;
}

}  // namespace

std::string FormatTable(const TargetDescription& t, const std::vector<RunStats>& runs) {
  std::string out = absl::StrCat("target ", t.config.target, " (model ", t.model_name, ", vocab ", t.vocab_size,
                                 ", context ", t.max_context, ")\n", DescribeLoad(t), "\n\n");
  absl::StrAppend(&out, absl::StrFormat("%5s %7s %6s %8s %10s %8s %24s %22s %22s %10s\n", "conc", "ok", "failed",
                                        "wall s", "gen tok/s", "req/s", "TTFT ms p50/p90/p99", "ITL ms p50/p90/p99",
                                        "e2e s p50/p90/p99", "cached"));
  for (const RunStats& r : runs) {
    absl::StrAppend(
        &out, absl::StrFormat("%5d %7d %6d %8.2f %10.2f %8.3f %24s %22s %22s %10d\n", r.concurrency, r.requests_ok,
                              r.requests_failed, r.wall_seconds, r.generated_tokens_per_second, r.requests_per_second,
                              Triple(r.ttft_seconds, 1e3, 1), Triple(r.itl_seconds, 1e3, 1),
                              Triple(r.e2e_seconds, 1.0, 2), r.cached_prompt_tokens));
  }
  for (const RunStats& r : runs) {
    for (const auto& [key, count] : r.failed_by_code) {
      auto it = r.first_error.find(key);
      absl::StrAppend(&out, "concurrency ", r.concurrency, ": ", count, " failed with ", key,
                      it != r.first_error.end() && !it->second.empty() ? absl::StrCat(" (", it->second, ")") : "",
                      "\n");
    }
  }
  return out;
}

std::string FormatJson(const TargetDescription& t, const std::vector<RunStats>& runs) {
  const LoadgenConfig& c = t.config;
  nlohmann::json doc;
  doc["target"] = c.target;
  doc["model"] = t.model_name;
  doc["vocab_size"] = t.vocab_size;
  doc["max_context"] = t.max_context;
  nlohmann::json& config = doc["config"];
  config["prompt_tokens"] = c.prompt_text.empty() ? c.prompt_tokens : 0;
  config["prompt_text"] = c.prompt_text.empty() ? nlohmann::json(nullptr) : nlohmann::json(c.prompt_text);
  config["shared_prefix_tokens"] = c.shared_prefix_tokens;
  config["max_tokens"] = c.max_tokens;
  config["ignore_eos"] = c.ignore_eos;
  config["temperature"] = c.temperature;
  config["seed"] = c.seed;
  config["requests_per_stream"] = t.requests_per_stream;
  config["duration_seconds"] = t.duration_seconds;
  config["warmup_requests"] = t.warmup_requests;
  config["channels"] = c.channels;
  config["request_timeout_seconds"] = c.request_timeout_seconds;
  nlohmann::json& list = doc["runs"];
  list = nlohmann::json::array();
  for (const RunStats& r : runs) {
    nlohmann::json j;
    j["concurrency"] = r.concurrency;
    j["requests_ok"] = r.requests_ok;
    j["requests_failed"] = r.requests_failed;
    j["failed_by_code"] = nlohmann::json::object();
    for (const auto& [key, count] : r.failed_by_code) j["failed_by_code"][key] = count;
    j["first_error"] = nlohmann::json::object();
    for (const auto& [key, message] : r.first_error) j["first_error"][key] = message;
    j["wall_seconds"] = r.wall_seconds;
    j["generated_tokens"] = r.generated_tokens;
    j["prompt_tokens"] = r.prompt_tokens;
    j["cached_prompt_tokens"] = r.cached_prompt_tokens;
    j["generated_tokens_per_second"] = r.generated_tokens_per_second;
    j["requests_per_second"] = r.requests_per_second;
    j["ttft_seconds"] = DistributionJson(r.ttft_seconds);
    j["itl_seconds"] = DistributionJson(r.itl_seconds);
    j["e2e_seconds"] = DistributionJson(r.e2e_seconds);
    list.push_back(std::move(j));
  }
  // Replace invalid UTF-8 (a prompt text or server message) instead of throwing.
  return doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

std::string FormatProgress(const Progress& p) {
  const double rate = p.elapsed_seconds > 0 ? static_cast<double>(p.generated_tokens) / p.elapsed_seconds : 0;
  return absl::StrFormat("wf_loadgen: concurrency %d  %.1f s  ok %d  failed %d  in flight %d  tokens %d (%.1f tok/s)",
                         p.concurrency, p.elapsed_seconds, p.requests_ok, p.requests_failed, p.in_flight,
                         p.generated_tokens, rate);
}

}  // namespace wf::loadgen
