#include "tools/loadgen/http_loadgen.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace wf::loadgen {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::wf::testing::IsOk;
using ::wf::testing::StatusIs;

std::vector<std::string> FeedAll(const std::vector<std::string>& pieces) {
  SseSplitter s;
  std::vector<std::string> events;
  for (const std::string& p : pieces) s.Feed(p, &events);
  return events;
}

TEST(SseSplitterTest, SplitsEventsFedInAnyPieces) {
  const std::string body = "data: {\"a\":1}\n\ndata: two\n\ndata: [DONE]\n\n";
  EXPECT_THAT(FeedAll({body}), ElementsAre("{\"a\":1}", "two", "[DONE]"));
  std::vector<std::string> bytes;
  for (char c : body) bytes.emplace_back(1, c);
  EXPECT_THAT(FeedAll(bytes), ElementsAre("{\"a\":1}", "two", "[DONE]"));
}

TEST(SseSplitterTest, HandlesCrLfMultiLineDataAndComments) {
  EXPECT_THAT(FeedAll({"data: a\r\ndata: b\r\n\r\n", ": keep-alive\n\n", "event: x\ndata:c\n\n"}),
              ElementsAre("a\nb", "c"));
  EXPECT_THAT(FeedAll({"data: a\r", "\n\r", "\n"}), ElementsAre("a"));
}

TEST(SseSplitterTest, IncompleteEventIsPending) {
  SseSplitter s;
  std::vector<std::string> events;
  s.Feed("data: part", &events);
  EXPECT_THAT(events, IsEmpty());
  EXPECT_GT(s.pending_bytes(), 0u);
  s.Feed("ial\n\n", &events);
  EXPECT_THAT(events, ElementsAre("partial"));
}

TEST(ParseSseEventTest, ReadsChatAndCompletionChunks) {
  SseEventInfo chat = ParseSseEvent(R"({"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]})");
  EXPECT_TRUE(chat.has_text);
  EXPECT_FALSE(chat.error);
  SseEventInfo role = ParseSseEvent(R"({"choices":[{"delta":{"role":"assistant","content":""}}]})");
  EXPECT_FALSE(role.has_text);
  SseEventInfo text = ParseSseEvent(R"({"choices":[{"text":"x","finish_reason":"length"}]})");
  EXPECT_TRUE(text.has_text);
  EXPECT_EQ(text.finish_reason, "length");
  SseEventInfo usage = ParseSseEvent(R"({"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":7}})");
  EXPECT_EQ(usage.completion_tokens, 7);
  EXPECT_TRUE(ParseSseEvent("[DONE]").done);
}

TEST(ParseSseEventTest, FlagsErrors) {
  SseEventInfo e = ParseSseEvent(R"({"error":{"message":"worker failed","type":"server_error"}})");
  EXPECT_TRUE(e.error);
  EXPECT_EQ(e.error_message, "worker failed");
  EXPECT_TRUE(ParseSseEvent("not json").error);
  EXPECT_TRUE(ParseSseEvent("[1,2]").error);
}

TEST(ValidateHttpConfigTest, NamesTheBadSetting) {
  HttpLoadgenConfig c;
  EXPECT_THAT(ValidateHttpConfig(c), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("URL")));
  c.urls = {"http://127.0.0.1:8080", "localhost:9"};
  EXPECT_THAT(ValidateHttpConfig(c), IsOk());
  c.urls = {"http://127.0.0.1:8080/v1"};
  EXPECT_THAT(ValidateHttpConfig(c), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("/v1")));
  c.urls = {"127.0.0.1:70000"};
  EXPECT_THAT(ValidateHttpConfig(c), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("70000")));
  c.urls = {"127.0.0.1:80"};
  c.endpoint = "embeddings";
  EXPECT_THAT(ValidateHttpConfig(c), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("embeddings")));
  c.endpoint = "mix";
  c.max_tokens_max = 3;
  EXPECT_THAT(ValidateHttpConfig(c), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_tokens_max")));
  c.max_tokens_max = 0;
  c.stream_fraction = 1.5;
  EXPECT_THAT(ValidateHttpConfig(c), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("stream_fraction")));
}

