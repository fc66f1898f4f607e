#include "common/tokenizer/tokenizer.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <functional>
#include <mutex>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "common/tokenizer/internal/regex.h"
#include "common/tokenizer/internal/string_index.h"
#include "common/string_view_compat.h"
#include "common/tokenizer/internal/utf8.h"

namespace wf::tokenizer {
namespace {

using internal::Regex;

// llama.cpp's default BPE pre-tokenizer (src/llama-vocab.cpp, pre type
// "default"): applied in sequence, each regex splitting the pieces left by the
// previous one. bitnet.cpp uses it for GGUF files without tokenizer.ggml.pre.
constexpr std::string_view kDefaultChain[] = {
    "[\\p{P}\\$\\+<=>\\^~\\|]+",
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
    "\\p{N}+",
    "[0-9][0-9][0-9]",
};
constexpr std::string_view kGpt2Regex =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

enum class PreKind { kLlama3, kDefault, kGpt2 };

// PCRE2's \s with UCP also matches U+180E (in \h), which is not Unicode
// White_Space; the Hugging Face tokenizers (Rust regex / Oniguruma) and
// llama.cpp use White_Space, so spell that property out.
std::string WithUnicodeWhiteSpace(std::string_view pattern) {
  std::string out;
  out.reserve(pattern.size() + 32);
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == '\\' && i + 1 < pattern.size()) {
      const char c = pattern[i + 1];
      if (c == 's') {
        out += "\\p{White_Space}";
      } else if (c == 'S') {
        out += "\\P{White_Space}";
      } else {
        out += pattern[i];
        out += c;
      }
      ++i;
      continue;
    }
    out += pattern[i];
  }
  return out;
}

// GPT-2 byte-level mapping: printable Latin-1 bytes map to themselves, the
// other 68 bytes to U+0100 onwards in byte order.
struct ByteLevelTables {
  std::array<uint32_t, 256> byte_to_cp{};
  std::array<int16_t, 512> cp_to_byte{};  // -1: not a byte-level code point.
  ByteLevelTables() {
    cp_to_byte.fill(-1);
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      byte_to_cp[b] = printable ? static_cast<uint32_t>(b) : next++;
      cp_to_byte[byte_to_cp[b]] = static_cast<int16_t>(b);
    }
  }
};

const ByteLevelTables& ByteLevel() {
  static const ByteLevelTables tables;
  return tables;
}

// The bytes a NORMAL token stands for. A token with a character outside the
// byte-level alphabet (or invalid UTF-8) stands for its own text, as in the
// Hugging Face ByteLevel decoder.
void AppendByteLevelDecoded(std::string_view text, std::string* out) {
  const size_t start = out->size();
  if (internal::FindInvalidUtf8(text) == std::string_view::npos) {
    const ByteLevelTables& bl = ByteLevel();
    size_t pos = 0;
    bool mapped = true;
    while (pos < text.size()) {
      const uint32_t cp = internal::NextCodepoint(text, &pos);
      if (cp >= bl.cp_to_byte.size() || bl.cp_to_byte[cp] < 0) {
        mapped = false;
        break;
      }
      out->push_back(static_cast<char>(bl.cp_to_byte[cp]));
    }
    if (mapped) return;
  }
  out->resize(start);
  out->append(text);
}

// "<0xAB>" -> 0xAB, -1 otherwise.
int ParseByteToken(std::string_view text) {
  if (text.size() != 6 || text.substr(0, 3) != "<0x" || text[5] != '>') return -1;
  int v = 0;
  for (char c : text.substr(3, 2)) {
    v <<= 4;
    if (c >= '0' && c <= '9')
      v |= c - '0';
    else if (c >= 'A' && c <= 'F')
      v |= c - 'A' + 10;
    else if (c >= 'a' && c <= 'f')
      v |= c - 'a' + 10;
    else
      return -1;
  }
  return v;
}

struct SpecialToken {
  std::string_view text;
  int32_t id;
};

