// Chained hashes of KV-cache blocks: the identity of a cached prefix, shared
// by every worker and router.
//
// A prompt is cut into blocks of `block_size` tokens; only full blocks are
// hashed. Block i's hash covers its own tokens and, through its parent's
// hash, every token before it, so equal hashes mean equal prefixes (up to
// 64-bit collisions). The scheme is part of the gRPC contract
// (proto/wrinklefree/v1/worker.proto, "KV block hashes") and must never
// change silently; kBlockHashScheme names it in GetModelInfo.
//
//   hash(block 0) = XXH3_64bits_withSeed(bytes(tokens of block 0), kRootSeed)
//   hash(block i) = XXH3_64bits_withSeed(bytes(tokens of block i), hash(block i-1))
//
// where bytes() is each token id as a 4-byte little-endian two's-complement
// integer, in order, and kRootSeed = 0. XXH3 is xxHash 0.8's 64-bit XXH3
// (Debian's libxxhash). Any language with an XXH3 binding can reproduce it.
//
// Example:
//   std::vector<uint64_t> hashes = wf::kv::HashFullBlocks(prompt_ids, 16);
//   // hashes.size() == prompt_ids.size() / 16
#ifndef WF_COMMON_KV_BLOCK_HASH_H_
#define WF_COMMON_KV_BLOCK_HASH_H_

#include <cstdint>
#include <vector>

#include "absl/types/span.h"

namespace wf::kv {

// The name reported to routers; bump it if the formula above ever changes.
inline constexpr char kBlockHashScheme[] = "xxh3-64-chained-v1";
inline constexpr uint64_t kRootSeed = 0;

// Hash of one block given its parent's hash (kRootSeed for the first block).
uint64_t HashBlock(uint64_t parent_hash, absl::Span<const int32_t> block_tokens);

// Hashes of the floor(tokens.size() / block_size) full blocks of `tokens`,
// first block first. block_size must be positive (an empty result otherwise).
std::vector<uint64_t> HashFullBlocks(absl::Span<const int32_t> tokens, int block_size);

// Appends to *hashes the hashes of the full blocks of `tokens` that are not
// hashed yet (hashes->size() blocks are taken as already done, and their last
// entry is the parent of the next). Lets a caller extend hashes as a sequence
// grows without rehashing from the start.
void ExtendFullBlockHashes(absl::Span<const int32_t> tokens, int block_size,
                           std::vector<uint64_t>* hashes);

}  // namespace wf::kv

#endif  // WF_COMMON_KV_BLOCK_HASH_H_
