#include "tools/validate_kv/http_client.h"

#include <curl/curl.h>

#include <memory>

#include "absl/strings/str_cat.h"

namespace wf::validate_kv {
namespace {

size_t AppendBody(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

absl::Status FromCurl(CURLcode code, const std::string& url, const char* detail) {
  const std::string msg = absl::StrCat(url, ": ", curl_easy_strerror(code), detail[0] != '\0' ? " (" : "",
                                       detail, detail[0] != '\0' ? ")" : "");
  switch (code) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
      return absl::UnavailableError(msg);
    case CURLE_OPERATION_TIMEDOUT:
      return absl::DeadlineExceededError(msg);
    default:
      return absl::InternalError(msg);
  }
}

}  // namespace

absl::Status CurlGlobalInit() {
  if (CURLcode c = curl_global_init(CURL_GLOBAL_DEFAULT); c != CURLE_OK) {
    return absl::InternalError(absl::StrCat("curl_global_init failed: ", curl_easy_strerror(c)));
  }
  return absl::OkStatus();
}

absl::StatusOr<HttpResult> HttpClient::Get(const std::string& url) const { return Perform(url, nullptr); }

absl::StatusOr<HttpResult> HttpClient::Post(const std::string& url, const std::string& json_body) const {
  return Perform(url, &json_body);
}

absl::StatusOr<HttpResult> HttpClient::Perform(const std::string& url, const std::string* post_body) const {
  std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
  if (curl == nullptr) return absl::InternalError("curl_easy_init failed");
  CURL* c = curl.get();
  HttpResult result;
  char error[CURL_ERROR_SIZE] = {0};
  curl_slist* raw_headers = nullptr;
  raw_headers = curl_slist_append(raw_headers, "Accept: application/json");
  if (post_body != nullptr) raw_headers = curl_slist_append(raw_headers, "Content-Type: application/json");
  if (!options_.api_key.empty()) {
    raw_headers = curl_slist_append(raw_headers, absl::StrCat("Authorization: Bearer ", options_.api_key).c_str());
  }
  std::unique_ptr<curl_slist, SlistDeleter> headers(raw_headers);
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options_.connect_timeout_ms));
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.request_timeout_ms));
  // Timeouts must not raise SIGALRM in a multi-threaded program.
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &AppendBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &result.body);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error);
  if (post_body != nullptr) {
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, post_body->data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(post_body->size()));
  }
  if (CURLcode code = curl_easy_perform(c); code != CURLE_OK) return FromCurl(code, url, error);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &result.status);
  return result;
}

}  // namespace wf::validate_kv
