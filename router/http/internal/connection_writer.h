// The ResponseWriter handed to request handlers, private to router/http: it
// turns Send / StartStream / Write / End into framed output items (head,
// body or chunk) and hands them to the connection that owns the response,
// through the minimal ConnectionSink interface below.
//
// Contract:
// - One writer per request. Send() (or StartStream(), then Write()s and
//   End()) produces the response; calls out of order, after the connection
//   went away, or after the writer was aborted are ignored (Write() returns
//   false).
// - Write() bounds the bytes queued but not yet written to the socket at
//   `max_queued_bytes`; going over it aborts the response (a client reading
//   too slowly) and asks the sink to close the connection.
// - OnClose's callback runs at most once, when the connection ends before
//   the final bytes were written; it is dropped once they were.
//
// Threading: the ResponseWriter methods may be called from any thread; they
// are serialized by an internal mutex and post the output to the sink's
// executor (its strand) in call order, batching items queued before the
// strand ran. OnFlushed / MarkCompleted / MarkDisconnected are called by the
// connection on its strand. The OnClose callback runs outside the mutex: on
// the strand from MarkDisconnected(), or in OnClose() itself when the
// connection already ended.
//
// Lifetime: the writer holds only a weak reference to its sink; a posted
// handler keeps both alive until it ran. The owner must call
// MarkDisconnected() on every writer, before its io_context goes away, when
// the connection closes without completing the response.
#ifndef WF_ROUTER_HTTP_INTERNAL_CONNECTION_WRITER_H_
#define WF_ROUTER_HTTP_INTERNAL_CONNECTION_WRITER_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>

#include "router/http/http_server.h"

namespace wf::router::http::internal {

// One unit of queued output: head, then data, then an optional CRLF that
// closes a chunk. `accounted` bytes count against the writer's queue bound.
struct OutItem {
  std::string head;
  std::string data;
  bool chunk_suffix = false;
  size_t accounted = 0;
  bool final = false;        // the last bytes of the response
  bool close_after = false;  // close the connection after it
};

class ConnectionWriter;

// What a ConnectionWriter needs from its connection. executor() may be
// called from any thread; Enqueue() and AbortFrom() are only called on that
// executor, and must ignore a writer that is no longer the connection's
// current one.
class ConnectionSink {
 public:
  virtual const boost::asio::any_io_executor& executor() const = 0;
  // Queues `items` (in order) for the socket.
  virtual void Enqueue(const std::shared_ptr<ConnectionWriter>& writer, std::vector<OutItem> items) = 0;
  // Closes the connection at once (the writer went over its queue bound).
  virtual void AbortFrom(const std::shared_ptr<ConnectionWriter>& writer) = 0;

 protected:
  ~ConnectionSink() = default;
};

class ConnectionWriter final : public ResponseWriter,
                               public std::enable_shared_from_this<ConnectionWriter> {
 public:
  // `version`: the request's HTTP version (10 or 11). `keep_alive`: the
  // request asked for a persistent connection. `head_only`: the answer to a
  // HEAD request, whose body is never sent.
  ConnectionWriter(std::weak_ptr<ConnectionSink> sink, int version, bool keep_alive, bool head_only,
                   size_t max_queued_bytes)
      : sink_(std::move(sink)),
        version_(version),
        keep_alive_(keep_alive),
        head_only_(head_only),
        max_queued_bytes_(max_queued_bytes) {}

  void Send(int status, Headers headers, std::string body) override;
  void StartStream(int status, Headers headers) override;
  bool Write(std::string data) override;
  void End() override;
  bool closed() const override;
  void OnClose(std::function<void()> fn) override;

  // Called by the connection on its strand: `bytes` accounted bytes reached
  // the socket; the final bytes reached it; the connection ended first.
  void OnFlushed(size_t bytes);
  void MarkCompleted();
  void MarkDisconnected();

 private:
  enum class Phase { kIdle, kStreaming, kFinished };

  // Hands `item` to the sink's strand; false if the connection is gone.
  // Items queued before the strand ran are handed over together, so that
  // e.g. a stream's head and first chunk leave in one socket write.
  bool PostLocked(OutItem item);
  void PostAbortLocked();

  const std::weak_ptr<ConnectionSink> sink_;
  const int version_;
  const bool keep_alive_;
  const bool head_only_;
  const size_t max_queued_bytes_;

  mutable std::mutex mu_;
  Phase phase_ = Phase::kIdle;
  bool stream_chunked_ = false;
  bool stream_close_ = false;
  bool aborted_ = false;       // Write() went over the queue bound
  bool disconnected_ = false;  // the connection ended before completion
  bool completed_ = false;     // the final bytes reached the socket
  size_t queued_bytes_ = 0;
  std::function<void()> on_close_;
  std::vector<OutItem> pending_;  // posted to the strand, not yet taken by it
  bool post_scheduled_ = false;   // a strand handler will take pending_
};

}  // namespace wf::router::http::internal

#endif  // WF_ROUTER_HTTP_INTERNAL_CONNECTION_WRITER_H_
