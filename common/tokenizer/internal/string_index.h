// Compact hash indexes for the tokenizer's vocabulary: StringIndex maps
// strings to dense ids (128k keys, ~1M lookups at load time, one per
// pre-token when encoding), PairIndex maps a pair of token ids to its merge.
//
// Each slot is one 64-bit word (32-bit hash tag, 32-bit id) and the key bytes
// are compared only on a tag match, so a lookup costs about two cache misses
// instead of the three of a general-purpose map; Prefetch() lets bulk callers
// overlap those misses.
//
// The index does not own the keys: the views given to Build() must outlive it
// and stay unchanged. Immutable after Build(); const methods are thread-safe.
#ifndef WF_COMMON_TOKENIZER_INTERNAL_STRING_INDEX_H_
#define WF_COMMON_TOKENIZER_INTERNAL_STRING_INDEX_H_

#include <cstdint>
#include <string_view>
#include <vector>

namespace wf::tokenizer::internal {

class StringIndex {
 public:
  static constexpr int32_t kNotFound = -1;

  // Indexes keys[id] for every id with include[id] (all ids if `include` is
  // empty). For duplicate keys the highest id wins if `last_wins`, otherwise
  // the lowest.
  void Build(std::vector<std::string_view> keys, const std::vector<bool>& include, bool last_wins);

  static uint64_t Hash(std::string_view key);
  int32_t Find(std::string_view key) const { return Find(key, Hash(key)); }
  // `hash` must be Hash(key).
  int32_t Find(std::string_view key, uint64_t hash) const;
  // Starts loading the slot that Find(key, hash) will read first.
  void Prefetch(uint64_t hash) const { __builtin_prefetch(&slots_[Slot(hash)]); }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  size_t Slot(uint64_t hash) const { return static_cast<size_t>(hash >> shift_); }

  std::vector<std::string_view> keys_;
  std::vector<uint64_t> slots_ = std::vector<uint64_t>(2, kEmpty);
  size_t mask_ = 0;
  int shift_ = 63;
};

// Open-addressing map from a (left id, right id) pair to its merge rank and
// result, filled once at load time. Insert keeps the first value of a
// repeated pair. Not thread-safe while inserting; const methods are.
class PairIndex {
 public:
  struct Merge {
    int32_t rank;
    int32_t result;
  };
  static constexpr Merge kNoMerge = {-1, -1};

  // Sizes the table for `n` pairs (load factor at most 2/3).
  void Reserve(size_t n);
  static uint64_t Key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }
  // Returns false if the pair was already present (its value is kept) or the
  // table is full.
  bool Insert(uint64_t key, Merge merge);
  Merge Find(uint64_t key) const {
    size_t s = Slot(key);
    while (true) {
      const Entry& e = slots_[s];
      if (e.key == key) return e.merge;
      if (e.key == kEmptyKey) return kNoMerge;
      s = (s + 1) & mask_;
    }
  }
  void Prefetch(uint64_t key) const { __builtin_prefetch(&slots_[Slot(key)]); }
  size_t size() const { return size_; }

 private:
  // Both ids of a pair are < 2^31, so this key never occurs.
  static constexpr uint64_t kEmptyKey = ~uint64_t{0};
  struct Entry {
    uint64_t key;
    Merge merge;
  };
  size_t Slot(uint64_t key) const { return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> shift_); }

  std::vector<Entry> slots_ = std::vector<Entry>(2, Entry{kEmptyKey, kNoMerge});
  size_t mask_ = 1;
  int shift_ = 63;
  size_t size_ = 0;
};

}  // namespace wf::tokenizer::internal

#endif  // WF_COMMON_TOKENIZER_INTERNAL_STRING_INDEX_H_