// Frequent pieces are cached per shard, so concurrent Encode calls rarely
// contend on one lock. A full shard is simply cleared: the hit rate stays
// high for natural text and memory stays bounded.
constexpr size_t kCacheShards = 16;
constexpr size_t kMaxCacheEntriesPerShard = 8192;
constexpr size_t kMaxCachedPieceBytes = 64;

struct CacheShard {
  std::mutex mu;
  absl::flat_hash_map<std::string, std::vector<int32_t>> map;
};

}  // namespace

struct Tokenizer::Impl {
  PreKind pre_kind = PreKind::kDefault;
  std::string pre_name;
  std::vector<std::unique_ptr<Regex>> pre_regexes;

  internal::StringIndex text_to_id;       // Vocabulary string -> id.
  std::string piece_bytes;                // Decoded bytes of all tokens.
  std::vector<uint32_t> piece_offsets;    // n + 1 offsets into piece_bytes.
  internal::StringIndex bytes_to_id;      // Model tokens by their bytes.
  std::array<int32_t, 256> byte_token{};  // Token of each single byte, -1 if none.
  internal::PairIndex merges;
  std::array<std::vector<SpecialToken>, 256> specials_by_first_byte;
  bool has_specials = false;

  mutable std::array<CacheShard, kCacheShards> cache;

  std::string_view Piece(int32_t id) const {
    return std::string_view(piece_bytes).substr(piece_offsets[id], piece_offsets[id + 1] - piece_offsets[id]);
  }
};

Tokenizer::Tokenizer(Vocab vocab, std::unique_ptr<Impl> impl)
    : vocab_(std::move(vocab)), impl_(std::move(impl)) {}

