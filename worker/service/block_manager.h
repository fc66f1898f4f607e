// Reference-counted KV block management with prefix reuse, on top of an
// engine::KvCache block pool.
//
// Blocks are in one of three states:
//   free       on the KvCache free list;
//   used       referenced by at least one sequence's block table;
//   evictable  registered under a block hash (see common/kv/block_hash.h) but
//              referenced by no sequence: its K/V stay valid and a later
//              request with the same prefix can take it back, until the
//              block is needed for new positions (least recently released
//              first).
// A block registered under a hash ("cached") is full and only ever read: a
// sequence writes positions >= its length, and the blocks it takes from the
// cache lie entirely below its length. Reference counts make a cached block
// safely shared by several sequences.
//
// Events: every change to the set of cached hashes is recorded as a KvEvent
// (numbered 1, 2, 3, ... without gaps) so a router can mirror the set:
// TakeSnapshot() plus every later event reproduces it exactly. Pending events
// accumulate until TakeEvents() moves them out; the owner must drain them
// regularly.
//
// Threading: not thread-safe; used by the engine thread only. The KvCache
// must outlive the manager, and nothing else may allocate or free its blocks
// while the manager exists.
//
// Example:
//   BN_ASSIGN_OR_RETURN(auto blocks, BlockManager::Create(cache.get()));
//   std::vector<uint64_t> hashes = wf::kv::HashFullBlocks(prompt, blocks->block_size());
//   engine::SequenceKv kv;
//   blocks->AcquirePrefix(hashes, (prompt.size() - 1) / blocks->block_size(), &kv);
//   BN_RETURN_IF_ERROR(blocks->Reserve(&kv, prompt.size()));
//   ... Forward() computes tokens [kv.length, prompt.size()) ...
//   blocks->Commit(kv, hashes);
//   blocks->Release(&kv);
#ifndef WF_WORKER_SERVICE_BLOCK_MANAGER_H_
#define WF_WORKER_SERVICE_BLOCK_MANAGER_H_

#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "worker/engine/kv_cache.h"

namespace wf::service {

// One change to the set of cached block hashes.
struct KvEvent {
  enum class Kind {
    kStored,      // block_hashes were added, in chain order
    kRemoved,     // block_hashes were evicted
    kAllCleared,  // the cached set is now empty
  };
  uint64_t sequence_number = 0;  // 1, 2, 3, ... contiguous, never reused
  Kind kind = Kind::kStored;
  std::vector<uint64_t> block_hashes = {};
  // kStored only: the hash of the block preceding block_hashes[0] in its
  // chain; nullopt when block_hashes[0] is the first block of a prompt.
  std::optional<uint64_t> parent_hash = std::nullopt;
};

class BlockManager {
 public:
  // Counters since creation.
  struct Stats {
    // AcquirePrefix calls that recorded stats (one per request admission).
    uint64_t prefix_queries = 0;
    // Tokens of the full blocks looked up: hashes.size() * block_size per
    // query. The partial last block of a prompt can never hit, so it is not
    // counted; hit rate = prefix_hit_tokens / prefix_query_tokens.
    uint64_t prefix_query_tokens = 0;
    // Tokens taken from the cache: matched blocks * block_size.
    uint64_t prefix_hit_tokens = 0;
    // Cached blocks evicted by Reserve() to make room.
    uint64_t evicted_blocks = 0;
    // Cached blocks dropped by ClearCache().
    uint64_t cleared_blocks = 0;
  };

  struct Snapshot {
    uint64_t last_sequence_number = 0;  // 0 if no event was ever recorded
    std::vector<uint64_t> hashes = {};  // every cached hash, ascending
  };

  // `cache` is not owned and must outlive the manager. INVALID_ARGUMENT for a
  // null cache; FAILED_PRECONDITION if some of its blocks are already
  // allocated (the manager must account for every block).
  static absl::StatusOr<std::unique_ptr<BlockManager>> Create(engine::KvCache* cache);

  BlockManager(const BlockManager&) = delete;
  BlockManager& operator=(const BlockManager&) = delete;
  // Returns the evictable blocks to the KvCache. Blocks still referenced by a
  // sequence are left allocated (the caller should have released them).
  ~BlockManager();

  int block_size() const { return cache_->block_size(); }
  int num_total_blocks() const { return cache_->num_blocks(); }
  // Blocks a Reserve() can take: the free list plus the evictable blocks.
  int num_free_blocks() const { return cache_->num_free_blocks() + static_cast<int>(lru_.size()); }
  // Blocks referenced by at least one sequence.
  int num_used_blocks() const { return num_total_blocks() - num_free_blocks(); }
  // Blocks registered under a hash, referenced or evictable.
  int num_cached_blocks() const { return static_cast<int>(cached_.size()); }
  int num_evictable_blocks() const { return static_cast<int>(lru_.size()); }
  const Stats& stats() const { return stats_; }