HttpRequestRecord Record(int status, bool ok, double start, double end, std::string retry_after = "") {
  HttpRequestRecord r;
  r.status = status;
  r.base.ok = ok;
  r.base.failure = ok ? "" : absl::StrCat("HTTP_", status);
  r.base.start_seconds = start;
  r.base.end_seconds = end;
  r.retry_after = std::move(retry_after);
  return r;
}

TEST(SummarizeHttpTest, CountsStatusesRetryAfterAndTokens) {
  HttpRunResult run;
  run.concurrency = 2;
  run.peak_open = 2;
  HttpRequestRecord a = Record(200, true, 0, 2);
  a.base.batches = {{0.5, 1}, {1.0, 1}};
  a.base.completion_tokens = 5;  // usage wins over the event count
  HttpRequestRecord b = Record(200, true, 0, 1);
  b.base.batches = {{0.25, 1}};
  run.requests = {a, b, Record(429, false, 0.1, 0.2, "1"), Record(503, false, 3, 4)};
  const HttpRunStats s = SummarizeHttp(run);
  EXPECT_EQ(s.stats.requests_ok, 2);
  EXPECT_EQ(s.stats.requests_failed, 2);
  EXPECT_EQ(s.by_status.at(200), 2);
  EXPECT_EQ(s.by_status.at(429), 1);
  EXPECT_EQ(s.error_answers, 2);
  EXPECT_EQ(s.error_answers_without_retry_after, 1);
  EXPECT_EQ(s.stats.generated_tokens, 6);
  EXPECT_DOUBLE_EQ(s.stats.generated_tokens_per_second, 6.0 / 4.0);
  EXPECT_DOUBLE_EQ(s.stats.ttft_seconds.min, 0.25);
  EXPECT_EQ(s.peak_open, 2);

  const std::vector<HttpRunStats> minutes = SummarizeHttpIntervals(run, 2.0);
  ASSERT_EQ(minutes.size(), 3u);  // ends at 1, 2, 0.2 | - | 4
  EXPECT_EQ(minutes[0].stats.requests_ok + minutes[0].stats.requests_failed, 2);
  EXPECT_EQ(minutes[1].stats.requests_ok + minutes[1].stats.requests_failed, 1);
  EXPECT_EQ(minutes[2].by_status.at(503), 1);

  const nlohmann::json j = nlohmann::json::parse(FormatHttpJson({}, "m", 2, s, minutes, std::nullopt));
  EXPECT_EQ(j["total"]["by_status"]["429"], 1);
  EXPECT_EQ(j["intervals"].size(), 3u);
  EXPECT_TRUE(j["hold"].is_null());
  EXPECT_THAT(FormatHttpTable({}, "m", s, minutes, std::nullopt), HasSubstr("200:2 429:1 503:1"));
}

// ---------------------------------------------------------- Loopback server

// A blocking HTTP/1.1 server on 127.0.0.1 with one thread per connection;
// `answer` maps a request body to the raw response bytes. Keep-alive unless
// the response says "Connection: close".
class FakeServer {
 public:
  explicit FakeServer(std::function<std::string(const std::string&)> answer) : answer_(std::move(answer)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    ::listen(fd_, 128);
    socklen_t len = sizeof(addr);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] {
      while (true) {
        const int c = ::accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        std::lock_guard<std::mutex> lock(mu_);
        if (stopping_) {
          ::close(c);
          return;
        }
        clients_.push_back(c);
        threads_.emplace_back([this, c] { Serve(c); });
      }
    });
  }
  ~FakeServer() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      for (int c : clients_) ::shutdown(c, SHUT_RDWR);
    }
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    acceptor_.join();
    for (std::thread& t : threads_) t.join();
    for (int c : clients_) ::close(c);
  }
  std::string url() const { return absl::StrCat("http://127.0.0.1:", port_); }
  int requests() const { return requests_.load(); }

 private:
  void Serve(int c) {
    std::string in;
    char buf[4096];
    while (true) {
      size_t head_end;
      while ((head_end = in.find("\r\n\r\n")) == std::string::npos) {
        const ssize_t n = ::recv(c, buf, sizeof(buf), 0);
        if (n <= 0) return;
        in.append(buf, static_cast<size_t>(n));
      }
      size_t length = 0;
      const std::string head = in.substr(0, head_end);
      if (size_t p = head.find("Content-Length: "); p != std::string::npos) {
        (void)absl::SimpleAtoi(head.substr(p + 16, head.find("\r\n", p) - p - 16), &length);
      }
      while (in.size() < head_end + 4 + length) {
        const ssize_t n = ::recv(c, buf, sizeof(buf), 0);
        if (n <= 0) return;
        in.append(buf, static_cast<size_t>(n));
      }
      const std::string body = in.substr(head_end + 4, length);
      in.erase(0, head_end + 4 + length);
      ++requests_;
      const std::string out = answer_(body);
      if (::send(c, out.data(), out.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(out.size())) return;
      if (absl::StrContains(out, "Connection: close")) {
        ::shutdown(c, SHUT_WR);
        return;
      }
    }
  }

  std::function<std::string(const std::string&)> answer_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<int> requests_{0};
  std::mutex mu_;
  bool stopping_ = false;
  std::vector<int> clients_;
  std::vector<std::thread> threads_;
  std::thread acceptor_;
};

