#include "common/tokenizer/internal/utf8.h"

namespace wf::tokenizer::internal {
namespace {

// Lead-byte classification of the WHATWG UTF-8 decoder: how many continuation
// bytes follow and the allowed range of the FIRST continuation byte (the
// narrowed ranges exclude overlongs, surrogates and values above U+10FFFF).
struct LeadInfo {
  int needed;  // -1: the byte can never start a sequence.
  uint8_t lower;
  uint8_t upper;
};

LeadInfo Classify(uint8_t b) {
  if (b < 0x80) return {0, 0, 0};
  if (b >= 0xC2 && b <= 0xDF) return {1, 0x80, 0xBF};
  if (b == 0xE0) return {2, 0xA0, 0xBF};
  if (b == 0xED) return {2, 0x80, 0x9F};
  if (b >= 0xE1 && b <= 0xEF) return {2, 0x80, 0xBF};
  if (b == 0xF0) return {3, 0x90, 0xBF};
  if (b == 0xF4) return {3, 0x80, 0x8F};
  if (b >= 0xF1 && b <= 0xF3) return {3, 0x80, 0xBF};
  return {-1, 0, 0};
}

// Result of scanning one sequence starting at `pos`.
struct SeqScan {
  enum Kind { kValid, kInvalid, kTruncated } kind;
  size_t length;  // kValid: sequence length; kInvalid: bytes of the maximal
                  // ill-formed subpart (>= 1); kTruncated: bytes present.
};

SeqScan ScanSequence(std::string_view s, size_t pos) {
  const LeadInfo lead = Classify(static_cast<uint8_t>(s[pos]));
  if (lead.needed == 0) return {SeqScan::kValid, 1};
  if (lead.needed < 0) return {SeqScan::kInvalid, 1};
  uint8_t lower = lead.lower;
  uint8_t upper = lead.upper;
  for (int i = 1; i <= lead.needed; ++i) {
    if (pos + i >= s.size()) return {SeqScan::kTruncated, static_cast<size_t>(i)};
    const uint8_t c = static_cast<uint8_t>(s[pos + i]);
    if (c < lower || c > upper) return {SeqScan::kInvalid, static_cast<size_t>(i)};
    lower = 0x80;
    upper = 0xBF;
  }
  return {SeqScan::kValid, static_cast<size_t>(lead.needed) + 1};
}

}  // namespace

size_t FindInvalidUtf8(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    // ASCII fast path, 8 bytes at a time.
    while (pos + 8 <= text.size()) {
      uint64_t w = 0;
      for (int i = 0; i < 8; ++i) w |= static_cast<uint64_t>(static_cast<uint8_t>(text[pos + i])) << (8 * i);
      if (w & 0x8080808080808080ull) break;
      pos += 8;
    }
    if (pos >= text.size()) break;
    const SeqScan scan = ScanSequence(text, pos);
    if (scan.kind != SeqScan::kValid) return pos;
    pos += scan.length;
  }
  return std::string_view::npos;
}

size_t AppendUtf8Lossy(std::string_view bytes, bool final, std::string* out) {
  size_t pos = 0;
  while (pos < bytes.size()) {
    const SeqScan scan = ScanSequence(bytes, pos);
    switch (scan.kind) {
      case SeqScan::kValid:
        out->append(bytes.substr(pos, scan.length));
        pos += scan.length;
        break;
      case SeqScan::kInvalid:
        out->append(kReplacementChar);
        pos += scan.length;
        break;
      case SeqScan::kTruncated:
        if (!final) return pos;
        out->append(kReplacementChar);
        pos = bytes.size();
        break;
    }
  }
  return pos;
}

void AppendCodepoint(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

uint32_t NextCodepoint(std::string_view text, size_t* pos) {
  const uint8_t b0 = static_cast<uint8_t>(text[*pos]);
  auto cont = [&](size_t i) { return static_cast<uint32_t>(static_cast<uint8_t>(text[*pos + i]) & 0x3F); };
  uint32_t cp;
  size_t len;
  if (b0 < 0x80) {
    cp = b0;
    len = 1;
  } else if (b0 < 0xE0) {
    cp = ((b0 & 0x1Fu) << 6) | cont(1);
    len = 2;
  } else if (b0 < 0xF0) {
    cp = ((b0 & 0x0Fu) << 12) | (cont(1) << 6) | cont(2);
    len = 3;
  } else {
    cp = ((b0 & 0x07u) << 18) | (cont(1) << 12) | (cont(2) << 6) | cont(3);
    len = 4;
  }
  *pos += len;
  return cp;
}

}  // namespace wf::tokenizer::internal
