#include "tools/router_bench/router_bench.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <random>
#include <thread>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "grpcpp/grpcpp.h"
#include "nlohmann/json.hpp"
#include "wrinklefree/v1/router.grpc.pb.h"
#include "wrinklefree/v1/worker.grpc.pb.h"

namespace wf::router_bench {
namespace {

namespace v1 = wrinklefree::v1;
using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point start, Clock::time_point end) {
  return std::chrono::duration<double, std::milli>(end - start).count();
}

std::chrono::system_clock::time_point Deadline(double seconds) {
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::duration<double>(seconds));
}

absl::Status FromGrpc(const grpc::Status& s, const std::string& what) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), absl::StrCat(what, ": ", s.error_message()));
}

// Reads a Generate stream to its end; the time of the first message with
// tokens, in ms after `start`.
template <typename Reader>
absl::StatusOr<double> FirstTokenMs(Reader& reader, Clock::time_point start, const std::string& what) {
  v1::GenerateResponse response;
  double first = -1;
  while (reader.Read(&response)) {
    if (first < 0 && response.tokens_size() > 0) first = MsSince(start, Clock::now());
  }
  grpc::Status status = reader.Finish();
  if (!status.ok()) return FromGrpc(status, what);
  if (first < 0) return absl::InternalError(absl::StrCat(what, ": the stream ended without a token"));
  return first;
}

// One keep-alive HTTP/1.1 connection that posts streamed completions.
class SseConnection {
 public:
  SseConnection(std::string host, int port) : host_(std::move(host)), port_(port) {}
  ~SseConnection() { Close(); }
  SseConnection(const SseConnection&) = delete;
  SseConnection& operator=(const SseConnection&) = delete;

  // Posts `body` to `path` and reads the whole event stream; returns the
  // time from the send to the first byte of the first chunk's payload (ms).
  absl::StatusOr<double> Post(const std::string& path, const std::string& body, double timeout_seconds) {
    const std::string request =
        absl::StrCat("POST ", path, " HTTP/1.1\r\nHost: ", host_, ":", port_,
                     "\r\nContent-Type: application/json\r\nAccept: text/event-stream\r\nContent-Length: ",
                     body.size(), "\r\n\r\n", body);
    // A reused connection the server has closed meanwhile fails before any
    // response byte: that one is retried once on a new connection.
    for (int attempt = 0;; ++attempt) {
      const bool reused = fd_ >= 0;
      if (!reused) {
        if (absl::Status s = Connect(); !s.ok()) return s;
      }
      bool got_any = false;
      absl::StatusOr<double> r = Exchange(request, timeout_seconds, &got_any);
      if (r.ok() || got_any || !reused || attempt > 0) return r;
      Close();
    }
  }