std::string Chunked(const std::string& data) {
  std::string out;
  for (size_t i = 0; i < data.size(); i += 50) {
    const std::string piece = data.substr(i, 50);
    absl::StrAppend(&out, absl::Hex(piece.size()), "\r\n", piece, "\r\n");
  }
  return out + "0\r\n\r\n";
}

std::string SseResponse(bool with_done) {
  std::string events =
      "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n"
      "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"
      "data: {\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\n\n"
      "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"length\"}]}\n\n"
      "data: {\"choices\":[],\"usage\":{\"completion_tokens\":2}}\n\n";
  if (with_done) events += "data: [DONE]\n\n";
  return "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n" + Chunked(events);
}

std::string JsonResponse(int status, const std::string& body, const std::string& extra = "") {
  return absl::StrCat("HTTP/1.1 ", status, " X\r\nContent-Type: application/json\r\n", extra,
                      "Content-Length: ", body.size(), "\r\n\r\n", body);
}

HttpRunSpec Spec(int32_t concurrency, int64_t requests) {
  HttpRunSpec spec;
  spec.concurrency = concurrency;
  spec.requests = requests;
  return spec;
}

TEST(HttpLoadGeneratorTest, StreamsSucceedAndFetchTheModel) {
  FakeServer server([](const std::string& body) {
    if (body.empty()) return JsonResponse(200, R"({"data":[{"id":"tiny"}]})");
    const nlohmann::json j = nlohmann::json::parse(body);
    EXPECT_EQ(j["model"], "tiny");
    if (j.value("stream", false)) return SseResponse(true);
    return JsonResponse(200, R"({"choices":[{"text":"x","finish_reason":"length"}],"usage":{"completion_tokens":4}})");
  });
  HttpLoadgenConfig config;
  config.urls = {server.url()};
  config.endpoint = "mix";
  config.stream_fraction = 0.5;
  config.request_timeout_seconds = 30;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<HttpLoadGenerator> gen, HttpLoadGenerator::Create(config));
  EXPECT_EQ(gen->model(), "tiny");
  ASSERT_OK_AND_ASSIGN(HttpRunResult run, gen->Run(Spec(4, 40)));
  ASSERT_EQ(run.requests.size(), 40u);
  int streamed = 0;
  for (const HttpRequestRecord& r : run.requests) {
    EXPECT_TRUE(r.base.ok) << r.base.failure << ": " << r.base.error;
    EXPECT_EQ(r.status, 200);
    if (r.stream) {
      ++streamed;
      EXPECT_TRUE(r.done);
      EXPECT_EQ(r.base.batches.size(), 2u);
      EXPECT_EQ(r.base.completion_tokens, 2);
    } else {
      EXPECT_EQ(r.base.completion_tokens, 4);
    }
  }
  EXPECT_GT(streamed, 0);
  EXPECT_LT(streamed, 40);
  EXPECT_LE(run.peak_open, 4);
  // Keep-alive: 40 requests plus the model list on far fewer connections is
  // not observable here, but every request was answered.
  EXPECT_EQ(server.requests(), 41);
}

