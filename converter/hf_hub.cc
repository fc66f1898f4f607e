#include "converter/hf_hub.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <thread>
#include <type_traits>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "converter/internal/json_util.h"
#include "common/string_view_compat.h"
#include "nlohmann/json.hpp"

namespace wf::convert {
namespace {

using Json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;
using ::wf::Av;

constexpr size_t kMaxListingBytes = size_t{64} << 20;
constexpr size_t kMaxErrorBodyBytes = 4096;
constexpr size_t kHashChunkBytes = size_t{1} << 20;
constexpr char kUserAgent[] = "wrinklefree-converter/0.1";

void EnsureCurlInitialized() {
  static const bool initialized = [] {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return true;
  }();
  (void)initialized;
}

absl::Status ErrnoError(const std::string& what, int err) {
  const std::string msg = absl::StrCat(what, ": ", std::strerror(err));
  if (err == ENOENT) return absl::NotFoundError(msg);
  if (err == EACCES || err == EPERM || err == EROFS) return absl::PermissionDeniedError(msg);
  if (err == ENOSPC) return absl::ResourceExhaustedError(msg);
  return absl::InternalError(msg);
}

bool IsTransient(const absl::Status& s) {
  return s.code() == absl::StatusCode::kUnavailable ||
         s.code() == absl::StatusCode::kDeadlineExceeded;
}

std::string EnvOr(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && v[0] != '\0' ? std::string(v) : fallback;
}

std::string ResolveEndpoint(const HubOptions& o) {
  std::string e = o.endpoint.empty() ? EnvOr("HF_ENDPOINT", kDefaultHubEndpoint) : o.endpoint;
  while (!e.empty() && e.back() == '/') e.pop_back();
  return e;
}

std::string ResolveToken(const HubOptions& o) {
  return o.token.empty() ? EnvOr("HF_TOKEN", "") : o.token;
}

// Percent-encodes everything but RFC 3986 unreserved characters (and '/'
// when `keep_slash`, for multi-segment paths).
std::string UrlEncode(std::string_view s, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' ||
        (keep_slash && c == '/')) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

bool IsRepoNamePart(std::string_view s) {
  if (s.empty() || s.size() > 96 || s == "." || s == ".." || s.front() == '-' || s.front() == '.') {
    return false;
  }
  return std::all_of(s.begin(), s.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

absl::Status ValidateRepo(const std::string& repo) {
  const size_t slash = repo.find('/');
  if (slash == std::string::npos || !IsRepoNamePart(std::string_view(repo).substr(0, slash)) ||
      !IsRepoNamePart(std::string_view(repo).substr(slash + 1))) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid repository id '", repo,
                     "': expected OWNER/NAME of letters, digits, '-', '_', '.'"));
  }
  return absl::OkStatus();
}

bool IsHex64(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return absl::ascii_isxdigit(static_cast<unsigned char>(c));
         });
}

bool IsCommitHash(const std::string& s) {
  return s.size() == 40 && std::all_of(s.begin(), s.end(), [](char c) {
           return absl::ascii_isxdigit(static_cast<unsigned char>(c));
         });
}

std::string JoinPath(const std::string& dir, const std::string& rel) {
  if (dir.empty()) return rel;
  if (dir.back() == '/') return dir + rel;
  return absl::StrCat(dir, "/", rel);
}

absl::Status MakeDirs(const std::string& path) {
  if (path.empty()) return absl::OkStatus();
  std::string partial;
  size_t pos = 0;
  while (pos != std::string::npos) {
    const size_t next = path.find('/', pos + 1);
    partial = path.substr(0, next);
    pos = next;
    if (partial.empty() || partial == "/") continue;
    if (::mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST) {
      return ErrnoError(absl::StrCat("cannot create directory '", partial, "'"), errno);
    }
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat("'", path, "' is not a directory"));
  }
  return absl::OkStatus();
}

std::string ParentDir(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash);
}

