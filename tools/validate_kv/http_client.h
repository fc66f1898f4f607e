// A blocking HTTP/1.1 client over libcurl for the KV-cache validator: GET and
// POST of JSON bodies to an OpenAI-compatible server, each bounded by a
// connect timeout and a whole-request timeout.
//
// Example:
//   HttpClient client({.connect_timeout_ms = 2000, .request_timeout_ms = 60000});
//   BN_ASSIGN_OR_RETURN(HttpResult r, client.Post("http://127.0.0.1:8080/v1/completions", body));
//   if (r.status != 200) ...
//
// Contracts: CurlGlobalInit() must be called once (before any thread starts
// requests). Thread-safe: every request uses its own curl handle, so one
// HttpClient may be shared by concurrent threads. Errors: UNAVAILABLE when
// the connection fails, DEADLINE_EXCEEDED on a timeout, INTERNAL for other
// transport failures; an HTTP error status is not an error (see status).
#ifndef WF_TOOLS_VALIDATE_KV_HTTP_CLIENT_H_
#define WF_TOOLS_VALIDATE_KV_HTTP_CLIENT_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace wf::validate_kv {

struct HttpResult {
  long status = 0;  // HTTP status code
  std::string body;
};

struct HttpClientOptions {
  int64_t connect_timeout_ms = 2000;
  int64_t request_timeout_ms = 120000;
  std::string api_key;  // sent as "Authorization: Bearer KEY" when not empty
};

// Initializes libcurl's global state; returns an error naming curl's code.
absl::Status CurlGlobalInit();

class HttpClient {
 public:
  explicit HttpClient(HttpClientOptions options) : options_(std::move(options)) {}

  absl::StatusOr<HttpResult> Get(const std::string& url) const;
  // POSTs `json_body` with Content-Type: application/json.
  absl::StatusOr<HttpResult> Post(const std::string& url, const std::string& json_body) const;

 private:
  absl::StatusOr<HttpResult> Perform(const std::string& url, const std::string* post_body) const;

  HttpClientOptions options_;
};

}  // namespace wf::validate_kv

#endif  // WF_TOOLS_VALIDATE_KV_HTTP_CLIENT_H_
