#include "router/http/http_server.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <exception>
#include <latch>
#include <limits>
#include <mutex>
#include <thread>
#include <unordered_map>

// With sanitizers, g++ 12 reports a false maybe-uninitialized inside Beast's
// parser (boost::optional body limit); the location is in the header.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/string_body.hpp>
#pragma GCC diagnostic pop

#include "common/log.h"
#include "router/http/internal/connection_writer.h"
#include "router/http/internal/http_wire.h"
#include "router/http/internal/transport.h"

namespace wf::router::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

namespace {

// Bytes read per call while a response is pending: only to notice EOF (and to
// keep early bytes of a next request), so it stays small per connection.
constexpr size_t kMonitorReadBytes = 512;
// After a server-initiated close the rest of the client's bytes are read and
// dropped for this long, so that closing with unread input (which makes the
// kernel send RST) cannot destroy the error response before the client has
// read it.
constexpr std::chrono::milliseconds kLingerTimeout{2000};
// Connections over max_connections being answered 503 at once; beyond this
// they are closed without an answer.
constexpr int kMaxRejecting = 256;
// Queued items gathered into one socket write (each is up to 3 buffers).
constexpr size_t kMaxItemsPerWrite = 32;
// Delay before accepting again after accept() failed (e.g. out of file
// descriptors), so the loop does not spin.
constexpr std::chrono::milliseconds kAcceptRetryDelay{50};

std::string_view Sv(beast::string_view s) { return std::string_view(s.data(), s.size()); }

using internal::ErrorBody;
using internal::FormatHead;
using internal::Framing;
using internal::Head;
using internal::IEquals;

}  // namespace

namespace internal {

class Connection;

class ServerCore {
 public:
  // `tls` null: plain HTTP.
  ServerCore(ServerOptions options, Handler handler, std::unique_ptr<asio::ssl::context> tls)
      : options_(std::move(options)),
        handler_(std::move(handler)),
        tls_(std::move(tls)),
        work_(asio::make_work_guard(ioc_)),
        acceptor_strand_(asio::make_strand(ioc_)),
        acceptor_(acceptor_strand_),
        accept_retry_timer_(acceptor_strand_) {}

  ~ServerCore() { Stop(); }

  absl::Status Listen();
  void Run();
  void Stop();

  int port() const { return port_; }
  size_t active_connections() const { return admitted_.load(std::memory_order_relaxed); }
  const ServerOptions& options() const { return options_; }
  const Handler& handler() const { return handler_; }
  asio::ssl::context* tls() const { return tls_.get(); }
  bool stopping() const {
    std::lock_guard<std::mutex> lock(mu_);
    return stopping_;
  }
  void Unregister(Connection* connection, bool admitted);

 private:
  void DoAccept();
  void OnAccept(const error_code& ec, tcp::socket socket);

  const ServerOptions options_;
  const Handler handler_;
  const std::unique_ptr<asio::ssl::context> tls_;  // outlives every connection's stream
  // Declared first so that it is destroyed last: everything below holds
  // executors or handlers that refer to it.
  asio::io_context ioc_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  asio::strand<asio::io_context::executor_type> acceptor_strand_;
  tcp::acceptor acceptor_;
  asio::steady_timer accept_retry_timer_;
  int port_ = 0;
  std::vector<std::thread> threads_;

  mutable std::mutex mu_;
  bool stopping_ = false;
  std::unordered_map<Connection*, std::shared_ptr<Connection>> connections_;
  std::atomic<size_t> admitted_{0};
  int rejecting_ = 0;

  std::mutex stop_mu_;
  bool stopped_ = false;
};

// One TCP connection. Every member function runs on the connection's strand
// (handlers of its socket and timer, or posted); only executor() is called
// from other threads.
class Connection final : public ConnectionSink, public std::enable_shared_from_this<Connection> {
 public:
  Connection(ServerCore* core, tcp::socket socket, bool admitted)
      : core_(core),
        admitted_(admitted),
        executor_(socket.get_executor()),
        stream_(std::move(socket), core->tls()),
        timer_(executor_),
        buffer_(core->options().max_header_bytes + 8192) {}