class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) { Reset(); }
  ~Sha256() { EVP_MD_CTX_free(ctx_); }
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Reset() { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }
  void Update(const void* data, size_t n) { EVP_DigestUpdate(ctx_, data, n); }
  std::string HexDigest() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_, md, &len);
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < len; ++i) {
      out.push_back(kHex[md[i] >> 4]);
      out.push_back(kHex[md[i] & 15]);
    }
    Reset();
    return out;
  }

 private:
  EVP_MD_CTX* ctx_;
};

// Hashes the first `n` bytes of an open file.
absl::Status HashPrefix(int fd, const std::string& path, uint64_t n, Sha256* sha) {
  std::vector<char> buf(kHashChunkBytes);
  uint64_t off = 0;
  while (off < n) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), n - off));
    const ssize_t got = ::pread(fd, buf.data(), want, static_cast<off_t>(off));
    if (got < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(absl::StrCat("cannot read '", path, "'"), errno);
    }
    if (got == 0) return absl::DataLossError(absl::StrCat("'", path, "' shrank while hashing"));
    sha->Update(buf.data(), static_cast<size_t>(got));
    off += static_cast<uint64_t>(got);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> HashFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(absl::StrCat("cannot open '", path, "'"), errno);
  struct stat st {};
  Sha256 sha;
  absl::Status s = ::fstat(fd, &st) == 0
                       ? HashPrefix(fd, path, static_cast<uint64_t>(st.st_size), &sha)
                       : ErrnoError(absl::StrCat("cannot stat '", path, "'"), errno);
  ::close(fd);
  if (!s.ok()) return s;
  return sha.HexDigest();
}

// What the header callback saw of the last response (redirects reset it).
struct ResponseMeta {
  std::string error_code;     // X-Error-Code: RepoNotFound, RevisionNotFound, ...
  std::string error_message;  // X-Error-Message
  std::string content_range;
};

size_t OnHeader(char* data, size_t size, size_t nitems, void* user) {
  auto* meta = static_cast<ResponseMeta*>(user);
  const size_t n = size * nitems;
  absl::string_view line(data, n);
  if (absl::StartsWith(line, "HTTP/")) {
    *meta = ResponseMeta();
    return n;
  }
  const size_t colon = line.find(':');
  if (colon == absl::string_view::npos) return n;
  const std::string name = absl::AsciiStrToLower(absl::string_view(line.data(), colon));
  std::string value(absl::StripAsciiWhitespace(
      absl::string_view(line.data() + colon + 1, line.size() - colon - 1)));
  if (name == "x-error-code") meta->error_code = std::move(value);
  if (name == "x-error-message") meta->error_message = std::move(value);
  if (name == "content-range") meta->content_range = std::move(value);
  return n;
}

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
using CurlPtr = std::unique_ptr<CURL, CurlDeleter>;
using SlistPtr = std::unique_ptr<curl_slist, SlistDeleter>;

// One HTTP GET with our common settings. The caller sets the write callback.
struct Request {
  CurlPtr curl;
  SlistPtr headers;
  ResponseMeta meta;
  char error_buffer[CURL_ERROR_SIZE] = {};
};

absl::StatusOr<std::unique_ptr<Request>> NewRequest(const HubOptions& o, const std::string& url,
                                                    const std::string& token,
                                                    const std::string& range) {
  EnsureCurlInitialized();
  auto req = std::make_unique<Request>();
  req->curl.reset(curl_easy_init());
  if (!req->curl) return absl::InternalError("curl_easy_init failed");
  curl_slist* list = nullptr;
  if (!token.empty()) {
    list = curl_slist_append(list, absl::StrCat("Authorization: Bearer ", token).c_str());
  }
  if (!range.empty()) list = curl_slist_append(list, absl::StrCat("Range: ", range).c_str());
  req->headers.reset(list);
  CURL* c = req->curl.get();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_USERAGENT, kUserAgent);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, o.connect_timeout_seconds);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, o.low_speed_bytes_per_second);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, o.low_speed_time_seconds);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, req->error_buffer);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &OnHeader);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &req->meta);
  if (req->headers) curl_easy_setopt(c, CURLOPT_HTTPHEADER, req->headers.get());
  return req;
}

