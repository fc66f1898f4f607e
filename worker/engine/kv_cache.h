// Paged key/value cache storage for the attention layers.
//
// The cache is a pool of `num_blocks` fixed-size blocks. A block holds the K
// and V vectors of `block_size` consecutive token positions of one sequence,
// for every layer and every KV head, in one of two element types:
//   f16 (default): IEEE binary16, what bitnet.cpp keeps (the golden outputs);
//   q8: int8 codes with one float scale per 32 values (kernels::kQ8Block),
//       0.56x the bytes of f16 for head_dim 128, so attention over a long
//       context reads about half as much and the same memory holds 1.8x the
//       tokens; scores and outputs drift slightly from f16. A sequence owns a block
// table (the ids of its blocks, in position order) and a length (positions
// written so far): position p lives in block block_table[p / block_size], slot
// p % block_size.
//
// Storage layout: for each layer, K and V are separate arrays of blocks; one
// block is [n_head_kv][block_size][head_dim] elements (halves, or int8 codes
// plus a [n_head_kv][block_size][head_dim / 32] array of float scales), so
// the positions of one KV head are contiguous inside a block.
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
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace wf::engine {

enum class KvCacheType {
  kF16 = 0,
  kQ8 = 1,
};

// "f16" / "q8"; ParseKvCacheType accepts those (case-insensitive) and
// returns INVALID_ARGUMENT naming the value otherwise.
const char* KvCacheTypeName(KvCacheType type);
absl::StatusOr<KvCacheType> ParseKvCacheType(std::string_view name);

struct KvCacheConfig {
  int n_layer = 0;
  int n_head_kv = 0;
  int head_dim = 0;
  int block_size = 16;  // token positions per block
  int num_blocks = 0;
  KvCacheType type = KvCacheType::kF16;  // kQ8 needs head_dim % 32 == 0
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
  // INVALID_ARGUMENT naming the field if a dimension is not positive, if q8
  // is asked with a head_dim that is not a multiple of 32, or if the total
  // size overflows; RESOURCE_EXHAUSTED if the memory cannot be
  // allocated. Memory is reserved, not touched: pages are committed as
  // positions are written.
  static absl::StatusOr<std::unique_ptr<KvCache>> Create(const KvCacheConfig& config);

  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  const KvCacheConfig& config() const { return config_; }
  KvCacheType type() const { return config_.type; }
  int block_size() const { return config_.block_size; }
  int num_blocks() const { return config_.num_blocks; }
  int num_free_blocks() const { return static_cast<int>(free_list_.size()); }
  int num_used_blocks() const { return num_blocks() - num_free_blocks(); }
  // Bytes of K+V storage for one token position over all layers.
  size_t bytes_per_token() const { return BytesPerToken(config_); }
  // The same for a cache not (yet) created; the geometry must be valid.
  static size_t BytesPerToken(const KvCacheConfig& config);
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

  // f16 block storage, [n_head_kv][block_size][head_dim] halves. `layer` and
  // `block` must be valid, and the type f16 (not checked).
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
  // q8 block storage: codes [n_head_kv][block_size][head_dim] and scales
  // [n_head_kv][block_size][head_dim / 32]. `layer` and `block` must be
  // valid, and the type q8 (not checked).
  int8_t* KBlockQ8(int layer, int32_t block) { return k8_.get() + BlockIndex(layer, block) * block_elems_; }
  int8_t* VBlockQ8(int layer, int32_t block) { return v8_.get() + BlockIndex(layer, block) * block_elems_; }
  float* KScalesQ8(int layer, int32_t block) { return ks_.get() + BlockIndex(layer, block) * block_scales_; }
  float* VScalesQ8(int layer, int32_t block) { return vs_.get() + BlockIndex(layer, block) * block_scales_; }
  const int8_t* KBlockQ8(int layer, int32_t block) const {
    return k8_.get() + BlockIndex(layer, block) * block_elems_;
  }
  const int8_t* VBlockQ8(int layer, int32_t block) const {
    return v8_.get() + BlockIndex(layer, block) * block_elems_;
  }
  const float* KScalesQ8(int layer, int32_t block) const {
    return ks_.get() + BlockIndex(layer, block) * block_scales_;
  }
  const float* VScalesQ8(int layer, int32_t block) const {
    return vs_.get() + BlockIndex(layer, block) * block_scales_;
  }

 private:
  explicit KvCache(const KvCacheConfig& config);
  size_t BlockIndex(int layer, int32_t block) const {
    return static_cast<size_t>(layer) * config_.num_blocks + block;
  }

  KvCacheConfig config_;
  size_t block_elems_ = 0;   // elements per block per layer (K or V)
  size_t block_scales_ = 0;  // q8 scales per block per layer (K or V)
  std::unique_ptr<uint16_t[]> k_;  // f16
  std::unique_ptr<uint16_t[]> v_;
  std::unique_ptr<int8_t[]> k8_;  // q8
  std::unique_ptr<int8_t[]> v8_;
  std::unique_ptr<float[]> ks_;
  std::unique_ptr<float[]> vs_;
  std::vector<int32_t> free_list_;  // LIFO: recently freed blocks are still warm
  std::vector<bool> allocated_;
};

}  // namespace wf::engine

#endif  // WF_WORKER_ENGINE_KV_CACHE_H_
