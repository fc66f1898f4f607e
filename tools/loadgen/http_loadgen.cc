#include "tools/loadgen/http_loadgen.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <thread>
#include <utility>

// g++ 12 reports a false maybe-uninitialized inside Beast's parser
// (boost::optional body limit); the location is in the header.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#pragma GCC diagnostic pop

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "nlohmann/json.hpp"

namespace wf::loadgen {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using Json = nlohmann::json;

namespace {

using Clock = std::chrono::steady_clock;

// Bytes of a non-200 body or error event kept in a record.
constexpr size_t kMaxErrorBytes = 4096;
// A whole (non-SSE) response body larger than this is a BAD_BODY.
constexpr size_t kMaxBodyBytes = 16 << 20;

uint64_t Mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// A uniform double in [0, 1) from a hash.
double Unit(uint64_t h) { return static_cast<double>(h >> 11) * 0x1.0p-53; }

Clock::duration Seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(std::max(s, 0.0)));
}

struct Target {
  std::string url;
  std::string host;
  std::string port;
  tcp::resolver::results_type endpoints;
};

// "http://HOST:PORT/" or "HOST:PORT" -> host, port. IPv6 literals in [].
bool SplitUrl(absl::string_view url, std::string* host, std::string* port) {
  absl::ConsumePrefix(&url, "http://");
  absl::ConsumeSuffix(&url, "/");
  if (url.empty() || url.find('/') != absl::string_view::npos) return false;
  size_t colon = url.rfind(':');
  if (colon == absl::string_view::npos || colon == 0) return false;
  absl::string_view h = url.substr(0, colon);
  if (h.front() == '[') {
    if (h.back() != ']') return false;
    h = h.substr(1, h.size() - 2);
  }
  int p = 0;
  if (!absl::SimpleAtoi(url.substr(colon + 1), &p) || p < 1 || p > 65535 || h.empty()) return false;
  *host = std::string(h);
  *port = std::to_string(p);
  return true;
}

std::string StatusKey(int status) { return absl::StrCat("HTTP_", status); }

}  // namespace

// ------------------------------------------------------------ SSE parsing

void SseSplitter::Feed(std::string_view bytes, std::vector<std::string>* events) {
  for (char c : bytes) {
    if (last_was_cr_ && c == '\n') {  // the LF of a CRLF
      last_was_cr_ = false;
      continue;
    }
    last_was_cr_ = c == '\r';
    if (c != '\n' && c != '\r') {
      line_.push_back(c);
      continue;
    }
    // A complete line.
    if (line_.empty()) {  // blank line: dispatch
      if (has_data_) events->push_back(std::move(data_));
      data_.clear();
      has_data_ = false;
      continue;
    }
    absl::string_view line = line_;
    if (absl::ConsumePrefix(&line, "data")) {
      if (line.empty() || line.front() == ':') {
        if (!line.empty()) line.remove_prefix(1);
        if (!line.empty() && line.front() == ' ') line.remove_prefix(1);
        if (has_data_) data_.push_back('\n');
        data_.append(line.data(), line.size());
        has_data_ = true;
      }
    }
    line_.clear();
  }
}

SseEventInfo ParseSseEvent(std::string_view data) {
  SseEventInfo info;
  if (data == "[DONE]") {
    info.done = true;
    return info;
  }
  const Json j = Json::parse(data, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) {
    info.error = true;
    info.error_message = absl::StrCat("event is not a JSON object: ", std::string(data.substr(0, 200)));
    return info;
  }
  if (auto e = j.find("error"); e != j.end() && !e->is_null()) {
    info.error = true;
    auto m = e->is_object() ? e->find("message") : e->end();
    info.error_message = m != e->end() && m->is_string() ? m->get<std::string>() : e->dump(-1, ' ', false,
                                                                                               Json::error_handler_t::replace);
    return info;
  }
  if (auto choices = j.find("choices"); choices != j.end() && choices->is_array() && !choices->empty()) {
    const Json& c = (*choices)[0];
    if (c.is_object()) {
      // Chat chunks carry delta.content, completion chunks carry text.
      const Json* holder = &c;
      const char* key = "text";
      if (auto delta = c.find("delta"); delta != c.end() && delta->is_object()) {
        holder = &*delta;
        key = "content";
      }
      auto text = holder->find(key);
      info.has_text = text != holder->end() && text->is_string() && !text->get_ref<const std::string&>().empty();
      if (auto f = c.find("finish_reason"); f != c.end() && f->is_string()) info.finish_reason = f->get<std::string>();
    }
  }
  if (auto usage = j.find("usage"); usage != j.end() && usage->is_object()) {
    if (auto n = usage->find("completion_tokens"); n != usage->end() && n->is_number_integer()) {
      info.completion_tokens = n->get<int64_t>();
    }
  }
  return info;
}