absl::Status CurlError(CURLcode code, const Request& req, const std::string& url) {
  const std::string detail =
      req.error_buffer[0] != '\0' ? req.error_buffer : curl_easy_strerror(code);
  const std::string msg = absl::StrCat("network error fetching ", url, ": ", detail);
  if (code == CURLE_OPERATION_TIMEDOUT) return absl::DeadlineExceededError(msg);
  if (code == CURLE_UNSUPPORTED_PROTOCOL || code == CURLE_URL_MALFORMAT) {
    return absl::InvalidArgumentError(msg);
  }
  return absl::UnavailableError(msg);
}

// Maps an HTTP error status to a Status. `what` says what was being fetched.
absl::Status HttpError(long status, const ResponseMeta& meta, const std::string& body,
                       const std::string& url, const std::string& what) {
  std::string detail;
  if (!meta.error_code.empty()) absl::StrAppend(&detail, " [", meta.error_code, "]");
  std::string server_msg = meta.error_message;
  if (server_msg.empty() && !body.empty()) {
    server_msg = body.substr(0, 200);
    for (char& ch : server_msg) {
      if (static_cast<unsigned char>(ch) < 0x20) ch = ' ';
    }
  }
  if (!server_msg.empty()) absl::StrAppend(&detail, "; server says: ", server_msg);
  const std::string head = absl::StrCat(what, ": HTTP ", status, " from ", url, detail);
  switch (status) {
    case 401:
      return absl::UnauthenticatedError(absl::StrCat(
          head,
          ". Authentication required: set HF_TOKEN to a token with access (the hub also "
          "answers 401 for private or non-existent repositories)"));
    case 403:
      return absl::PermissionDeniedError(absl::StrCat(
          head,
          ". Access denied: gated repositories need their terms accepted on the hub and "
          "HF_TOKEN set to a token of that account"));
    case 404: {
      std::string_view which = "repository, revision or file";
      if (meta.error_code == "RepoNotFound") which = "repository";
      if (meta.error_code == "RevisionNotFound") which = "revision";
      if (meta.error_code == "EntryNotFound") which = "file";
      return absl::NotFoundError(absl::StrCat(head, ". Not found: ", Av(which)));
    }
    case 408:
    case 429:
      return absl::UnavailableError(head);
    case 416:
      return absl::OutOfRangeError(head);
    default:
      if (status >= 500) return absl::UnavailableError(head);
      return absl::UnknownError(absl::StrCat(head, ". Unexpected HTTP status"));
  }
}

size_t AppendCapped(char* data, size_t size, size_t nmemb, void* user) {
  auto* out = static_cast<std::string*>(user);
  const size_t n = size * nmemb;
  if (out->size() + n > kMaxListingBytes) return 0;  // Aborts the transfer.
  out->append(data, n);
  return n;
}

template <typename Fn>
auto WithRetries(const HubOptions& o, Fn fn) -> decltype(fn()) {
  const int attempts = std::max(1, o.max_attempts);
  for (int attempt = 1;; ++attempt) {
    auto result = fn();
    if (result.ok() || attempt >= attempts) return result;
    absl::Status s;
    if constexpr (std::is_same_v<decltype(result), absl::Status>) {
      s = result;
    } else {
      s = result.status();
    }
    if (!IsTransient(s)) return result;
    std::this_thread::sleep_for(std::chrono::milliseconds(o.retry_delay_ms) * attempt);
  }
}

