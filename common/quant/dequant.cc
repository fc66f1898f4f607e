#include "common/quant/dequant.h"

#include <algorithm>
#include <bit>
#include <cassert>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "common/quant/fp16.h"
#include "common/quant/ternary_formats.h"

namespace wf::quant {
namespace {

static_assert(std::endian::native == std::endian::little);

float LoadF16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, sizeof(h));
  return F16ToF32(h);
}

}  // namespace

void DequantizeRowF32(const uint8_t* src, float* dst, int64_t n) {
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}

void DequantizeRowF16(const uint8_t* src, float* dst, int64_t n) {
  // GGUF rows are not always 2-byte aligned in memory; copy in small chunks.
  uint16_t buf[256];
  for (int64_t done = 0; done < n;) {
    const int64_t chunk = std::min<int64_t>(256, n - done);
    std::memcpy(buf, src + 2 * done, static_cast<size_t>(chunk) * 2);
    F16ToF32(buf, dst + done, static_cast<size_t>(chunk));
    done += chunk;
  }
}

void DequantizeRowBF16(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, src + 2 * i, sizeof(h));
    dst[i] = BF16ToF32(h);
  }
}

void DequantizeRowQ8_0(const uint8_t* src, float* dst, int64_t n) {
  assert(n % kQ8_0BlockValues == 0);
  for (int64_t b = 0; b < n / kQ8_0BlockValues; ++b) {
    const uint8_t* block = src + b * kQ8_0BlockBytes;
    const float d = LoadF16(block);
    const int8_t* qs = reinterpret_cast<const int8_t*>(block + 2);
    float* y = dst + b * kQ8_0BlockValues;
    for (int j = 0; j < kQ8_0BlockValues; ++j) y[j] = static_cast<float>(qs[j]) * d;
  }
}

void DequantizeRowQ6_K(const uint8_t* src, float* dst, int64_t n) {
  assert(n % kQ6_KBlockValues == 0);
  for (int64_t b = 0; b < n / kQ6_KBlockValues; ++b) {
    const uint8_t* block = src + b * kQ6_KBlockBytes;
    const uint8_t* ql = block;
    const uint8_t* qh = block + 128;
    const int8_t* sc = reinterpret_cast<const int8_t*>(block + 192);
    const float d = LoadF16(block + 208);
    float* y = dst + b * kQ6_KBlockValues;
    for (int half = 0; half < 2; ++half) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0xf) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        // Same operation order as ggml, (d * scale) * q, for identical floats.
        y[l] = d * static_cast<float>(sc[is]) * static_cast<float>(q1);
        y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
        y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
        y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
      }
      y += 128;
      ql += 64;
      qh += 32;
      sc += 8;
    }
  }
}

void QuantizeRowQ8_0(const float* src, uint8_t* dst, int64_t n) {
  assert(n % kQ8_0BlockValues == 0);
  for (int64_t b = 0; b < n / kQ8_0BlockValues; ++b) {
    const float* x = src + b * kQ8_0BlockValues;
    uint8_t* block = dst + b * kQ8_0BlockBytes;
    float amax = 0.0f;
    for (int j = 0; j < kQ8_0BlockValues; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const uint16_t d16 = F32ToF16(d);
    std::memcpy(block, &d16, sizeof(d16));
    for (int j = 0; j < kQ8_0BlockValues; ++j) {
      // x * id is within [-127, 127] up to rounding; the clamp only guards
      // the int8 conversion.
      const float q = std::clamp(std::roundf(x[j] * id), -128.0f, 127.0f);
      block[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(q));
    }
  }
}

absl::Status DequantizeRow(uint32_t ggml_type, const uint8_t* src, float* dst, int64_t n) {
  if (n < 0) {
    return absl::InvalidArgumentError(absl::StrFormat("DequantizeRow: negative value count %d", n));
  }
  int64_t block = 1;
  switch (ggml_type) {
    case kGgmlTypeF32:
    case kGgmlTypeF16:
    case kGgmlTypeBF16:
      break;
    case kGgmlTypeQ8_0:
      block = kQ8_0BlockValues;
      break;
    case kGgmlTypeQ6_K:
    case kGgmlTypeTQ1_0:
    case kGgmlTypeTQ2_0:
      block = 256;
      break;
    case kGgmlTypeI2S:
      return absl::UnimplementedError(
          "DequantizeRow: ggml type 36 (I2_S) needs the per-tensor scale; "
          "use DequantizeI2SRange");
    default:
      return absl::UnimplementedError(
          absl::StrFormat("DequantizeRow: unsupported ggml type %d", ggml_type));
  }
  if (n % block != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "DequantizeRow: ggml type %d needs a multiple of %d values, got %d", ggml_type, block, n));
  }
  switch (ggml_type) {
    case kGgmlTypeF32:
      DequantizeRowF32(src, dst, n);
      break;
    case kGgmlTypeF16:
      DequantizeRowF16(src, dst, n);
      break;
    case kGgmlTypeBF16:
      DequantizeRowBF16(src, dst, n);
      break;
    case kGgmlTypeQ8_0:
      DequantizeRowQ8_0(src, dst, n);
      break;
    case kGgmlTypeQ6_K:
      DequantizeRowQ6_K(src, dst, n);
      break;
    case kGgmlTypeTQ1_0:
      DequantizeTQ1_0(src, n, dst);
      break;
    case kGgmlTypeTQ2_0:
      DequantizeTQ2_0(src, n, dst);
      break;
  }
  return absl::OkStatus();
}

}  // namespace wf::quant