  const asio::any_io_executor& executor() const override { return executor_; }

  void Start();
  void Reject();
  void Abort() { CloseNow(); }
  void Enqueue(const std::shared_ptr<ConnectionWriter>& writer, std::vector<OutItem> items) override;
  void AbortFrom(const std::shared_ptr<ConnectionWriter>& writer) override {
    if (writer == writer_) CloseNow();
  }

 private:
  enum class TimerPhase { kNone, kIdle, kHeader, kBody, kWrite, kLinger };

  void ArmTimer(TimerPhase phase, std::chrono::milliseconds timeout);
  void DisarmTimer();
  void OnTimer(const error_code& ec, uint64_t generation);

  void WaitForNextRequest();
  void ReadHeader();
  void OnHeader(const error_code& ec);
  void ReadBody();
  void OnBody(const error_code& ec);
  void OnReadError(const error_code& ec);
  void Dispatch();

  void StartMonitor();
  void OnMonitor(const error_code& ec, size_t n);

  void SendErrorAndClose(int status, std::string_view code, std::string_view message);
  void DoWrite();
  void OnWrite(const error_code& ec);
  void AfterResponse();

  void Handshake(void (Connection::*next)());
  void SendOverloaded();
  void LingerClose();
  void HalfCloseAndDrain();
  void DoLingerRead();
  void CloseNow();

  ServerCore* const core_;
  const bool admitted_;
  const asio::any_io_executor executor_;
  ServerStream stream_;
  asio::steady_timer timer_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::string remote_address_;
  int remote_port_ = 0;

  TimerPhase timer_phase_ = TimerPhase::kNone;
  uint64_t timer_generation_ = 0;
  bool timed_out_ = false;
  bool closed_ = false;
  bool lingering_ = false;

  std::shared_ptr<ConnectionWriter> writer_;  // response in progress
  bool response_done_ = false;
  bool close_after_response_ = false;
  bool monitor_pending_ = false;

