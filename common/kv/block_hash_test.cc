#include "common/kv/block_hash.h"

#include <cstdint>
#include <numeric>
#include <vector>

#include "gtest/gtest.h"

namespace wf::kv {
namespace {

std::vector<int32_t> Iota(int32_t from, int32_t n) {
  std::vector<int32_t> v(n);
  std::iota(v.begin(), v.end(), from);
  return v;
}

// Values computed independently with the Python `xxhash` package (3.2.0):
//   xxh3_64_intdigest(struct.pack('<16i', *range(16)), seed=0)
//   xxh3_64_intdigest(struct.pack('<16i', *range(16, 32)), seed=<previous>)
//   xxh3_64_intdigest(struct.pack('<2i', -1, 128255), seed=0)
// so the scheme stays reproducible outside C++.
TEST(BlockHashTest, MatchesPublishedFormula) {
  const std::vector<int32_t> tokens = Iota(0, 40);
  const std::vector<uint64_t> h = HashFullBlocks(tokens, 16);
  ASSERT_EQ(h.size(), 2u);  // the 8 trailing tokens are not a full block
  EXPECT_EQ(h[0], 8773583392624668237ull);
  EXPECT_EQ(h[1], 10421089986442883640ull);
  EXPECT_EQ(HashBlock(kRootSeed, std::vector<int32_t>{-1, 128255}), 16056170533114055457ull);
}

TEST(BlockHashTest, ChainsThroughTheParent) {
  std::vector<int32_t> a = Iota(0, 32);
  std::vector<int32_t> b = a;
  b[3] = 999;  // differs only in the first block
  const auto ha = HashFullBlocks(a, 16);
  const auto hb = HashFullBlocks(b, 16);
  EXPECT_NE(ha[0], hb[0]);
  EXPECT_NE(ha[1], hb[1]);  // same second-block tokens, different parent
  EXPECT_EQ(ha[1], HashBlock(ha[0], absl::MakeConstSpan(a).subspan(16, 16)));
}

TEST(BlockHashTest, ExtendEqualsHashingFromScratch) {
  const std::vector<int32_t> tokens = Iota(100, 70);
  std::vector<uint64_t> grown;
  for (size_t n = 0; n <= tokens.size(); ++n) {
    ExtendFullBlockHashes(absl::MakeConstSpan(tokens).first(n), 8, &grown);
    EXPECT_EQ(grown, HashFullBlocks(absl::MakeConstSpan(tokens).first(n), 8)) << n;
  }
  EXPECT_EQ(grown.size(), 8u);
}

TEST(BlockHashTest, BadBlockSizeHashesNothing) {
  EXPECT_TRUE(HashFullBlocks(Iota(0, 10), 0).empty());
  EXPECT_TRUE(HashFullBlocks(Iota(0, 10), -4).empty());
  EXPECT_TRUE(HashFullBlocks({}, 16).empty());
}

}  // namespace
}  // namespace wf::kv
