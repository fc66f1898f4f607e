// The cap on concurrent generation requests per API key
// (--max-streams-per-key), shared by the HTTP gateway and the gRPC front so
// that one key's requests count together on both.
//
// A key is named by its index in the configured key list, never by its text,
// so nothing here can leak a key. A request holds a Slot from its admission
// until it ends (completes, fails, or its client goes away); the Slot frees
// its place when released or destroyed, whichever comes first, and may
// outlive the limiter.
//
// Example:
//   StreamLimiter limiter(/*num_keys=*/keys.size(), /*max_per_key=*/4);
//   std::optional<StreamLimiter::Slot> slot = limiter.TryAcquire(key_index);
//   if (!slot.has_value()) return Answer429();
//   request->slot = std::move(slot);  // Release()d when the request ends
//
// Thread-safe.
#ifndef WF_ROUTER_SERVER_STREAM_LIMITER_H_
#define WF_ROUTER_SERVER_STREAM_LIMITER_H_

#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

namespace wf::router {

class StreamLimiter {
 private:
  struct State {
    std::mutex mu;
    std::vector<int> in_use;  // per key index
  };

 public:
  // One place held by one request. Move-only.
  class Slot {
   public:
    Slot(Slot&& other) noexcept : state_(std::move(other.state_)), key_(other.key_) { other.key_ = -1; }
    Slot& operator=(Slot&& other) noexcept;
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    ~Slot() { Release(); }

    // Frees the place (idempotent).
    void Release();

   private:
    friend class StreamLimiter;
    Slot(std::shared_ptr<State> state, int key) : state_(std::move(state)), key_(key) {}
    std::shared_ptr<State> state_;  // null: counts nothing
    int key_ = -1;
  };

  // `max_per_key` 0 = unlimited.
  StreamLimiter(size_t num_keys, int max_per_key);

  // A slot for key `key_index`, or nullopt when that key already holds
  // max_per_key slots. With no limit, or key_index < 0 (authentication off),
  // or an index outside the key list, the slot counts nothing and always
  // succeeds.
  std::optional<Slot> TryAcquire(int key_index);

  // Slots held now by `key_index` (0 for an index that is not counted).
  int InUse(int key_index) const;

  int max_per_key() const { return max_per_key_; }

 private:
  const int max_per_key_;
  const std::shared_ptr<State> state_;
};

}  // namespace wf::router

#endif  // WF_ROUTER_SERVER_STREAM_LIMITER_H_
