// The orderings gRPC's callback API guarantees, stated for ThreadSanitizer.
//
// gRPC runs handlers and reactions on its own threads: a handler after the
// server started; a reaction after the operation it completes was started
// (StartRead, StartWrite, Finish, StartCall ...); OnDone after every other
// reaction; and nothing once the server has shut down. gRPC keeps that order
// with its own synchronization, which ThreadSanitizer cannot see when gRPC is
// not built with it (Debian's packages are not): TSan would report a reaction
// as racing with the reactor's constructor, with the thread that started the
// operation, or with the reaction before. These calls state gRPC's guarantees
// for TSan; outside TSan builds they compile to nothing. They never order two
// things that gRPC leaves unordered: reactions that gRPC may run at the same
// time (OnWriteDone and OnCancel) stay unordered, as do different calls.
//
// The rules, for a reactor `r` (client or server):
//   * HandOff(r) right before every Start*() / Finish() / StartCall() on it,
//     and as the last statement of a server reactor's constructor;
//   * ReactionScope scope(r) first in every reaction but OnDone;
//   * OnDoneScope scope(r) first in OnDone;
//   * HandlerScope scope first in every handler and server reactor
//     constructor.
// The server's owner calls PublishToHandlers() before BuildAndStart, and
// AfterHandlers() once Shutdown and Wait have returned, before it destroys
// what the handlers used.
//
// Example:
//   void OnReadDone(bool ok) override {
//     grpc_util::ReactionScope scope(this);
//     ...
//     grpc_util::HandOff(this);
//     StartRead(&response_);
//   }
//   void OnDone(const grpc::Status& s) override {
//     grpc_util::OnDoneScope scope(this);
//     ...
//   }
//
// Threading: everything here may be used from any thread.
#ifndef WF_COMMON_GRPC_REACTION_ORDER_H_
#define WF_COMMON_GRPC_REACTION_ORDER_H_

#ifdef WF_SANITIZE_THREAD
#include <sanitizer/tsan_interface.h>
#endif

namespace wf::grpc_util {
namespace reaction_order_internal {

inline void Release(const void* key) {
#ifdef WF_SANITIZE_THREAD
  __tsan_release(const_cast<void*>(key));
#else
  (void)key;
#endif
}

inline void Acquire(const void* key) {
#ifdef WF_SANITIZE_THREAD
  __tsan_acquire(const_cast<void*>(key));
#else
  (void)key;
#endif
}

// Separate from the reactor's own key: the ends of reactions are ordered
// before OnDone only, not before each other.
inline const void* DoneKey(const void* reactor) { return static_cast<const char*>(reactor) + 1; }

// Released by the server's owner only, acquired by every handler/reaction.
inline const void* ServingKey() {
  static const char key = 0;
  return &key;
}

// Released by every handler/reaction, acquired by the server's owner only.
inline const void* StoppedKey() {
  static const char key = 0;
  return &key;
}

}  // namespace reaction_order_internal

// What this thread did so far happens before the server's handlers (call
// right before BuildAndStart).
inline void PublishToHandlers() { reaction_order_internal::Release(reaction_order_internal::ServingKey()); }

// Every handler and reaction happens before what this thread does next (call
// once the server's Shutdown and Wait have returned).
inline void AfterHandlers() { reaction_order_internal::Acquire(reaction_order_internal::StoppedKey()); }

// What this thread did so far happens before the reactions gRPC runs for
// `reactor` from now on.
inline void HandOff(const void* reactor) { reaction_order_internal::Release(reactor); }

// A handler's body or a server reactor's constructor.
class HandlerScope {
 public:
  HandlerScope() { reaction_order_internal::Acquire(reaction_order_internal::ServingKey()); }
  ~HandlerScope() { reaction_order_internal::Release(reaction_order_internal::StoppedKey()); }
  HandlerScope(const HandlerScope&) = delete;
  HandlerScope& operator=(const HandlerScope&) = delete;
};

// A reaction other than OnDone: after every HandOff(reactor) so far; before
// OnDone.
class ReactionScope {
 public:
  explicit ReactionScope(const void* reactor) : reactor_(reactor) {
    reaction_order_internal::Acquire(reaction_order_internal::ServingKey());
    reaction_order_internal::Acquire(reactor_);
  }
  ~ReactionScope() {
    reaction_order_internal::Release(reaction_order_internal::DoneKey(reactor_));
    reaction_order_internal::Release(reaction_order_internal::StoppedKey());
  }
  ReactionScope(const ReactionScope&) = delete;
  ReactionScope& operator=(const ReactionScope&) = delete;

 private:
  const void* const reactor_;
};

// OnDone: after every HandOff(reactor) and every other reaction. OnDone may
// delete the reactor within the scope.
class OnDoneScope {
 public:
  explicit OnDoneScope(const void* reactor) {
    reaction_order_internal::Acquire(reaction_order_internal::ServingKey());
    reaction_order_internal::Acquire(reactor);
    reaction_order_internal::Acquire(reaction_order_internal::DoneKey(reactor));
  }
  ~OnDoneScope() { reaction_order_internal::Release(reaction_order_internal::StoppedKey()); }
  OnDoneScope(const OnDoneScope&) = delete;
  OnDoneScope& operator=(const OnDoneScope&) = delete;
};

}  // namespace wf::grpc_util

#endif  // WF_COMMON_GRPC_REACTION_ORDER_H_
