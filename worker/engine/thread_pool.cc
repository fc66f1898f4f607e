#include "worker/engine/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace wf::engine {
namespace {

// About 20-50 us of polling: long enough to bridge the gap between the kernel
// launches of one forward pass, short enough not to steal a shared core from
// other processes when the engine is idle.
constexpr int kSpinIterations = 4000;
constexpr uint64_t kMaxRanges = 0xffff;

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

inline uint32_t ClaimGeneration(uint64_t c) { return static_cast<uint32_t>(c >> 32); }
inline uint64_t ClaimRanges(uint64_t c) { return (c >> 16) & 0xffff; }
inline uint64_t ClaimNext(uint64_t c) { return c & 0xffff; }

}  // namespace

ThreadPool::ThreadPool(int num_threads)
    : num_threads_(num_threads > 0
                       ? num_threads
                       : std::max(1, static_cast<int>(std::thread::hardware_concurrency()))) {
  workers_.reserve(num_threads_ - 1);
  for (int i = 1; i < num_threads_; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  generation_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::RunRanges(uint32_t generation) {
  uint64_t c = claim_.load(std::memory_order_acquire);
  while (ClaimGeneration(c) == generation && ClaimNext(c) < ClaimRanges(c)) {
    // A failed exchange reloads c; a stale job (other generation) ends the loop.
    if (!claim_.compare_exchange_weak(c, c + 1, std::memory_order_acq_rel,
                                      std::memory_order_acquire)) {
      continue;
    }
    // The range is ours and the job cannot change until it is counted done.
    const int64_t ranges = static_cast<int64_t>(ClaimRanges(c));
    const int64_t index = static_cast<int64_t>(ClaimNext(c));
    const int64_t grains = (job_items_ + job_grain_ - 1) / job_grain_;
    const int64_t base = grains / ranges;
    const int64_t extra = grains % ranges;
    const int64_t first = index * base + std::min(index, extra);
    const int64_t count = base + (index < extra ? 1 : 0);
    const int64_t begin = std::min(job_items_, first * job_grain_);
    const int64_t end = std::min(job_items_, (first + count) * job_grain_);
    if (begin < end) (*job_fn_)(begin, end);
    if (ranges_done_.fetch_add(1, std::memory_order_acq_rel) + 1 == ranges) {
      ranges_done_.notify_one();
    }
    c = claim_.load(std::memory_order_acquire);
  }
}

void ThreadPool::ParallelFor(int64_t n_items, const std::function<void(int64_t, int64_t)>& fn,
                             int64_t grain) {
  if (n_items <= 0) return;
  if (grain < 1) grain = 1;
  const int64_t grains = (n_items + grain - 1) / grain;
  const int64_t ranges =
      std::min<int64_t>({grains, static_cast<int64_t>(num_threads_) * kRangesPerThread,
                         static_cast<int64_t>(kMaxRanges)});
  if (num_threads_ == 1 || ranges <= 1) {
    fn(0, n_items);
    return;
  }
  job_fn_ = &fn;
  job_items_ = n_items;
  job_grain_ = grain;
  ranges_done_.store(0, std::memory_order_relaxed);
  const uint32_t generation = generation_.load(std::memory_order_relaxed) + 1;
  claim_.store((static_cast<uint64_t>(generation) << 32) | (static_cast<uint64_t>(ranges) << 16),
               std::memory_order_release);
  generation_.store(generation, std::memory_order_release);
  generation_.notify_all();

  RunRanges(generation);

  const int target = static_cast<int>(ranges);
  for (int spin = 0; spin < kSpinIterations; ++spin) {
    if (ranges_done_.load(std::memory_order_acquire) == target) break;
    CpuRelax();
  }
  for (int done = ranges_done_.load(std::memory_order_acquire); done != target;
       done = ranges_done_.load(std::memory_order_acquire)) {
    ranges_done_.wait(done, std::memory_order_acquire);
  }
  job_fn_ = nullptr;
}

void ThreadPool::WorkerLoop() {
  // Not a load: a job may have been published before this thread first ran.
  uint32_t seen = 0;
  while (true) {
    uint32_t now = generation_.load(std::memory_order_acquire);
    for (int spin = 0; now == seen && spin < kSpinIterations; ++spin) {
      CpuRelax();
      now = generation_.load(std::memory_order_acquire);
    }
    while (now == seen) {
      generation_.wait(seen, std::memory_order_acquire);
      now = generation_.load(std::memory_order_acquire);
    }
    seen = now;
    if (stop_.load(std::memory_order_acquire)) return;
    RunRanges(seen);
  }
}

}  // namespace wf::engine