absl::StatusOr<HubListing> ParseListing(const std::string& body, const std::string& url) {
  const std::string what = absl::StrCat("listing from ", url);
  BN_ASSIGN_OR_RETURN(Json root, internal::ParseJson(body, what));
  HubListing listing;
  if (!root.is_object() || !root.contains("siblings") || !root["siblings"].is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": no \"siblings\" array"));
  }
  if (root.contains("sha") && root["sha"].is_string())
    listing.commit = root["sha"].get<std::string>();
  absl::flat_hash_set<std::string> seen;
  for (const Json& s : root["siblings"]) {
    if (!s.is_object() || !s.contains("rfilename") || !s["rfilename"].is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": a sibling has no \"rfilename\""));
    }
    HubFile f;
    f.path = s["rfilename"].get<std::string>();
    if (!IsSafeRepoPath(f.path)) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": unsafe file name '", f.path, "' rejected"));
    }
    if (!seen.insert(f.path).second) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": file '", f.path, "' listed twice"));
    }
    if (s.contains("size") && s["size"].is_number_unsigned()) f.size = s["size"].get<uint64_t>();
    if (s.contains("lfs") && s["lfs"].is_object()) {
      const Json& lfs = s["lfs"];
      if (lfs.contains("size") && lfs["size"].is_number_unsigned()) {
        f.size = lfs["size"].get<uint64_t>();
      }
      if (lfs.contains("sha256")) {
        if (!lfs["sha256"].is_string() || !IsHex64(lfs["sha256"].get<std::string>())) {
          return absl::InvalidArgumentError(
              absl::StrCat(what, ": file '", f.path, "' has a malformed lfs.sha256"));
        }
        f.sha256 = absl::AsciiStrToLower(lfs["sha256"].get<std::string>());
      }
    }
    listing.files.push_back(std::move(f));
  }
  return listing;
}

// State of one file download, shared by its attempts.
class FileDownload {
 public:
  FileDownload(const HubOptions& o, const HubFile& file, std::string url, std::string partial,
               std::function<void(uint64_t, bool)> on_progress)
      : o_(o),
        file_(file),
        url_(std::move(url)),
        partial_(std::move(partial)),
        on_progress_(std::move(on_progress)) {}
  ~FileDownload() {
    if (fd_ >= 0) ::close(fd_);
  }

  // Opens (or creates) the partial file and hashes what it already holds.
  absl::Status Init() {
    fd_ = ::open(partial_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) return ErrnoError(absl::StrCat("cannot open '", partial_, "'"), errno);
    struct stat st {};
    if (::fstat(fd_, &st) != 0)
      return ErrnoError(absl::StrCat("cannot stat '", partial_, "'"), errno);
    offset_ = static_cast<uint64_t>(st.st_size);
    // Without a known size a partial file cannot be trusted as a prefix.
    if (!file_.size.has_value() || offset_ > *file_.size) BN_RETURN_IF_ERROR(Truncate());
    if (offset_ > 0 && !file_.sha256.empty()) {
      BN_RETURN_IF_ERROR(HashPrefix(fd_, partial_, offset_, &sha_));
    }
    return absl::OkStatus();
  }

  absl::Status Attempt(const std::string& token) {
    if (file_.size.has_value() && offset_ == *file_.size && offset_ > 0) return absl::OkStatus();
    const std::string range = offset_ > 0 ? absl::StrCat("bytes=", offset_, "-") : "";
    range_start_ = offset_;
    started_ = false;
    failure_ = absl::OkStatus();
    error_body_.clear();
    BN_ASSIGN_OR_RETURN(std::unique_ptr<Request> req, NewRequest(o_, url_, token, range));
    req_ = req.get();
    curl_easy_setopt(req->curl.get(), CURLOPT_WRITEFUNCTION, &FileDownload::OnData);
    curl_easy_setopt(req->curl.get(), CURLOPT_WRITEDATA, this);
    const CURLcode code = curl_easy_perform(req->curl.get());
    req_ = nullptr;
    long status = 0;
    curl_easy_getinfo(req->curl.get(), CURLINFO_RESPONSE_CODE, &status);
    if (!failure_.ok()) return failure_;
    if (status >= 400) {
      absl::Status s = HttpError(status, req->meta, error_body_, url_,
                                 absl::StrCat("download of '", file_.path, "'"));
      if (status == 416) {
        // Our partial file disagrees with the server; start over.
        BN_RETURN_IF_ERROR(Truncate());
        return absl::UnavailableError(s.message());
      }
      return s;
    }
    if (code != CURLE_OK) {
      absl::Status s = CurlError(code, *req, url_);
      return absl::Status(s.code(), absl::StrCat(s.message(), " (", offset_, " bytes of '",
                                                 file_.path, "' kept for resuming)"));
    }
    if (status != 200 && status != 206) {
      return absl::UnknownError(
          absl::StrCat("download of '", file_.path, "': unexpected HTTP ", status, " from ", url_));
    }
    if (!started_ && status == 200 && offset_ > 0) {
      // An empty 200 body still means "the whole file", which is empty.
      BN_RETURN_IF_ERROR(Truncate());
    }
    if (file_.size.has_value() && offset_ < *file_.size) {
      return absl::UnavailableError(absl::StrCat("download of '", file_.path, "' from ", url_,
                                                 " ended after ", offset_, " of ", *file_.size,
                                                 " bytes"));
    }
    return absl::OkStatus();
  }

