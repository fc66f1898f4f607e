// Generic asynchronous HTTP/1.1 server for the router's gateway: plain
// responses and long-lived streamed responses (Server-Sent Events) over
// chunked transfer encoding, on Boost.Beast/Asio.
//
// The server knows nothing about OpenAI: it parses requests, enforces the
// transport limits (body and header size, read timeouts, connection count)
// and hands each complete request to one application Handler together with a
// ResponseWriter. The application answers through the writer, from any thread
// and at any later time, which is how a request waiting on an upstream gRPC
// stream costs no thread: a fixed pool of `io_threads` threads serves every
// connection (1000+ concurrent streams on 2 threads).
//
// Errors the transport produces itself are answered with the OpenAI error
// envelope so that clients see one error shape, and the connection is closed:
//   400 malformed request line, header or chunk framing,  code "bad_request"
//       or a Transfer-Encoding whose final coding is not chunked (any in HTTP/1.0)
//   408 header or body not received in time               code "request_timeout"
//   413 body over max_body_bytes (Content-Length or chunked) code "request_too_large"
//   431 request line + headers over max_header_bytes       code "request_header_fields_too_large"
//   503 more than max_connections open                     code "server_overloaded"
// e.g. {"error":{"message":"request body exceeds the limit of 1048576 bytes",
//       "type":"invalid_request_error","param":null,"code":"request_too_large"}}
// (503 uses "type":"server_error" and adds Retry-After: 1).
//
// Connections are persistent (HTTP/1.1 keep-alive; HTTP/1.0 with
// "Connection: keep-alive"), one request at a time: the next request on a
// connection is read only after the previous response has been fully written.
// While a response is pending the server keeps reading the socket, so a client
// that goes away (EOF or reset) is noticed at once even if the handler never
// answers: the connection is closed and ResponseWriter::OnClose fires, which
// is the application's signal to cancel its upstream work. A client that
// half-closes its sending side after the request is therefore treated as gone.
//
// Example:
//   ServerOptions options;
//   options.port = 8080;
//   auto server = HttpServer::Start(options,
//       [pool](Request request, std::shared_ptr<ResponseWriter> writer) {
//         if (request.path != "/v1/stream") {
//           writer->Send(404, {{"Content-Type", "application/json"}}, "{}");
//           return;
//         }
//         pool->Run([writer] {  // long work goes to another thread
//           writer->StartStream(200, {{"Content-Type", "text/event-stream"}});
//           writer->OnClose([] { /* cancel the upstream stream */ });
//           for (...) if (!writer->Write("data: {...}\n\n")) return;
//           writer->Write("data: [DONE]\n\n");
//           writer->End();
//         });
//       });
//   if (!server.ok()) return server.status();
//   ...
//   (*server)->Stop();
//
// With ServerOptions::tls_cert_file/tls_key_file set, the same server speaks
// HTTPS instead: requests, responses and streams behave exactly as above.
//
// The process needs one file descriptor per connection: raise RLIMIT_NOFILE
// (RaiseOpenFileLimit below) before serving thousands of connections.
#ifndef WF_ROUTER_HTTP_HTTP_SERVER_H_
#define WF_ROUTER_HTTP_HTTP_SERVER_H_

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace wf::router::http {

namespace internal {
class ServerCore;
}  // namespace internal

// Header fields in the order received (requests) or given (responses). Names
// keep their spelling; lookups are case-insensitive.
using Headers = std::vector<std::pair<std::string, std::string>>;

// One complete HTTP request (header and whole body), owned by the handler.
struct Request {
  std::string method;          // "GET", "POST", ... as sent
  std::string target;          // request target as sent: "/v1/models?x=1"
  std::string path;            // target up to '?': "/v1/models"
  int version = 11;            // 10 for HTTP/1.0, 11 for HTTP/1.1
  Headers headers;
  std::string body;            // de-chunked when sent chunked
  std::string remote_address;  // peer IP, e.g. "127.0.0.1" or "::1"
  int remote_port = 0;

  // Value of the first header named `name` (ASCII case-insensitive), or
  // nullopt. The view points into `headers` and lives as long as it does.
  std::optional<std::string_view> Header(std::string_view name) const;
  // The query string after '?', without it ("" when there is none).
  std::string_view query() const;
};

// How the application answers one request. Handed out as a shared_ptr that the
// application may keep as long as it likes (also after the server stopped).
//
// Threading: every method is thread-safe, callable from any thread including
// the IO thread that runs the handler, and never blocks on the network: bytes
// are queued and written by the IO threads in call order.
//
// A response is either one Send(), or StartStream() followed by any number of
// Write() and one End(). Calls that do not fit that order are ignored (Write
// returns false). The transport owns framing: Content-Length,
// Transfer-Encoding and Connection headers given by the application are
// dropped, except "Connection: close", which closes the connection after the
// response. Header names must be HTTP tokens and values must not contain CR,
// LF or NUL; offending fields are dropped. A Date header is added. The
// answer to a HEAD request is sent without its body (the head still says
// what the body's framing would be); Write() then accepts and drops data.
class ResponseWriter {
 public:
  virtual ~ResponseWriter() = default;

  // Sends a complete response with a Content-Length (none, and no body, for
  // 204/304). Status must be in 200..999 (sent as 500 otherwise).
  virtual void Send(int status, Headers headers, std::string body) = 0;

  // Sends the response head of a streamed response; the body follows through
  // Write() with chunked transfer encoding (for an HTTP/1.0 client: raw bytes,
  // and the connection closes at End()).
  virtual void StartStream(int status, Headers headers) = 0;

  // Queues `data` as one chunk after StartStream(). Returns true if queued;
  // empty data is a no-op that returns true. Returns false, and queues
  // nothing, when the stream is not open: before StartStream(), after End(),
  // once the client is gone or the server stopped, or when this chunk would
  // take the bytes queued but not yet written to the socket over
  // ServerOptions::max_queued_write_bytes (a client reading too slowly). In
  // that last case the stream is aborted: the connection is closed and
  // OnClose fires.
  virtual bool Write(std::string data) = 0;

  // Ends a streamed response (the final zero-length chunk).
  virtual void End() = 0;

  // True once this response can take no more data: after Send()/End(), after
  // the client disconnected, after an abort, or after the server stopped.
  virtual bool closed() const = 0;

  // Registers `fn` (replacing any earlier one) to be called exactly once if
  // the connection ends before this response has been completely written:
  // the client disconnected, a write failed or timed out, the stream was
  // aborted by the queue bound, or the server stopped. Never called once the
  // response was fully written; `fn` is then dropped. Runs on an IO thread
  // and must return quickly; it may call methods of this writer. If the
  // connection had already ended when OnClose is called, `fn` runs at once
  // on the calling thread.
  virtual void OnClose(std::function<void()> fn) = 0;
};

// Called on an IO thread once per complete request. Must return quickly: hand
// long work to other threads and answer later through the writer. A handler
// that never answers holds the connection only until the client goes away
// (or Stop()). An exception escaping the handler is answered with a 500
// error envelope if nothing was sent yet.
using Handler =
    std::function<void(Request request, std::shared_ptr<ResponseWriter> writer)>;

struct ServerOptions {
  // Address to listen on: an IP literal or a host name resolved once at Start.
  std::string host = "0.0.0.0";
  // TCP port; 0 picks a free port (see HttpServer::port()).
  int port = 0;
  // Threads that run all network IO and call the handler (the server creates
  // no other threads).
  int io_threads = 2;
  // Largest request body accepted (decoded size for chunked bodies) -> 413.
  size_t max_body_bytes = 1 << 20;
  // Largest request line plus header fields -> 431.
  size_t max_header_bytes = 16 << 10;
  // Open connections beyond this are answered 503 and closed.
  int max_connections = 4096;
  // From a connection's first byte (or its acceptance) until its request
  // header is complete -> 408 (slow-header attacks).
  std::chrono::milliseconds header_timeout{10'000};
  // From the end of the header until the body is complete -> 408.
  std::chrono::milliseconds body_timeout{30'000};
  // How long a keep-alive connection may wait for its next request; then it
  // is closed silently.
  std::chrono::milliseconds idle_timeout{60'000};
  // Longest time one socket write may take (a client that stopped reading);
  // then the connection is closed (and OnClose fires).
  std::chrono::milliseconds write_timeout{60'000};
  // Bytes a streamed response may have queued but not yet written before
  // Write() fails and aborts the stream.
  size_t max_queued_write_bytes = 4 << 20;
  // HTTPS: PEM files of the certificate chain (leaf first) and its
  // unencrypted private key, read once by Start(); both empty = plain HTTP.
  // Every connection then starts with a TLS handshake (TLS 1.2+, bounded by
  // header_timeout); one that fails, e.g. a plain-HTTP client, is closed
  // without an answer.
  std::string tls_cert_file;
  std::string tls_key_file;
};

// The listening server. Owns its IO threads and every connection.
class HttpServer {
 public:
  // Validates `options`, binds and listens, and starts the IO threads.
  // InvalidArgument for bad options (names the field) and for TLS files that
  // do not hold a matching certificate and key (names the file), NOT_FOUND
  // or another errno code for a TLS file that cannot be read, Unavailable
  // when the address cannot be resolved or bound (names host:port and the
  // reason).
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(ServerOptions options,
                                                           Handler handler);

  // Calls Stop().
  ~HttpServer();

  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The bound TCP port (the chosen one when options.port was 0).
  int port() const;

  // Stops accepting, closes every connection at once (firing OnClose of
  // responses in progress), and joins the IO threads. Writers kept by the
  // application stay valid and report closed(). Idempotent; must not be
  // called from an IO thread (a handler or an OnClose callback).
  void Stop();

  // Connections currently open and admitted (not counting ones being turned
  // away with 503). Thread-safe.
  size_t active_connections() const;

 private:
  explicit HttpServer(std::unique_ptr<internal::ServerCore> core);
  std::unique_ptr<internal::ServerCore> core_;
};

// Raises this process's soft RLIMIT_NOFILE to at least `wanted` (capped at the
// hard limit) and returns the resulting soft limit. Internal if the limits
// cannot be read or set.
absl::StatusOr<size_t> RaiseOpenFileLimit(size_t wanted);

}  // namespace wf::router::http

#endif  // WF_ROUTER_HTTP_HTTP_SERVER_H_