Tokenizer::~Tokenizer() = default;

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Create(Vocab vocab) {
  const size_t n = vocab.tokens.size();
  if (n == 0) return absl::InvalidArgumentError("vocabulary is empty");
  if (n >= static_cast<size_t>(INT32_MAX)) return absl::InvalidArgumentError("vocabulary too large");
  if (vocab.token_types.empty()) vocab.token_types.assign(n, kTokenNormal);
  if (vocab.token_types.size() != n) {
    return absl::InvalidArgumentError(
        absl::StrCat("vocabulary has ", n, " tokens but ", vocab.token_types.size(), " token types"));
  }
  for (auto [name, id] :
       {std::pair<const char*, int32_t>{"bos", vocab.bos_id}, {"eos", vocab.eos_id}, {"eot", vocab.eot_id}}) {
    if (id < -1 || id >= static_cast<int64_t>(n)) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, " id ", id, " is outside the vocabulary [0, ", n, ")"));
    }
  }

  auto impl = std::make_unique<Impl>();
  std::string reason;
  if (vocab.pre.empty()) {
    if (IsLlama3Vocabulary(vocab.tokens)) {
      impl->pre_kind = PreKind::kLlama3;
      reason = "no tokenizer.ggml.pre; Llama 3 vocabulary detected";
    } else {
      impl->pre_kind = PreKind::kDefault;
      reason = "no tokenizer.ggml.pre";
    }
  } else if (vocab.pre == "llama-bpe" || vocab.pre == "llama3") {
    impl->pre_kind = PreKind::kLlama3;
    reason = absl::StrCat("tokenizer.ggml.pre = '", vocab.pre, "'");
  } else if (vocab.pre == "default") {
    impl->pre_kind = PreKind::kDefault;
    reason = "tokenizer.ggml.pre = 'default'";
  } else if (vocab.pre == "gpt-2" || vocab.pre == "gpt2") {
    impl->pre_kind = PreKind::kGpt2;
    reason = absl::StrCat("tokenizer.ggml.pre = '", vocab.pre, "'");
  } else {
    return absl::InvalidArgumentError(absl::StrCat("unsupported pre-tokenizer tokenizer.ggml.pre = '",
                                                   vocab.pre,
                                                   "' (supported: llama-bpe, llama3, default, gpt-2)"));
  }
  std::vector<std::string_view> patterns;
  switch (impl->pre_kind) {
    case PreKind::kLlama3:
      impl->pre_name = std::string(kPreLlama3);
      patterns = {kLlama3SplitRegex};
      break;
    case PreKind::kDefault:
      impl->pre_name = std::string(kPreDefault);
      patterns.assign(std::begin(kDefaultChain), std::end(kDefaultChain));
      break;
    case PreKind::kGpt2:
      impl->pre_name = std::string(kPreGpt2);
      patterns = {kGpt2Regex};
      break;
  }
  for (std::string_view p : patterns) {
    BN_ASSIGN_OR_RETURN(auto re, Regex::Compile(WithUnicodeWhiteSpace(p)));
    impl->pre_regexes.push_back(std::move(re));
  }
  const bool ignore_merges = vocab.ignore_merges.value_or(impl->pre_kind == PreKind::kLlama3);

  auto tok = std::unique_ptr<Tokenizer>(new Tokenizer(std::move(vocab), std::move(impl)));
  tok->ignore_merges_ = ignore_merges;
  // Views below point into tok->vocab_ and impl->piece_bytes, which never
  // change after this point.
  const Vocab& v = tok->vocab_;
  Impl& im = *tok->impl_;

  // llama.cpp keeps the last of duplicate token strings; so do we.
  im.text_to_id.Build(std::vector<std::string_view>(v.tokens.begin(), v.tokens.end()), {},
                      /*last_wins=*/true);

  im.piece_offsets.resize(n + 1);
  im.piece_bytes.reserve(n * 8);
  for (size_t i = 0; i < n; ++i) {
    im.piece_offsets[i] = static_cast<uint32_t>(im.piece_bytes.size());
    const int32_t type = v.token_types[i];
    if (type == kTokenControl || type == kTokenUserDefined) {
      im.piece_bytes += v.tokens[i];
    } else if (type == kTokenByte && ParseByteToken(v.tokens[i]) >= 0) {
      im.piece_bytes.push_back(static_cast<char>(ParseByteToken(v.tokens[i])));
    } else {
      AppendByteLevelDecoded(v.tokens[i], &im.piece_bytes);
    }
  }
  im.piece_offsets[n] = static_cast<uint32_t>(im.piece_bytes.size());

  im.byte_token.fill(-1);
  const ByteLevelTables& bl = ByteLevel();
  for (int b = 0; b < 256; ++b) {
    std::string ch;
    internal::AppendCodepoint(bl.byte_to_cp[b], &ch);
    im.byte_token[b] = im.text_to_id.Find(ch);
  }
  {
    std::vector<std::string_view> pieces(n);
    std::vector<bool> model_token(n);
    for (size_t i = 0; i < n; ++i) {
      pieces[i] = im.Piece(static_cast<int32_t>(i));
      model_token[i] = v.token_types[i] != kTokenControl && v.token_types[i] != kTokenUserDefined;
    }
    im.bytes_to_id.Build(std::move(pieces), model_token, /*last_wins=*/false);
  }

  // Three random lookups per merge dominate loading; hashing a batch first
  // and prefetching its slots overlaps the cache misses.
  size_t skipped = 0;
  im.merges.Reserve(v.merges.size());
  constexpr size_t kBatch = 16;
  struct PendingMerge {
    std::string_view left, right;
    std::string joined;
    uint64_t hash[3];
    bool ok;
    int32_t result;
    uint64_t pair;
  };
  std::array<PendingMerge, kBatch> batch;
  for (size_t r0 = 0; r0 < v.merges.size(); r0 += kBatch) {
    const size_t count = std::min(kBatch, v.merges.size() - r0);
    for (size_t k = 0; k < count; ++k) {
      PendingMerge& p = batch[k];
      const std::string_view m = v.merges[r0 + k];
      const size_t sp = m.find(' ', 1);
      p.ok = sp != std::string_view::npos;
      if (!p.ok) continue;
      p.left = m.substr(0, sp);
      p.right = m.substr(sp + 1);
      p.joined.assign(p.left);
      p.joined.append(p.right);
      p.hash[0] = internal::StringIndex::Hash(p.left);
      p.hash[1] = internal::StringIndex::Hash(p.right);
      p.hash[2] = internal::StringIndex::Hash(p.joined);
      for (uint64_t h : p.hash) im.text_to_id.Prefetch(h);
    }
    for (size_t k = 0; k < count; ++k) {
      PendingMerge& p = batch[k];
      if (!p.ok) continue;
      const int32_t l = im.text_to_id.Find(p.left, p.hash[0]);
      const int32_t rt = im.text_to_id.Find(p.right, p.hash[1]);
      p.result = im.text_to_id.Find(p.joined, p.hash[2]);
      p.ok = l >= 0 && rt >= 0 && p.result >= 0;
      if (!p.ok) continue;
      p.pair = internal::PairIndex::Key(l, rt);
      im.merges.Prefetch(p.pair);
    }
    for (size_t k = 0; k < count; ++k) {
      const PendingMerge& p = batch[k];
      if (!p.ok) {
        ++skipped;
        continue;
      }
      // A repeated pair keeps its first (highest-priority) rank.
      im.merges.Insert(p.pair, {static_cast<int32_t>(r0 + k), p.result});
    }
  }
  if (skipped > 0) {
    WF_LOG(WARNING) << "tokenizer: skipped " << skipped << " of " << v.merges.size()
                    << " merges (malformed or naming strings that are not tokens)";
  }

  for (size_t i = 0; i < n; ++i) {
    const int32_t type = v.token_types[i];
    const std::string& text = v.tokens[i];
    if ((type != kTokenControl && type != kTokenUserDefined) || text.empty()) continue;
    // Matching must never cut a code point in half.
    if (internal::FindInvalidUtf8(text) != std::string_view::npos) continue;
    im.specials_by_first_byte[static_cast<uint8_t>(text[0])].push_back({text, static_cast<int32_t>(i)});
    im.has_specials = true;
  }
  for (auto& bucket : im.specials_by_first_byte) {
    // Longest first gives leftmost-longest matching.
    std::stable_sort(bucket.begin(), bucket.end(), [](const SpecialToken& a, const SpecialToken& b) {
      return a.text.size() > b.text.size();
    });
  }

  WF_LOG(INFO) << "tokenizer: " << n << " tokens, " << im.merges.size() << " merges, pre-tokenizer '"
               << im.pre_name << "' (" << reason << "), ignore_merges=" << (ignore_merges ? "true" : "false")
               << (im.pre_regexes.front()->jit() ? "" : ", regex JIT unavailable");
  return tok;
}