  // Checks size and sha256; deletes the partial file when they are wrong.
  absl::Status Verify() {
    absl::Status s = absl::OkStatus();
    if (file_.size.has_value() && offset_ != *file_.size) {
      s = absl::DataLossError(absl::StrCat("'", file_.path, "' has ", offset_,
                                           " bytes but the listing says ", *file_.size,
                                           "; deleted"));
    } else if (!file_.sha256.empty()) {
      const std::string got = sha_.HexDigest();
      if (got != file_.sha256) {
        s = absl::DataLossError(absl::StrCat("'", file_.path, "' has sha256 ", got,
                                             " but the listing says ", file_.sha256, "; deleted"));
      }
    }
    if (!s.ok()) {
      ::close(fd_);
      fd_ = -1;
      ::unlink(partial_.c_str());
      return s;
    }
    if (::fsync(fd_) != 0)
      return ErrnoError(absl::StrCat("fsync of '", partial_, "' failed"), errno);
    const int rc = ::close(fd_);
    fd_ = -1;
    if (rc != 0) return ErrnoError(absl::StrCat("close of '", partial_, "' failed"), errno);
    return absl::OkStatus();
  }

  uint64_t offset() const { return offset_; }

 private:
  absl::Status Truncate() {
    if (::ftruncate(fd_, 0) != 0) {
      return ErrnoError(absl::StrCat("cannot truncate '", partial_, "'"), errno);
    }
    offset_ = 0;
    sha_.Reset();
    return absl::OkStatus();
  }

  // First body bytes of the final response: decide whether they append to
  // the partial file (206 for our range) or replace it (200).
  absl::Status Start() {
    started_ = true;
    long status = 0;
    curl_easy_getinfo(req_->curl.get(), CURLINFO_RESPONSE_CODE, &status);
    status_ = status;
    if (status >= 300) return absl::OkStatus();
    if (status == 206) {
      const std::string expect = absl::StrCat("bytes ", range_start_, "-");
      if (!absl::StartsWith(req_->meta.content_range, expect)) {
        BN_RETURN_IF_ERROR(Truncate());
        return absl::UnavailableError(
            absl::StrCat("download of '", file_.path, "': server answered range ", range_start_,
                         "- with Content-Range '", req_->meta.content_range, "'; restarting"));
      }
      return absl::OkStatus();
    }
    // 200: the server ignored the Range header and sends the whole file.
    if (offset_ > 0) BN_RETURN_IF_ERROR(Truncate());
    return absl::OkStatus();
  }

  static size_t OnData(char* data, size_t size, size_t nmemb, void* user) {
    auto* self = static_cast<FileDownload*>(user);
    const size_t n = size * nmemb;
    if (!self->started_) {
      self->failure_ = self->Start();
      if (!self->failure_.ok()) return 0;
    }
    if (self->status_ >= 300) {
      const size_t room =
          kMaxErrorBodyBytes - std::min(kMaxErrorBodyBytes, self->error_body_.size());
      self->error_body_.append(data, std::min(n, room));
      return n;
    }
    if (self->file_.size.has_value() && n > *self->file_.size - self->offset_) {
      self->failure_ = absl::DataLossError(
          absl::StrCat("download of '", self->file_.path, "': server sent more than the ",
                       *self->file_.size, " bytes the listing says"));
      return 0;
    }
    size_t done = 0;
    while (done < n) {
      const ssize_t w =
          ::pwrite(self->fd_, data + done, n - done, static_cast<off_t>(self->offset_ + done));
      if (w < 0) {
        if (errno == EINTR) continue;
        self->failure_ = ErrnoError(absl::StrCat("write to '", self->partial_, "' failed"), errno);
        return 0;
      }
      done += static_cast<size_t>(w);
    }
    if (!self->file_.sha256.empty()) self->sha_.Update(data, n);
    self->offset_ += n;
    self->on_progress_(self->offset_, false);
    return n;
  }

