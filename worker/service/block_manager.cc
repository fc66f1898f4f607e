#include "worker/service/block_manager.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "worker/engine/kv_cache.h"

namespace wf::service {

BlockManager::BlockManager(engine::KvCache* cache)
    : cache_(cache), blocks_(static_cast<size_t>(cache->num_blocks())) {}

absl::StatusOr<std::unique_ptr<BlockManager>> BlockManager::Create(engine::KvCache* cache) {
  if (cache == nullptr) {
    return absl::InvalidArgumentError("block manager: KV cache is null");
  }
  if (cache->num_used_blocks() != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("block manager: ", cache->num_used_blocks(), " of ", cache->num_blocks(),
                     " KV cache blocks are already allocated; the cache must be empty"));
  }
  return std::unique_ptr<BlockManager>(new BlockManager(cache));
}

BlockManager::~BlockManager() {
  while (!lru_.empty()) {
    const int32_t b = lru_.front();
    Evict(b);
    (void)cache_->FreeBlock(b);
  }
}

int BlockManager::MatchPrefix(absl::Span<const uint64_t> hashes) const {
  int n = 0;
  for (uint64_t h : hashes) {
    if (!cached_.contains(h)) break;
    ++n;
  }
  return n;
}

int BlockManager::AcquirePrefix(absl::Span<const uint64_t> hashes, int max_blocks,
                                engine::SequenceKv* seq, bool record_stats) {
  if (!seq->block_table.empty() || seq->length != 0) return 0;
  const int limit = std::max(0, std::min(max_blocks, static_cast<int>(hashes.size())));
  int matched = 0;
  for (; matched < limit; ++matched) {
    auto it = cached_.find(hashes[matched]);
    if (it == cached_.end()) break;
    const int32_t b = it->second;
    BlockInfo& info = blocks_[b];
    if (info.ref_count == 0) lru_.erase(info.lru_pos);
    ++info.ref_count;
    seq->block_table.push_back(b);
  }
  seq->length = matched * block_size();
  if (record_stats) {
    ++stats_.prefix_queries;
    stats_.prefix_query_tokens += static_cast<uint64_t>(hashes.size()) * block_size();
    stats_.prefix_hit_tokens += static_cast<uint64_t>(matched) * block_size();
  }
  return matched;
}

bool BlockManager::CanAcquireAndReserve(absl::Span<const uint64_t> hashes, int max_blocks,
                                        int64_t n_positions) const {
  const int limit = std::max(0, std::min(max_blocks, static_cast<int>(hashes.size())));
  int matched = 0;
  int revived = 0;  // matched blocks that would leave the evictable pool
  for (; matched < limit; ++matched) {
    auto it = cached_.find(hashes[matched]);
    if (it == cached_.end()) break;
    if (blocks_[it->second].ref_count == 0) ++revived;
  }
  const int64_t need = (n_positions + block_size() - 1) / block_size() - matched;
  return need <= num_free_blocks() - revived;
}

int64_t BlockManager::ReservablePositions(const engine::SequenceKv& seq) const {
  return (static_cast<int64_t>(seq.block_table.size()) + num_free_blocks()) * block_size();
}

absl::Status BlockManager::Reserve(engine::SequenceKv* seq, int64_t n_positions) {
  const int64_t have = static_cast<int64_t>(seq->block_table.size());
  const int64_t need = (n_positions + block_size() - 1) / block_size() - have;
  if (need <= 0) return absl::OkStatus();
  if (need > num_free_blocks()) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "KV cache full: ", n_positions, " positions need ", need, " more blocks of ",
        block_size(), " positions, only ", num_free_blocks(), " of ", num_total_blocks(),
        " are free or evictable"));
  }
  std::vector<uint64_t> evicted;
  for (int64_t i = 0; i < need; ++i) {
    int32_t b;
    if (cache_->num_free_blocks() > 0) {
      // Cannot fail: a free block exists.
      b = cache_->AllocateBlock().value();
    } else {
      b = lru_.front();
      evicted.push_back(Evict(b));
    }
    blocks_[b].ref_count = 1;
    seq->block_table.push_back(b);
  }
  if (!evicted.empty()) {
    stats_.evicted_blocks += evicted.size();
    AddEvent(KvEvent::Kind::kRemoved, std::move(evicted));
  }
  return absl::OkStatus();
}

void BlockManager::Commit(const engine::SequenceKv& seq, absl::Span<const uint64_t> hashes) {
  const size_t n = std::min({hashes.size(), static_cast<size_t>(seq.length / block_size()),
                             seq.block_table.size()});
  std::vector<uint64_t> run;
  std::optional<uint64_t> run_parent;
  auto flush = [&] {
    if (!run.empty()) AddEvent(KvEvent::Kind::kStored, std::move(run), run_parent);
    run.clear();
  };
  for (size_t i = 0; i < n; ++i) {
    const int32_t b = seq.block_table[i];
    BlockInfo& info = blocks_[b];
    if (info.cached || cached_.contains(hashes[i])) {
      // Already shared, or a private duplicate of a cached block: either way
      // the chain of newly stored hashes is broken here.
      flush();
      continue;
    }
    info.cached = true;
    info.hash = hashes[i];
    cached_.emplace(hashes[i], b);
    if (run.empty()) run_parent = i == 0 ? std::nullopt : std::optional<uint64_t>(hashes[i - 1]);
    run.push_back(hashes[i]);
  }
  flush();
}

void BlockManager::Release(engine::SequenceKv* seq) {
  for (auto it = seq->block_table.rbegin(); it != seq->block_table.rend(); ++it) {
    const int32_t b = *it;
    BlockInfo& info = blocks_[b];
    if (--info.ref_count > 0) continue;
    if (info.cached) {
      info.lru_pos = lru_.insert(lru_.end(), b);
    } else {
      // Only blocks handed out by Reserve() reach here; the id is valid.
      (void)cache_->FreeBlock(b);
    }
  }
  seq->block_table.clear();
  seq->length = 0;
}

void BlockManager::ClearCache() {
  std::vector<uint64_t> evicted;
  while (!lru_.empty()) {
    const int32_t b = lru_.front();
    evicted.push_back(Evict(b));
    (void)cache_->FreeBlock(b);
  }
  if (evicted.empty()) return;
  stats_.cleared_blocks += evicted.size();
  if (cached_.empty()) {
    AddEvent(KvEvent::Kind::kAllCleared, {});
  } else {
    AddEvent(KvEvent::Kind::kRemoved, std::move(evicted));
  }
}

BlockManager::Snapshot BlockManager::TakeSnapshot() const {
  Snapshot s;
  s.last_sequence_number = next_sequence_number_ - 1;
  s.hashes.reserve(cached_.size());
  for (const auto& [hash, block] : cached_) s.hashes.push_back(hash);
  std::sort(s.hashes.begin(), s.hashes.end());
  return s;
}

std::vector<KvEvent> BlockManager::TakeEvents() {
  std::vector<KvEvent> out;
  out.swap(events_);
  return out;
}

uint64_t BlockManager::Evict(int32_t block) {
  BlockInfo& info = blocks_[block];
  lru_.erase(info.lru_pos);
  cached_.erase(info.hash);
  info.cached = false;
  info.ref_count = 0;
  return info.hash;
}

void BlockManager::AddEvent(KvEvent::Kind kind, std::vector<uint64_t> hashes,
                            std::optional<uint64_t> parent) {
  KvEvent& e = events_.emplace_back();
  e.sequence_number = next_sequence_number_++;
  e.kind = kind;
  e.block_hashes = std::move(hashes);
  e.parent_hash = parent;
}

}  // namespace wf::service