// ---------------------------------------------------------------- Config

const std::vector<std::string>& DefaultPromptMix() {
  static const auto* prompts = new std::vector<std::string>{
      "Hello!",
      "What is the capital of France?",
      "Write a haiku about the sea at night.",
      "Explain in two sentences why the sky looks blue during the day and red at sunset.",
      "List five fruits that are red, then five that are yellow, and say which one you like best and why.",
      "Summarize the following text. The committee met on Tuesday to review the budget for the coming year. "
      "After a long discussion about maintenance costs, staffing and the new library wing, the members agreed "
      "to postpone the decision on the wing until the spring, to raise the maintenance budget by four percent, "
      "and to hire two additional staff members for the reading rooms. The chair thanked the volunteers.",
      "You are a careful assistant. A user asks: I have a list of numbers, 3, 14, 15, 92, 65, 35, 89, 79, 32, "
      "38, 46, 26, 43, 38, 32, 79, 50, 28, 84, 19, 71, 69, 39, 93, 75, 10, 58, 20, 97, 49, 44, 59, 23, 7, 81, "
      "64, 6, 28, 62, 8, 99, 86, 28, 3, 48, 25, 34, 21, 17, 6, 79. Which of them are prime, what is their sum, "
      "and what is the median of the whole list? Show the steps of your reasoning before the final answer, "
      "and check every intermediate result twice.",
      "Translate to French: The train leaves at seven in the morning, so we should pack tonight.",
  };
  return *prompts;
}

absl::Status ValidateHttpConfig(const HttpLoadgenConfig& c) {
  if (c.urls.empty()) return absl::InvalidArgumentError("at least one URL is required");
  for (const std::string& url : c.urls) {
    std::string host, port;
    if (!SplitUrl(url, &host, &port)) {
      return absl::InvalidArgumentError(
          absl::StrCat("URL must be http://HOST:PORT (port 1..65535, no path), got '", url, "'"));
    }
  }
  if (c.endpoint != "chat" && c.endpoint != "completions" && c.endpoint != "mix") {
    return absl::InvalidArgumentError(
        absl::StrCat("endpoint must be chat, completions or mix, got '", c.endpoint, "'"));
  }
  for (size_t i = 0; i < c.prompts.size(); ++i) {
    if (c.prompts[i].empty()) return absl::InvalidArgumentError(absl::StrCat("prompt ", i, " is empty"));
  }
  if (c.max_tokens < 1 || c.max_tokens > (int64_t{1} << 30)) {
    return absl::InvalidArgumentError(absl::StrCat("max_tokens must be in [1, 2^30], got ", c.max_tokens));
  }
  if (c.max_tokens_max != 0 && (c.max_tokens_max < c.max_tokens || c.max_tokens_max > (int64_t{1} << 30))) {
    return absl::InvalidArgumentError(absl::StrCat("max_tokens_max must be 0 or in [max_tokens = ", c.max_tokens,
                                                   ", 2^30], got ", c.max_tokens_max));
  }
  if (!(c.stream_fraction >= 0 && c.stream_fraction <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat("stream_fraction must be in [0, 1], got ", c.stream_fraction));
  }
  if (!(c.temperature >= 0 && c.temperature <= 2)) {
    return absl::InvalidArgumentError(absl::StrCat("temperature must be in [0, 2], got ", c.temperature));
  }
  if (c.io_threads < 1 || c.io_threads > 64) {
    return absl::InvalidArgumentError(absl::StrCat("io_threads must be in [1, 64], got ", c.io_threads));
  }
  if (!(c.connect_timeout_seconds > 0) || !(c.request_timeout_seconds > 0)) {
    return absl::InvalidArgumentError(absl::StrCat("timeouts must be > 0, got connect ", c.connect_timeout_seconds,
                                                   " s and request ", c.request_timeout_seconds, " s"));
  }
  return absl::OkStatus();
}

