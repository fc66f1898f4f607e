#include "router/server/stream_limiter.h"

#include <utility>

namespace wf::router {

StreamLimiter::Slot& StreamLimiter::Slot::operator=(Slot&& other) noexcept {
  if (this != &other) {
    Release();
    state_ = std::move(other.state_);
    key_ = other.key_;
    other.key_ = -1;
  }
  return *this;
}

void StreamLimiter::Slot::Release() {
  std::shared_ptr<State> state = std::move(state_);
  if (state == nullptr) return;
  std::lock_guard<std::mutex> lock(state->mu);
  --state->in_use[static_cast<size_t>(key_)];
}

StreamLimiter::StreamLimiter(size_t num_keys, int max_per_key)
    : max_per_key_(max_per_key), state_(std::make_shared<State>()) {
  state_->in_use.assign(num_keys, 0);
}

std::optional<StreamLimiter::Slot> StreamLimiter::TryAcquire(int key_index) {
  if (max_per_key_ <= 0 || key_index < 0 || static_cast<size_t>(key_index) >= state_->in_use.size()) {
    return Slot(nullptr, -1);
  }
  std::lock_guard<std::mutex> lock(state_->mu);
  int& in_use = state_->in_use[static_cast<size_t>(key_index)];
  if (in_use >= max_per_key_) return std::nullopt;
  ++in_use;
  return Slot(state_, key_index);
}

int StreamLimiter::InUse(int key_index) const {
  if (key_index < 0 || static_cast<size_t>(key_index) >= state_->in_use.size()) return 0;
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->in_use[static_cast<size_t>(key_index)];
}

}  // namespace wf::router
