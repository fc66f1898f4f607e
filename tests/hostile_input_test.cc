// Malformed and hostile requests against a real wf_router in front of a real
// wf_worker (golden model), over HTTP (JSON bodies and raw socket bytes) and
// gRPC (the router's wrinklefree.v1.Router front and the worker's
// wrinklefree.v1.Worker directly). The table (hostile_input_rows.h) gives
// each row's transport, the status (or gRPC code) it must get and a substring
// of the message that names the field or limit. After every row both
// processes are alive and /health answers; every few rows (and at the end) a
// normal chat completion still succeeds. At the end /metrics renders, no stream is left open and the
// router's thread count has not grown without bound. Slow clients (slowloris)
// are cut off by the router's read timeout while others are served.
#include <sys/types.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "grpcpp/generic/generic_stub.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/hostile_input_rows.h"
#include "tests/testing/http_client.h"
#include "tests/testing/http_get.h"
#include "tests/testing/router_process.h"
#include "tests/testing/worker_process.h"

namespace wf {
namespace {

namespace v1 = wrinklefree::v1;
using Json = nlohmann::json;
using ::testing::HasSubstr;
using wf::testing::HttpResponse;
using wf::testing::RouterProcess;
using wf::testing::WorkerProcess;

using hostile::kApiKey;
using hostile::kMaxBodyBytes;
using hostile::kReadTimeoutSeconds;
using hostile::Row;
using hostile::Via;

// A normal chat completion is checked after this many rows.
constexpr int kChatEvery = 10;

// ---------------------------------------------------------------- transports

struct RawResponse {
  int status = 0;
  std::string headers;
  std::string body;
};

// Sends `bytes` on a fresh connection (optionally half-closing it) and reads
// until the server closes it, at most `timeout`. `timed_out` says whether the
// server was still holding the connection open at the end.
struct RawResult {
  std::string bytes;
  bool timed_out = false;
  bool connected = false;
};

int Connect(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Reads what `fd` receives until EOF/reset or `deadline`.
void ReadUntilClosed(int fd, std::chrono::steady_clock::time_point deadline, RawResult* out) {
  while (true) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      out->timed_out = true;
      return;
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char buf[16384];
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return;
    out->bytes.append(buf, static_cast<size_t>(n));
  }
}

RawResult RawExchange(int port, const std::string& bytes, bool half_close,
                      std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  RawResult out;
  const int fd = Connect(port);
  if (fd < 0) return out;
  out.connected = true;
  size_t sent = 0;
  while (sent < bytes.size()) {  // the server may stop reading after an early answer
    const ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  if (half_close) ::shutdown(fd, SHUT_WR);
  ReadUntilClosed(fd, std::chrono::steady_clock::now() + timeout, &out);
  ::close(fd);
  return out;
}

// Splits the bytes of consecutive responses; interim 1xx responses are
// skipped. Stops at anything that is not a well-formed response.
std::vector<RawResponse> ParseResponses(std::string raw, bool first_is_head = false) {
  std::vector<RawResponse> out;
  while (raw.size() >= 12 && raw.compare(0, 7, "HTTP/1.") == 0) {
    const size_t end = raw.find("\r\n\r\n");
    if (end == std::string::npos) break;
    RawResponse r;
    r.status = std::atoi(raw.c_str() + 9);
    r.headers = raw.substr(0, end);
    raw.erase(0, end + 4);
    if (r.status >= 100 && r.status < 200) continue;
    size_t length = raw.size();
    for (absl::string_view line : absl::StrSplit(r.headers, "\r\n")) {
      if (absl::ConsumePrefix(&line, "Content-Length:") || absl::ConsumePrefix(&line, "content-length:")) {
        if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &length)) length = raw.size();
        if (out.empty() && first_is_head) length = 0;
      }
    }
    length = std::min(length, raw.size());
    r.body = raw.substr(0, length);
    raw.erase(0, length);
    out.push_back(std::move(r));
  }
  return out;
}

// An HTTP error answer: valid JSON (strictly valid UTF-8) in OpenAI's
// envelope, the message containing `message` and not echoing megabytes back.
void ExpectErrorEnvelope(const std::string& body, const std::string& message, const std::string& param) {
  Json j = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(j.is_discarded()) << "error body is not valid JSON (or not UTF-8): " << body.substr(0, 500);
  ASSERT_TRUE(j.is_object() && j.contains("error") && j["error"].is_object()) << body.substr(0, 500);
  const Json& e = j["error"];
  ASSERT_TRUE(e.contains("message") && e["message"].is_string()) << body.substr(0, 500);
  EXPECT_TRUE(e.contains("type") && e["type"].is_string() && !e["type"].get<std::string>().empty())
      << body.substr(0, 500);
  EXPECT_TRUE(e.contains("param") && (e["param"].is_null() || e["param"].is_string())) << body.substr(0, 500);
  EXPECT_TRUE(e.contains("code") && (e["code"].is_null() || e["code"].is_string())) << body.substr(0, 500);
  const std::string text = e["message"].get<std::string>();
  EXPECT_THAT(text, HasSubstr(message));
  EXPECT_LT(text.size(), 2048u) << "the message echoes the request back: " << text.substr(0, 300);
  if (!param.empty()) {
    EXPECT_TRUE(e["param"].is_string() && e["param"].get<std::string>() == param)
        << "param " << e["param"].dump() << ", expected " << param;
  }
}

template <typename Stub, typename Request>
grpc::Status RunGenerate(Stub& stub, const Request& request, bool auth) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  if (auth) ctx.AddMetadata("authorization", absl::StrCat("Bearer ", kApiKey));
  auto reader = stub.Generate(&ctx, request);
  v1::GenerateResponse response, last;
  int responses = 0;
  while (reader->Read(&response)) {
    ++responses;
    last = response;
  }
  grpc::Status status = reader->Finish();
  if (!status.ok() && responses > 0) {
    return grpc::Status(grpc::StatusCode::INTERNAL,
                        absl::StrCat("test: ", responses, " responses before the error ", status.error_message()));
  }
  // A request accepted and then failed is a late answer, not the right one.
  if (status.ok() && (!last.finished() || (last.finish_reason() != v1::FINISH_REASON_STOP &&
                                           last.finish_reason() != v1::FINISH_REASON_LENGTH))) {
    return grpc::Status(grpc::StatusCode::INTERNAL, absl::StrCat("test: the generation ended with finish reason ",
                                                                 last.finish_reason(), " (", last.error(), ")"));
  }
  return status;
}

