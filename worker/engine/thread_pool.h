// A persistent pool of compute threads for the forward pass.
//
// ParallelFor(n, fn) cuts [0, n) into contiguous ranges (a few per thread)
// and runs fn(begin, end) on each; the threads, the calling thread included,
// claim ranges from a shared counter, so a thread the OS has descheduled does
// not hold the others up (the host's cores may be shared). It returns when
// every range is done. Between calls the workers spin briefly (cheap
// back-to-back kernel launches inside one forward pass), then sleep on a
// futex so an idle worker costs no CPU.
//
// Determinism contract: the pool only decides WHICH thread computes a range.
// Callers split work by independent output rows (never a reduction), so that
// every output element is computed by exactly one thread in an order that does
// not depend on the split; results are then identical for any thread count.
//
// Threading: ParallelFor may be called by one thread at a time (the engine
// thread that owns the pool); it is not reentrant (fn must not call
// ParallelFor on the same pool). fn must not throw.
//
// Example:
//   ThreadPool pool(4);
//   pool.ParallelFor(rows, [&](int64_t begin, int64_t end) {
//     kt->i2s_gemv(w, k, begin, end, q, s, sum, w_scale, y);
//   });
#ifndef WF_WORKER_ENGINE_THREAD_POOL_H_
#define WF_WORKER_ENGINE_THREAD_POOL_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

namespace wf::engine {

class ThreadPool {
 public:
  // `num_threads` <= 0 means std::thread::hardware_concurrency() (at least 1).
  // The pool starts num_threads() - 1 workers; the caller of ParallelFor is
  // the remaining one.
  explicit ThreadPool(int num_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return num_threads_; }

  // Runs fn over [0, n_items) split in contiguous ranges. Range boundaries
  // are multiples of `grain` (except n_items itself); at most
  // kRangesPerThread * num_threads() ranges are made. n_items <= 0 does
  // nothing; a single range runs on the calling thread.
  void ParallelFor(int64_t n_items, const std::function<void(int64_t, int64_t)>& fn,
                   int64_t grain = 1);

  static constexpr int kRangesPerThread = 4;

 private:
  void WorkerLoop();
  // Claims and runs ranges of job `generation` until none is left.
  void RunRanges(uint32_t generation);

  const int num_threads_;
  std::vector<std::thread> workers_;

  // The current job. Written by the caller before it publishes the job in
  // claim_; a thread reads them only after claiming a range of that job, and
  // the caller does not start another job before every range is done.
  const std::function<void(int64_t, int64_t)>* job_fn_ = nullptr;
  int64_t job_items_ = 0;
  int64_t job_grain_ = 1;

  // generation (32 bits) | number of ranges (16) | next range to claim (16).
  std::atomic<uint64_t> claim_{0};
  std::atomic<int> ranges_done_{0};
  std::atomic<uint32_t> generation_{0};  // bumped once per job; workers sleep on it
  std::atomic<bool> stop_{false};
};

}  // namespace wf::engine

#endif  // WF_WORKER_ENGINE_THREAD_POOL_H_
