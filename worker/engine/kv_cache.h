// Paged key/value cache storage for the attention layers.
//
// The cache is a pool of `num_blocks` fixed-size blocks. A block holds the K
// and V vectors (IEEE binary16) of `block_size` consecutive token positions of
// one sequence, for every layer and every KV head. A sequence owns a block
// table (the ids of its blocks, in position order) and a length (positions
// written so far): position p lives in block block_table[p / block_size], slot
// p % block_size.
//
// Storage layout: for each layer, K and V are separate arrays of blocks; one
// block is [n_head_kv][block_size][head_dim] halves, so the positions of one
// KV head are contiguous inside a block.
//
// This class is bookkeeping plus storage only: it does not know which
// sequence owns which block. A later scheduler / prefix cache may share
// blocks between sequences and keep reference counts on top of it.
//
// Threading: not thread-safe. The engine thread that owns the cache
// allocates and frees blocks; during a forward pass, worker threads write the
// K/V slots of distinct positions and read others concurrently, which is safe
// because no two threads write the same slot.
//
// Example:
//   BN_ASSIGN_OR_RETURN(auto cache, KvCache::Create({.n_layer = 30, .n_head_kv = 5,
//                                                    .head_dim = 128, .block_size = 16,
//                                                    .num_blocks = 256}));
//   SequenceKv seq;
//   BN_RETURN_IF_ERROR(cache->Reserve(&seq, prompt.size()));  // RESOURCE_EXHAUSTED if full
//   ... Forward() writes positions [seq.length, seq.length + n) and advances seq.length ...
//   cache->Release(&seq);
#ifndef WF_WORKER_ENGINE_KV_CACHE_H_
#define WF_WORKER_ENGINE_KV_CACHE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace wf::engine {

struct KvCacheConfig {
  int n_layer = 0;
  int n_head_kv = 0;
  int head_dim = 0;
  int block_size = 16;  // token positions per block
  int num_blocks = 0;
};

// The KV state of one sequence: its blocks and how many positions are filled.
// Owned by the caller (session or scheduler); the blocks belong to the cache
// and are returned with KvCache::Release().
struct SequenceKv {
  std::vector<int32_t> block_table = {};
  int32_t length = 0;
};

class KvCache {
 public:
  // INVALID_ARGUMENT naming the field if a dimension is not positive or the
  // total size overflows; RESOURCE_EXHAUSTED if the memory cannot be
  // allocated. Memory is reserved, not touched: pages are committed as
  // positions are written.
  static absl::StatusOr<std::unique_ptr<KvCache>> Create(const KvCacheConfig& config);

  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  const KvCacheConfig& config() const { return config_; }
  int block_size() const { return config_.block_size; }
  int num_blocks() const { return config_.num_blocks; }
  int num_free_blocks() const { return static_cast<int>(free_list_.size()); }
  int num_used_blocks() const { return num_blocks() - num_free_blocks(); }
  // Bytes of K+V storage for one token position over all layers.
  size_t bytes_per_token() const;
  // Bytes of the whole pool.
  size_t total_bytes() const;

  // Takes one free block. RESOURCE_EXHAUSTED when none is left.
  absl::StatusOr<int32_t> AllocateBlock();
  // Returns a block to the free list. FAILED_PRECONDITION for an id out of
  // range or a block that is not allocated (double free); the cache is then
  // unchanged.
  absl::Status FreeBlock(int32_t block);

  // Grows seq->block_table so it covers at least `n_positions` positions.
  // All or nothing: on RESOURCE_EXHAUSTED no block was taken. Never shrinks.
  absl::Status Reserve(SequenceKv* seq, int64_t n_positions);
  // Frees every block of `seq` and resets it to empty.
  void Release(SequenceKv* seq);

  // Block storage, [n_head_kv][block_size][head_dim] halves. `layer` and
  // `block` must be valid (not checked).
  uint16_t* KBlock(int layer, int32_t block) {
    return k_.get() + (static_cast<size_t>(layer) * config_.num_blocks + block) * block_elems_;
  }
  uint16_t* VBlock(int layer, int32_t block) {
    return v_.get() + (static_cast<size_t>(layer) * config_.num_blocks + block) * block_elems_;
  }
  const uint16_t* KBlock(int layer, int32_t block) const {
    return k_.get() + (static_cast<size_t>(layer) * config_.num_blocks + block) * block_elems_;
  }
  const uint16_t* VBlock(int layer, int32_t block) const {
    return v_.get() + (static_cast<size_t>(layer) * config_.num_blocks + block) * block_elems_;
  }

 private:
  explicit KvCache(const KvCacheConfig& config);

  KvCacheConfig config_;
  size_t block_elems_ = 0;  // halves per block per layer (K or V)
  std::unique_ptr<uint16_t[]> k_;
  std::unique_ptr<uint16_t[]> v_;
  std::vector<int32_t> free_list_;  // LIFO: recently freed blocks are still warm
  std::vector<bool> allocated_;
};

}  // namespace wf::engine

#endif  // WF_WORKER_ENGINE_KV_CACHE_H_
