#include "worker/service/load_hub.h"

#include <algorithm>
#include <utility>

#include "common/log.h"

namespace wf::service {

using wrinklefree::v1::KvEvent;

LoadHub::LoadHub(std::string instance_id, size_t max_retained_events)
    : instance_id_(std::move(instance_id)), max_retained_events_(std::max<size_t>(max_retained_events, 1)) {}

void LoadHub::ApplyLocked(const KvEvent& event) {
  switch (event.event_case()) {
    case KvEvent::kStored:
      for (uint64_t h : event.stored().block_hashes()) cached_.insert(h);
      break;
    case KvEvent::kRemoved:
      for (uint64_t h : event.removed().block_hashes()) cached_.erase(h);
      break;
    case KvEvent::kAllCleared:
      cached_.clear();
      break;
    case KvEvent::EVENT_NOT_SET:
      break;
  }
}

void LoadHub::Publish(const wrinklefree::v1::Load& load, std::vector<KvEvent> events) {
  std::unique_lock<std::mutex> lock(mu_);
  // Load changes that matter to a router; tokens/s alone moves every step and
  // is sent with the periodic report.
  const wrinklefree::v1::Load& old = load_;
  const bool changed = old.running() != load.running() || old.waiting() != load.waiting() ||
                       old.kv_used_blocks() != load.kv_used_blocks() ||
                       old.kv_cached_blocks() != load.kv_cached_blocks() || old.draining() != load.draining();
  load_ = load;
  if (changed || load_version_ == 0) ++load_version_;
  for (KvEvent& e : events) {
    if (e.sequence_number() != last_seq_ + 1) {
      // A bug upstream; a gap would make every subscriber resync, so say so.
      WF_LOG(ERROR) << "KV event " << e.sequence_number() << " after " << last_seq_;
    }
    last_seq_ = e.sequence_number();
    ApplyLocked(e);
    events_.push_back(std::move(e));
  }
  while (events_.size() > max_retained_events_) events_.pop_front();
  lock.unlock();
  cv_.notify_all();
}

LoadHub::Cursor LoadHub::Subscribe(bool include_events) const {
  Cursor c;
  c.include_events = include_events;
  c.need_snapshot = include_events;
  return c;
}

bool LoadHub::HasNewsLocked(const Cursor& c) const {
  if (shutdown_) return true;
  if (c.need_snapshot || c.load_version != load_version_) return true;
  return c.include_events && c.next_event <= last_seq_;
}

bool LoadHub::NextReport(Cursor* cursor, absl::Duration interval, wrinklefree::v1::LoadReport* report) {
  std::unique_lock<std::mutex> lock(mu_);
  const auto deadline = cursor->last_report + absl::ToChronoNanoseconds(interval);
  cv_.wait_until(lock, deadline, [this, cursor] { return HasNewsLocked(*cursor); });
  if (shutdown_) return false;

  report->Clear();
  report->set_instance_id(instance_id_);
  *report->mutable_load() = load_;
  report->set_timestamp_ms(absl::ToUnixMillis(absl::Now()));
  if (cursor->include_events) {
    const uint64_t oldest_kept = events_.empty() ? last_seq_ + 1 : events_.front().sequence_number();
    if (cursor->next_event < oldest_kept) cursor->need_snapshot = true;  // fell behind: resync
    if (cursor->need_snapshot) {
      wrinklefree::v1::KvSnapshot* snap = report->mutable_snapshot();
      snap->mutable_block_hashes()->Reserve(static_cast<int>(cached_.size()));
      for (uint64_t h : cached_) snap->add_block_hashes(h);
      snap->set_last_sequence_number(last_seq_);
      cursor->need_snapshot = false;
    } else {
      // Retained sequence numbers are contiguous, so the first unsent one is
      // found by offset.
      for (size_t i = cursor->next_event - oldest_kept; i < events_.size(); ++i) {
        *report->add_events() = events_[i];
      }
    }
    cursor->next_event = last_seq_ + 1;
  }
  cursor->load_version = load_version_;
  cursor->last_report = std::chrono::steady_clock::now();
  return true;
}

void LoadHub::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    shutdown_ = true;
  }
  cv_.notify_all();
}

std::vector<uint64_t> LoadHub::CachedHashesForTest() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<uint64_t> out(cached_.begin(), cached_.end());
  std::sort(out.begin(), out.end());
  return out;
}

uint64_t LoadHub::last_sequence_number() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_seq_;
}

}  // namespace wf::service
