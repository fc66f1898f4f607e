#include "router/http/http_server.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <future>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace wf::router::http {
namespace {

using ::testing::HasSubstr;

// Bound on every wait in these tests, so that a broken server fails a test
// instead of hanging it. Never reached when the server works.
constexpr std::chrono::seconds kWaitBound{30};

std::string Lower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

struct ClientResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

// A blocking HTTP/1.1 client on one loopback socket with its own small
// response parser, so the server is checked against an independent reading
// of the protocol.
class TestClient {
 public:
  static std::unique_ptr<TestClient> Connect(int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return nullptr;
    timeval tv{};
    tv.tv_sec = kWaitBound.count();
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      ::close(fd);
      return nullptr;
    }
    return std::unique_ptr<TestClient>(new TestClient(fd));
  }

  ~TestClient() { Close(); }

  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  int local_port() const {
    sockaddr_in addr{};
    socklen_t len = sizeof(addr);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    return ntohs(addr.sin_port);
  }

  bool SendAll(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // Reads the status line and header fields.
  bool ReadHead(ClientResponse* response) {
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return false;
    }
    std::string head = buf_.substr(0, end + 2);
    buf_.erase(0, end + 4);
    size_t line_end = head.find("\r\n");
    std::string status_line = head.substr(0, line_end);
    if (status_line.rfind("HTTP/1.1 ", 0) != 0 || status_line.size() < 12) return false;
    response->status = std::stoi(status_line.substr(9, 3));
    size_t pos = line_end + 2;
    while (pos < head.size()) {
      size_t eol = head.find("\r\n", pos);
      std::string line = head.substr(pos, eol - pos);
      size_t colon = line.find(':');
      if (colon == std::string::npos) return false;
      std::string value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      response->headers[Lower(line.substr(0, colon))] = value;
      pos = eol + 2;
    }
    return true;
  }

  // Reads one chunk of a chunked body into `data`; `last` is set for the
  // terminating zero-size chunk (after its trailer).
  bool ReadChunk(std::string* data, bool* last) {
    std::string line;
    if (!ReadLine(&line)) return false;
    size_t size = std::stoul(line, nullptr, 16);
    if (size == 0) {
      *last = true;
      for (;;) {  // trailer fields end with an empty line
        if (!ReadLine(&line)) return false;
        if (line.empty()) return true;
      }
    }
    *last = false;
    if (!ReadExactly(size + 2, data)) return false;
    if (data->substr(size) != "\r\n") return false;
    data->resize(size);
    return true;
  }

  // Reads a whole response (Content-Length, chunked, or until EOF).
  bool ReadResponse(ClientResponse* response) {
    if (!ReadHead(response)) return false;
    auto te = response->headers.find("transfer-encoding");
    if (te != response->headers.end() && te->second == "chunked") {
      std::string chunk;
      bool last = false;
      while (!last) {
        if (!ReadChunk(&chunk, &last)) return false;
        response->body += chunk;
      }
      return true;
    }
    auto cl = response->headers.find("content-length");
    if (cl != response->headers.end()) {
      return ReadExactly(std::stoul(cl->second), &response->body);
    }
    return ReadUntilEof(&response->body);
  }

  // True once the peer closed the connection (data before that is appended).
  bool ReadUntilEof(std::string* rest) {
    for (;;) {
      rest->append(buf_);
      buf_.clear();
      char tmp[4096];
      ssize_t n = ::recv(fd_, tmp, sizeof(tmp), 0);
      if (n == 0) return true;
      if (n < 0) return errno == ECONNRESET;
      buf_.append(tmp, static_cast<size_t>(n));
    }
  }

 private:
  explicit TestClient(int fd) : fd_(fd) {}

  bool Fill() {
    char tmp[4096];
    ssize_t n = ::recv(fd_, tmp, sizeof(tmp), 0);
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }

  bool ReadLine(std::string* line) {
    size_t eol;
    while ((eol = buf_.find("\r\n")) == std::string::npos) {
      if (!Fill()) return false;
    }
    *line = buf_.substr(0, eol);
    buf_.erase(0, eol + 2);
    return true;
  }

