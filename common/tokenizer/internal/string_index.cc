#include "common/tokenizer/internal/string_index.h"

#include <functional>
#include <utility>

namespace wf::tokenizer::internal {

uint64_t StringIndex::Hash(std::string_view key) {
  // Fibonacci scrambling so the top bits (the slot) and the low 32 bits (the
  // tag) are both well mixed.
  return static_cast<uint64_t>(std::hash<std::string_view>{}(key)) * 0x9E3779B97F4A7C15ull;
}

void StringIndex::Build(std::vector<std::string_view> keys, const std::vector<bool>& include,
                        bool last_wins) {
  keys_ = std::move(keys);
  size_t capacity = 2;
  int bits = 1;
  while (capacity < 2 * keys_.size()) {
    capacity <<= 1;
    ++bits;
  }
  slots_.assign(capacity, kEmpty);
  mask_ = capacity - 1;
  shift_ = 64 - bits;
  for (size_t id = 0; id < keys_.size(); ++id) {
    if (!include.empty() && !include[id]) continue;
    const uint64_t h = Hash(keys_[id]);
    const uint32_t tag = static_cast<uint32_t>(h);
    size_t s = Slot(h);
    while (true) {
      const uint64_t v = slots_[s];
      if (v == kEmpty) {
        slots_[s] = (uint64_t{tag} << 32) | id;
        break;
      }
      if (static_cast<uint32_t>(v >> 32) == tag && keys_[static_cast<uint32_t>(v)] == keys_[id]) {
        if (last_wins) slots_[s] = (uint64_t{tag} << 32) | id;
        break;
      }
      s = (s + 1) & mask_;
    }
  }
}

int32_t StringIndex::Find(std::string_view key, uint64_t hash) const {
  const uint32_t tag = static_cast<uint32_t>(hash);
  size_t s = Slot(hash);
  while (true) {
    const uint64_t v = slots_[s];
    if (v == kEmpty) return kNotFound;
    if (static_cast<uint32_t>(v >> 32) == tag && keys_[static_cast<uint32_t>(v)] == key) {
      return static_cast<int32_t>(static_cast<uint32_t>(v));
    }
    s = (s + 1) & mask_;
  }
}

void PairIndex::Reserve(size_t n) {
  size_t capacity = 2;
  int bits = 1;
  while (capacity < n + n / 2 + 1) {
    capacity <<= 1;
    ++bits;
  }
  slots_.assign(capacity, Entry{kEmptyKey, kNoMerge});
  mask_ = capacity - 1;
  shift_ = 64 - bits;
  size_ = 0;
}

bool PairIndex::Insert(uint64_t key, Merge merge) {
  if (size_ + 1 >= slots_.size()) return false;
  size_t s = Slot(key);
  while (true) {
    Entry& e = slots_[s];
    if (e.key == key) return false;
    if (e.key == kEmptyKey) {
      e = Entry{key, merge};
      ++size_;
      return true;
    }
    s = (s + 1) & mask_;
  }
}

}  // namespace wf::tokenizer::internal