std::string_view Tokenizer::pre_tokenizer_name() const { return impl_->pre_name; }

bool Tokenizer::IsControl(int32_t id) const {
  return id >= 0 && id < vocab_size() && vocab_.token_types[id] == kTokenControl;
}

TokenType Tokenizer::token_type(int32_t id) const {
  if (id < 0 || id >= vocab_size()) return kTokenNormal;
  return static_cast<TokenType>(vocab_.token_types[id]);
}

std::optional<int32_t> Tokenizer::TokenId(std::string_view token_text) const {
  const int32_t id = impl_->text_to_id.Find(token_text);
  if (id < 0) return std::nullopt;
  return id;
}

absl::StatusOr<std::string_view> Tokenizer::TokenToPiece(int32_t id) const {
  if (id < 0 || id >= vocab_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("token id ", id, " is outside the vocabulary [0, ", vocab_size(), ")"));
  }
  return impl_->Piece(id);
}

absl::StatusOr<std::vector<int32_t>> Tokenizer::Encode(std::string_view text, EncodeOptions options) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 2);
  BN_RETURN_IF_ERROR(EncodeAppend(text, options, &ids));
  return ids;
}

absl::Status Tokenizer::EncodeAppend(std::string_view text, EncodeOptions options,
                                     std::vector<int32_t>* ids) const {
  if (const size_t bad = internal::FindInvalidUtf8(text); bad != std::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrFormat("invalid UTF-8 at byte offset %d (byte 0x%02X)", bad,
                                                      static_cast<uint8_t>(text[bad])));
  }
  if (options.add_bos) {
    if (vocab_.bos_id < 0)
      return absl::FailedPreconditionError("add_bos requested but the vocabulary has no BOS token");
    ids->push_back(vocab_.bos_id);
  }
  if (!options.parse_special || !impl_->has_specials) return EncodePlain(text, ids);

  size_t segment_start = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    const auto& bucket = impl_->specials_by_first_byte[static_cast<uint8_t>(text[pos])];
    const SpecialToken* hit = nullptr;
    for (const SpecialToken& sp : bucket) {
      if (text.size() - pos >= sp.text.size() &&
          std::memcmp(text.data() + pos, sp.text.data(), sp.text.size()) == 0) {
        hit = &sp;
        break;
      }
    }
    if (hit == nullptr) {
      ++pos;
      continue;
    }
    BN_RETURN_IF_ERROR(EncodePlain(text.substr(segment_start, pos - segment_start), ids));
    ids->push_back(hit->id);
    pos += hit->text.size();
    segment_start = pos;
  }
  return EncodePlain(text.substr(segment_start), ids);
}