  bool ReadExactly(size_t n, std::string* out) {
    while (buf_.size() < n) {
      if (!Fill()) return false;
    }
    *out = buf_.substr(0, n);
    buf_.erase(0, n);
    return true;
  }

  int fd_;
  std::string buf_;
};

// Collects the writers handed to a handler, for tests that answer later from
// another thread.
class WriterInbox {
 public:
  void Push(Request request, std::shared_ptr<ResponseWriter> writer) {
    std::lock_guard<std::mutex> lock(mu_);
    requests_.push_back(std::move(request));
    writers_.push_back(std::move(writer));
    cv_.notify_all();
  }
  // Waits (bounded) until `n` requests arrived.
  bool WaitFor(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, kWaitBound, [&] { return writers_.size() >= n; });
  }
  std::shared_ptr<ResponseWriter> writer(size_t i) {
    std::lock_guard<std::mutex> lock(mu_);
    return writers_.at(i);
  }
  Request request(size_t i) {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_.at(i);
  }
  Handler handler() {
    return [this](Request request, std::shared_ptr<ResponseWriter> writer) {
      Push(std::move(request), std::move(writer));
    };
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Request> requests_;
  std::vector<std::shared_ptr<ResponseWriter>> writers_;
};

// A one-shot signal with a bounded wait.
class Signal {
 public:
  void Notify() {
    std::lock_guard<std::mutex> lock(mu_);
    ++count_;
    cv_.notify_all();
  }
  bool Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, kWaitBound, [&] { return count_ > 0; });
  }
  int count() {
    std::lock_guard<std::mutex> lock(mu_);
    return count_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int count_ = 0;
};

ServerOptions LoopbackOptions() {
  ServerOptions options;
  options.host = "127.0.0.1";
  options.port = 0;
  return options;
}

size_t CountThreads() {
  size_t n = 0;
  DIR* dir = ::opendir("/proc/self/task");
  if (dir == nullptr) return 0;
  while (dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] != '.') ++n;
  }
  ::closedir(dir);
  return n;
}

size_t RssKiB() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoul(line.substr(6));
  }
  return 0;
}

// Checks the OpenAI error envelope produced by the transport.
void ExpectErrorEnvelope(const ClientResponse& response, const std::string& code) {
  EXPECT_EQ(response.headers.at("content-type"), "application/json");
  EXPECT_THAT(response.body, HasSubstr("{\"error\":{\"message\":\""));
  EXPECT_THAT(response.body, HasSubstr("\"param\":null,\"code\":\"" + code + "\"}}"));
}

Handler EchoHandler() {
  return [](Request request, std::shared_ptr<ResponseWriter> writer) {
    std::string body = request.method + " " + request.path + " q=" + std::string(request.query()) +
                       " x=" + std::string(request.Header("x-test").value_or("-")) +
                       " body=" + request.body;
    writer->Send(200, {{"Content-Type", "text/plain"}, {"X-Remote-Port",
                                                        std::to_string(request.remote_port)}},
                 body);
  };
}

TEST(HttpServerTest, PlainRequestResponse) {
  ASSERT_OK_AND_ASSIGN(auto server, HttpServer::Start(LoopbackOptions(), EchoHandler()));
  auto client = TestClient::Connect(server->port());
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->SendAll(
      "POST /v1/echo?a=1 HTTP/1.1\r\nHost: x\r\nX-TEST: yes\r\nContent-Length: 5\r\n"
      "Connection: close\r\n\r\nhello"));
  ClientResponse response;
  ASSERT_TRUE(client->ReadResponse(&response));
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body, "POST /v1/echo q=a=1 x=yes body=hello");
  EXPECT_EQ(response.headers["content-type"], "text/plain");
  EXPECT_EQ(response.headers["content-length"], std::to_string(response.body.size()));
  EXPECT_EQ(response.headers["connection"], "close");
  EXPECT_EQ(response.headers["x-remote-port"], std::to_string(client->local_port()));
  EXPECT_EQ(response.headers.count("date"), 1u);
  std::string rest;
  EXPECT_TRUE(client->ReadUntilEof(&rest));  // the server honours Connection: close
  EXPECT_EQ(rest, "");
}

