#include "router/http/internal/http_wire.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>

#include <boost/beast/http/status.hpp>

#include "common/log.h"

namespace wf::router::http::internal {

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

}  // namespace wf::router::http::internal