// ----------------------------------------------------------------- Driver

namespace {

class StreamClient;

// The state of one Run(); lives on Run()'s stack until every stream is done
// and the IO threads are joined.
class RunCore {
 public:
  RunCore(const HttpLoadgenConfig& config, const std::string& model, const std::vector<Target>& targets,
          const HttpRunSpec& spec, uint64_t run_index)
      : config_(config), model_(model), targets_(targets), spec_(spec), run_index_(run_index) {}

  double Elapsed() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }
  const HttpLoadgenConfig& config() const { return config_; }
  const Target& target(size_t i) const { return targets_[i]; }

  HttpRunResult Drive(const std::function<void(const HttpProgress&)>& progress, double interval);

  // The next request number for a stream, or -1 when the run is over.
  int64_t NextRequest();
  // The HTTP request bytes of request `number` (endpoint, body, flags).
  std::string BuildRequest(int64_t number, const Target& target, HttpRequestRecord* record) const;

  void RequestStarted();
  // Records a finished request; returns the stream's next request or -1.
  int64_t RequestDone(HttpRequestRecord record);
  // A hold candidate settled: held after its first event (complete: its
  // whole response has arrived), or ended without being held.
  void HoldSettled(bool held, bool complete);
  void AddTextEvent() { text_events_.fetch_add(1, std::memory_order_relaxed); }

 private:
  HttpProgress SnapshotLocked() const;

  const HttpLoadgenConfig& config_;
  const std::string& model_;
  const std::vector<Target>& targets_;
  const HttpRunSpec spec_;
  const uint64_t run_index_;
  Clock::time_point start_ = Clock::now();
  std::atomic<int64_t> text_events_{0};

  mutable std::mutex mu_;
  std::condition_variable cv_;
  int64_t issued_ = 0;
  int64_t streams_active_ = 0;
  int64_t open_ = 0;
  int64_t peak_open_ = 0;
  int64_t ok_ = 0;
  int64_t failed_ = 0;
  int64_t hold_pending_ = 0;
  HoldPoint hold_;
  std::vector<HttpRequestRecord> records_;
  std::vector<std::shared_ptr<StreamClient>> streams_;
  friend class StreamClient;
};

class StreamClient : public std::enable_shared_from_this<StreamClient> {
 public:
  StreamClient(asio::io_context& io, RunCore* run, int32_t stream, int32_t url_index)
      : run_(run),
        stream_(stream),
        url_index_(url_index),
        strand_(asio::make_strand(io)),
        socket_(strand_),
        timer_(strand_) {
    chunk_cb_ = [this](uint64_t, beast::string_view body, error_code&) -> size_t {
      OnChunk(std::string_view(body.data(), body.size()));
      return body.size();
    };
  }

  void Begin(int64_t number, bool hold_candidate) {
    asio::post(strand_, [self = shared_from_this(), number, hold_candidate] {
      self->hold_candidate_ = hold_candidate;
      self->StartRequest(number);
    });
  }

  void Release() {
    asio::post(strand_, [self = shared_from_this()] {
      if (!self->holding_) return;
      self->holding_ = false;
      std::vector<std::pair<double, std::string>> held = std::move(self->held_);
      self->held_.clear();
      for (auto& [at, bytes] : held) {
        if (!self->active_) return;
        self->ProcessSse(bytes, at);
      }
      if (self->active_ && !self->read_in_flight_) self->Continue();
    });
  }

  void Close() {
    asio::post(strand_, [self = shared_from_this()] {
      error_code ignored;
      self->socket_.close(ignored);
      self->timer_.cancel();
    });
  }

