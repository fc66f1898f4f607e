#include "common/quant/ternary_formats.h"

#include <algorithm>
#include <bit>
#include <cassert>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "common/quant/fp16.h"

namespace wf::quant {
namespace {

// GGUF data is little-endian and is read in place.
static_assert(std::endian::native == std::endian::little);

constexpr int64_t kTQ1_0QsBytes = 48;
constexpr int64_t kTQ1_0QhBytes = 4;
constexpr int64_t kTQ2_0QsBytes = 64;
constexpr uint8_t kPow3[6] = {1, 3, 9, 27, 81, 243};

[[maybe_unused]] bool AllTernary(const int8_t* t, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    if (t[i] < -1 || t[i] > 1) return false;
  }
  return true;
}

[[maybe_unused]] bool ValidScale(float s) { return std::isfinite(s) && s >= 0.0f; }

void StoreF16(uint16_t h, uint8_t* out) { std::memcpy(out, &h, sizeof(h)); }

float LoadF16(const uint8_t* in) {
  uint16_t h;
  std::memcpy(&h, in, sizeof(h));
  return F16ToF32(h);
}

int8_t DecodeI2S(const uint8_t* in, int64_t i) {
  const int64_t j = i % kI2SBlockValues;
  const uint8_t byte = in[(i / kI2SBlockValues) * kI2SBlockBytes + j % 32];
  return static_cast<int8_t>(((byte >> (6 - 2 * (j / 32))) & 3) - 1);
}

// Five trits (value + 1, most significant first) as ceil(t * 256 / 243), so
// that multiplying by 3^k in uint8 arithmetic brings trit k to the top.
uint8_t EncodeTrits5(const int8_t* t, int64_t stride, int count) {
  uint32_t q = 0;
  for (int k = 0; k < 5; ++k) {
    q = q * 3 + static_cast<uint32_t>(k < count ? t[k * stride] + 1 : 0);
  }
  return static_cast<uint8_t>((q * 256 + 242) / 243);
}

int8_t DecodeTrit(uint8_t byte, int k) {
  const uint8_t shifted = static_cast<uint8_t>(byte * kPow3[k]);
  return static_cast<int8_t>(((static_cast<uint16_t>(shifted) * 3) >> 8) - 1);
}

void PackTQ1_0Block(const int8_t* t, uint16_t d, uint8_t* out) {
  uint8_t* qs = out;
  uint8_t* qh = out + kTQ1_0QsBytes;
  for (int m = 0; m < 32; ++m) qs[m] = EncodeTrits5(t + m, 32, 5);
  for (int m = 0; m < 16; ++m) qs[32 + m] = EncodeTrits5(t + 160 + m, 16, 5);
  for (int j = 0; j < 4; ++j) qh[j] = EncodeTrits5(t + 240 + j, 4, 4);
  StoreF16(d, out + kTQ1_0QsBytes + kTQ1_0QhBytes);
}

void UnpackTQ1_0Block(const uint8_t* in, int8_t* t) {
  const uint8_t* qs = in;
  const uint8_t* qh = in + kTQ1_0QsBytes;
  for (int k = 0; k < 5; ++k) {
    for (int m = 0; m < 32; ++m) t[m + 32 * k] = DecodeTrit(qs[m], k);
  }
  for (int k = 0; k < 5; ++k) {
    for (int m = 0; m < 16; ++m) t[160 + m + 16 * k] = DecodeTrit(qs[32 + m], k);
  }
  for (int k = 0; k < 4; ++k) {
    for (int j = 0; j < 4; ++j) t[240 + j + 4 * k] = DecodeTrit(qh[j], k);
  }
}

void PackTQ2_0Block(const int8_t* t, uint16_t d, uint8_t* out) {
  for (int c = 0; c < 2; ++c) {
    for (int m = 0; m < 32; ++m) {
      uint8_t q = 0;
      for (int k = 0; k < 4; ++k) {
        q |= static_cast<uint8_t>(((t[128 * c + m + 32 * k] + 1) & 3) << (2 * k));
      }
      out[32 * c + m] = q;
    }
  }
  StoreF16(d, out + kTQ2_0QsBytes);
}

// Returns codes minus one (so an invalid code 3 gives +2).
void UnpackTQ2_0Block(const uint8_t* in, int8_t* t) {
  for (int c = 0; c < 2; ++c) {
    for (int k = 0; k < 4; ++k) {
      for (int m = 0; m < 32; ++m) {
        t[128 * c + m + 32 * k] = static_cast<int8_t>(((in[32 * c + m] >> (2 * k)) & 3) - 1);
      }
    }
  }
}

// d for a block of ternary values packed with a per-tensor scale.
uint16_t BlockD(const int8_t* t, uint16_t scale_f16) {
  for (int64_t i = 0; i < kTQBlockValues; ++i) {
    if (t[i] != 0) return scale_f16;
  }
  return 0;
}

// ggml's float -> ternary rule for one block: d = max|x|, lroundf(x / d).
uint16_t TernarizeBlock(const float* x, int8_t* t) {
  float amax = 0.0f;
  for (int64_t i = 0; i < kTQBlockValues; ++i) amax = std::max(amax, std::fabs(x[i]));
  const float id = amax != 0.0f ? 1.0f / amax : 0.0f;
  for (int64_t i = 0; i < kTQBlockValues; ++i) {
    t[i] = static_cast<int8_t>(std::clamp<long>(std::lroundf(x[i] * id), -1, 1));
  }
  return F32ToF16(amax);
}

template <void (*PackBlock)(const int8_t*, uint16_t, uint8_t*), int64_t kBlockBytes>
void PackTernaryTQ(const int8_t* t, int64_t n, float scale, uint8_t* out) {
  assert(n % kTQBlockValues == 0);
  assert(ValidScale(scale));
  assert(AllTernary(t, n));
  const uint16_t scale_f16 = F32ToF16(scale);
  for (int64_t b = 0; b < n / kTQBlockValues; ++b) {
    const int8_t* block = t + b * kTQBlockValues;
    PackBlock(block, BlockD(block, scale_f16), out + b * kBlockBytes);
  }
}

template <void (*PackBlock)(const int8_t*, uint16_t, uint8_t*), int64_t kBlockBytes>
void QuantizeTQ(const float* x, int64_t n, uint8_t* out) {
  assert(n % kTQBlockValues == 0);
  int8_t t[kTQBlockValues];
  for (int64_t b = 0; b < n / kTQBlockValues; ++b) {
    const uint16_t d = TernarizeBlock(x + b * kTQBlockValues, t);
    PackBlock(t, d, out + b * kBlockBytes);
  }
}

template <void (*UnpackBlock)(const uint8_t*, int8_t*), int64_t kBlockBytes>
void UnpackTQ(const uint8_t* in, int64_t n, int8_t* t, float* block_d) {
  assert(n % kTQBlockValues == 0);
  for (int64_t b = 0; b < n / kTQBlockValues; ++b) {
    const uint8_t* block = in + b * kBlockBytes;
    UnpackBlock(block, t + b * kTQBlockValues);
    if (block_d != nullptr) block_d[b] = LoadF16(block + kBlockBytes - 2);
  }
}

template <void (*UnpackBlock)(const uint8_t*, int8_t*), int64_t kBlockBytes>
void DequantizeTQ(const uint8_t* in, int64_t n, float* dst) {
  assert(n % kTQBlockValues == 0);
  int8_t t[kTQBlockValues];
  for (int64_t b = 0; b < n / kTQBlockValues; ++b) {
    const uint8_t* block = in + b * kBlockBytes;
    UnpackBlock(block, t);
    const float d = LoadF16(block + kBlockBytes - 2);
    float* y = dst + b * kTQBlockValues;
    for (int64_t i = 0; i < kTQBlockValues; ++i) y[i] = static_cast<float>(t[i]) * d;
  }
}

}  // namespace

