#include "router/http/internal/connection_writer.h"

#include <algorithm>
#include <utility>

#include <boost/asio/post.hpp>

#include "common/log.h"
#include "router/http/internal/http_wire.h"

namespace wf::router::http::internal {

void ConnectionWriter::Send(int status, Headers headers, std::string body) {
  if (StatusHasNoBody(status < 200 || status > 999 ? 500 : status)) body.clear();
  Head head = FormatHead(status, headers, Framing::kContentLength, body.size(), version_,
                         !keep_alive_);
  // A body after a HEAD response would be read as the next response.
  if (head_only_) body.clear();
  std::lock_guard<std::mutex> lock(mu_);
  if (phase_ != Phase::kIdle || disconnected_ || aborted_) return;
  phase_ = Phase::kFinished;
  OutItem item;
  item.head = std::move(head.bytes);
  item.data = std::move(body);
  item.final = true;
  item.close_after = head.close;
  PostLocked(std::move(item));
}

void ConnectionWriter::StartStream(int status, Headers headers) {
  Head head = FormatHead(status, headers, Framing::kStream, 0, version_, !keep_alive_);
  std::lock_guard<std::mutex> lock(mu_);
  if (phase_ != Phase::kIdle || disconnected_ || aborted_) return;
  phase_ = Phase::kStreaming;
  stream_chunked_ = head.chunked;
  stream_close_ = head.close;
  OutItem item;
  item.head = std::move(head.bytes);
  PostLocked(std::move(item));
}

bool ConnectionWriter::Write(std::string data) {
  std::lock_guard<std::mutex> lock(mu_);
  if (phase_ != Phase::kStreaming || disconnected_ || aborted_) return false;
  if (data.empty() || head_only_) return true;  // a zero-length chunk would end the stream
  if (queued_bytes_ + data.size() > max_queued_bytes_) {
    WF_LOG(WARNING) << "http: aborting a stream whose client reads too slowly: "
                    << queued_bytes_ + data.size() << " bytes queued, limit "
                    << max_queued_bytes_;
    aborted_ = true;
    PostAbortLocked();
    return false;
  }
  OutItem item;
  if (stream_chunked_) {
    item.head = ChunkSizeLine(data.size());
    item.chunk_suffix = true;
  }
  item.accounted = data.size();
  item.data = std::move(data);
  queued_bytes_ += item.accounted;
  return PostLocked(std::move(item));
}

void ConnectionWriter::End() {
  std::lock_guard<std::mutex> lock(mu_);
  if (phase_ != Phase::kStreaming || disconnected_ || aborted_) return;
  phase_ = Phase::kFinished;
  OutItem item;
  if (stream_chunked_ && !head_only_) item.head = "0\r\n\r\n";
  item.final = true;
  item.close_after = stream_close_;
  PostLocked(std::move(item));
}

bool ConnectionWriter::closed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return phase_ == Phase::kFinished || disconnected_ || aborted_ || completed_;
}

void ConnectionWriter::OnClose(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (completed_) return;  // `fn` is destroyed outside the lock
    if (!disconnected_) {
      on_close_.swap(fn);
      return;  // the replaced callback is destroyed outside the lock
    }
  }
  if (fn) fn();
}

void ConnectionWriter::OnFlushed(size_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  queued_bytes_ -= std::min(bytes, queued_bytes_);
}

void ConnectionWriter::MarkCompleted() {
  std::function<void()> dropped;
  std::lock_guard<std::mutex> lock(mu_);
  completed_ = true;
  dropped.swap(on_close_);
}

void ConnectionWriter::MarkDisconnected() {
  std::function<void()> fn;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (completed_ || disconnected_) return;
    disconnected_ = true;
    fn.swap(on_close_);
  }
  if (fn) fn();
}

// Posting under mu_ orders the strand's work exactly as the calls were made,
// and guarantees the sink (and with it the io_context) is alive: the
// server marks every writer disconnected, under this mutex, before its
// io_context can go away.
bool ConnectionWriter::PostLocked(OutItem item) {
  std::shared_ptr<ConnectionSink> sink = sink_.lock();
  if (sink == nullptr) return false;
  pending_.push_back(std::move(item));
  if (post_scheduled_) return true;  // the handler already posted takes it too
  post_scheduled_ = true;
  boost::asio::post(sink->executor(), [sink, self = shared_from_this()] {
    std::vector<OutItem> items;
    {
      std::lock_guard<std::mutex> lock(self->mu_);
      items.swap(self->pending_);
      self->post_scheduled_ = false;
    }
    sink->Enqueue(self, std::move(items));
  });
  return true;
}

void ConnectionWriter::PostAbortLocked() {
  std::shared_ptr<ConnectionSink> sink = sink_.lock();
  if (sink == nullptr) return;
  boost::asio::post(sink->executor(), [sink, self = shared_from_this()] {
    sink->AbortFrom(self);
  });
}

}  // namespace wf::router::http::internal