TEST(HttpServerTest, KeepAliveServesTwoRequestsOnOneConnection) {
  ASSERT_OK_AND_ASSIGN(auto server, HttpServer::Start(LoopbackOptions(), EchoHandler()));
  auto client = TestClient::Connect(server->port());
  ASSERT_NE(client, nullptr);
  for (int i = 0; i < 2; ++i) {
    const std::string body = "n" + std::to_string(i);
    ASSERT_TRUE(client->SendAll("POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n" + body));
    ClientResponse response;
    ASSERT_TRUE(client->ReadResponse(&response)) << "request " << i;
    EXPECT_EQ(response.status, 200);
    EXPECT_EQ(response.body, "POST /p q= x=- body=" + body);
    EXPECT_EQ(response.headers.count("connection"), 0u);
    EXPECT_EQ(response.headers["x-remote-port"], std::to_string(client->local_port()));
  }
  EXPECT_EQ(server->active_connections(), 1u);
}

TEST(HttpServerTest, ChunkedRequestBodyIsDecoded) {
  ASSERT_OK_AND_ASSIGN(auto server, HttpServer::Start(LoopbackOptions(), EchoHandler()));
  auto client = TestClient::Connect(server->port());
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->SendAll(
      "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"));
  ClientResponse response;
  ASSERT_TRUE(client->ReadResponse(&response));
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body, "POST /c q= x=- body=abcdefg");
}

TEST(HttpServerTest, StreamWrittenFromAnotherThread) {
  WriterInbox inbox;
  ASSERT_OK_AND_ASSIGN(auto server, HttpServer::Start(LoopbackOptions(), inbox.handler()));
  auto client = TestClient::Connect(server->port());
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->SendAll("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(inbox.WaitFor(1));
  const std::vector<std::string> events = {"data: {\"i\":0}\n\n", "data: {\"i\":1}\n\n",
                                           "data: {\"i\":2}\n\n", "data: [DONE]\n\n"};
  std::thread app([&] {
    auto writer = inbox.writer(0);
    writer->StartStream(200, {{"Content-Type", "text/event-stream"}, {"Cache-Control", "no-cache"}});
    for (const std::string& event : events) EXPECT_TRUE(writer->Write(event));
    writer->End();
    EXPECT_TRUE(writer->closed());
    EXPECT_FALSE(writer->Write("late"));
  });
  app.join();
  ClientResponse head;
  ASSERT_TRUE(client->ReadHead(&head));
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.headers["content-type"], "text/event-stream");
  EXPECT_EQ(head.headers["transfer-encoding"], "chunked");
  EXPECT_EQ(head.headers.count("content-length"), 0u);
  std::vector<std::string> received;
  bool last = false;
  while (!last) {
    std::string chunk;
    ASSERT_TRUE(client->ReadChunk(&chunk, &last));
    if (!last) received.push_back(chunk);
  }
  EXPECT_EQ(received, events);

  // The connection stays usable after a streamed response.
  ASSERT_TRUE(client->SendAll("GET /second HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(inbox.WaitFor(2));
  EXPECT_EQ(inbox.request(1).path, "/second");
  inbox.writer(1)->Send(204, {}, "ignored");
  ClientResponse second;
  ASSERT_TRUE(client->ReadHead(&second));
  EXPECT_EQ(second.status, 204);
  EXPECT_EQ(second.headers.count("content-length"), 0u);
}

TEST(HttpServerTest, PipelinedRequestsAreAnsweredInOrder) {
  ASSERT_OK_AND_ASSIGN(auto server, HttpServer::Start(LoopbackOptions(), EchoHandler()));
  auto client = TestClient::Connect(server->port());
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->SendAll("GET /one HTTP/1.1\r\nHost: x\r\n\r\n"
                              "GET /two HTTP/1.1\r\nHost: x\r\n\r\n"));
  ClientResponse first, second;
  ASSERT_TRUE(client->ReadResponse(&first));
  ASSERT_TRUE(client->ReadResponse(&second));
  EXPECT_EQ(first.body, "GET /one q= x=- body=");
  EXPECT_EQ(second.body, "GET /two q= x=- body=");
}

TEST(HttpServerTest, Http10StreamIsRawAndClosesAtEnd) {
  WriterInbox inbox;
  ASSERT_OK_AND_ASSIGN(auto server, HttpServer::Start(LoopbackOptions(), inbox.handler()));
  auto client = TestClient::Connect(server->port());
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->SendAll("GET /old HTTP/1.0\r\n\r\n"));
  ASSERT_TRUE(inbox.WaitFor(1));
  EXPECT_EQ(inbox.request(0).version, 10);
  std::thread app([writer = inbox.writer(0)] {
    writer->StartStream(200, {{"Content-Type", "text/event-stream"}});
    writer->Write("data: a\n\n");
    writer->Write("data: b\n\n");
    writer->End();
  });
  app.join();
  ClientResponse response;
  ASSERT_TRUE(client->ReadResponse(&response));
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.headers.count("transfer-encoding"), 0u);
  EXPECT_EQ(response.headers["connection"], "close");
  EXPECT_EQ(response.body, "data: a\n\ndata: b\n\n");
}