TEST(HttpLoadGeneratorTest, RecordsErrorAnswersAndBrokenStreams) {
  std::atomic<int> n{0};
  FakeServer server([&n](const std::string&) {
    switch (n++ % 3) {
      case 0:
        return JsonResponse(429, R"({"error":{"message":"queue full","type":"rate_limit_error"}})",
                            "Retry-After: 1\r\n");
      case 1:
        return SseResponse(/*with_done=*/false);
      default:
        return JsonResponse(503, R"({"error":{"message":"busy"}})", "Connection: close\r\n");
    }
  });
  HttpLoadgenConfig config;
  config.urls = {server.url()};
  config.model = "m";
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<HttpLoadGenerator> gen, HttpLoadGenerator::Create(config));
  ASSERT_OK_AND_ASSIGN(HttpRunResult run, gen->Run(Spec(1, 6)));
  const HttpRunStats s = SummarizeHttp(run);
  EXPECT_EQ(s.stats.requests_ok, 0);
  EXPECT_EQ(s.stats.failed_by_code.at("HTTP_429"), 2);
  EXPECT_EQ(s.stats.failed_by_code.at("NO_DONE"), 2);
  EXPECT_EQ(s.stats.failed_by_code.at("HTTP_503"), 2);
  EXPECT_EQ(s.error_answers, 4);
  EXPECT_EQ(s.error_answers_without_retry_after, 2);
  for (const HttpRequestRecord& r : run.requests) {
    if (r.status == 429) {
      EXPECT_EQ(r.retry_after, "1");
      EXPECT_THAT(r.error_body, HasSubstr("queue full"));
    }
  }
}

TEST(HttpLoadGeneratorTest, ConnectFailureIsRecorded) {
  int port;
  {
    FakeServer gone([](const std::string&) { return std::string(); });
    port = std::stoi(gone.url().substr(gone.url().rfind(':') + 1));
  }
  HttpLoadgenConfig config;
  config.urls = {absl::StrCat("127.0.0.1:", port)};
  config.model = "m";
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<HttpLoadGenerator> gen, HttpLoadGenerator::Create(config));
  ASSERT_OK_AND_ASSIGN(HttpRunResult run, gen->Run(Spec(2, 2)));
  for (const HttpRequestRecord& r : run.requests) {
    EXPECT_EQ(r.base.failure, "CONNECT");
    EXPECT_EQ(r.status, 0);
  }
  config.model = "";
  EXPECT_THAT(HttpLoadGenerator::Create(config).status(), StatusIs(absl::StatusCode::kUnavailable, ::testing::_));
}

class HoldTest : public ::testing::TestWithParam<int> {};

TEST_P(HoldTest, KeepsEveryFirstRequestOpenAtOnce) {
  // The whole response is sent at once, so without the hold each request
  // could end before the next one starts.
  FakeServer a([](const std::string&) { return SseResponse(true); });
  FakeServer b([](const std::string&) { return SseResponse(true); });
  HttpLoadgenConfig config;
  config.urls = {a.url(), b.url()};
  config.model = "m";
  config.io_threads = GetParam();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<HttpLoadGenerator> gen, HttpLoadGenerator::Create(config));
  std::optional<HoldPoint> seen;
  HttpRunSpec spec = Spec(24, 30);
  spec.hold_first_event = true;
  spec.on_hold = [&seen](const HoldPoint& h) { seen = h; };
  ASSERT_OK_AND_ASSIGN(HttpRunResult run, gen->Run(spec));
  ASSERT_TRUE(seen.has_value());
  EXPECT_EQ(seen->open_requests, 24);
  EXPECT_EQ(seen->held_streams, 24);
  EXPECT_EQ(seen->ended_before_hold, 0);
  EXPECT_GE(run.peak_open, 24);
  ASSERT_EQ(run.requests.size(), 30u);
  for (const HttpRequestRecord& r : run.requests) {
    EXPECT_TRUE(r.base.ok) << r.base.failure << ": " << r.base.error;
    EXPECT_EQ(r.base.batches.size(), 2u);  // events kept during the hold still count
  }
  EXPECT_EQ(a.requests() + b.requests(), 30);
  EXPECT_GE(a.requests(), 12);  // streams alternate between the URLs
}

INSTANTIATE_TEST_SUITE_P(IoThreads, HoldTest, ::testing::Values(1, 3));

}  // namespace
}  // namespace wf::loadgen
