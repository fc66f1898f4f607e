#include "worker/engine/kv_cache.h"

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include <sys/mman.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "worker/kernels/kernels.h"

namespace wf::engine {
namespace {

// Asks the kernel to back the page-aligned interior of [p, p + bytes) with
// transparent huge pages (a hint; hosts in "madvise" THP mode need it).
// Attention reads one head's block_size x head_dim run (4 KB for 2B-4T) of
// each block, a block apart: with 4 KB pages every run is a TLB miss too.
void AdviseHugePages(void* p, size_t bytes) {
#ifdef MADV_HUGEPAGE
  constexpr uintptr_t kPage = 4096;
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + kPage - 1) & ~(kPage - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + bytes) & ~(kPage - 1);
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#else
  (void)p;
  (void)bytes;
#endif
}

// Allocates n uninitialized elements (large allocations come from mmap, and
// pages are only committed when positions are written) with the huge-page
// hint; false when the memory is not there.
template <typename T>
bool AllocatePool(size_t n, std::unique_ptr<T[]>* out) {
  out->reset(new (std::nothrow) T[n]);
  if (*out == nullptr) return false;
  AdviseHugePages(out->get(), n * sizeof(T));
  return true;
}

}  // namespace

const char* KvCacheTypeName(KvCacheType type) { return type == KvCacheType::kQ8 ? "q8" : "f16"; }

absl::StatusOr<KvCacheType> ParseKvCacheType(std::string_view name) {
  std::string lower(name.substr(0, 64));
  for (char& ch : lower) ch = absl::ascii_tolower(static_cast<unsigned char>(ch));
  if (lower == "f16") return KvCacheType::kF16;
  if (lower == "q8") return KvCacheType::kQ8;
  return absl::InvalidArgumentError(absl::StrCat("unknown KV cache type '", lower, "' (expected f16 or q8)"));
}

KvCache::KvCache(const KvCacheConfig& config)
    : config_(config),
      block_elems_(static_cast<size_t>(config.n_head_kv) * config.block_size * config.head_dim),
      block_scales_(block_elems_ / kernels::kQ8Block) {}

absl::StatusOr<std::unique_ptr<KvCache>> KvCache::Create(const KvCacheConfig& config) {
  const struct {
    const char* name;
    int value;
  } fields[] = {{"n_layer", config.n_layer},
                {"n_head_kv", config.n_head_kv},
                {"head_dim", config.head_dim},
                {"block_size", config.block_size},
                {"num_blocks", config.num_blocks}};
  for (const auto& f : fields) {
    if (f.value <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("KV cache: ", f.name, " must be positive, got ", f.value));
    }
  }
  if (config.type == KvCacheType::kQ8 && config.head_dim % kernels::kQ8Block != 0) {
    return absl::InvalidArgumentError(absl::StrCat("KV cache: q8 needs head_dim to be a multiple of ",
                                                   kernels::kQ8Block, ", got ", config.head_dim));
  }
  // Elements per K (or V) array: n_layer * num_blocks * block elements.
  unsigned __int128 elems = static_cast<unsigned __int128>(config.n_layer) * config.num_blocks *
                            config.n_head_kv * config.block_size * config.head_dim;
  if (elems * 2 * sizeof(uint16_t) > std::numeric_limits<size_t>::max() / 2) {
    return absl::InvalidArgumentError("KV cache: total size overflows");
  }
  std::unique_ptr<KvCache> cache(new KvCache(config));
  const size_t n = static_cast<size_t>(elems);
  const bool allocated =
      config.type == KvCacheType::kQ8
          ? AllocatePool(n, &cache->k8_) && AllocatePool(n, &cache->v8_) &&
                AllocatePool(n / kernels::kQ8Block, &cache->ks_) && AllocatePool(n / kernels::kQ8Block, &cache->vs_)
          : AllocatePool(n, &cache->k_) && AllocatePool(n, &cache->v_);
  if (!allocated) {
    return absl::ResourceExhaustedError(absl::StrCat("KV cache: cannot allocate ", cache->total_bytes(), " bytes"));
  }
  cache->allocated_.assign(config.num_blocks, false);
  cache->free_list_.reserve(config.num_blocks);
  // Highest id at the bottom so the first allocations get 0, 1, 2, ...
  for (int32_t b = config.num_blocks - 1; b >= 0; --b) cache->free_list_.push_back(b);
  return cache;
}

size_t KvCache::BytesPerToken(const KvCacheConfig& config) {
  const size_t values = static_cast<size_t>(config.n_layer) * config.n_head_kv * config.head_dim;
  if (config.type == KvCacheType::kQ8) {
    return 2 * (values * sizeof(int8_t) + values / kernels::kQ8Block * sizeof(float));
  }
  return 2 * sizeof(uint16_t) * values;
}

size_t KvCache::total_bytes() const {
  return bytes_per_token() * config_.block_size * static_cast<size_t>(config_.num_blocks);
}

absl::StatusOr<int32_t> KvCache::AllocateBlock() {
  if (free_list_.empty()) {
    return absl::ResourceExhaustedError(absl::StrCat("KV cache full: all ", config_.num_blocks,
                                                     " blocks of ", config_.block_size,
                                                     " positions are in use"));
  }
  const int32_t b = free_list_.back();
  free_list_.pop_back();
  allocated_[b] = true;
  return b;
}

absl::Status KvCache::FreeBlock(int32_t block) {
  if (block < 0 || block >= config_.num_blocks) {
    return absl::FailedPreconditionError(
        absl::StrCat("KV cache: block id ", block, " out of range [0, ", config_.num_blocks, ")"));
  }
  if (!allocated_[block]) {
    return absl::FailedPreconditionError(
        absl::StrCat("KV cache: block ", block, " freed but not allocated"));
  }
  allocated_[block] = false;
  free_list_.push_back(block);
  return absl::OkStatus();
}

absl::Status KvCache::Reserve(SequenceKv* seq, int64_t n_positions) {
  const int64_t have = static_cast<int64_t>(seq->block_table.size());
  const int64_t need = (n_positions + config_.block_size - 1) / config_.block_size;
  if (need <= have) return absl::OkStatus();
  if (need - have > num_free_blocks()) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "KV cache full: ", n_positions, " positions need ", need - have, " more blocks of ",
        config_.block_size, ", only ", num_free_blocks(), " of ", config_.num_blocks, " are free"));
  }
  for (int64_t i = have; i < need; ++i) {
    // Cannot fail: enough free blocks were checked above.
    seq->block_table.push_back(AllocateBlock().value());
  }
  return absl::OkStatus();
}

void KvCache::Release(SequenceKv* seq) {
  for (int32_t b : seq->block_table) {
    // A block table only ever holds blocks this cache handed out; a failure
    // here would mean the caller corrupted it, and freeing the rest is still
    // the best we can do.
    (void)FreeBlock(b);
  }
  seq->block_table.clear();
  seq->length = 0;
}

}  // namespace wf::engine