absl::Status Tokenizer::SplitPieces(std::string_view text, std::vector<std::string_view>* pieces) const {
  pieces->clear();
  if (text.empty()) return absl::OkStatus();
  pieces->push_back(text);
  std::vector<std::string_view> next;
  for (const auto& re : impl_->pre_regexes) {
    next.clear();
    next.reserve(pieces->size() * 2);
    for (std::string_view p : *pieces) BN_RETURN_IF_ERROR(re->Split(p, &next));
    pieces->swap(next);
  }
  return absl::OkStatus();
}

absl::Status Tokenizer::EncodePlain(std::string_view text, std::vector<int32_t>* ids) const {
  if (text.empty()) return absl::OkStatus();
  std::vector<std::string_view> pieces;
  BN_RETURN_IF_ERROR(SplitPieces(text, &pieces));
  for (std::string_view p : pieces) BN_RETURN_IF_ERROR(EncodePiece(p, ids));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> Tokenizer::PreTokenize(std::string_view text) const {
  if (const size_t bad = internal::FindInvalidUtf8(text); bad != std::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrFormat("invalid UTF-8 at byte offset %d", bad));
  }
  std::vector<std::string_view> pieces;
  BN_RETURN_IF_ERROR(SplitPieces(text, &pieces));
  return std::vector<std::string>(pieces.begin(), pieces.end());
}