  std::deque<OutItem> queue_;
  std::vector<OutItem> in_flight_;
  bool writing_ = false;
};

// ---------------------------------------------------------------------------
// Connection

void Connection::Start() {
  error_code ec;
  stream_.socket().set_option(tcp::no_delay(true), ec);  // SSE events must not wait for Nagle
  tcp::endpoint remote = stream_.socket().remote_endpoint(ec);
  if (ec) {  // already disconnected
    CloseNow();
    return;
  }
  remote_address_ = remote.address().to_string();
  remote_port_ = remote.port();
  Handshake(&Connection::ReadHeader);
}

void Connection::Reject() { Handshake(&Connection::SendOverloaded); }

void Connection::SendOverloaded() {
  SendErrorAndClose(503, "server_overloaded",
                    "the server has reached its limit of " +
                        std::to_string(core_->options().max_connections) +
                        " open connections; retry later");
}

// A failed TLS handshake (e.g. plain HTTP sent to the HTTPS port) has nobody
// who could read an answer: the connection is only closed.
void Connection::Handshake(void (Connection::*next)()) {
  ServerStream::TlsStream* tls = stream_.tls_stream();
  if (tls == nullptr) {
    (this->*next)();
    return;
  }
  ArmTimer(TimerPhase::kHeader, core_->options().header_timeout);
  tls->async_handshake(asio::ssl::stream_base::server,
                       [self = shared_from_this(), next](const error_code& ec) {
                         if (self->closed_) return;
                         self->DisarmTimer();
                         if (ec) {
                           WF_LOG(DEBUG) << "http: TLS handshake with " << self->remote_address_
                                         << " failed: " << ec.message();
                           self->CloseNow();
                           return;
                         }
                         ((*self).*next)();
                       });
}

void Connection::ArmTimer(TimerPhase phase, std::chrono::milliseconds timeout) {
  timer_phase_ = phase;
  timed_out_ = false;
  const uint64_t generation = ++timer_generation_;
  timer_.expires_after(timeout);
  timer_.async_wait([self = shared_from_this(), generation](const error_code& ec) {
    self->OnTimer(ec, generation);
  });
}

void Connection::DisarmTimer() {
  ++timer_generation_;
  timer_phase_ = TimerPhase::kNone;
  timer_.cancel();
}

void Connection::OnTimer(const error_code& ec, uint64_t generation) {
  if (ec || generation != timer_generation_ || closed_) return;
  switch (timer_phase_) {
    case TimerPhase::kIdle:
    case TimerPhase::kHeader:
    case TimerPhase::kBody: {
      // The pending read completes with operation_aborted and, seeing
      // timed_out_, answers 408 or closes.
      timed_out_ = true;
      error_code ignored;
      stream_.socket().cancel(ignored);
      break;
    }
    case TimerPhase::kWrite:
      WF_LOG(DEBUG) << "http: write to " << remote_address_ << ":" << remote_port_
                    << " timed out";
      CloseNow();
      break;
    case TimerPhase::kLinger:
      CloseNow();
      break;
    case TimerPhase::kNone:
      break;
  }
}

void Connection::WaitForNextRequest() {
  if (closed_) return;
  if (buffer_.size() > 0) {  // the client already sent (part of) it
    ReadHeader();
    return;
  }
  buffer_.shrink_to_fit();  // idle connections hold no buffer memory
  ArmTimer(TimerPhase::kIdle, core_->options().idle_timeout);
  if (stream_.tls_stream() != nullptr) {
    // Bytes of the next request may already sit decrypted inside the TLS
    // stream, where waiting on the socket would not see them: read instead.
    stream_.async_read_some(buffer_.prepare(kMonitorReadBytes),
                            [self = shared_from_this()](const error_code& ec, size_t n) {
                              if (self->closed_) return;
                              self->DisarmTimer();
                              if (ec) {
                                self->CloseNow();
                                return;
                              }
                              self->buffer_.commit(n);
                              self->ReadHeader();
                            });
    return;
  }
  stream_.socket().async_wait(tcp::socket::wait_read, [self = shared_from_this()](const error_code& ec) {
    if (self->closed_) return;
    self->DisarmTimer();
    if (ec) {  // idle timeout or socket error: close silently
      self->CloseNow();
      return;
    }
    self->ReadHeader();
  });
}

void Connection::ReadHeader() {
  const ServerOptions& options = core_->options();
  parser_.emplace();
  parser_->header_limit(static_cast<std::uint32_t>(
      std::min<size_t>(options.max_header_bytes, std::numeric_limits<std::uint32_t>::max())));
  parser_->body_limit(static_cast<std::uint64_t>(options.max_body_bytes));
  ArmTimer(TimerPhase::kHeader, options.header_timeout);
  bhttp::async_read_header(stream_, buffer_, *parser_,
                           [self = shared_from_this()](const error_code& ec, size_t) {
                             self->OnHeader(ec);
                           });
}

void Connection::OnHeader(const error_code& ec) {
  if (closed_) return;
  DisarmTimer();
  if (ec) {
    OnReadError(ec);
    return;
  }
  if (parser_->get().count(bhttp::field::transfer_encoding) > 0 &&
      (!parser_->chunked() || parser_->get().version() < 11)) {
    // The body's length is unknowable (RFC 9112 6.1, 6.3); guessing it would
    // let the body's bytes be read as a next request (request smuggling).
    SendErrorAndClose(400, "bad_request",
                      "Transfer-Encoding is not supported unless chunked is the final coding "
                      "(and the request is HTTP/1.1)");
    return;
  }
  if (parser_->is_done()) {
    Dispatch();
    return;
  }
  const auto& message = parser_->get();
  auto expect = message.find(bhttp::field::expect);
  if (expect != message.end() && message.version() >= 11 &&
      IEquals(Sv(expect->value()), "100-continue")) {
    static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    ArmTimer(TimerPhase::kWrite, core_->options().write_timeout);
    asio::async_write(stream_, asio::buffer(kContinue.data(), kContinue.size()),
                      [self = shared_from_this()](const error_code& write_ec, size_t) {
                        if (self->closed_) return;
                        self->DisarmTimer();
                        if (write_ec) {
                          self->CloseNow();
                          return;
                        }
                        self->ReadBody();
                      });
    return;
  }
  ReadBody();
}

void Connection::ReadBody() {
  ArmTimer(TimerPhase::kBody, core_->options().body_timeout);
  bhttp::async_read(stream_, buffer_, *parser_,
                    [self = shared_from_this()](const error_code& ec, size_t) {
                      self->OnBody(ec);
                    });
}

void Connection::OnBody(const error_code& ec) {
  if (closed_) return;
  DisarmTimer();
  if (ec) {
    OnReadError(ec);
    return;
  }
  Dispatch();
}

void Connection::OnReadError(const error_code& ec) {
  const ServerOptions& options = core_->options();
  if (ec == asio::error::operation_aborted && timed_out_) {
    const bool header_done = parser_ && parser_->is_header_done();
    const bool got_bytes = (parser_ && parser_->got_some()) || buffer_.size() > 0;
    if (!got_bytes) {
      CloseNow();  // a connection that never sent anything is just closed
      return;
    }
    const auto timeout = header_done ? options.body_timeout : options.header_timeout;
    SendErrorAndClose(408, "request_timeout",
                      std::string("request ") + (header_done ? "body" : "header") +
                          " not received within " + std::to_string(timeout.count()) + " ms");
    return;
  }
  if (ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message) {
    CloseNow();  // the client closed the connection
    return;
  }
  if (ec == bhttp::error::header_limit ||
      (ec == bhttp::error::buffer_overflow && !(parser_ && parser_->is_header_done()))) {
    SendErrorAndClose(431, "request_header_fields_too_large",
                      "request line and header fields exceed the limit of " +
                          std::to_string(options.max_header_bytes) + " bytes");
    return;
  }
  if (ec == bhttp::error::buffer_overflow) {  // after the header: one chunk line is that long
    SendErrorAndClose(400, "bad_request",
                      "a chunk size line (with its extensions) or trailer exceeds the limit of " +
                          std::to_string(buffer_.max_size()) + " bytes");
    return;
  }
  if (ec == bhttp::error::body_limit) {
    SendErrorAndClose(413, "request_too_large",
                      "request body exceeds the limit of " +
                          std::to_string(options.max_body_bytes) + " bytes");
    return;
  }
  if (ec.category() == bhttp::make_error_code(bhttp::error::bad_method).category()) {
    SendErrorAndClose(400, "bad_request", "malformed HTTP request: " + ec.message());
    return;
  }
  CloseNow();  // a socket error: nobody to answer
}

void Connection::Dispatch() {
  auto& message = parser_->get();
  Request request;
  request.method = std::string(message.method_string());
  request.target = std::string(message.target());
  request.path = request.target.substr(0, request.target.find('?'));
  request.version = static_cast<int>(message.version());
  request.headers.reserve(16);
  for (const auto& field : message) {
    request.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  request.body = std::move(message.body());
  request.remote_address = remote_address_;
  request.remote_port = remote_port_;
  const bool keep_alive = message.keep_alive();
  parser_.reset();
  buffer_.shrink_to_fit();  // a streaming connection keeps no header-sized buffer

  writer_ = std::make_shared<ConnectionWriter>(weak_from_this(), request.version, keep_alive,
                                               request.method == "HEAD",
                                               core_->options().max_queued_write_bytes);
  response_done_ = false;
  close_after_response_ = !keep_alive;
  StartMonitor();

  std::shared_ptr<ConnectionWriter> writer = writer_;
  try {
    core_->handler()(std::move(request), writer);
  } catch (const std::exception& e) {
    WF_LOG(ERROR) << "http: request handler threw: " << e.what();
    writer->Send(500, {{"Content-Type", "application/json"}},
                 ErrorBody("internal error in the request handler", "server_error",
                           "internal_error"));
  } catch (...) {
    WF_LOG(ERROR) << "http: request handler threw a non-standard exception";
    writer->Send(500, {{"Content-Type", "application/json"}},
                 ErrorBody("internal error in the request handler", "server_error",
                           "internal_error"));
  }
}

void Connection::StartMonitor() {
  if (monitor_pending_ || closed_) return;
  const size_t room = buffer_.max_size() - buffer_.size();
  if (room == 0) return;  // a flood of pipelined bytes: stop reading until the response is done
  monitor_pending_ = true;
  stream_.async_read_some(buffer_.prepare(std::min(kMonitorReadBytes, room)),
                          [self = shared_from_this()](const error_code& ec, size_t n) {
                            self->OnMonitor(ec, n);
                          });
}

void Connection::OnMonitor(const error_code& ec, size_t n) {
  monitor_pending_ = false;
  if (closed_) return;
  if (!ec) buffer_.commit(n);
  if (response_done_) {  // cancelled by AfterResponse(), or raced with it
    if (ec && ec != asio::error::operation_aborted) {
      CloseNow();
      return;
    }
    AfterResponse();
    return;
  }
  if (ec) {  // EOF or reset while the response is pending: the client is gone
    CloseNow();
    return;
  }
  StartMonitor();
}

void Connection::Enqueue(const std::shared_ptr<ConnectionWriter>& writer, std::vector<OutItem> items) {
  if (closed_ || writer != writer_) return;
  for (OutItem& item : items) queue_.push_back(std::move(item));
  DoWrite();
}

void Connection::SendErrorAndClose(int status, std::string_view code,
                                   std::string_view message) {
  if (closed_) return;
  const std::string body = ErrorBody(
      message, status >= 500 ? "server_error" : "invalid_request_error", code);
  Headers headers = {{"Content-Type", "application/json"}};
  if (status == 503) headers.emplace_back("Retry-After", "1");
  Head head = FormatHead(status, headers, Framing::kContentLength, body.size(), 11, true);
  OutItem item;
  item.head = std::move(head.bytes);
  item.data = body;
  item.final = true;
  item.close_after = true;
  writer_.reset();
  response_done_ = false;
  queue_.push_back(std::move(item));
  DoWrite();
}

void Connection::DoWrite() {
  if (writing_ || queue_.empty() || closed_) return;
  in_flight_.clear();
  std::vector<asio::const_buffer> buffers;
  while (!queue_.empty() && in_flight_.size() < kMaxItemsPerWrite) {
    in_flight_.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  static constexpr std::string_view kCrlf = "\r\n";
  buffers.reserve(in_flight_.size() * 3);
  for (const OutItem& item : in_flight_) {
    if (!item.head.empty()) buffers.emplace_back(item.head.data(), item.head.size());
    if (!item.data.empty()) buffers.emplace_back(item.data.data(), item.data.size());
    if (item.chunk_suffix) buffers.emplace_back(kCrlf.data(), kCrlf.size());
  }
  writing_ = true;
  ArmTimer(TimerPhase::kWrite, core_->options().write_timeout);
  asio::async_write(stream_, buffers, [self = shared_from_this()](const error_code& ec, size_t) {
    self->OnWrite(ec);
  });
}

void Connection::OnWrite(const error_code& ec) {
  writing_ = false;
  if (closed_) {
    in_flight_.clear();
    return;
  }
  DisarmTimer();
  if (ec) {
    in_flight_.clear();
    CloseNow();
    return;
  }
  size_t accounted = 0;
  bool final = false;
  for (const OutItem& item : in_flight_) {
    accounted += item.accounted;
    final = final || item.final;
    close_after_response_ = close_after_response_ || item.close_after;
  }
  in_flight_.clear();
  if (writer_ != nullptr && accounted > 0) writer_->OnFlushed(accounted);
  if (!final) {
    DoWrite();
    return;
  }
  if (writer_ != nullptr) writer_->MarkCompleted();
  writer_.reset();
  queue_.clear();
  response_done_ = true;
  if (monitor_pending_) {
    // The monitoring read must finish before the next request can be read;
    // its handler continues with AfterResponse().
    error_code ignored;
    stream_.socket().cancel(ignored);
    return;
  }
  AfterResponse();
}

void Connection::AfterResponse() {
  if (closed_) return;
  if (close_after_response_ || core_->stopping()) {
    LingerClose();
    return;
  }
  WaitForNextRequest();
}

void Connection::LingerClose() {
  if (closed_ || lingering_) return;
  lingering_ = true;
  buffer_.clear();
  ArmTimer(TimerPhase::kLinger, kLingerTimeout);
  if (ServerStream::TlsStream* tls = stream_.tls_stream()) {
    // close_notify first (the client learns the response is complete), then
    // the TCP half-close and drain, whatever the peer answers.
    tls->async_shutdown([self = shared_from_this()](const error_code&) {
      if (!self->closed_) self->HalfCloseAndDrain();
    });
    return;
  }
  HalfCloseAndDrain();
}

void Connection::HalfCloseAndDrain() {
  error_code ignored;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
  DoLingerRead();
}

void Connection::DoLingerRead() {
  stream_.socket().async_read_some(buffer_.prepare(kMonitorReadBytes),
                          [self = shared_from_this()](const error_code& ec, size_t) {
                            if (self->closed_) return;
                            if (ec) {
                              self->CloseNow();
                              return;
                            }
                            self->buffer_.clear();
                            self->DoLingerRead();
                          });
}

void Connection::CloseNow() {
  if (closed_) return;
  closed_ = true;
  DisarmTimer();
  error_code ignored;
  stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
  stream_.socket().close(ignored);
  queue_.clear();  // in_flight_ stays until its write completes: it owns the buffers
  // parser_ stays too: a header or body read still pending refers to it until
  // its (aborted) completion runs, and the connection lives until then.
  std::shared_ptr<ConnectionWriter> writer = std::move(writer_);
  if (writer != nullptr) writer->MarkDisconnected();
  core_->Unregister(this, admitted_);
}

// ---------------------------------------------------------------------------
// ServerCore

absl::Status ServerCore::Listen() {
  absl::StatusOr<int> port = BindAndListen(ioc_, options_.host, options_.port, &acceptor_);
  if (!port.ok()) return port.status();
  port_ = *port;
  return absl::OkStatus();
}

void ServerCore::Run() {
  asio::post(acceptor_strand_, [this] { DoAccept(); });
  threads_.reserve(options_.io_threads);
  for (int i = 0; i < options_.io_threads; ++i) {
    threads_.emplace_back([this] {
      // Handlers catch their own exceptions; this is a last resort so that an
      // escaping one cannot terminate the process through std::thread.
      for (;;) {
        try {
          ioc_.run();
          return;
        } catch (const std::exception& e) {
          WF_LOG(ERROR) << "http: exception escaped an IO handler: " << e.what();
        } catch (...) {
          WF_LOG(ERROR) << "http: non-standard exception escaped an IO handler";
        }
      }
    });
  }
}

void ServerCore::DoAccept() {
  acceptor_.async_accept(asio::make_strand(ioc_),
                         [this](const error_code& ec, tcp::socket socket) {
                           OnAccept(ec, std::move(socket));
                         });
}

void ServerCore::OnAccept(const error_code& ec, tcp::socket socket) {
  if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
  if (ec) {
    WF_LOG(WARNING) << "http: accept failed: " << ec.message();
    accept_retry_timer_.expires_after(kAcceptRetryDelay);
    accept_retry_timer_.async_wait([this](const error_code& wait_ec) {
      if (!wait_ec) DoAccept();
    });
    return;
  }
  std::shared_ptr<Connection> connection;
  bool admitted = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;  // `socket` closes as it goes out of scope
    admitted = admitted_.load(std::memory_order_relaxed) <
               static_cast<size_t>(options_.max_connections);
    if (admitted || rejecting_ < kMaxRejecting) {
      connection = std::make_shared<Connection>(this, std::move(socket), admitted);
      connections_.emplace(connection.get(), connection);
      if (admitted) {
        admitted_.fetch_add(1, std::memory_order_relaxed);
      } else {
        ++rejecting_;
      }
    }
  }
  if (connection != nullptr) {
    asio::post(connection->executor(), [connection, admitted] {
      if (admitted) {
        connection->Start();
      } else {
        connection->Reject();
      }
    });
  }
  DoAccept();
}

void ServerCore::Unregister(Connection* connection, bool admitted) {
  std::shared_ptr<Connection> keep;  // released outside the lock
  std::lock_guard<std::mutex> lock(mu_);
  auto it = connections_.find(connection);
  if (it == connections_.end()) return;
  keep = std::move(it->second);
  connections_.erase(it);
  if (admitted) {
    admitted_.fetch_sub(1, std::memory_order_relaxed);
  } else {
    --rejecting_;
  }
}

void ServerCore::Stop() {
  std::lock_guard<std::mutex> stop_lock(stop_mu_);
  if (stopped_) return;
  for (const std::thread& thread : threads_) {
    if (thread.get_id() == std::this_thread::get_id()) {
      WF_LOG(ERROR) << "http: HttpServer::Stop() called from an IO thread; ignored";
      return;
    }
  }
  stopped_ = true;
  std::vector<std::shared_ptr<Connection>> connections;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    connections.reserve(connections_.size());
    for (const auto& [ptr, connection] : connections_) connections.push_back(connection);
  }
  if (!threads_.empty()) {
    // Close the listener and every connection on their own strands, and wait
    // until that happened: from then on no writer touches the io_context.
    std::latch closed(static_cast<std::ptrdiff_t>(connections.size()) + 1);
    asio::post(acceptor_strand_, [this, &closed] {
      error_code ignored;
      acceptor_.close(ignored);
      accept_retry_timer_.cancel();
      closed.count_down();
    });
    for (const std::shared_ptr<Connection>& connection : connections) {
      asio::post(connection->executor(), [connection, &closed] {
        connection->Abort();
        closed.count_down();
      });
    }
    connections.clear();
    closed.wait();
  }
  work_.reset();
  ioc_.stop();
  for (std::thread& thread : threads_) thread.join();
  threads_.clear();
}

}  // namespace internal

// ---------------------------------------------------------------------------
// HttpServer

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(ServerOptions options,
                                                              Handler handler) {
  if (!handler) return absl::InvalidArgumentError("http: handler is empty");
  if (absl::Status status = internal::ValidateServerOptions(options); !status.ok()) return status;
  absl::StatusOr<std::unique_ptr<asio::ssl::context>> tls =
      internal::MakeServerTlsContext(options.tls_cert_file, options.tls_key_file);  // null: plain HTTP
  if (!tls.ok()) return tls.status();
  auto core = std::make_unique<internal::ServerCore>(std::move(options), std::move(handler),
                                                        *std::move(tls));
  if (absl::Status status = core->Listen(); !status.ok()) return status;
  core->Run();
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(core)));
}

HttpServer::HttpServer(std::unique_ptr<internal::ServerCore> core) : core_(std::move(core)) {}

HttpServer::~HttpServer() { Stop(); }

int HttpServer::port() const { return core_->port(); }

void HttpServer::Stop() { core_->Stop(); }

size_t HttpServer::active_connections() const { return core_->active_connections(); }

}  // namespace wf::router::http