TEST(HttpServerTest, OnCloseFiresWhenClientLeavesMidStream) {
  WriterInbox inbox;
  ASSERT_OK_AND_ASSIGN(auto server, HttpServer::Start(LoopbackOptions(), inbox.handler()));
  auto client = TestClient::Connect(server->port());
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->SendAll("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                              "Content-Length: 2\r\n\r\n{}"));
  ASSERT_TRUE(inbox.WaitFor(1));
  auto writer = inbox.writer(0);
  Signal closed;
  writer->OnClose([&] { closed.Notify(); });
  writer->StartStream(200, {{"Content-Type", "text/event-stream"}});
  ASSERT_TRUE(writer->Write("data: first\n\n"));
  ClientResponse head;
  ASSERT_TRUE(client->ReadHead(&head));
  std::string chunk;
  bool last = false;
  ASSERT_TRUE(client->ReadChunk(&chunk, &last));
  EXPECT_EQ(chunk, "data: first\n\n");

  client->Close();
  ASSERT_TRUE(closed.Wait());
  EXPECT_TRUE(writer->closed());
  EXPECT_FALSE(writer->Write("data: second\n\n"));
  writer->End();
  EXPECT_EQ(closed.count(), 1);
  // A callback registered after the fact runs at once.
  Signal late;
  writer->OnClose([&] { late.Notify(); });
  EXPECT_EQ(late.count(), 1);
}

TEST(HttpServerTest, HandlerThatNeverAnswersReleasesConnectionWhenClientLeaves) {
  WriterInbox inbox;
  ASSERT_OK_AND_ASSIGN(auto server, HttpServer::Start(LoopbackOptions(), inbox.handler()));
  auto client = TestClient::Connect(server->port());
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->SendAll("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(inbox.WaitFor(1));
  Signal closed;
  inbox.writer(0)->OnClose([&] { closed.Notify(); });
  EXPECT_EQ(server->active_connections(), 1u);
  client->Close();
  ASSERT_TRUE(closed.Wait());
  EXPECT_TRUE(inbox.writer(0)->closed());
}

TEST(HttpServerTest, OnCloseIsNotCalledForACompletedResponse) {
  WriterInbox inbox;
  ASSERT_OK_AND_ASSIGN(auto server, HttpServer::Start(LoopbackOptions(), inbox.handler()));
  auto client = TestClient::Connect(server->port());
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->SendAll("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  ASSERT_TRUE(inbox.WaitFor(1));
  Signal closed;
  inbox.writer(0)->OnClose([&] { closed.Notify(); });
  inbox.writer(0)->Send(200, {}, "ok");
  ClientResponse response;
  ASSERT_TRUE(client->ReadResponse(&response));
  EXPECT_EQ(response.body, "ok");
  std::string rest;
  ASSERT_TRUE(client->ReadUntilEof(&rest));
  server->Stop();  // joins the IO threads: any callback would have run by now
  EXPECT_EQ(closed.count(), 0);
}

TEST(HttpServerTest, SlowReaderAbortsStreamAtQueueBound) {
  WriterInbox inbox;
  ServerOptions options = LoopbackOptions();
  options.max_queued_write_bytes = 64 << 10;
  ASSERT_OK_AND_ASSIGN(auto server, HttpServer::Start(options, inbox.handler()));
  auto client = TestClient::Connect(server->port());
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->SendAll("GET /s HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(inbox.WaitFor(1));
  auto writer = inbox.writer(0);
  Signal closed;
  writer->OnClose([&] { closed.Notify(); });
  writer->StartStream(200, {{"Content-Type", "text/event-stream"}});
  // The client reads nothing: once the socket buffers are full, the queue
  // grows past its bound and Write() refuses.
  const std::string chunk(16 << 10, 'x');
  bool refused = false;
  for (int i = 0; i < 20000 && !refused; ++i) refused = !writer->Write(chunk);
  EXPECT_TRUE(refused);
  ASSERT_TRUE(closed.Wait());
  EXPECT_TRUE(writer->closed());
}

TEST(HttpServerTest, BodyOverLimitByContentLengthIs413) {
  ServerOptions options = LoopbackOptions();
  options.max_body_bytes = 1024;
  ASSERT_OK_AND_ASSIGN(auto server, HttpServer::Start(options, EchoHandler()));
  auto client = TestClient::Connect(server->port());
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->SendAll("POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
                              "Content-Length: 4096\r\n\r\n" + std::string(4096, 'a')));
  ClientResponse response;
  ASSERT_TRUE(client->ReadResponse(&response));
  EXPECT_EQ(response.status, 413);
  ExpectErrorEnvelope(response, "request_too_large");
  EXPECT_THAT(response.body, HasSubstr("\"type\":\"invalid_request_error\""));
  EXPECT_THAT(response.body, HasSubstr("1024"));
  std::string rest;
  EXPECT_TRUE(client->ReadUntilEof(&rest));
}

TEST(HttpServerTest, ChunkedBodyOverLimitIs413) {
  ServerOptions options = LoopbackOptions();
  options.max_body_bytes = 1024;
  ASSERT_OK_AND_ASSIGN(auto server, HttpServer::Start(options, EchoHandler()));
  auto client = TestClient::Connect(server->port());
  ASSERT_NE(client, nullptr);
  std::string request = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 8; ++i) request += "100\r\n" + std::string(256, 'b') + "\r\n";
  request += "0\r\n\r\n";
  ASSERT_TRUE(client->SendAll(request));
  ClientResponse response;
  ASSERT_TRUE(client->ReadResponse(&response));
  EXPECT_EQ(response.status, 413);
  ExpectErrorEnvelope(response, "request_too_large");
}

TEST(HttpServerTest, ExpectContinueGetsContinueThenAnswer) {
  ASSERT_OK_AND_ASSIGN(auto server, HttpServer::Start(LoopbackOptions(), EchoHandler()));
  auto client = TestClient::Connect(server->port());
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->SendAll("POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                              "Content-Length: 3\r\n\r\n"));
  ClientResponse interim;
  ASSERT_TRUE(client->ReadHead(&interim));
  EXPECT_EQ(interim.status, 100);
  ASSERT_TRUE(client->SendAll("xyz"));
  ClientResponse response;
  ASSERT_TRUE(client->ReadResponse(&response));
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body, "POST /e q= x=- body=xyz");
}

TEST(HttpServerTest, HugeHeaderIs431) {
  ASSERT_OK_AND_ASSIGN(auto server, HttpServer::Start(LoopbackOptions(), EchoHandler()));
  auto client = TestClient::Connect(server->port());
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->SendAll("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20 << 10, 'h') +
                              "\r\n\r\n"));
  ClientResponse response;
  ASSERT_TRUE(client->ReadResponse(&response));
  EXPECT_EQ(response.status, 431);
  ExpectErrorEnvelope(response, "request_header_fields_too_large");
  EXPECT_THAT(response.body, HasSubstr("16384"));
}

TEST(HttpServerTest, StalledHeaderIs408) {
  ServerOptions options = LoopbackOptions();
  options.header_timeout = std::chrono::milliseconds(200);
  ASSERT_OK_AND_ASSIGN(auto server, HttpServer::Start(options, EchoHandler()));
  auto client = TestClient::Connect(server->port());
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->SendAll("GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Partial: "));
  ClientResponse response;
  ASSERT_TRUE(client->ReadResponse(&response));  // blocks until the server gives up
  EXPECT_EQ(response.status, 408);
  ExpectErrorEnvelope(response, "request_timeout");
  std::string rest;
  EXPECT_TRUE(client->ReadUntilEof(&rest));
}

