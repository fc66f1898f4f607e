// Transport plumbing of the HTTP server, private to router/http: the
// listening socket, the TLS context, and the byte stream of one connection
// (the accepted TCP socket itself, or TLS over it: Asio's OpenSSL stream).
//
// The connection code is written once against this type: Beast's readers and
// asio::async_write take it like any AsyncReadStream/AsyncWriteStream, and the
// socket-level operations (timeouts cancel it, shutdown, close, endpoints)
// go to socket(). TLS-only steps (handshake, close_notify) go through
// tls_stream(), which is null for plain TCP.
//
// Threading: like the socket it wraps, one strand at a time; at most one read
// and one write in flight (Asio's TLS stream allows a read and a write to
// overlap).
#ifndef WF_ROUTER_HTTP_INTERNAL_TRANSPORT_H_
#define WF_ROUTER_HTTP_INTERNAL_TRANSPORT_H_

#include <memory>
#include <optional>
#include <string>
#include <utility>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>

#include "absl/status/statusor.h"

namespace wf::router::http::internal {

// Opens `*acceptor` (not yet open) on `host` (an IP literal, or a name
// resolved once) and `port` (0 = any free port), with SO_REUSEADDR, and
// listens. Returns the bound port; UNAVAILABLE naming host:port and the
// reason when the address cannot be resolved or bound.
absl::StatusOr<int> BindAndListen(boost::asio::io_context& ioc, const std::string& host, int port,
                                  boost::asio::ip::tcp::acceptor* acceptor);

// A server TLS context from PEM files (certificate chain, unencrypted private
// key): TLS 1.2 or newer, no renegotiation; null when both paths are empty
// (plain HTTP). Errors name the file and the problem (unreadable, not PEM,
// key not matching the certificate).
absl::StatusOr<std::unique_ptr<boost::asio::ssl::context>> MakeServerTlsContext(const std::string& cert_file,
                                                                                const std::string& key_file);

class ServerStream {
 public:
  using executor_type = boost::asio::any_io_executor;
  using tcp = boost::asio::ip::tcp;
  using TlsStream = boost::asio::ssl::stream<tcp::socket>;

  // Takes the accepted socket; `tls` (not owned, outlives the stream) null
  // means plain TCP.
  ServerStream(tcp::socket socket, boost::asio::ssl::context* tls) {
    if (tls != nullptr) {
      tls_.emplace(std::move(socket), *tls);
    } else {
      plain_.emplace(std::move(socket));
    }
  }

  executor_type get_executor() { return socket().get_executor(); }

  // The TCP socket underneath (for both kinds).
  tcp::socket& socket() { return plain_.has_value() ? *plain_ : tls_->next_layer(); }

  // The TLS stream, or null for plain TCP.
  TlsStream* tls_stream() { return tls_.has_value() ? &*tls_ : nullptr; }

  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this](auto handler, const MutableBuffers& b) {
          if (tls_.has_value()) {
            tls_->async_read_some(b, std::move(handler));
          } else {
            plain_->async_read_some(b, std::move(handler));
          }
        },
        token, buffers);
  }

  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this](auto handler, const ConstBuffers& b) {
          if (tls_.has_value()) {
            tls_->async_write_some(b, std::move(handler));
          } else {
            plain_->async_write_some(b, std::move(handler));
          }
        },
        token, buffers);
  }

 private:
  std::optional<tcp::socket> plain_;
  std::optional<TlsStream> tls_;
};

}  // namespace wf::router::http::internal

#endif  // WF_ROUTER_HTTP_INTERNAL_TRANSPORT_H_