  const HubOptions& o_;
  const HubFile& file_;
  std::string url_;
  std::string partial_;
  std::function<void(uint64_t, bool)> on_progress_;
  int fd_ = -1;
  uint64_t offset_ = 0;
  uint64_t range_start_ = 0;
  Sha256 sha_;
  Request* req_ = nullptr;
  bool started_ = false;
  long status_ = 0;
  absl::Status failure_;
  std::string error_body_;
};

// True if `final_path` already holds `file` (size and, for LFS, sha256).
absl::StatusOr<bool> AlreadyPresent(const std::string& final_path, const HubFile& file) {
  struct stat st {};
  if (::stat(final_path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  if (!file.size.has_value() || static_cast<uint64_t>(st.st_size) != *file.size) return false;
  if (file.sha256.empty()) return true;
  BN_ASSIGN_OR_RETURN(std::string sha, HashFile(final_path));
  return sha == file.sha256;
}

}  // namespace

bool IsSafeRepoPath(const std::string& path) {
  if (path.empty() || path.size() > 4096 || path.front() == '/') return false;
  for (const char ch : path) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f || c == '\\') return false;
  }
  size_t start = 0;
  while (true) {
    const size_t slash = path.find('/', start);
    const std::string_view part = std::string_view(path).substr(
        start, slash == std::string::npos ? std::string::npos : slash - start);
    if (part.empty() || part == "." || part == "..") return false;
    if (slash == std::string::npos) return true;
    start = slash + 1;
  }
}

absl::StatusOr<HubListing> ListRepoFiles(const HubOptions& o) {
  BN_RETURN_IF_ERROR(ValidateRepo(o.repo));
  if (o.revision.empty()) return absl::InvalidArgumentError("revision is empty");
  const std::string url = absl::StrCat(ResolveEndpoint(o), "/api/models/", o.repo, "/revision/",
                                       UrlEncode(o.revision, false), "?blobs=true");
  const std::string token = ResolveToken(o);
  return WithRetries(o, [&]() -> absl::StatusOr<HubListing> {
    BN_ASSIGN_OR_RETURN(std::unique_ptr<Request> req, NewRequest(o, url, token, ""));
    std::string body;
    curl_easy_setopt(req->curl.get(), CURLOPT_WRITEFUNCTION, &AppendCapped);
    curl_easy_setopt(req->curl.get(), CURLOPT_WRITEDATA, &body);
    const CURLcode code = curl_easy_perform(req->curl.get());
    long status = 0;
    curl_easy_getinfo(req->curl.get(), CURLINFO_RESPONSE_CODE, &status);
    if (code == CURLE_WRITE_ERROR) {
      return absl::ResourceExhaustedError(
          absl::StrCat("listing from ", url, " exceeds ", kMaxListingBytes, " bytes"));
    }
    if (status >= 400) {
      return HttpError(
          status, req->meta, body, url,
          absl::StrCat("listing repository '", o.repo, "' at revision '", o.revision, "'"));
    }
    if (code != CURLE_OK) return CurlError(code, *req, url);
    return ParseListing(body, url);
  });
}

