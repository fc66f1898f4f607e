#include "router/http/internal/http_wire.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>
#include <utility>

#include <boost/beast/http/status.hpp>

#include "common/log.h"

namespace wf::router::http {

std::optional<std::string_view> Request::Header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (internal::IEquals(key, name)) return std::string_view(value);
  }
  return std::nullopt;
}

std::string_view Request::query() const {
  size_t q = target.find('?');
  if (q == std::string::npos) return {};
  return std::string_view(target).substr(q + 1);
}

namespace internal {

namespace bhttp = boost::beast::http;

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

namespace {

bool IsTokenChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
    return true;
  }
  return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != '\0';
}

}  // namespace

bool ValidHeaderName(std::string_view name) {
  if (name.empty()) return false;
  return std::all_of(name.begin(), name.end(), IsTokenChar);
}

bool ValidHeaderValue(std::string_view value) {
  return value.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

// True if a comma-separated header value lists `token`.
bool ListHasToken(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    size_t comma = value.find(',');
    std::string_view item = value.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (IEquals(item, token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

std::string JsonEscape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned char>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out;
}

std::string ErrorBody(std::string_view message, std::string_view type, std::string_view code) {
  std::string body = "{\"error\":{\"message\":\"";
  body += JsonEscape(message);
  body += "\",\"type\":\"";
  body += type;
  body += "\",\"param\":null,\"code\":\"";
  body += code;
  body += "\"}}";
  return body;
}

std::string HttpDate() {
  std::time_t now = std::time(nullptr);
  std::tm tm_utc;
  gmtime_r(&now, &tm_utc);
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[tm_utc.tm_wday % 7],
                tm_utc.tm_mday, kMonths[tm_utc.tm_mon % 12], tm_utc.tm_year + 1900,
                tm_utc.tm_hour, tm_utc.tm_min, tm_utc.tm_sec);
  return buf;
}

bool StatusHasNoBody(int status) { return status < 200 || status == 204 || status == 304; }


Head FormatHead(int status, const Headers& headers, Framing framing, size_t content_length,
                int version, bool request_close) {
  if (status < 200 || status > 999) status = 500;
  Head head;
  head.close = request_close;
  const auto beast_reason = bhttp::obsolete_reason(static_cast<bhttp::status>(status));
  std::string_view reason(beast_reason.data(), beast_reason.size());
  if (reason.empty() || reason.front() == '<') reason = "Unknown";

  std::string& out = head.bytes;
  out.reserve(256);
  out += "HTTP/1.1 ";
  out += std::to_string(status);
  out += ' ';
  out += reason;
  out += "\r\n";
  bool has_date = false;
  for (const auto& [name, value] : headers) {
    if (!ValidHeaderName(name) || !ValidHeaderValue(value)) {
      WF_LOG(WARNING) << "http: dropping invalid response header field '" << JsonEscape(name)
                      << "'";
      continue;
    }
    if (IEquals(name, "connection")) {
      if (ListHasToken(value, "close")) head.close = true;
      continue;
    }
    if (IEquals(name, "content-length") || IEquals(name, "transfer-encoding") ||
        IEquals(name, "keep-alive")) {
      continue;
    }
    if (IEquals(name, "date")) has_date = true;
    out += name;
    out += ": ";
    out += value;
    out += "\r\n";
  }
  if (!has_date) {
    out += "Date: ";
    out += HttpDate();
    out += "\r\n";
  }
  if (framing == Framing::kContentLength) {
    if (!StatusHasNoBody(status)) {
      out += "Content-Length: ";
      out += std::to_string(content_length);
      out += "\r\n";
    }
  } else if (version >= 11) {
    head.chunked = true;
    out += "Transfer-Encoding: chunked\r\n";
  } else {
    // An HTTP/1.0 client knows no chunking: the body ends when we close.
    head.close = true;
  }
  if (head.close) {
    out += "Connection: close\r\n";
  } else if (version < 11) {
    out += "Connection: keep-alive\r\n";
  }
  out += "\r\n";
  return head;
}

std::string ChunkSizeLine(size_t n) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "%zx\r\n", n);
  return buf;
}

absl::Status ValidateServerOptions(const ServerOptions& options) {
  if (options.port < 0 || options.port > 65535) {
    return absl::InvalidArgumentError("http: port " + std::to_string(options.port) +
                                      " is outside 0..65535");
  }
  if (options.io_threads < 1) {
    return absl::InvalidArgumentError("http: io_threads must be at least 1, got " +
                                      std::to_string(options.io_threads));
  }
  if (options.max_connections < 1) {
    return absl::InvalidArgumentError("http: max_connections must be at least 1, got " +
                                      std::to_string(options.max_connections));
  }
  if (options.max_header_bytes < 64 || options.max_header_bytes > (64u << 20)) {
    return absl::InvalidArgumentError("http: max_header_bytes must be in 64..64 MiB, got " +
                                      std::to_string(options.max_header_bytes));
  }
  if (options.max_queued_write_bytes == 0) {
    return absl::InvalidArgumentError("http: max_queued_write_bytes must be positive");
  }
  const std::pair<const char*, std::chrono::milliseconds> timeouts[] = {
      {"header_timeout", options.header_timeout},
      {"body_timeout", options.body_timeout},
      {"idle_timeout", options.idle_timeout},
      {"write_timeout", options.write_timeout}};
  for (const auto& [name, value] : timeouts) {
    if (value.count() <= 0) {
      return absl::InvalidArgumentError(std::string("http: ") + name + " must be positive, got " +
                                        std::to_string(value.count()) + " ms");
    }
  }
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return absl::InvalidArgumentError(options.tls_cert_file.empty()
                                          ? "http: tls_key_file is set but tls_cert_file is not; give both or neither"
                                          : "http: tls_cert_file is set but tls_key_file is not; give both or neither");
  }
  return absl::OkStatus();
}

}  // namespace internal
}  // namespace wf::router::http