 private:
  absl::Status Connect() {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    const std::string port = std::to_string(port_);
    if (int rc = ::getaddrinfo(host_.c_str(), port.c_str(), &hints, &res); rc != 0) {
      return absl::UnavailableError(absl::StrCat("cannot resolve ", host_, ": ", gai_strerror(rc)));
    }
    for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
      const int fd = ::socket(a->ai_family, a->ai_socktype, a->ai_protocol);
      if (fd < 0) continue;
      if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
        const int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        fd_ = fd;
        break;
      }
      ::close(fd);
    }
    ::freeaddrinfo(res);
    if (fd_ < 0) return absl::UnavailableError(absl::StrCat("cannot connect to ", host_, ":", port_));
    return absl::OkStatus();
  }

  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  absl::StatusOr<double> Exchange(const std::string& request, double timeout_seconds, bool* got_any) {
    const Clock::time_point start = Clock::now();
    const Clock::time_point deadline =
        start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_seconds));
    for (size_t sent = 0; sent < request.size();) {
      const ssize_t n = ::send(fd_, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) {
        Close();
        return absl::UnavailableError("HTTP: sending the request failed");
      }
      sent += static_cast<size_t>(n);
    }
    std::string raw;          // everything received
    size_t body_start = 0;    // after the header block (0: not seen yet)
    size_t parse_pos = 0;     // next unparsed byte of the chunked body
    bool close_after = false;
    double first = -1;
    std::string payload;
    while (true) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) {
        Close();
        return absl::DeadlineExceededError(
            absl::StrFormat("HTTP: the response did not end within %.1f s", timeout_seconds));
      }
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
      char buf[16384];
      const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      const Clock::time_point now = Clock::now();
      if (n <= 0) {
        Close();
        return absl::UnavailableError(
            absl::StrCat("HTTP: the connection ended before the response did (", raw.size(), " bytes received)"));
      }
      *got_any = true;
      raw.append(buf, static_cast<size_t>(n));
      if (body_start == 0) {
        const size_t end = raw.find("\r\n\r\n");
        if (end == std::string::npos) continue;
        body_start = end + 4;
        parse_pos = body_start;
        const std::string head = absl::AsciiStrToLower(raw.substr(0, end));
        if (!absl::StartsWith(head, "http/1.1 200")) {
          Close();
          return absl::InternalError(absl::StrCat("HTTP: expected 200, got: ", raw.substr(0, 400)));
        }
        if (!absl::StrContains(head, "transfer-encoding: chunked")) {
          Close();
          return absl::InternalError("HTTP: the streamed response is not chunked");
        }
        close_after = absl::StrContains(head, "connection: close");
      }
      // Chunks: "<hex size>\r\n<payload>\r\n"..., ending with "0\r\n\r\n".
      while (true) {
        const size_t eol = raw.find("\r\n", parse_pos);
        if (eol == std::string::npos) break;
        size_t size = 0;
        const std::string hex = raw.substr(parse_pos, eol - parse_pos);
        if (!absl::SimpleHexAtoi(hex.substr(0, hex.find(';')), &size)) {
          Close();
          return absl::InternalError(absl::StrCat("HTTP: bad chunk size line '", hex.substr(0, 40), "'"));
        }
        if (size == 0) {
          if (raw.compare(eol + 2, 2, "\r\n") != 0) break;  // the final CRLF is still to come
          if (first < 0) {
            Close();
            return absl::InternalError("HTTP: the stream ended without data");
          }
          if (!absl::StrContains(payload, "data: [DONE]")) {
            Close();
            return absl::InternalError(absl::StrCat("HTTP: the stream did not end with [DONE]: ", payload.substr(0, 400)));
          }
          if (close_after) Close();
          return first;
        }
        if (raw.size() > eol + 2 && first < 0) first = MsSince(start, now);
        if (raw.size() < eol + 2 + size + 2) break;
        payload.append(raw, eol + 2, size);
        parse_pos = eol + 2 + size + 2;
      }
    }
  }

  const std::string host_;
  const int port_;
  int fd_ = -1;
};

}  // namespace

namespace {

// One row per PathIndex, in enum order, so a name and its key cannot drift.
struct PathLabels {
  PathIndex path;
  const char* name;  // for the table
  const char* key;   // for the JSON document
};
constexpr PathLabels kPathLabels[kPathCount] = {
    {kDirectGrpc, "worker gRPC direct", "direct_grpc"},
    {kRouterGrpc, "router gRPC", "router_grpc"},
    {kRouterHttp, "router HTTP SSE", "router_http"},
    {kUnaryRoundTrip, "gRPC unary round trip", "unary_round_trip"},
};

constexpr bool PathLabelsInEnumOrder() {
  for (int p = 0; p < kPathCount; ++p) {
    if (kPathLabels[p].path != p || kPathLabels[p].name == nullptr || kPathLabels[p].key == nullptr) return false;
  }
  return true;
}
static_assert(PathLabelsInEnumOrder(), "kPathLabels must list every PathIndex once, in enum order");

}  // namespace

const char* PathName(int path) { return path >= 0 && path < kPathCount ? kPathLabels[path].name : "?"; }

const char* PathKey(int path) { return path >= 0 && path < kPathCount ? kPathLabels[path].key : "?"; }

double Percentile(std::vector<double> samples, double q) {
  if (samples.empty()) return 0;
  std::sort(samples.begin(), samples.end());
  const double rank = std::ceil(std::clamp(q, 0.0, 1.0) * static_cast<double>(samples.size()));
  const size_t index = rank < 1 ? 0 : static_cast<size_t>(rank) - 1;
  return samples[std::min(index, samples.size() - 1)];
}

Summary Summarize(absl::Span<const double> samples) {
  Summary s;
  s.count = static_cast<int>(samples.size());
  if (samples.empty()) return s;
  std::vector<double> v(samples.begin(), samples.end());
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / static_cast<double>(v.size());
  s.p50 = Percentile(v, 0.5);
  s.p90 = Percentile(v, 0.9);
  s.p99 = Percentile(v, 0.99);
  s.p999 = Percentile(v, 0.999);
  s.max = *std::max_element(v.begin(), v.end());
  return s;
}

std::vector<double> PairedDifference(absl::Span<const double> a, absl::Span<const double> b) {
  std::vector<double> d(std::min(a.size(), b.size()));
  for (size_t i = 0; i < d.size(); ++i) d[i] = a[i] - b[i];
  return d;
}

