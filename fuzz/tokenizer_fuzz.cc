// Fuzz target: the Llama 3 tokenizer (built once per process from
// tokenizer.json) on arbitrary bytes and arbitrary token ids.
//
// Encode: the raw bytes (which must fail cleanly unless they are UTF-8) and
// their lossy UTF-8 repair, with and without special-token parsing; decoding
// the ids must give the text back. Decode: ids taken from the input, including
// negative and out-of-range ones, through Decode and the StreamingDecoder,
// whose pieces must add up to Decode's result.
//
// tokenizer.json is $WF_TOKENIZER_JSON, else tokenizer.json beside
// $WF_TOKENIZER_VECTORS, else the path compiled in as
// WF_FUZZ_DEFAULT_TOKENIZER_JSON.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/file_util.h"
#include "common/tokenizer/internal/utf8.h"
#include "common/tokenizer/tokenizer.h"
#include "common/tokenizer/vocab.h"
#include "fuzz/fuzz_util.h"

namespace {

using ::wf::fuzz::Fail;
using ::wf::tokenizer::StreamingDecoder;
using ::wf::tokenizer::Tokenizer;
namespace utf8 = ::wf::tokenizer::internal;

constexpr size_t kMaxIds = 4096;

std::string TokenizerJsonPath() {
  if (const char* p = std::getenv("WF_TOKENIZER_JSON"); p != nullptr && *p != '\0') return p;
  if (const char* p = std::getenv("WF_TOKENIZER_VECTORS"); p != nullptr && *p != '\0') {
    const std::string vectors = p;
    const size_t slash = vectors.rfind('/');
    return (slash == std::string::npos ? std::string(".") : vectors.substr(0, slash)) +
           "/tokenizer.json";
  }
  return WF_FUZZ_DEFAULT_TOKENIZER_JSON;
}

const Tokenizer& Llama3() {
  static const Tokenizer* const tokenizer = [] {
    wf::fuzz::QuietLogs();
    const std::string path = TokenizerJsonPath();
    absl::StatusOr<std::string> json = wf::ReadFileToString(path);
    absl::StatusOr<wf::tokenizer::Vocab> vocab =
        json.ok() ? wf::tokenizer::ParseHfTokenizerJson(*json)
                  : absl::StatusOr<wf::tokenizer::Vocab>(json.status());
    absl::StatusOr<std::unique_ptr<Tokenizer>> tok =
        vocab.ok() ? Tokenizer::Create(*std::move(vocab))
                   : absl::StatusOr<std::unique_ptr<Tokenizer>>(vocab.status());
    if (!tok.ok()) {
      std::fprintf(stderr, "cannot build the Llama 3 tokenizer from %s (set WF_TOKENIZER_JSON): %s\n",
                   path.c_str(), std::string(tok.status().message()).c_str());
      std::exit(1);
    }
    return tok->release();
  }();
  return *tokenizer;
}

void CheckRoundTrip(const Tokenizer& tok, std::string_view text) {
  absl::StatusOr<std::vector<int32_t>> plain = tok.Encode(text);
  if (!plain.ok()) Fail("Encode of valid UTF-8 failed");
  absl::StatusOr<std::string> back = tok.Decode(*plain);
  if (!back.ok() || *back != text) Fail("Decode(Encode(text)) != text");

  absl::StatusOr<std::vector<int32_t>> special =
      tok.Encode(text, {.add_bos = true, .parse_special = true});
  if (!special.ok() || special->empty() || (*special)[0] != tok.bos_id()) {
    Fail("Encode with BOS and special tokens failed");
  }
  absl::StatusOr<std::string_view> bos = tok.TokenToPiece(tok.bos_id());
  back = tok.Decode(*special);
  if (!bos.ok() || !back.ok() || *back != std::string(*bos) + std::string(text)) {
    Fail("Decode(Encode(text, parse_special)) != BOS + text");
  }

  absl::StatusOr<std::vector<std::string>> pieces = tok.PreTokenize(text);
  if (!pieces.ok()) Fail("PreTokenize of valid UTF-8 failed");
  std::string joined;
  for (const std::string& p : *pieces) joined += p;
  if (joined != text) Fail("pre-tokenizer pieces do not add up to the text");
}

// Three input bytes per id: mostly ids near the vocabulary (including a few
// hundred below 0 and above the last id), and the int32 extremes.
std::vector<int32_t> IdsFromBytes(const uint8_t* data, size_t size, int32_t vocab_size) {
  std::vector<int32_t> ids;
  for (size_t i = 0; i + 3 <= size && ids.size() < kMaxIds; i += 3) {
    const uint32_t v = data[i] | (uint32_t{data[i + 1]} << 8) | (uint32_t{data[i + 2]} << 16);
    if (data[i + 2] == 0xFF) {
      ids.push_back(std::numeric_limits<int32_t>::min() + data[i]);
    } else if (data[i + 2] == 0xFE) {
      ids.push_back(std::numeric_limits<int32_t>::max() - data[i]);
    } else {
      ids.push_back(static_cast<int32_t>(v % (static_cast<uint32_t>(vocab_size) + 512)) - 256);
    }
  }
  return ids;
}

void CheckDecode(const Tokenizer& tok, const std::vector<int32_t>& ids, bool skip_special) {
  std::vector<int32_t> valid;
  StreamingDecoder decoder(tok, skip_special);
  std::string streamed;
  for (int32_t id : ids) {
    const bool in_range = id >= 0 && id < tok.vocab_size();
    if (tok.TokenToPiece(id).ok() != in_range) Fail("TokenToPiece range check is wrong");
    absl::StatusOr<std::string> piece = decoder.Add(id);
    if (piece.ok() != in_range) Fail("StreamingDecoder::Add range check is wrong");
    if (decoder.pending_bytes() > 3) Fail("StreamingDecoder holds back more than 3 bytes");
    if (!piece.ok()) continue;
    if (utf8::FindInvalidUtf8(*piece) != std::string_view::npos) {
      Fail("StreamingDecoder::Add returned invalid UTF-8");
    }
    streamed += *piece;
    valid.push_back(id);
  }
  streamed += decoder.Finish();
  if (decoder.pending_bytes() != 0) Fail("StreamingDecoder::Finish left bytes behind");

  absl::StatusOr<std::string> all = tok.Decode(ids, skip_special);
  if (all.ok() != (valid.size() == ids.size())) Fail("Decode range check is wrong");
  absl::StatusOr<std::string> decoded = tok.Decode(valid, skip_special);
  if (!decoded.ok()) Fail("Decode of in-range ids failed");
  if (utf8::FindInvalidUtf8(*decoded) != std::string_view::npos) Fail("Decode returned invalid UTF-8");
  if (*decoded != streamed) Fail("streamed pieces differ from Decode");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Tokenizer& tok = Llama3();
  const std::string_view raw(reinterpret_cast<const char*>(data), size);

  // Raw bytes: Encode succeeds exactly when they are UTF-8.
  const bool is_utf8 = utf8::FindInvalidUtf8(raw) == std::string_view::npos;
  absl::StatusOr<std::vector<int32_t>> ids = tok.Encode(raw, {.parse_special = true});
  if (ids.ok() != is_utf8) Fail("Encode accepted invalid or rejected valid UTF-8");

  std::string repaired;
  const size_t used = utf8::AppendUtf8Lossy(raw, /*final=*/true, &repaired);
  if (used != raw.size()) Fail("AppendUtf8Lossy(final) did not consume everything");
  if (utf8::FindInvalidUtf8(repaired) != std::string_view::npos) Fail("lossy repair is not UTF-8");
  if (is_utf8 && repaired != raw) Fail("lossy repair changed valid UTF-8");
  CheckRoundTrip(tok, repaired);

  const std::vector<int32_t> token_ids = IdsFromBytes(data, size, tok.vocab_size());
  CheckDecode(tok, token_ids, /*skip_special=*/false);
  CheckDecode(tok, token_ids, /*skip_special=*/true);
  return 0;
}