absl::Status Tokenizer::EncodePiece(std::string_view piece, std::vector<int32_t>* ids) const {
  const Impl& im = *impl_;
  if (ignore_merges_) {
    if (const int32_t id = im.bytes_to_id.Find(piece); id >= 0) {
      ids->push_back(id);
      return absl::OkStatus();
    }
  }
  const size_t n = piece.size();
  for (char c : piece) {
    if (im.byte_token[static_cast<uint8_t>(c)] < 0) {
      return absl::FailedPreconditionError(
          absl::StrFormat("byte 0x%02X has no token in this vocabulary", static_cast<uint8_t>(c)));
    }
  }
  if (n == 1) {
    ids->push_back(im.byte_token[static_cast<uint8_t>(piece[0])]);
    return absl::OkStatus();
  }

  CacheShard* shard = nullptr;
  if (n <= kMaxCachedPieceBytes) {
    shard = &im.cache[absl::Hash<std::string_view>{}(piece) % kCacheShards];
    std::lock_guard<std::mutex> lock(shard->mu);
    if (auto it = shard->map.find(::wf::Av(piece)); it != shard->map.end()) {
      ids->insert(ids->end(), it->second.begin(), it->second.end());
      return absl::OkStatus();
    }
  }

  // Merge the lowest-ranked adjacent pair first (leftmost on ties), as in
  // tiktoken, llama.cpp and the Hugging Face BPE model. A heap with lazy
  // invalidation keeps long pieces O(n log n).
  struct Symbol {
    int32_t id;  // -1 once merged into its left neighbour.
    int32_t prev;
    int32_t next;
  };
  struct Candidate {
    int32_t rank;
    int32_t left;
    int32_t right;
    int32_t left_id;
    int32_t right_id;
    int32_t result;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
  };
  thread_local std::vector<Symbol> symbols;
  thread_local std::vector<Candidate> heap;
  symbols.resize(n);
  heap.clear();
  const auto cmp = std::greater<Candidate>();
  for (size_t i = 0; i < n; ++i) {
    symbols[i] = {im.byte_token[static_cast<uint8_t>(piece[i])], static_cast<int32_t>(i) - 1,
                  static_cast<int32_t>(i + 1)};
  }
  auto try_push = [&](int32_t left, int32_t right) {
    const internal::PairIndex::Merge m =
        im.merges.Find(internal::PairIndex::Key(symbols[left].id, symbols[right].id));
    if (m.rank < 0) return;
    heap.push_back({m.rank, left, right, symbols[left].id, symbols[right].id, m.result});
    std::push_heap(heap.begin(), heap.end(), cmp);
  };
  for (size_t i = 0; i + 1 < n; ++i) try_push(static_cast<int32_t>(i), static_cast<int32_t>(i + 1));
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), cmp);
    const Candidate c = heap.back();
    heap.pop_back();
    Symbol& l = symbols[c.left];
    Symbol& r = symbols[c.right];
    // A symbol keeps its start position, and the same token at the same start
    // covers the same bytes, so matching ids and adjacency mean the pair is
    // still the one that was pushed.
    if (l.id != c.left_id || r.id != c.right_id || l.next != c.right) continue;
    l.id = c.result;
    l.next = r.next;
    if (r.next < static_cast<int32_t>(n)) symbols[r.next].prev = c.left;
    r.id = -1;
    if (l.prev >= 0) try_push(l.prev, c.left);
    if (l.next < static_cast<int32_t>(n)) try_push(c.left, l.next);
  }

  const size_t first = ids->size();
  for (int32_t i = 0; i < static_cast<int32_t>(n); i = symbols[i].next) ids->push_back(symbols[i].id);

  if (shard != nullptr) {
    std::lock_guard<std::mutex> lock(shard->mu);
    if (shard->map.size() >= kMaxCacheEntriesPerShard) shard->map.clear();
    shard->map.emplace(std::string(piece), std::vector<int32_t>(ids->begin() + first, ids->end()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Tokenizer::Decode(absl::Span<const int32_t> ids, bool skip_special) const {
  std::string bytes;
  bytes.reserve(ids.size() * 4);
  for (size_t i = 0; i < ids.size(); ++i) {
    const int32_t id = ids[i];
    if (id < 0 || id >= vocab_size()) {
      return absl::InvalidArgumentError(absl::StrCat("token id ", id, " at position ", i,
                                                     " is outside the vocabulary [0, ", vocab_size(), ")"));
    }
    if (skip_special && vocab_.token_types[id] == kTokenControl) continue;
    bytes += impl_->Piece(id);
  }
  std::string out;
  out.reserve(bytes.size());
  internal::AppendUtf8Lossy(bytes, /*final=*/true, &out);
  return out;
}

absl::StatusOr<std::string> StreamingDecoder::Add(int32_t id) {
  BN_ASSIGN_OR_RETURN(std::string_view piece, tokenizer_->TokenToPiece(id));
  if (skip_special_ && tokenizer_->IsControl(id)) return std::string();
  pending_.append(piece);
  std::string out;
  const size_t used = internal::AppendUtf8Lossy(pending_, /*final=*/false, &out);
  pending_.erase(0, used);
  return out;
}

std::string StreamingDecoder::Finish() {
  std::string out;
  internal::AppendUtf8Lossy(pending_, /*final=*/true, &out);
  pending_.clear();
  return out;
}

}  // namespace wf::tokenizer