absl::StatusOr<BenchResult> RunBench(const BenchConfig& config) {
  if (config.worker_address.empty() || config.router_grpc_address.empty() || config.router_http_port <= 0) {
    return absl::InvalidArgumentError("the worker, the router's gRPC front and its HTTP port are all required");
  }
  if (config.requests < 1 || config.warmup < 0 || config.prompt_tokens < 1 || config.pause_ms < 0) {
    return absl::InvalidArgumentError("requests must be >= 1, warmup >= 0, prompt_tokens >= 1 and pause_ms >= 0");
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  auto worker_channel = grpc::CreateCustomChannel(config.worker_address, grpc::InsecureChannelCredentials(), args);
  auto router_channel =
      grpc::CreateCustomChannel(config.router_grpc_address, grpc::InsecureChannelCredentials(), args);
  auto worker = v1::Worker::NewStub(worker_channel);
  auto router = v1::Router::NewStub(router_channel);

  BenchResult result;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline(10));
    v1::ModelInfo info;
    if (grpc::Status s = worker->GetModelInfo(&ctx, {}, &info); !s.ok()) {
      return FromGrpc(s, absl::StrCat("worker ", config.worker_address, " GetModelInfo"));
    }
    result.vocab_size = info.vocab_size();
    if (result.vocab_size <= 8) {
      return absl::FailedPreconditionError(absl::StrCat("the worker's vocabulary has ", result.vocab_size, " tokens"));
    }
  }
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline(10));
    v1::ListModelsResponse models;
    if (grpc::Status s = router->ListModels(&ctx, {}, &models); !s.ok()) {
      return FromGrpc(s, absl::StrCat("router ", config.router_grpc_address, " ListModels"));
    }
    if (models.models_size() == 0) return absl::FailedPreconditionError("the router lists no model");
    result.model = models.models(0).model_name();
  }

  std::mt19937_64 rng(config.seed);
  auto fresh_prompt = [&] {
    std::vector<int32_t> ids(static_cast<size_t>(config.prompt_tokens));
    for (int32_t& id : ids) id = static_cast<int32_t>(4 + rng() % static_cast<uint64_t>(result.vocab_size - 4));
    return ids;
  };
  auto make_request = [&](const std::vector<int32_t>& ids) {
    v1::GenerateRequest g;
    g.mutable_token_ids()->mutable_ids()->Add(ids.begin(), ids.end());
    g.mutable_stop()->set_max_tokens(1);
    g.mutable_stop()->set_ignore_eos(true);
    g.mutable_sampling()->set_temperature(0);
    return g;
  };
  SseConnection http(config.router_http_host, config.router_http_port);

  auto run_path = [&](int path) -> absl::StatusOr<double> {
    if (path == kUnaryRoundTrip) {
      grpc::ClientContext ctx;
      ctx.set_deadline(Deadline(config.request_timeout_seconds));
      v1::ModelInfo info;
      const Clock::time_point start = Clock::now();
      const grpc::Status s = worker->GetModelInfo(&ctx, {}, &info);
      const double ms = MsSince(start, Clock::now());
      if (!s.ok()) return FromGrpc(s, "worker GetModelInfo");
      return ms;
    }
    const std::vector<int32_t> ids = fresh_prompt();
    switch (path) {
      case kDirectGrpc: {
        const v1::GenerateRequest req = make_request(ids);
        grpc::ClientContext ctx;
        ctx.set_deadline(Deadline(config.request_timeout_seconds));
        const Clock::time_point start = Clock::now();
        auto reader = worker->Generate(&ctx, req);
        return FirstTokenMs(*reader, start, "worker Generate");
      }
      case kRouterGrpc: {
        v1::RouterGenerateRequest req;
        *req.mutable_request() = make_request(ids);
        grpc::ClientContext ctx;
        ctx.set_deadline(Deadline(config.request_timeout_seconds));
        const Clock::time_point start = Clock::now();
        auto reader = router->Generate(&ctx, req);
        return FirstTokenMs(*reader, start, "router Generate");
      }
      default: {
        const nlohmann::json body = {{"model", result.model}, {"prompt", ids},        {"max_tokens", 1},
                                     {"temperature", 0},      {"ignore_eos", true}, {"stream", true}};
        return http.Post("/v1/completions", body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                         config.request_timeout_seconds);
      }
    }
  };

  const int total = config.warmup + config.requests;
  Clock::time_point last_progress = Clock::now();
  for (int it = 0; it < total; ++it) {
    const bool measured = it >= config.warmup;
    for (int k = 0; k < kPathCount; ++k) {
      const int path = (it + k) % kPathCount;  // rotates which path goes first
      if (config.pause_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(config.pause_ms));
      absl::StatusOr<double> ms = run_path(path);
      if (!ms.ok()) {
        return absl::Status(ms.status().code(), absl::StrCat(PathName(path), ", iteration ", it, measured ? "" : " (warm-up)",
                                                             ": ", ms.status().message()));
      }
      if (measured) result.ttft_ms[path].push_back(*ms);
    }
    if (config.progress && (it + 1 == total || Clock::now() - last_progress >= std::chrono::seconds(2))) {
      last_progress = Clock::now();
      if (result.ttft_ms[kDirectGrpc].empty()) {
        std::fprintf(stderr, "wf_router_bench: %d/%d iterations (warm-up)\n", it + 1, total);
      } else {
        std::fprintf(stderr, "wf_router_bench: %d/%d iterations; p50 so far: direct %.3f, router gRPC %.3f, HTTP %.3f ms\n",
                     it + 1, total, Percentile(result.ttft_ms[kDirectGrpc], 0.5),
                     Percentile(result.ttft_ms[kRouterGrpc], 0.5), Percentile(result.ttft_ms[kRouterHttp], 0.5));
      }
    }
  }
  return result;
}

