#include "router/http/internal/transport.h"

#include <openssl/ssl.h>

#include <exception>

#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/address.hpp>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/tls/tls_files.h"

namespace wf::router::http::internal {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;

absl::StatusOr<int> BindAndListen(asio::io_context& ioc, const std::string& host, int port,
                                  tcp::acceptor* acceptor) {
  boost::system::error_code ec;
  tcp::endpoint endpoint;
  const std::string where = host + ":" + std::to_string(port);
  asio::ip::address address = asio::ip::make_address(host, ec);
  if (!ec) {
    endpoint = tcp::endpoint(address, static_cast<unsigned short>(port));
  } else {
    tcp::resolver resolver(ioc);
    auto results = resolver.resolve(host, std::to_string(port), tcp::resolver::passive, ec);
    if (ec || results.empty()) {
      return absl::UnavailableError("http: cannot resolve listen address " + where + ": " +
                                    (ec ? ec.message() : std::string("no addresses")));
    }
    endpoint = results.begin()->endpoint();
  }
  acceptor->open(endpoint.protocol(), ec);
  if (!ec) acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor->bind(endpoint, ec);
  if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return absl::UnavailableError("http: cannot listen on " + where + ": " + ec.message());
  const int bound = acceptor->local_endpoint(ec).port();
  if (ec) return absl::UnavailableError("http: cannot read the bound port: " + ec.message());
  return bound;
}

absl::StatusOr<std::unique_ptr<ssl::context>> MakeServerTlsContext(const std::string& cert_file,
                                                                   const std::string& key_file) {
  if (cert_file.empty() && key_file.empty()) return nullptr;
  // The files are checked (and errors worded) once, in common/tls; what is
  // left to fail here is OpenSSL itself.
  BN_ASSIGN_OR_RETURN(tls::KeyPair pair, tls::LoadKeyPair(cert_file, key_file));
  std::unique_ptr<ssl::context> context;
  try {
    context = std::make_unique<ssl::context>(ssl::context::tls_server);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("http: cannot create a TLS context: ", e.what()));
  }
  boost::system::error_code ec;
  context->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                           ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use,
                       ec);
  if (!ec) context->use_certificate_chain(boost::asio::buffer(pair.cert_chain_pem), ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("http: cannot use the TLS certificate chain in '", cert_file, "': ", ec.message()));
  }
  context->use_private_key(boost::asio::buffer(pair.private_key_pem), ssl::context::pem, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("http: cannot use the TLS private key in '", key_file, "': ", ec.message()));
  }
  SSL_CTX* native = context->native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  // Renegotiation only costs the server CPU (and was a DoS vector).
  SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION);
  return context;
}

}  // namespace wf::router::http::internal