 private:
  void StartRequest(int64_t number) {
    const Target& target = run_->target(static_cast<size_t>(url_index_));
    rec_ = HttpRequestRecord();
    rec_.base.stream = stream_;
    rec_.url_index = url_index_;
    request_ = run_->BuildRequest(number, target, &rec_);
    rec_.base.start_seconds = run_->Elapsed();
    ++op_;
    active_ = true;
    header_seen_ = is_sse_ = sse_failed_ = first_event_ = holding_ = read_in_flight_ = false;
    sse_ = SseSplitter();
    body_.clear();
    held_.clear();
    run_->RequestStarted();
    if (connected_) return Send();
    ArmTimer(run_->config().connect_timeout_seconds, "CONNECT");
    error_code ignored;
    socket_.close(ignored);
    asio::async_connect(socket_, target.endpoints,
                        asio::bind_executor(strand_, [self = shared_from_this(), op = op_](error_code ec,
                                                                                           const tcp::endpoint&) {
                          if (op != self->op_ || !self->active_) return;
                          if (ec) return self->Fail("CONNECT", absl::StrCat("connect: ", ec.message()));
                          self->connected_ = true;
                          error_code ignored2;
                          self->socket_.set_option(tcp::no_delay(true), ignored2);
                          self->Send();
                        }));
  }

  void Send() {
    const double left = run_->config().request_timeout_seconds - (run_->Elapsed() - rec_.base.start_seconds);
    ArmTimer(left, "TIMEOUT");
    parser_.emplace();
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    parser_->header_limit(64 << 10);
    parser_->on_chunk_body(chunk_cb_);
    buffer_.clear();
    asio::async_write(socket_, asio::buffer(request_),
                      asio::bind_executor(strand_, [self = shared_from_this(), op = op_](error_code ec, size_t) {
                        if (op != self->op_ || !self->active_) return;
                        if (ec) return self->Fail("IO", absl::StrCat("write: ", ec.message()));
                        self->ReadMore();
                      }));
  }

  void ReadMore() {
    read_in_flight_ = true;
    bhttp::async_read_some(socket_, buffer_, *parser_,
                           asio::bind_executor(strand_, [self = shared_from_this(), op = op_](error_code ec, size_t) {
                             if (op != self->op_) return;
                             self->read_in_flight_ = false;
                             if (!self->active_) return;
                             self->OnRead(ec);
                           }));
  }

  void OnRead(error_code ec) {
    if (!header_seen_ && parser_->is_header_done()) OnHeader();
    if (ec) return Fail(is_sse_ ? "NO_DONE" : "IO", absl::StrCat("read: ", ec.message()));
    if (holding_) {
      hold_candidate_ = false;
      run_->HoldSettled(true, parser_->is_done());
      return;  // Release() continues.
    }
    Continue();
  }

  void Continue() {
    if (parser_->is_done()) return Complete();
    ReadMore();
  }

  void OnHeader() {
    header_seen_ = true;
    const auto& msg = parser_->get();
    rec_.status = static_cast<int>(msg.result_int());
    if (auto it = msg.find("content-type"); it != msg.end()) rec_.content_type = std::string(it->value());
    if (auto it = msg.find("retry-after"); it != msg.end()) rec_.retry_after = std::string(it->value());
    is_sse_ = rec_.status == 200 && absl::StartsWithIgnoreCase(rec_.content_type, "text/event-stream");
  }

  void OnChunk(std::string_view bytes) {
    if (!header_seen_) OnHeader();
    if (!is_sse_) {
      if (body_.size() < kMaxBodyBytes) body_.append(bytes.substr(0, kMaxBodyBytes - body_.size()));
      return;
    }
    if (holding_) {
      held_.emplace_back(run_->Elapsed(), std::string(bytes));
      return;
    }
    ProcessSse(bytes, run_->Elapsed());
  }

  void ProcessSse(std::string_view bytes, double at) {
    std::vector<std::string> events;
    size_t pos = 0;
    // Byte by byte only until a hold starts: the rest waits for Release().
    while (pos < bytes.size()) {
      if (holding_) {
        held_.emplace_back(at, std::string(bytes.substr(pos)));
        return;
      }
      // Feed up to the end of the next line so that an event that starts a
      // hold is handled before the bytes after it.
      size_t end = bytes.find('\n', pos);
      end = end == std::string_view::npos ? bytes.size() : end + 1;
      sse_.Feed(bytes.substr(pos, end - pos), &events);
      pos = end;
      for (std::string& e : events) HandleEvent(e, at);
      events.clear();
    }
  }