std::string FormatText(const BenchConfig& config, const BenchResult& result) {
  std::string out = absl::StrFormat(
      "wf_router_bench: time to first token, %d iterations (+%d warm-up), prompt %d fresh tokens, max_tokens 1\n"
      "model '%s'; worker %s, router gRPC %s, router HTTP %s:%d%s\n\n",
      config.requests, config.warmup, config.prompt_tokens, result.model, config.worker_address,
      config.router_grpc_address, config.router_http_host, config.router_http_port,
      config.pause_ms > 0 ? absl::StrFormat("; %d ms idle before each request", config.pause_ms) : "");
  absl::StrAppendFormat(&out, "%-22s %9s %9s %9s %9s %9s %9s\n", "path (ms)", "mean", "p50", "p90", "p99", "p99.9",
                        "max");
  Summary s[kPathCount];
  for (int p = 0; p < kPathCount; ++p) {
    s[p] = Summarize(result.ttft_ms[p]);
    absl::StrAppendFormat(&out, "%-22s %9.3f %9.3f %9.3f %9.3f %9.3f %9.3f%s\n", PathName(p), s[p].mean, s[p].p50,
                          s[p].p90, s[p].p99, s[p].p999, s[p].max,
                          p == kUnaryRoundTrip ? "  (reference: worker GetModelInfo)" : "");
  }
  absl::StrAppendFormat(&out, "\n%-22s %12s %12s   %s\n", "added by the router", "p50 (ms)", "p99 (ms)",
                        "paired per iteration: p50, p99 (ms)");
  for (int p : {kRouterGrpc, kRouterHttp}) {
    const Summary d = Summarize(PairedDifference(result.ttft_ms[p], result.ttft_ms[kDirectGrpc]));
    absl::StrAppendFormat(&out, "%-22s %+12.3f %+12.3f   %+.3f, %+.3f\n", PathName(p), s[p].p50 - s[kDirectGrpc].p50,
                          s[p].p99 - s[kDirectGrpc].p99, d.p50, d.p99);
  }
  return out;
}

std::string FormatJson(const BenchConfig& config, const BenchResult& result) {
  nlohmann::json j;
  j["requests"] = config.requests;
  j["warmup"] = config.warmup;
  j["prompt_tokens"] = config.prompt_tokens;
  j["max_tokens"] = 1;
  j["seed"] = config.seed;
  j["pause_ms"] = config.pause_ms;
  j["model"] = result.model;
  auto summary_json = [](const Summary& s) {
    return nlohmann::json{{"count", s.count}, {"mean_ms", s.mean}, {"p50_ms", s.p50}, {"p90_ms", s.p90},
                          {"p99_ms", s.p99},  {"p999_ms", s.p999}, {"max_ms", s.max}};
  };
  Summary s[kPathCount];
  for (int p = 0; p < kPathCount; ++p) {
    s[p] = Summarize(result.ttft_ms[p]);
    j[p == kUnaryRoundTrip ? "reference" : "paths"][PathKey(p)] = summary_json(s[p]);
  }
  for (int p : {kRouterGrpc, kRouterHttp}) {
    const Summary d = Summarize(PairedDifference(result.ttft_ms[p], result.ttft_ms[kDirectGrpc]));
    j["added"][PathKey(p)] = {{"p50_ms", s[p].p50 - s[kDirectGrpc].p50},
                              {"p99_ms", s[p].p99 - s[kDirectGrpc].p99},
                              {"paired_p50_ms", d.p50},
                              {"paired_p99_ms", d.p99}};
  }
  // Replacing invalid UTF-8 (a model name is the server's text) never throws.
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

}  // namespace wf::router_bench