TEST(HttpServerTest, StalledBodyIs408) {
  ServerOptions options = LoopbackOptions();
  options.body_timeout = std::chrono::milliseconds(200);
  ASSERT_OK_AND_ASSIGN(auto server, HttpServer::Start(options, EchoHandler()));
  auto client = TestClient::Connect(server->port());
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->SendAll("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"));
  ClientResponse response;
  ASSERT_TRUE(client->ReadResponse(&response));
  EXPECT_EQ(response.status, 408);
  EXPECT_THAT(response.body, HasSubstr("body"));
}

TEST(HttpServerTest, SilentConnectionIsClosedWithoutAnswer) {
  ServerOptions options = LoopbackOptions();
  options.header_timeout = std::chrono::milliseconds(100);
  ASSERT_OK_AND_ASSIGN(auto server, HttpServer::Start(options, EchoHandler()));
  auto client = TestClient::Connect(server->port());
  ASSERT_NE(client, nullptr);
  std::string received;
  EXPECT_TRUE(client->ReadUntilEof(&received));
  EXPECT_EQ(received, "");
}

TEST(HttpServerTest, IdleKeepAliveConnectionIsClosed) {
  ServerOptions options = LoopbackOptions();
  options.idle_timeout = std::chrono::milliseconds(100);
  ASSERT_OK_AND_ASSIGN(auto server, HttpServer::Start(options, EchoHandler()));
  auto client = TestClient::Connect(server->port());
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->SendAll("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  ClientResponse response;
  ASSERT_TRUE(client->ReadResponse(&response));
  EXPECT_EQ(response.status, 200);
  std::string rest;
  EXPECT_TRUE(client->ReadUntilEof(&rest));
  EXPECT_EQ(rest, "");
}

TEST(HttpServerTest, MalformedRequestLineIs400) {
  ASSERT_OK_AND_ASSIGN(auto server, HttpServer::Start(LoopbackOptions(), EchoHandler()));
  for (const char* bad : {"this is not http\r\n\r\n", "GET / HTTP/9.Z\r\nHost: x\r\n\r\n",
                          "GET / HTTP/1.1\r\nBad Header Name: v\r\n\r\n"}) {
    auto client = TestClient::Connect(server->port());
    ASSERT_NE(client, nullptr);
    ASSERT_TRUE(client->SendAll(bad));
    ClientResponse response;
    ASSERT_TRUE(client->ReadResponse(&response)) << bad;
    EXPECT_EQ(response.status, 400) << bad;
    ExpectErrorEnvelope(response, "bad_request");
    EXPECT_THAT(response.body, HasSubstr("\"type\":\"invalid_request_error\""));
  }
}

TEST(HttpServerTest, ConnectionsOverLimitGet503) {
  WriterInbox inbox;
  ServerOptions options = LoopbackOptions();
  options.max_connections = 2;
  ASSERT_OK_AND_ASSIGN(auto server, HttpServer::Start(options, inbox.handler()));
  std::vector<std::unique_ptr<TestClient>> held;
  for (int i = 0; i < 2; ++i) {
    held.push_back(TestClient::Connect(server->port()));
    ASSERT_NE(held.back(), nullptr);
    ASSERT_TRUE(held.back()->SendAll("GET /hold HTTP/1.1\r\nHost: x\r\n\r\n"));
  }
  ASSERT_TRUE(inbox.WaitFor(2));  // both admitted and waiting on the handler
  auto extra = TestClient::Connect(server->port());
  ASSERT_NE(extra, nullptr);
  ASSERT_TRUE(extra->SendAll("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  ClientResponse response;
  ASSERT_TRUE(extra->ReadResponse(&response));
  EXPECT_EQ(response.status, 503);
  EXPECT_EQ(response.headers["retry-after"], "1");
  ExpectErrorEnvelope(response, "server_overloaded");
  EXPECT_THAT(response.body, HasSubstr("\"type\":\"server_error\""));
  EXPECT_EQ(server->active_connections(), 2u);
}

TEST(HttpServerTest, HandlerExceptionIs500) {
  ASSERT_OK_AND_ASSIGN(auto server,
                       HttpServer::Start(LoopbackOptions(), [](Request, std::shared_ptr<ResponseWriter>) {
                         throw std::runtime_error("boom");
                       }));
  auto client = TestClient::Connect(server->port());
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->SendAll("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  ClientResponse response;
  ASSERT_TRUE(client->ReadResponse(&response));
  EXPECT_EQ(response.status, 500);
  ExpectErrorEnvelope(response, "internal_error");
}

TEST(HttpServerTest, InvalidResponseHeadersAreDropped) {
  ASSERT_OK_AND_ASSIGN(
      auto server, HttpServer::Start(LoopbackOptions(), [](Request, std::shared_ptr<ResponseWriter> w) {
        w->Send(200,
                {{"X-Ok", "1"}, {"X-Injected", "a\r\nSet-Cookie: evil"}, {"Bad Name", "v"},
                 {"Content-Length", "999"}},
                "body");
      }));
  auto client = TestClient::Connect(server->port());
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->SendAll("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  ClientResponse response;
  ASSERT_TRUE(client->ReadResponse(&response));
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body, "body");
  EXPECT_EQ(response.headers["x-ok"], "1");
  EXPECT_EQ(response.headers.count("x-injected"), 0u);
  EXPECT_EQ(response.headers.count("set-cookie"), 0u);
  EXPECT_EQ(response.headers["content-length"], "4");
}

TEST(HttpServerTest, StartRejectsBadOptions) {
  ServerOptions options = LoopbackOptions();
  options.io_threads = 0;
  EXPECT_THAT(HttpServer::Start(options, EchoHandler()).status(),
              testing::StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("io_threads")));
  EXPECT_THAT(HttpServer::Start(LoopbackOptions(), nullptr).status(),
              testing::StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("handler")));
  ASSERT_OK_AND_ASSIGN(auto first, HttpServer::Start(LoopbackOptions(), EchoHandler()));
  options = LoopbackOptions();
  options.port = first->port();
  EXPECT_THAT(HttpServer::Start(options, EchoHandler()).status(),
              testing::StatusIs(absl::StatusCode::kUnavailable,
                                HasSubstr("127.0.0.1:" + std::to_string(first->port()))));
}

TEST(HttpServerTest, StopWithOpenConnectionsReturns) {
  WriterInbox inbox;
  ASSERT_OK_AND_ASSIGN(auto server, HttpServer::Start(LoopbackOptions(), inbox.handler()));
  std::vector<std::unique_ptr<TestClient>> idle;
  for (int i = 0; i < 5; ++i) {
    idle.push_back(TestClient::Connect(server->port()));
    ASSERT_NE(idle.back(), nullptr);
  }
  auto streaming = TestClient::Connect(server->port());
  ASSERT_NE(streaming, nullptr);
  ASSERT_TRUE(streaming->SendAll("GET /s HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(inbox.WaitFor(1));
  auto writer = inbox.writer(0);
  Signal closed;
  writer->OnClose([&] { closed.Notify(); });
  writer->StartStream(200, {{"Content-Type", "text/event-stream"}});
  ASSERT_TRUE(writer->Write("data: x\n\n"));

  server->Stop();
  EXPECT_EQ(closed.count(), 1);
  EXPECT_TRUE(writer->closed());
  EXPECT_FALSE(writer->Write("data: y\n\n"));
  EXPECT_EQ(server->active_connections(), 0u);
  std::string rest;
  EXPECT_TRUE(idle[0]->ReadUntilEof(&rest));
  server->Stop();  // idempotent
  server.reset();
  EXPECT_FALSE(writer->Write("data: z\n\n"));  // the writer outlives the server
}

// 1000 SSE streams held open at once on the default two IO threads.
TEST(HttpServerTest, ThousandConcurrentStreamsOnBoundedThreads) {
  constexpr int kStreams = 1000;
  constexpr int kRounds = 4;
  ASSERT_THAT(RaiseOpenFileLimit(2 * kStreams + 256), wf::testing::IsOk());
  // ThreadSanitizer's runtime starts a thread of its own along with the
  // process's first thread. An idle thread started before the baseline puts
  // it into threads_before, so the bound below stays exact in every build.
  std::jthread idle([](std::stop_token stop) {
    std::mutex mu;
    std::condition_variable_any cv;
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, stop, [] { return false; });
  });
  const size_t threads_before = CountThreads();
  const size_t rss_before = RssKiB();

  WriterInbox inbox;
  ServerOptions options = LoopbackOptions();
  options.io_threads = 2;
  ASSERT_OK_AND_ASSIGN(auto server, HttpServer::Start(options, inbox.handler()));
  std::vector<std::unique_ptr<TestClient>> clients;
  clients.reserve(kStreams);
  for (int i = 0; i < kStreams; ++i) {
    clients.push_back(TestClient::Connect(server->port()));
    ASSERT_NE(clients.back(), nullptr) << "connection " << i;
    ASSERT_TRUE(clients.back()->SendAll("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                                        "Content-Type: application/json\r\nContent-Length: 13\r\n\r\n"
                                        "{\"stream\":1}\n" ));
  }
  ASSERT_TRUE(inbox.WaitFor(kStreams));
  EXPECT_EQ(server->active_connections(), static_cast<size_t>(kStreams));
  // Requests arrive in any order: pair each client with its writer by port.
  std::map<int, std::shared_ptr<ResponseWriter>> writer_by_port;
  for (int i = 0; i < kStreams; ++i) {
    writer_by_port[inbox.request(i).remote_port] = inbox.writer(i);
  }
  std::vector<std::shared_ptr<ResponseWriter>> writers;
  for (int i = 0; i < kStreams; ++i) {
    auto it = writer_by_port.find(clients[i]->local_port());
    ASSERT_NE(it, writer_by_port.end()) << "no request seen from client " << i;
    writers.push_back(it->second);
  }

  auto event = [](int stream, int round) {
    return "data: {\"stream\":" + std::to_string(stream) + ",\"round\":" + std::to_string(round) +
           "}\n\n";
  };
  size_t threads_during = 0;
  size_t rss_peak = 0;
  for (int round = 0; round < kRounds; ++round) {
    // The application answers from its own thread, as the router does from
    // its gRPC completion threads.
    std::thread app([&] {
      for (int i = 0; i < kStreams; ++i) {
        const auto& writer = writers[i];
        if (round == 0) writer->StartStream(200, {{"Content-Type", "text/event-stream"}});
        EXPECT_TRUE(writer->Write(event(i, round)));
      }
    });
    app.join();
    for (int i = 0; i < kStreams; ++i) {
      if (round == 0) {
        ClientResponse head;
        ASSERT_TRUE(clients[i]->ReadHead(&head)) << "stream " << i;
        ASSERT_EQ(head.status, 200);
      }
      std::string chunk;
      bool last = true;
      ASSERT_TRUE(clients[i]->ReadChunk(&chunk, &last)) << "stream " << i << " round " << round;
      ASSERT_FALSE(last);
      ASSERT_EQ(chunk, event(i, round));
    }
    threads_during = std::max(threads_during, CountThreads());
    rss_peak = std::max(rss_peak, RssKiB());
  }
  EXPECT_EQ(server->active_connections(), static_cast<size_t>(kStreams));
  // Only the IO threads were added, whatever the number of streams.
  EXPECT_EQ(threads_during, threads_before + static_cast<size_t>(options.io_threads));

  for (const auto& writer : writers) writer->End();
  for (int i = 0; i < kStreams; ++i) {
    std::string chunk;
    bool last = false;
    ASSERT_TRUE(clients[i]->ReadChunk(&chunk, &last)) << "stream " << i;
    ASSERT_TRUE(last) << "stream " << i;
  }
  std::cout << "[ streams  ] " << kStreams << " concurrent streams: threads " << threads_before
            << " -> " << threads_during << ", RSS " << rss_before << " KiB -> " << rss_peak
            << " KiB (+" << (rss_peak - rss_before) << " KiB, both ends in this process)\n";
  ::testing::Test::RecordProperty("threads_during", static_cast<int>(threads_during));
  ::testing::Test::RecordProperty("rss_growth_kib", static_cast<int>(rss_peak - rss_before));
  clients.clear();
  server->Stop();
}

}  // namespace
}  // namespace wf::router::http