  void HandleEvent(const std::string& data, double at) {
    ++rec_.events;
    const SseEventInfo info = ParseSseEvent(data);
    if (info.done) {
      rec_.done = true;
    } else if (info.error) {
      if (!sse_failed_) rec_.error_body = data.substr(0, kMaxErrorBytes);
      sse_failed_ = true;
      if (rec_.base.error.empty()) rec_.base.error = info.error_message;
    } else {
      if (info.has_text) {
        rec_.base.batches.push_back({at, 1});
        run_->AddTextEvent();
      }
      if (!info.finish_reason.empty()) rec_.base.finish_reason = info.finish_reason;
      if (info.completion_tokens >= 0) rec_.base.completion_tokens = info.completion_tokens;
    }
    if (!first_event_) {
      first_event_ = true;
      if (hold_candidate_) holding_ = true;
    }
  }

  void Complete() {
    const auto& msg = parser_->get();
    const bool keep_alive = msg.keep_alive();
    if (rec_.status != 200) {
      std::string body = is_sse_ ? std::string() : (body_.empty() ? msg.body() : body_);
      rec_.error_body = body.substr(0, kMaxErrorBytes);
      Finish(StatusKey(rec_.status), absl::StrCat("HTTP ", rec_.status, ": ", body.substr(0, 300)), keep_alive);
      return;
    }
    if (is_sse_) {
      if (sse_failed_) return Finish("SSE_ERROR", rec_.base.error, keep_alive);
      if (!rec_.done) return Finish("NO_DONE", "the stream ended without data: [DONE]", keep_alive);
      return Finish("", "", keep_alive);
    }
    const std::string& body = body_.empty() ? msg.body() : body_;
    const Json j = Json::parse(body, nullptr, /*allow_exceptions=*/false);
    auto choices = j.is_object() ? j.find("choices") : j.end();
    if (!j.is_object() || choices == j.end() || !choices->is_array() || choices->empty()) {
      rec_.error_body = body.substr(0, kMaxErrorBytes);
      return Finish("BAD_BODY", absl::StrCat("not a completion object: ", body.substr(0, 300)), keep_alive);
    }
    if (auto u = j.find("usage"); u != j.end() && u->is_object()) {
      if (auto n = u->find("completion_tokens"); n != u->end() && n->is_number_integer()) {
        rec_.base.completion_tokens = n->get<int64_t>();
      }
      if (auto n = u->find("prompt_tokens"); n != u->end() && n->is_number_integer()) {
        rec_.base.prompt_tokens = n->get<int64_t>();
      }
    }
    if (auto f = (*choices)[0].find("finish_reason"); f != (*choices)[0].end() && f->is_string()) {
      rec_.base.finish_reason = f->get<std::string>();
    }
    Finish("", "", keep_alive);
  }

  void Fail(const std::string& key, const std::string& message) { Finish(key, message, /*keep_alive=*/false); }

  void Finish(const std::string& failure, const std::string& message, bool keep_alive) {
    if (!active_) return;
    active_ = false;
    ++timer_seq_;
    timer_.cancel();
    if (!keep_alive || !failure.empty()) {
      error_code ignored;
      socket_.close(ignored);
      connected_ = false;
    }
    if (hold_candidate_) {  // ended before its hold was settled
      hold_candidate_ = false;
      run_->HoldSettled(false, false);
    }
    holding_ = false;
    held_.clear();
    rec_.base.end_seconds = run_->Elapsed();
    rec_.base.ok = failure.empty();
    if (!failure.empty()) {
      rec_.base.failure = failure;
      if (rec_.base.error.empty() || failure != "SSE_ERROR") rec_.base.error = message;
    }
    const int64_t next = run_->RequestDone(std::move(rec_));
    if (next >= 0) {
      asio::post(strand_, [self = shared_from_this(), next] { self->StartRequest(next); });
    }
  }

  void ArmTimer(double seconds, const char* key) {
    const uint64_t seq = ++timer_seq_;
    timer_.expires_after(Seconds(seconds));
    timer_.async_wait(asio::bind_executor(strand_, [self = shared_from_this(), seq, key](error_code ec) {
      if (ec || seq != self->timer_seq_ || !self->active_) return;
      self->Fail(key, std::string_view(key) == "CONNECT"
                          ? absl::StrCat("not connected within ", self->run_->config().connect_timeout_seconds, " s")
                          : absl::StrCat("no complete response within ",
                                         self->run_->config().request_timeout_seconds, " s"));
    }));
  }