// Sends `bytes` as the request message of `method` (unary or server
// streaming: the rows expect an error status before any response message).
grpc::Status RunBytes(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                      const std::string& bytes, bool auth) {
  grpc::GenericStub generic(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  if (auth) ctx.AddMetadata("authorization", absl::StrCat("Bearer ", kApiKey));
  grpc::Slice slice(bytes);
  grpc::ByteBuffer request(&slice, 1), response;
  std::promise<grpc::Status> done;
  generic.UnaryCall(&ctx, method, grpc::StubOptions(), &request, &response,
                    [&done](grpc::Status s) { done.set_value(std::move(s)); });
  return done.get_future().get();
}

// ---------------------------------------------------------------- fixture

class HostileInputTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    key_dir_ = new std::string(::testing::TempDir() + "/hostile_input_test_" + std::to_string(::getpid()));
    std::filesystem::create_directories(*key_dir_);
    const std::string key_file = *key_dir_ + "/api_keys";
    std::ofstream(key_file) << kApiKey << "\n";
    absl::StatusOr<std::unique_ptr<WorkerProcess>> worker = WorkerProcess::Start();
    ASSERT_TRUE(worker.ok()) << worker.status();
    worker_ = worker->release();
    absl::StatusOr<std::unique_ptr<RouterProcess>> router =
        RouterProcess::Start({worker_->address()},
                             {"--api-key-file", key_file, "--read-timeout-seconds", std::to_string(kReadTimeoutSeconds),
                              "--max-body-bytes", std::to_string(kMaxBodyBytes), "--max-n", "8"});
    ASSERT_TRUE(router.ok()) << router.status();
    router_ = router->release();
  }

  static void TearDownTestSuite() {
    delete router_;
    router_ = nullptr;
    delete worker_;
    worker_ = nullptr;
    if (key_dir_ != nullptr) {
      std::error_code ignored;
      std::filesystem::remove_all(*key_dir_, ignored);
      delete key_dir_;
      key_dir_ = nullptr;
    }
  }

  void SetUp() override {
    ASSERT_NE(router_, nullptr);
    ASSERT_NE(worker_, nullptr);
    absl::StatusOr<testing::HttpExchange> models =
        testing::HttpRequestFull(port(), "GET", "/v1/models", "", {AuthHeader()}, std::chrono::seconds(10));
    ASSERT_TRUE(models.ok()) << models.status();
    Json j = Json::parse(models->response.body, nullptr, false);
    ASSERT_TRUE(!j.is_discarded() && j.contains("data") && !j["data"].empty()) << models->response.body;
    model_ = j["data"][0].value("id", "");
    ASSERT_FALSE(model_.empty());
    threads_before_ = Threads(router_->child().pid());
    ASSERT_GT(threads_before_, 0);
  }

  static int port() { return router_->http_port(); }
  static std::string AuthHeader() { return absl::StrCat("Authorization: Bearer ", kApiKey); }

  static int Threads(pid_t pid) {
    std::error_code ec;
    int n = 0;
    for (auto it = std::filesystem::directory_iterator(absl::StrCat("/proc/", pid, "/task"), ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
      ++n;
    }
    return ec ? -1 : n;
  }

  static bool Alive(testing::ChildProcess& child) {
    int status = 0;
    return child.pid() > 0 && ::waitpid(child.pid(), &status, WNOHANG) == 0;
  }

  // Both processes run and the router's /health answers 200.
  static void ExpectAlive(const std::string& after) {
    EXPECT_TRUE(Alive(router_->child())) << "wf_router died after " << after;
    EXPECT_TRUE(Alive(worker_->child())) << "wf_worker died after " << after;
    absl::StatusOr<HttpResponse> health = testing::HttpGet(port(), "/health", std::chrono::seconds(10));
    ASSERT_TRUE(health.ok()) << "after " << after << ": " << health.status();
    EXPECT_EQ(health->status, 200) << "after " << after << ": " << health->body;
  }

  // A normal small chat completion through the router, and a worker call.
  void ExpectServing(const std::string& after) {
    const std::string body =
        absl::StrCat(R"({"model":")", model_, R"(","messages":[{"role":"user","content":"hi"}],"max_tokens":2})");
    absl::StatusOr<testing::HttpExchange> r =
        testing::HttpRequestFull(port(), "POST", "/v1/chat/completions", body, {AuthHeader()});
    ASSERT_TRUE(r.ok()) << "after " << after << ": " << r.status();
    EXPECT_EQ(r->response.status, 200) << "after " << after << ": " << r->response.body;
    Json j = Json::parse(r->response.body, nullptr, false);
    EXPECT_TRUE(!j.is_discarded() && j.contains("choices") && j["choices"].size() == 1) << r->response.body;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::ModelInfo info;
    EXPECT_TRUE(worker_->stub().GetModelInfo(&ctx, {}, &info).ok()) << "after " << after;
  }

  // The end of a test: serving, /metrics renders, no stream left open on the
  // router or the worker, and the router's threads did not pile up.
  void ExpectCleanEnd() {
    ExpectAlive("the last row");
    ExpectServing("the last row");
    absl::StatusOr<HttpResponse> metrics = testing::HttpGet(port(), "/metrics");
    ASSERT_TRUE(metrics.ok()) << metrics.status();
    EXPECT_EQ(metrics->status, 200);
    EXPECT_THAT(metrics->body, HasSubstr("wrinklefree:router_requests_total"));
    // Streams end asynchronously after the last response: poll (bounded).
    std::string active;
    v1::Load load;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (true) {
      active.clear();
      absl::StatusOr<HttpResponse> m = testing::HttpGet(port(), "/metrics");
      if (m.ok()) {
        for (absl::string_view line : absl::StrSplit(m->body, '\n')) {
          if (absl::StartsWith(line, "wrinklefree:router_active_streams")) active = std::string(line);
        }
      }
      load = worker_->CurrentLoad();
      const bool idle = absl::EndsWith(active, " 0") && load.running() == 0 && load.waiting() == 0;
      if (idle || std::chrono::steady_clock::now() > deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    EXPECT_TRUE(absl::EndsWith(active, " 0")) << "router streams left open: " << active;
    EXPECT_EQ(load.running(), 0);
    EXPECT_EQ(load.waiting(), 0);
    const int threads_after = Threads(router_->child().pid());
    std::printf("[hostile_input] router threads: %d before, %d after\n", threads_before_, threads_after);
    EXPECT_LE(threads_after, threads_before_ + 16) << "router threads grew from " << threads_before_;
  }

  // Runs one row and checks its answer.
  void RunRow(const Row& row) {
    SCOPED_TRACE(row.name);
    switch (row.via) {
      case Via::kHttp: {
        std::vector<std::string> headers = row.headers;
        if (row.auth) headers.push_back(AuthHeader());
        absl::StatusOr<testing::HttpExchange> ex =
            testing::HttpRequestFull(port(), row.method, row.path, row.body, headers, std::chrono::seconds(60));
        ASSERT_TRUE(ex.ok()) << ex.status();
        EXPECT_EQ(ex->response.status, row.expect) << ex->response.body.substr(0, 500);
        if (row.expect >= 400) {
          ExpectErrorEnvelope(ex->response.body, row.message, row.param);
        } else {  // accepted: still strictly valid JSON (and UTF-8)
          EXPECT_FALSE(Json::parse(ex->response.body, nullptr, false).is_discarded()) << ex->response.body;
          EXPECT_THAT(ex->response.body, HasSubstr(row.message));
        }
        break;
      }
      case Via::kRaw: {
        RawResult raw = RawExchange(port(), row.raw, row.half_close);
        ASSERT_TRUE(raw.connected);
        EXPECT_FALSE(raw.timed_out) << "the router held the connection open: " << raw.bytes.substr(0, 300);
        const std::vector<RawResponse> responses = ParseResponses(raw.bytes, row.first_is_head);
        if (row.expect == 0) {
          EXPECT_TRUE(responses.empty()) << raw.bytes.substr(0, 300);
          break;
        }
        ASSERT_EQ(responses.size(), 1 + row.more.size()) << raw.bytes.substr(0, 1000);
        EXPECT_EQ(responses[0].status, row.expect) << raw.bytes.substr(0, 500);
        if (row.expect >= 400) ExpectErrorEnvelope(responses[0].body, row.message, "");
        for (size_t i = 0; i < row.more.size(); ++i) {
          EXPECT_EQ(responses[i + 1].status, row.more[i]) << raw.bytes.substr(0, 1000);
          if (row.more[i] >= 400) ExpectErrorEnvelope(responses[i + 1].body, "", "");
        }
        break;
      }
      default: {
        grpc::Status status;
        switch (row.via) {
          case Via::kRouterGenerate:
            status = RunGenerate(router_->stub(), row.router_generate, row.auth);
            break;
          case Via::kWorkerGenerate:
            status = RunGenerate(worker_->stub(), row.generate, row.auth);
            break;
          case Via::kRouterTokenize:
          case Via::kWorkerTokenize: {
            grpc::ClientContext ctx;
            ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
            if (row.auth) ctx.AddMetadata("authorization", absl::StrCat("Bearer ", kApiKey));
            v1::TokenizeResponse response;
            status = row.via == Via::kRouterTokenize ? router_->stub().Tokenize(&ctx, row.tokenize, &response)
                                                     : worker_->stub().Tokenize(&ctx, row.tokenize, &response);
            break;
          }
          case Via::kWorkerDetokenize: {
            grpc::ClientContext ctx;
            ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
            v1::DetokenizeResponse response;
            status = worker_->stub().Detokenize(&ctx, row.detokenize, &response);
            break;
          }
          case Via::kRouterBytes:
          case Via::kWorkerBytes: {
            status = RunBytes(row.via == Via::kRouterBytes ? router_->channel() : worker_->channel(), row.method_path,
                              row.body, row.auth);
            break;
          }
          default:
            FAIL() << "unhandled transport";
        }
        EXPECT_EQ(static_cast<int>(status.error_code()), row.expect) << status.error_message().substr(0, 500);
        EXPECT_THAT(status.error_message(), HasSubstr(row.message));
        EXPECT_LT(status.error_message().size(), 2048u) << status.error_message().substr(0, 300);
        break;
      }
    }
  }

  // Runs every row of `rows` whose transport is in `vias`, checking the
  // service after each.
  void RunRows(const std::vector<Row>& rows, std::vector<Via> vias) {
    int ran = 0;
    for (const Row& row : rows) {
      if (std::find(vias.begin(), vias.end(), row.via) == vias.end()) continue;
      RunRow(row);
      ExpectAlive(row.name);
      if (++ran % kChatEvery == 0) ExpectServing(row.name);
    }
    std::printf("[hostile_input] %d rows\n", ran);
    EXPECT_GT(ran, 0);
    ExpectCleanEnd();
  }

  static WorkerProcess* worker_;
  static RouterProcess* router_;
  static std::string* key_dir_;
  std::string model_;
  int threads_before_ = 0;
};

WorkerProcess* HostileInputTest::worker_ = nullptr;
RouterProcess* HostileInputTest::router_ = nullptr;
std::string* HostileInputTest::key_dir_ = nullptr;

TEST_F(HostileInputTest, TableHasAtLeastOneHundredRows) {
  const size_t http = hostile::HttpRows(model_).size(), raw = hostile::RawRows(model_).size(),
               grpc = hostile::GrpcRows().size();
  const size_t total = http + raw + grpc;
  std::printf("[hostile_input] table: %zu HTTP, %zu raw-socket, %zu gRPC rows (%zu total)\n", http, raw, grpc, total);
  EXPECT_GE(total, 100u);
}

TEST_F(HostileInputTest, HttpJsonRequestsGetPreciseErrors) { RunRows(hostile::HttpRows(model_), {Via::kHttp}); }

TEST_F(HostileInputTest, RawSocketRequestsGetPreciseErrors) { RunRows(hostile::RawRows(model_), {Via::kRaw}); }

TEST_F(HostileInputTest, RouterGrpcRequestsGetPreciseErrors) {
  RunRows(hostile::GrpcRows(), {Via::kRouterGenerate, Via::kRouterTokenize, Via::kRouterBytes});
}

TEST_F(HostileInputTest, WorkerGrpcRequestsGetPreciseErrors) {
  RunRows(hostile::GrpcRows(), {Via::kWorkerGenerate, Via::kWorkerTokenize, Via::kWorkerDetokenize, Via::kWorkerBytes});
}

// Many connections trickle a request a byte at a time, far slower than the
// read timeout allows: each is answered 408 (or closed) long before its
// request could complete, while a normal client is served meanwhile.
TEST_F(HostileInputTest, SlowClientsAreCutOffWhileOthersAreServed) {
  struct Slow {
    std::string name;
    std::string prefix;   // sent at once
    std::string trickle;  // sent one byte per pacing interval
    std::string message;
  };
  const std::string auth = absl::StrCat("Authorization: Bearer ", kApiKey, "\r\n");
  const std::string body(2000, ' ');
  const std::vector<Slow> kinds = {
      {"SlowHeader", "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Slow: ", std::string(2000, 'a'),
       "request header not received within"},
      {"SlowBody",
       absl::StrCat("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n", auth, "Content-Length: ", body.size(),
                    "\r\n\r\n"),
       body, "request body not received within"},
      {"SlowChunkedBody",
       absl::StrCat("POST /tokenize HTTP/1.1\r\nHost: x\r\n", auth, "Transfer-Encoding: chunked\r\n\r\n3e8\r\n"),
       std::string(1000, ' '), "request body not received within"},
  };
  constexpr int kPerKind = 8;
  struct Conn {
    int fd = -1;
    const Slow* kind = nullptr;
    size_t sent = 0;
    RawResult result;
    bool done = false;
  };
  std::vector<Conn> conns;
  for (const Slow& kind : kinds) {
    for (int i = 0; i < kPerKind; ++i) {
      Conn c;
      c.fd = Connect(port());
      ASSERT_GE(c.fd, 0);
      c.kind = &kind;
      ASSERT_EQ(::send(c.fd, kind.prefix.data(), kind.prefix.size(), MSG_NOSIGNAL),
                static_cast<ssize_t>(kind.prefix.size()));
      conns.push_back(std::move(c));
    }
  }
  // Other clients are served while the slow ones hold their connections.
  std::atomic<bool> stop{false};
  std::atomic<int> served{0}, failed{0};
  std::thread normal([&] {
    const std::string chat =
        absl::StrCat(R"({"model":")", model_, R"(","messages":[{"role":"user","content":"hi"}],"max_tokens":2})");
    while (!stop.load()) {
      absl::StatusOr<testing::HttpExchange> r = testing::HttpRequestFull(port(), "POST", "/v1/chat/completions", chat,
                                                                         {AuthHeader()}, std::chrono::seconds(30));
      absl::StatusOr<HttpResponse> h = testing::HttpGet(port(), "/health");
      if (r.ok() && r->response.status == 200 && h.ok() && h->status == 200) {
        ++served;
      } else {
        ++failed;
      }
    }
  });
  // Pacing: one byte per connection every 100 ms, so a 2000-byte trickle
  // would need 200 s; the router's read timeout is 2 s. The loop ends when
  // every connection got its answer or was closed (bounded by the trickle).
  bool all_done = false;
  while (!all_done) {
    all_done = true;
    for (Conn& c : conns) {
      if (c.done) continue;
      pollfd p{c.fd, POLLIN, 0};
      if (::poll(&p, 1, 0) > 0) {  // an answer or a close: read it whole
        ReadUntilClosed(c.fd, std::chrono::steady_clock::now() + std::chrono::seconds(10), &c.result);
        c.done = true;
        continue;
      }
      if (c.sent == c.kind->trickle.size()) {
        c.done = true;  // the whole request went through: checked below
        continue;
      }
      if (::send(c.fd, c.kind->trickle.data() + c.sent, 1, MSG_NOSIGNAL) == 1) ++c.sent;
      all_done = false;
    }
    if (!all_done) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  stop.store(true);
  normal.join();
  for (Conn& c : conns) {
    SCOPED_TRACE(c.kind->name);
    ::close(c.fd);
    EXPECT_LT(c.sent, c.kind->trickle.size()) << "the slow request was allowed to complete";
    const std::vector<RawResponse> responses = ParseResponses(c.result.bytes);
    if (!responses.empty()) {  // answered (else closed silently)
      EXPECT_EQ(responses[0].status, 408) << c.result.bytes.substr(0, 300);
      ExpectErrorEnvelope(responses[0].body, c.kind->message, "");
    }
  }
  std::printf("[hostile_input] %zu slow connections cut off; %d normal requests served meanwhile, %d failed\n",
              conns.size(), served.load(), failed.load());
  EXPECT_GT(served.load(), 0);
  EXPECT_EQ(failed.load(), 0);
  ExpectCleanEnd();
}

}  // namespace
}  // namespace wf
