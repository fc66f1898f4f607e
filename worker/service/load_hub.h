// Fan-out of the worker's load and KV-cache events to WatchLoad subscribers.
//
// The engine thread publishes, after each step (and periodically when idle),
// the current Load and the KV events the step produced. The hub keeps a
// mirror of the cached block-hash set (by applying the events) and a bounded
// log of recent events, so a new subscriber gets a consistent snapshot
// without asking the engine thread, and a subscriber that falls so far behind
// that its events were dropped gets a fresh snapshot instead of a gap.
//
// Threading: Publish() from one thread (the engine loop); NextReport() from
// any number of subscriber threads; Shutdown() from any thread.
//
// Example (a WatchLoad handler):
//   LoadHub::Cursor cursor = hub.Subscribe(/*include_events=*/true);
//   wrinklefree::v1::LoadReport report;
//   while (hub.NextReport(&cursor, absl::Milliseconds(100), &report)) writer->Write(report);
#ifndef WF_WORKER_SERVICE_LOAD_HUB_H_
#define WF_WORKER_SERVICE_LOAD_HUB_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/time/time.h"
#include "wrinklefree/v1/worker.pb.h"

namespace wf::service {

class LoadHub {
 public:
  // `max_retained_events`: events kept for subscribers that are behind.
  explicit LoadHub(std::string instance_id, size_t max_retained_events = 65536);
  LoadHub(const LoadHub&) = delete;
  LoadHub& operator=(const LoadHub&) = delete;

  const std::string& instance_id() const { return instance_id_; }

  // Replaces the current load and appends `events`, whose sequence numbers
  // must continue the previous ones (1, 2, 3, ...). Wakes subscribers if
  // anything changed.
  void Publish(const wrinklefree::v1::Load& load, std::vector<wrinklefree::v1::KvEvent> events);

  struct Cursor {
    bool include_events = true;
    bool need_snapshot = true;
    uint64_t next_event = 1;       // sequence number of the next event to send
    uint64_t load_version = 0;     // last load version sent
    std::chrono::steady_clock::time_point last_report = {};  // epoch: report at once
  };
  Cursor Subscribe(bool include_events) const;

  // Waits until the subscriber has something new (events, a changed load) or
  // `interval` has passed since its last report, then fills *report and
  // returns true. Returns false once Shutdown() was called. The first report
  // of a cursor comes at once and carries the snapshot (with events on).
  bool NextReport(Cursor* cursor, absl::Duration interval, wrinklefree::v1::LoadReport* report);

  // Makes NextReport return false from now on.
  void Shutdown();

  // The hub's mirror of cached hashes (for tests and the validator).
  std::vector<uint64_t> CachedHashesForTest() const;
  uint64_t last_sequence_number() const;

 private:
  void ApplyLocked(const wrinklefree::v1::KvEvent& event);  // requires mu_ held
  bool HasNewsLocked(const Cursor& c) const;  // requires mu_ held

  const std::string instance_id_;
  const size_t max_retained_events_;
  // std::mutex rather than absl::Mutex: ThreadSanitizer sees its
  // synchronization (Debian's Abseil is not built with TSan annotations).
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool shutdown_ = false;  // guarded by mu_
  wrinklefree::v1::Load load_;  // guarded by mu_
  uint64_t load_version_ = 0;  // guarded by mu_
  absl::flat_hash_set<uint64_t> cached_;  // guarded by mu_
  std::deque<wrinklefree::v1::KvEvent> events_;  // guarded by mu_; oldest first
  uint64_t last_seq_ = 0;  // guarded by mu_
};

}  // namespace wf::service

#endif  // WF_WORKER_SERVICE_LOAD_HUB_H_