  RunCore* run_;
  const int32_t stream_;
  const int32_t url_index_;
  asio::strand<asio::io_context::executor_type> strand_;
  tcp::socket socket_;
  asio::steady_timer timer_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::response_parser<bhttp::string_body>> parser_;
  // The parser keeps a reference to this callback.
  std::function<size_t(uint64_t, beast::string_view, error_code&)> chunk_cb_;
  std::string request_;
  HttpRequestRecord rec_;
  SseSplitter sse_;
  std::string body_;
  std::vector<std::pair<double, std::string>> held_;
  uint64_t op_ = 0;
  uint64_t timer_seq_ = 0;
  bool connected_ = false;
  bool active_ = false;
  bool header_seen_ = false;
  bool is_sse_ = false;
  bool sse_failed_ = false;
  bool first_event_ = false;
  bool hold_candidate_ = false;
  bool holding_ = false;
  bool read_in_flight_ = false;
};

int64_t RunCore::NextRequest() {
  if (spec_.requests > 0 ? issued_ < spec_.requests : Elapsed() < spec_.duration_seconds) return issued_++;
  return -1;
}

std::string RunCore::BuildRequest(int64_t number, const Target& target, HttpRequestRecord* record) const {
  const uint64_t key = Mix(Mix(config_.seed) ^ Mix(run_index_ * 0x10001 + static_cast<uint64_t>(number)));
  const bool chat = config_.endpoint == "chat" || (config_.endpoint == "mix" && number % 2 == 0);
  const std::vector<std::string>& prompts = config_.prompts.empty() ? DefaultPromptMix() : config_.prompts;
  const std::string& prompt = prompts[static_cast<size_t>(number) % prompts.size()];
  int64_t max_tokens = config_.max_tokens;
  if (config_.max_tokens_max > config_.max_tokens) {
    max_tokens += static_cast<int64_t>(Mix(key ^ 1) % static_cast<uint64_t>(config_.max_tokens_max - max_tokens + 1));
  }
  const bool stream = Unit(Mix(key ^ 2)) < config_.stream_fraction;
  Json body = {{"model", model_}, {"max_tokens", max_tokens}, {"temperature", config_.temperature},
               {"ignore_eos", config_.ignore_eos}, {"seed", Mix(key ^ 3) >> 33}};
  if (chat) {
    body["messages"] = Json::array({{{"role", "user"}, {"content", prompt}}});
  } else {
    body["prompt"] = prompt;
  }
  if (stream) {
    body["stream"] = true;
    body["stream_options"] = {{"include_usage", true}};
  }
  record->endpoint = chat ? "chat" : "completions";
  record->stream = stream;
  const std::string text = body.dump(-1, ' ', false, Json::error_handler_t::replace);
  std::string req = absl::StrCat("POST ", chat ? "/v1/chat/completions" : "/v1/completions", " HTTP/1.1\r\nHost: ",
                                 target.host, ":", target.port, "\r\nContent-Type: application/json\r\n",
                                 stream ? "Accept: text/event-stream\r\n" : "", "Content-Length: ", text.size(),
                                 "\r\n");
  if (!config_.api_key.empty()) absl::StrAppend(&req, "Authorization: Bearer ", config_.api_key, "\r\n");
  absl::StrAppend(&req, "\r\n", text);
  return req;
}

void RunCore::RequestStarted() {
  std::lock_guard<std::mutex> lock(mu_);
  peak_open_ = std::max(peak_open_, ++open_);
}

int64_t RunCore::RequestDone(HttpRequestRecord record) {
  std::lock_guard<std::mutex> lock(mu_);
  --open_;
  (record.base.ok ? ok_ : failed_)++;
  records_.push_back(std::move(record));
  const int64_t next = NextRequest();
  if (next < 0 && --streams_active_ == 0) cv_.notify_all();
  return next;
}

void RunCore::HoldSettled(bool held, bool complete) {
  std::lock_guard<std::mutex> lock(mu_);
  if (held) {
    ++hold_.held_streams;
    if (complete) ++hold_.held_complete;
  } else {
    ++hold_.ended_before_hold;
  }
  if (--hold_pending_ == 0) cv_.notify_all();
}

