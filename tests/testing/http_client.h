// A minimal HTTP/1.1 client over loopback for tests of the router's gateway:
// one request per connection ("Connection: close"), any method, any body
// bytes (including invalid UTF-8), bounded by a timeout. The response is read
// to the end, so a streamed (SSE) response comes back whole; chunked bodies
// are decoded. SseData() splits an event stream into its "data:" payloads.
//
// Example:
//   ASSERT_OK_AND_ASSIGN(HttpResponse r, HttpPost(port, "/v1/completions", R"({"model":"m","prompt":[1,2]})"));
//   EXPECT_EQ(r.status, 200);
//   for (const std::string& data : SseData(r.body)) { ... }  // "[DONE]" last
//
// Errors: UNAVAILABLE if the connection fails, DEADLINE_EXCEEDED if the
// response did not end within the timeout (a hung stream), INTERNAL if the
// bytes are not an HTTP response. Thread-safe (no shared state).
#ifndef WF_TESTS_TESTING_HTTP_CLIENT_H_
#define WF_TESTS_TESTING_HTTP_CLIENT_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tests/testing/http_get.h"

namespace wf::testing {

struct HttpExchange {
  HttpResponse response;         // status and decoded body
  std::string headers;           // the raw header block (status line included)
  std::chrono::microseconds first_byte{0};  // request sent -> first response byte
};

namespace http_client_internal {

// Decodes a chunked body; whatever follows a malformed chunk is dropped.
inline std::string Dechunk(const std::string& raw) {
  std::string out;
  size_t pos = 0;
  while (pos < raw.size()) {
    const size_t eol = raw.find("\r\n", pos);
    if (eol == std::string::npos) break;
    size_t len = 0;
    const std::string hex = raw.substr(pos, eol - pos);
    if (hex.empty() || !absl::SimpleHexAtoi(hex.substr(0, hex.find(';')), &len)) break;
    if (len == 0) break;
    pos = eol + 2;
    if (pos + len > raw.size()) {
      out.append(raw, pos, std::string::npos);  // cut short: keep what came
      break;
    }
    out.append(raw, pos, len);
    pos += len + 2;
  }
  return out;
}

}  // namespace http_client_internal

// Sends `method path` with `body` (Content-Length set unless `body` is empty
// and the method is GET) and extra header lines ("Name: value").
inline absl::StatusOr<HttpExchange> HttpRequestFull(int port, const std::string& method, const std::string& path,
                                                    const std::string& body,
                                                    const std::vector<std::string>& extra_headers = {},
                                                    std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::InternalError("socket failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return absl::UnavailableError(absl::StrCat("cannot connect to 127.0.0.1:", port));
  }
  std::string req = absl::StrCat(method, " ", path, " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
  if (!body.empty() || method != "GET") {
    absl::StrAppend(&req, "Content-Type: application/json\r\nContent-Length: ", body.size(), "\r\n");
  }
  for (const std::string& h : extra_headers) absl::StrAppend(&req, h, "\r\n");
  absl::StrAppend(&req, "\r\n", body);
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + timeout;
  // A server may answer (e.g. 413) and stop reading before the body is all
  // sent: a failed send is not an error as long as a response comes back.
  size_t sent = 0;
  while (sent < req.size()) {
    const ssize_t n = ::send(fd, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  std::string raw;
  bool first = true;
  HttpExchange ex;
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      ::close(fd);
      return absl::DeadlineExceededError(
          absl::StrCat("HTTP response to ", method, " ", path, " did not end in time; got so far: ", raw.substr(0, 2000)));
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char buf[16384];
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;  // EOF (or reset after the response)
    if (first) {
      ex.first_byte = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start);
      first = false;
    }
    raw.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  if (raw.size() < 12 || raw.compare(0, 5, "HTTP/") != 0) {
    return absl::InternalError(absl::StrCat("not an HTTP response (", raw.size(), " bytes): ", raw.substr(0, 200)));
  }
  ex.response.status = std::atoi(raw.c_str() + 9);
  const size_t end = raw.find("\r\n\r\n");
  if (end == std::string::npos) return absl::InternalError("HTTP response without the end of its headers");
  ex.headers = raw.substr(0, end);
  std::string payload = raw.substr(end + 4);
  bool chunked = false;
  for (absl::string_view line : absl::StrSplit(ex.headers, "\r\n")) {
    if (absl::StartsWithIgnoreCase(line, "transfer-encoding:") &&
        absl::StrContains(absl::AsciiStrToLower(line), "chunked")) {
      chunked = true;
    }
  }
  ex.response.body = chunked ? http_client_internal::Dechunk(payload) : std::move(payload);
  return ex;
}

inline absl::StatusOr<HttpResponse> HttpPost(int port, const std::string& path, const std::string& body,
                                             std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
  absl::StatusOr<HttpExchange> ex = HttpRequestFull(port, "POST", path, body, {}, timeout);
  if (!ex.ok()) return ex.status();
  return std::move(ex->response);
}

// The "data:" payloads of a text/event-stream body, in order.
inline std::vector<std::string> SseData(const std::string& body) {
  std::vector<std::string> out;
  for (absl::string_view event : absl::StrSplit(body, "\n\n", absl::SkipEmpty())) {
    for (absl::string_view line : absl::StrSplit(event, '\n')) {
      if (absl::ConsumePrefix(&line, "data:")) out.emplace_back(absl::StripLeadingAsciiWhitespace(line));
    }
  }
  return out;
}

}  // namespace wf::testing

#endif  // WF_TESTS_TESTING_HTTP_CLIENT_H_
