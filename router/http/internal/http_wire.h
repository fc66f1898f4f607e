// Wire-format helpers of the HTTP server: header validation, response heads,
// chunk framing and the OpenAI error envelope; the checks of its options
// (and the definitions of Request's header and query accessors).
// Private to router/http.
#ifndef WF_ROUTER_HTTP_INTERNAL_HTTP_WIRE_H_
#define WF_ROUTER_HTTP_INTERNAL_HTTP_WIRE_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "router/http/http_server.h"

namespace wf::router::http::internal {

// ASCII case-insensitive equality.
bool IEquals(std::string_view a, std::string_view b);
// An HTTP token (RFC 9110 field name).
bool ValidHeaderName(std::string_view name);
// No CR, LF or NUL (which would allow header injection).
bool ValidHeaderValue(std::string_view value);
// True if the comma-separated header value lists `token` (case-insensitive).
bool ListHasToken(std::string_view value, std::string_view token);

// `s` escaped for use inside a JSON string literal.
std::string JsonEscape(std::string_view s);
// {"error":{"message":...,"type":...,"param":null,"code":...}}
std::string ErrorBody(std::string_view message, std::string_view type, std::string_view code);

// The current time as an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT").
std::string HttpDate();

// 1xx, 204 and 304 responses carry no body and no Content-Length.
bool StatusHasNoBody(int status);

// How the body of a response is delimited.
enum class Framing { kContentLength, kStream };

struct Head {
  std::string bytes;
  bool close = false;    // the connection closes after this response
  bool chunked = false;  // kStream only: chunked transfer encoding
};

// Serializes a response head: status line, the valid application fields
// (framing fields dropped, "Connection: close" honoured), Date, framing and
// Connection. A status outside 200..999 is sent as 500. `request_close` is
// true when the request did not ask for a persistent connection.
Head FormatHead(int status, const Headers& headers, Framing framing, size_t content_length,
                int version, bool request_close);

// "<hex size>\r\n", the line that opens a chunk.
std::string ChunkSizeLine(size_t n);

// OK, or INVALID_ARGUMENT naming the first ServerOptions field out of range
// (TLS: the certificate and key files must be given together; their contents
// are checked when the TLS context is made).
absl::Status ValidateServerOptions(const ServerOptions& options);

}  // namespace wf::router::http::internal

#endif  // WF_ROUTER_HTTP_INTERNAL_HTTP_WIRE_H_