HttpProgress RunCore::SnapshotLocked() const {
  HttpProgress p;
  p.elapsed_seconds = Elapsed();
  p.requests_ok = ok_;
  p.requests_failed = failed_;
  p.open = open_;
  p.text_events = text_events_.load(std::memory_order_relaxed);
  return p;
}

HttpRunResult RunCore::Drive(const std::function<void(const HttpProgress&)>& progress, double interval) {
  asio::io_context io;
  auto work = asio::make_work_guard(io);
  std::vector<std::thread> threads;
  for (int64_t i = 0; i < config_.io_threads; ++i) threads.emplace_back([&io] { io.run(); });

  std::vector<std::pair<std::shared_ptr<StreamClient>, int64_t>> first;
  {
    std::lock_guard<std::mutex> lock(mu_);
    start_ = Clock::now();
    for (int32_t s = 0; s < spec_.concurrency; ++s) {
      const int64_t number = NextRequest();
      if (number < 0) break;
      auto client = std::make_shared<StreamClient>(io, this, s, static_cast<int32_t>(s % targets_.size()));
      streams_.push_back(client);
      first.emplace_back(client, number);
    }
    streams_active_ = static_cast<int64_t>(first.size());
    hold_pending_ = spec_.hold_first_event ? streams_active_ : 0;
  }
  for (auto& [client, number] : first) client->Begin(number, spec_.hold_first_event);

  bool hold_done = !spec_.hold_first_event;
  std::unique_lock<std::mutex> lock(mu_);
  const Clock::duration step = Seconds(interval);
  Clock::time_point next_report = start_ + step;
  while (streams_active_ > 0) {
    cv_.wait_until(lock, next_report,
                   [&] { return streams_active_ == 0 || (!hold_done && hold_pending_ == 0); });
    if (!hold_done && hold_pending_ == 0) {
      hold_done = true;
      hold_.seconds = Elapsed();
      hold_.open_requests = open_;
      const HoldPoint point = hold_;
      lock.unlock();
      if (spec_.on_hold) spec_.on_hold(point);
      for (auto& client : streams_) client->Release();
      lock.lock();
      continue;
    }
    if (streams_active_ > 0 && Clock::now() >= next_report) {
      next_report += step;
      if (progress) {
        const HttpProgress p = SnapshotLocked();
        lock.unlock();
        progress(p);
        lock.lock();
      }
    }
  }
  lock.unlock();
  for (auto& client : streams_) client->Close();
  work.reset();
  for (std::thread& t : threads) t.join();
  streams_.clear();

  HttpRunResult result;
  result.concurrency = spec_.concurrency;
  result.peak_open = peak_open_;
  if (spec_.hold_first_event) result.hold = hold_;
  result.requests = std::move(records_);
  if (!result.requests.empty()) {
    double lo = result.requests.front().base.start_seconds, hi = result.requests.front().base.end_seconds;
    for (const HttpRequestRecord& r : result.requests) {
      lo = std::min(lo, r.base.start_seconds);
      hi = std::max(hi, r.base.end_seconds);
    }
    result.wall_seconds = hi - lo;
  }
  return result;
}

// One request on a fresh connection, for start-up questions (GET
// /v1/models): the status and body, within `timeout_seconds`.
absl::StatusOr<std::pair<int, std::string>> FetchOnce(const Target& target, const std::string& method,
                                                     const std::string& path, const std::string& api_key,
                                                     double timeout_seconds) {
  asio::io_context io;
  tcp::socket socket(io);
  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(kMaxBodyBytes);
  std::string request = absl::StrCat(method, " ", path, " HTTP/1.1\r\nHost: ", target.host, ":", target.port,
                                     "\r\nConnection: close\r\n");
  if (!api_key.empty()) absl::StrAppend(&request, "Authorization: Bearer ", api_key, "\r\n");
  absl::StrAppend(&request, "\r\n");
  error_code result = asio::error::timed_out;
  bool finished = false;
  asio::async_connect(socket, target.endpoints, [&](error_code ec, const tcp::endpoint&) {
    if (ec) {
      result = ec;
      finished = true;
      return;
    }
    asio::async_write(socket, asio::buffer(request), [&](error_code ec2, size_t) {
      if (ec2) {
        result = ec2;
        finished = true;
        return;
      }
      bhttp::async_read(socket, buffer, parser, [&](error_code ec3, size_t) {
        result = ec3;
        finished = true;
      });
    });
  });
  io.run_for(Seconds(timeout_seconds));
  if (!finished) {
    return absl::UnavailableError(
        absl::StrCat(method, " ", target.url, path, ": no answer within ", timeout_seconds, " s"));
  }
  if (result) {
    return absl::UnavailableError(absl::StrCat(method, " ", target.url, path, ": ", result.message()));
  }
  return std::make_pair(static_cast<int>(parser.get().result_int()), parser.get().body());
}

}  // namespace