std::string_view TernaryFormatName(TernaryFormat format) {
  switch (format) {
    case TernaryFormat::kI2S:
      return "I2_S";
    case TernaryFormat::kTQ1_0:
      return "TQ1_0";
    case TernaryFormat::kTQ2_0:
      return "TQ2_0";
  }
  return "unknown";
}

absl::Status CheckTernaryShape(TernaryFormat format, int64_t ne0, int64_t ne1,
                               std::string_view tensor_name) {
  const std::string_view name = TernaryFormatName(format);
  if (name == "unknown") {
    return absl::InvalidArgumentError(absl::StrFormat("tensor '%s': unknown ternary format id %d",
                                                      tensor_name, static_cast<uint32_t>(format)));
  }
  if (ne0 <= 0 || ne1 <= 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "tensor '%s': %s needs positive dimensions, got [%d, %d]", tensor_name, name, ne0, ne1));
  }
  const int64_t block = format == TernaryFormat::kI2S ? kI2SBlockValues : kTQBlockValues;
  if (ne0 % block != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "tensor '%s': %s needs a row size divisible by %d, got %d", tensor_name, name, block, ne0));
  }
  // Keeps n and byte offsets (n/4 + 32 for I2_S) far from int64 overflow.
  constexpr int64_t kMaxValues = int64_t{1} << 48;
  if (ne1 > kMaxValues / ne0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "tensor '%s': %s tensor [%d, %d] has more than 2^48 values", tensor_name, name, ne0, ne1));
  }
  return absl::OkStatus();
}

// ---- I2_S ----

