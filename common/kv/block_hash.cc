#include "common/kv/block_hash.h"

#include <cstring>

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace wf::kv {
namespace {

// Token ids serialized little-endian whatever the host order, so hashes agree
// across machines.
void ToLittleEndian(absl::Span<const int32_t> tokens, std::vector<unsigned char>* bytes) {
  bytes->resize(tokens.size() * 4);
  unsigned char* out = bytes->data();
  for (int32_t t : tokens) {
    const auto u = static_cast<uint32_t>(t);
    out[0] = static_cast<unsigned char>(u);
    out[1] = static_cast<unsigned char>(u >> 8);
    out[2] = static_cast<unsigned char>(u >> 16);
    out[3] = static_cast<unsigned char>(u >> 24);
    out += 4;
  }
}

}  // namespace

uint64_t HashBlock(uint64_t parent_hash, absl::Span<const int32_t> block_tokens) {
  std::vector<unsigned char> bytes;
  ToLittleEndian(block_tokens, &bytes);
  return XXH3_64bits_withSeed(bytes.data(), bytes.size(), parent_hash);
}

void ExtendFullBlockHashes(absl::Span<const int32_t> tokens, int block_size,
                           std::vector<uint64_t>* hashes) {
  if (block_size <= 0) return;
  const size_t full = tokens.size() / static_cast<size_t>(block_size);
  std::vector<unsigned char> bytes;
  for (size_t b = hashes->size(); b < full; ++b) {
    const uint64_t parent = b == 0 ? kRootSeed : (*hashes)[b - 1];
    ToLittleEndian(tokens.subspan(b * block_size, block_size), &bytes);
    hashes->push_back(XXH3_64bits_withSeed(bytes.data(), bytes.size(), parent));
  }
}

std::vector<uint64_t> HashFullBlocks(absl::Span<const int32_t> tokens, int block_size) {
  std::vector<uint64_t> hashes;
  if (block_size > 0) hashes.reserve(tokens.size() / block_size);
  ExtendFullBlockHashes(tokens, block_size, &hashes);
  return hashes;
}

}  // namespace wf::kv