struct HttpLoadGenerator::Impl {
  HttpLoadgenConfig config;
  std::string model;
  std::vector<Target> targets;
  uint64_t runs = 0;
};

HttpLoadGenerator::HttpLoadGenerator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpLoadGenerator::~HttpLoadGenerator() = default;

absl::StatusOr<std::unique_ptr<HttpLoadGenerator>> HttpLoadGenerator::Create(const HttpLoadgenConfig& config) {
  if (absl::Status s = ValidateHttpConfig(config); !s.ok()) return s;
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  asio::io_context io;
  tcp::resolver resolver(io);
  for (const std::string& url : config.urls) {
    Target t;
    t.url = url;
    SplitUrl(url, &t.host, &t.port);
    error_code ec;
    t.endpoints = resolver.resolve(t.host, t.port, ec);
    if (ec || t.endpoints.empty()) {
      return absl::UnavailableError(absl::StrCat("cannot resolve ", url, ": ", ec ? ec.message() : "no address"));
    }
    impl->targets.push_back(std::move(t));
  }
  impl->model = config.model;
  if (impl->model.empty()) {
    absl::StatusOr<std::pair<int, std::string>> r =
        FetchOnce(impl->targets.front(), "GET", "/v1/models", config.api_key, config.connect_timeout_seconds);
    if (!r.ok()) return r.status();
    if (r->first != 200) {
      return absl::UnavailableError(absl::StrCat("GET ", config.urls.front(), "/v1/models answered ", r->first, ": ",
                                                 r->second.substr(0, 300)));
    }
    const Json j = Json::parse(r->second, nullptr, /*allow_exceptions=*/false);
    auto data = j.is_object() ? j.find("data") : j.end();
    if (data == j.end() || !data->is_array() || data->empty() || !(*data)[0].is_object() ||
        !(*data)[0].contains("id") || !(*data)[0]["id"].is_string()) {
      return absl::UnavailableError(absl::StrCat("GET ", config.urls.front(),
                                                 "/v1/models did not list a model: ", r->second.substr(0, 300)));
    }
    impl->model = (*data)[0]["id"].get<std::string>();
  }
  return std::unique_ptr<HttpLoadGenerator>(new HttpLoadGenerator(std::move(impl)));
}

absl::StatusOr<HttpRunResult> HttpLoadGenerator::Run(const HttpRunSpec& spec,
                                                     const std::function<void(const HttpProgress&)>& progress,
                                                     double progress_interval_seconds) {
  if (spec.concurrency < 1 || spec.concurrency > kMaxConcurrency) {
    return absl::InvalidArgumentError(
        absl::StrCat("concurrency must be in [1, ", kMaxConcurrency, "], got ", spec.concurrency));
  }
  if ((spec.requests > 0) == (spec.duration_seconds > 0)) {
    return absl::InvalidArgumentError(absl::StrCat("exactly one of requests (", spec.requests,
                                                   ") and duration_seconds (", spec.duration_seconds,
                                                   ") must be positive"));
  }
  if (!(progress_interval_seconds > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("progress_interval_seconds must be > 0, got ", progress_interval_seconds));
  }
  RunCore core(impl_->config, impl_->model, impl_->targets, spec, impl_->runs++);
  return core.Drive(progress, progress_interval_seconds);
}

const HttpLoadgenConfig& HttpLoadGenerator::config() const { return impl_->config; }
const std::string& HttpLoadGenerator::model() const { return impl_->model; }

}  // namespace wf::loadgen