void PackI2S(const int8_t* t, int64_t n, float scale, uint8_t* out) {
  assert(n % kI2SBlockValues == 0);
  assert(ValidScale(scale));
  assert(AllTernary(t, n));
  for (int64_t b = 0; b < n / kI2SBlockValues; ++b) {
    const int8_t* v = t + b * kI2SBlockValues;
    uint8_t* o = out + b * kI2SBlockBytes;
    for (int k = 0; k < 32; ++k) {
      o[k] = static_cast<uint8_t>(((v[k] + 1) << 6) | ((v[k + 32] + 1) << 4) |
                                  ((v[k + 64] + 1) << 2) | (v[k + 96] + 1));
    }
  }
  uint8_t* tail = out + n / 4;
  std::memset(tail, 0, kI2STrailerBytes);
  std::memcpy(tail, &scale, sizeof(scale));
}

void UnpackI2SRange(const uint8_t* in, int64_t first, int64_t count, int8_t* t) {
  assert(first >= 0 && count >= 0);
  int64_t i = 0;
  // Whole aligned blocks take the direct path; ragged ends decode per value.
  while (i < count && (first + i) % kI2SBlockValues != 0) {
    t[i] = DecodeI2S(in, first + i);
    ++i;
  }
  for (; i + kI2SBlockValues <= count; i += kI2SBlockValues) {
    const uint8_t* block = in + (first + i) / kI2SBlockValues * kI2SBlockBytes;
    int8_t* v = t + i;
    for (int k = 0; k < 32; ++k) {
      const uint8_t byte = block[k];
      v[k] = static_cast<int8_t>((byte >> 6) - 1);
      v[k + 32] = static_cast<int8_t>(((byte >> 4) & 3) - 1);
      v[k + 64] = static_cast<int8_t>(((byte >> 2) & 3) - 1);
      v[k + 96] = static_cast<int8_t>((byte & 3) - 1);
    }
  }
  for (; i < count; ++i) t[i] = DecodeI2S(in, first + i);
}

float I2SScale(const uint8_t* in, int64_t n) {
  float scale;
  std::memcpy(&scale, in + n / 4, sizeof(scale));
  return scale;
}

void UnpackI2S(const uint8_t* in, int64_t n, int8_t* t, float* scale) {
  assert(n % kI2SBlockValues == 0);
  UnpackI2SRange(in, 0, n, t);
  if (scale != nullptr) *scale = I2SScale(in, n);
}

void DequantizeI2SRange(const uint8_t* in, int64_t first, int64_t count, float scale, float* dst) {
  int8_t t[kI2SBlockValues];
  for (int64_t done = 0; done < count;) {
    const int64_t chunk = std::min<int64_t>(kI2SBlockValues, count - done);
    UnpackI2SRange(in, first + done, chunk, t);
    for (int64_t i = 0; i < chunk; ++i) dst[done + i] = static_cast<float>(t[i]) * scale;
    done += chunk;
  }
}

int64_t CountInvalidI2SCodes(const uint8_t* in, int64_t n) {
  int64_t invalid = 0;
  for (int64_t k = 0; k < n / 4; ++k) {
    const uint8_t byte = in[k];
    for (int shift = 0; shift < 8; shift += 2) invalid += ((byte >> shift) & 3) == 3;
  }
  return invalid;
}

// ---- TQ1_0 / TQ2_0 ----

void PackTQ1_0(const int8_t* t, int64_t n, float scale, uint8_t* out) {
  PackTernaryTQ<PackTQ1_0Block, kTQ1_0BlockBytes>(t, n, scale, out);
}

void PackTQ2_0(const int8_t* t, int64_t n, float scale, uint8_t* out) {
  PackTernaryTQ<PackTQ2_0Block, kTQ2_0BlockBytes>(t, n, scale, out);
}

void QuantizeTQ1_0(const float* x, int64_t n, uint8_t* out) {
  QuantizeTQ<PackTQ1_0Block, kTQ1_0BlockBytes>(x, n, out);
}

void QuantizeTQ2_0(const float* x, int64_t n, uint8_t* out) {
  QuantizeTQ<PackTQ2_0Block, kTQ2_0BlockBytes>(x, n, out);
}

void UnpackTQ1_0(const uint8_t* in, int64_t n, int8_t* t, float* block_d) {
  UnpackTQ<UnpackTQ1_0Block, kTQ1_0BlockBytes>(in, n, t, block_d);
}

void UnpackTQ2_0(const uint8_t* in, int64_t n, int8_t* t, float* block_d) {
  UnpackTQ<UnpackTQ2_0Block, kTQ2_0BlockBytes>(in, n, t, block_d);
}

void DequantizeTQ1_0(const uint8_t* in, int64_t n, float* dst) {
  DequantizeTQ<UnpackTQ1_0Block, kTQ1_0BlockBytes>(in, n, dst);
}

void DequantizeTQ2_0(const uint8_t* in, int64_t n, float* dst) {
  DequantizeTQ<UnpackTQ2_0Block, kTQ2_0BlockBytes>(in, n, dst);
}

}  // namespace wf::quant