absl::Status DownloadRepo(const HubOptions& o, std::vector<HubFile>* selected_out) {
  if (o.dest_dir.empty()) return absl::InvalidArgumentError("destination directory is empty");
  BN_ASSIGN_OR_RETURN(HubListing listing, ListRepoFiles(o));
  std::vector<HubFile> selected;
  for (const HubFile& f : listing.files) {
    bool keep = o.include.empty();
    for (const std::string& pattern : o.include) {
      if (::fnmatch(pattern.c_str(), f.path.c_str(), 0) == 0) keep = true;
    }
    if (keep) selected.push_back(f);
  }
  if (selected.empty()) {
    std::vector<std::string> names;
    for (size_t i = 0; i < listing.files.size() && i < 20; ++i)
      names.push_back(listing.files[i].path);
    return absl::NotFoundError(absl::StrCat(
        "no file of '", o.repo, "' at '", o.revision, "' matches [", absl::StrJoin(o.include, ", "),
        "]; the repository has ", listing.files.size(), " files: ", absl::StrJoin(names, ", ")));
  }
  if (selected_out != nullptr) *selected_out = selected;
  BN_RETURN_IF_ERROR(MakeDirs(o.dest_dir));

  // Pin every file to the commit the revision resolved to, so a branch that
  // moves during the download cannot mix two versions.
  const std::string ref = IsCommitHash(listing.commit) ? listing.commit : o.revision;
  const std::string endpoint = ResolveEndpoint(o);
  const std::string token = ResolveToken(o);

  HubProgress p;
  p.file_count = static_cast<int>(selected.size());
  for (const HubFile& f : selected) p.bytes_total += f.size.value_or(0);
  const Clock::time_point start = Clock::now();
  Clock::time_point last_report = start - std::chrono::hours(1);
  uint64_t received = 0;  // Bytes fetched over the network by this call.
  uint64_t bytes_before_file = 0;

  for (size_t i = 0; i < selected.size(); ++i) {
    const HubFile& f = selected[i];
    p.file = f.path;
    p.file_index = static_cast<int>(i);
    p.file_bytes_total = f.size.value_or(0);
    p.file_bytes_done = 0;
    p.file_done = false;
    p.skipped = false;
    const std::string final_path = JoinPath(o.dest_dir, f.path);
    BN_RETURN_IF_ERROR(MakeDirs(ParentDir(final_path)));

    auto report = [&](uint64_t file_done_bytes, bool last) {
      const Clock::time_point now = Clock::now();
      if (file_done_bytes > p.file_bytes_done) received += file_done_bytes - p.file_bytes_done;
      p.file_bytes_done = file_done_bytes;
      p.bytes_done = bytes_before_file + file_done_bytes;
      if (!o.progress) return;
      if (!last && now - last_report < std::chrono::milliseconds(o.progress_interval_ms)) return;
      last_report = now;
      const double secs = std::chrono::duration<double>(now - start).count();
      p.bytes_per_second = secs > 0 ? static_cast<double>(received) / secs : 0;
      p.file_done = last;
      o.progress(p);
    };

    BN_ASSIGN_OR_RETURN(bool present, AlreadyPresent(final_path, f));
    if (present) {
      p.skipped = true;
      p.file_bytes_done = f.size.value_or(0);
      p.bytes_done = bytes_before_file + p.file_bytes_done;
      if (o.progress) {
        p.file_done = true;
        o.progress(p);
      }
      bytes_before_file = p.bytes_done;
      continue;
    }

    const std::string url = absl::StrCat(endpoint, "/", o.repo, "/resolve/", UrlEncode(ref, false),
                                         "/", UrlEncode(f.path, true));
    const std::string partial = final_path + ".incomplete";
    FileDownload dl(o, f, url, partial, [&](uint64_t done, bool last) {
      // A restart from byte 0 lowers the count; received only counts growth.
      if (done < p.file_bytes_done) p.file_bytes_done = done;
      report(done, last);
    });
    BN_RETURN_IF_ERROR(dl.Init());
    p.file_bytes_done = dl.offset();  // Resumed bytes were not received now.
    absl::Status fetched = WithRetries(o, [&] { return dl.Attempt(token); });
    if (!fetched.ok()) {
      // Keep a partial file only if it can be resumed next time.
      if (dl.offset() == 0 || fetched.code() == absl::StatusCode::kDataLoss) {
        ::unlink(partial.c_str());
      }
      return fetched;
    }
    BN_RETURN_IF_ERROR(dl.Verify());
    if (::rename(partial.c_str(), final_path.c_str()) != 0) {
      return ErrnoError(absl::StrCat("cannot rename '", partial, "' to '", final_path, "'"), errno);
    }
    report(dl.offset(), true);
    bytes_before_file += dl.offset();
  }
  return absl::OkStatus();
}

}  // namespace wf::convert