  // Number of leading `hashes` that are cached (the longest reusable
  // prefix, in blocks). No side effects.
  int MatchPrefix(absl::Span<const uint64_t> hashes) const;

  // `seq` must be empty (no blocks, length 0); otherwise nothing happens and
  // 0 is returned. Takes a reference on the blocks of the longest cached
  // prefix of `hashes`, at most `max_blocks` of them, appends them to
  // seq->block_table and sets seq->length = matched * block_size. Returns the
  // number of matched blocks. With `record_stats`, counts one query of
  // hashes.size() * block_size tokens and matched * block_size hit tokens
  // (see Stats); a caller re-admitting a preempted request passes false so a
  // request is counted once.
  int AcquirePrefix(absl::Span<const uint64_t> hashes, int max_blocks, engine::SequenceKv* seq,
                    bool record_stats = true);

  // Whether AcquirePrefix(hashes, max_blocks, <empty seq>) followed by
  // Reserve(seq, n_positions) would succeed. No side effects.
  bool CanAcquireAndReserve(absl::Span<const uint64_t> hashes, int max_blocks,
                            int64_t n_positions) const;

  // Positions `seq` can grow to without preempting anyone: its reserved
  // positions plus every free or evictable block.
  int64_t ReservablePositions(const engine::SequenceKv& seq) const;

  // Grows seq->block_table to cover `n_positions` positions. Takes blocks
  // from the free list first, then evicts evictable blocks, least recently
  // released first (recording one kRemoved event for the call). All or
  // nothing: RESOURCE_EXHAUSTED (saying how many blocks were needed and how
  // many are free) and no change when there are not enough blocks. Never
  // shrinks.
  absl::Status Reserve(engine::SequenceKv* seq, int64_t n_positions);

  // Registers block i of `seq` under hashes[i] for i in [0, hashes.size()),
  // so later requests can share it. Only full blocks are registered: entries
  // with (i + 1) * block_size > seq.length are ignored. A block that is
  // already registered is skipped. If hashes[i] is already cached in another
  // block (the same prefix was computed twice concurrently), this block stays
  // private and is freed on release. Records kStored events for the newly
  // registered hashes: one per run of consecutive blocks, with its parent.
  void Commit(const engine::SequenceKv& seq, absl::Span<const uint64_t> hashes);

  // Drops the references of `seq` and resets it to empty. Cached blocks left
  // without references become evictable; the sequence's blocks are released
  // last-to-first, so its first block is the last of them to be evicted
  // (a shorter shared prefix outlives its longer extensions). Private blocks
  // return to the free list.
  void Release(engine::SequenceKv* seq);

  // Evicts every evictable block. Records kAllCleared if no cached block
  // remains afterwards, else kRemoved with the evicted hashes; nothing if no
  // block was evictable.
  void ClearCache();

  // Every cached hash now, consistent with the events numbered up to
  // last_sequence_number (applying the later events to it gives the cached
  // set at the time those events were taken).
  Snapshot TakeSnapshot() const;

  // Moves out the pending events, oldest first.
  std::vector<KvEvent> TakeEvents();

  // For tests and debugging: references held on `block` (a valid id), and
  // whether it is registered under a hash.
  int ref_count(int32_t block) const { return blocks_[block].ref_count; }
  bool is_cached(int32_t block) const { return blocks_[block].cached; }

 private:
  struct BlockInfo {
    int ref_count = 0;
    bool cached = false;
    uint64_t hash = 0;                        // valid if cached
    std::list<int32_t>::iterator lru_pos;     // valid if evictable
  };

  explicit BlockManager(engine::KvCache* cache);

  // Unregisters an evictable block and takes it off the LRU list; the block
  // stays allocated in the KvCache. Returns its hash.
  uint64_t Evict(int32_t block);
  void AddEvent(KvEvent::Kind kind, std::vector<uint64_t> hashes,
                std::optional<uint64_t> parent = std::nullopt);

  engine::KvCache* cache_;
  std::vector<BlockInfo> blocks_;
  absl::flat_hash_map<uint64_t, int32_t> cached_;  // hash -> block
  std::list<int32_t> lru_;  // evictable blocks, least recently released first
  std::vector<KvEvent> events_;
  uint64_t next_sequence_number_ = 1;
  Stats stats_;
};

}  // namespace wf::service

#endif  // WF_WORKER_SERVICE_BLOCK_MANAGER_H_
