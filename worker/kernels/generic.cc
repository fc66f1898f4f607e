// Portable scalar kernels: the reference every SIMD file is tested against.
// No intrinsics; compiled for the baseline target.
#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "worker/kernels/internal/fast_exp.h"
#include "worker/kernels/internal/isa_tables.h"
#include "worker/kernels/kernels.h"

namespace wf::kernels::internal {
namespace {

// ggml's nearest_int: adding 1.5 * 2^23 leaves the rounded integer in the low
// mantissa bits, with the FPU's round-half-to-even. Valid for |v| < 2^22.
int32_t NearestInt(float v) {
  const float shifted = v + 12582912.0f;
  int32_t bits;
  std::memcpy(&bits, &shifted, sizeof(bits));
  return (bits & 0x007fffff) - 0x00400000;
}

void QuantizeActivationsI8(const float* x, int64_t k, int8_t* q, float* act_scale,
                           int32_t* act_sum) {
  assert(k >= 1);
  double max_abs = 0.00001;
  for (int64_t i = 0; i < k; ++i) {
    const double a = std::fabs(static_cast<double>(x[i]));
    if (a > max_abs) max_abs = a;
  }
  const float s = static_cast<float>(127.0 / max_abs);
  int32_t sum = 0;
  for (int64_t i = 0; i < k; ++i) {
    const float scaled = x[i] * s;
    int32_t v = NearestInt(scaled);
    if (v > 127) v = 127;
    if (v < -128) v = -128;
    q[i] = static_cast<int8_t>(v);
    sum += v;
  }
  *act_scale = s;
  *act_sum = sum;
}

// sum_i code(i) * q[i] over one I2_S row of k values.
int32_t I2SRowDot(const uint8_t* row, const int8_t* q, int64_t k) {
  int32_t sum = 0;
  for (int64_t b = 0; b < k / kI2SBlock; ++b) {
    const uint8_t* bytes = row + 32 * b;
    const int8_t* qb = q + kI2SBlock * b;
    for (int g = 0; g < 4; ++g) {
      const int shift = 6 - 2 * g;
      for (int j = 0; j < 32; ++j) {
        const int32_t code = (bytes[j] >> shift) & 3;
        sum += code * qb[32 * g + j];
      }
    }
  }
  return sum;
}

void I2SGemmI32(const uint8_t* w, int64_t k, int64_t row_begin, int64_t row_end, const int8_t* q,
                const int32_t* act_sum, int64_t n, int32_t* acc, int64_t acc_stride) {
  assert(k % kI2SBlock == 0 && row_begin <= row_end && acc_stride >= row_end);
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t r = row_begin; r < row_end; ++r) {
      acc[t * acc_stride + r] = I2SRowDot(w + r * (k / 4), q + t * k, k) - act_sum[t];
    }
  }
}

void I2SGemm(const uint8_t* w, int64_t k, int64_t row_begin, int64_t row_end, const int8_t* q,
             const float* act_scale, const int32_t* act_sum, int64_t n, float w_scale, float* y,
             int64_t y_stride) {
  assert(k % kI2SBlock == 0 && row_begin <= row_end && y_stride >= row_end);
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t r = row_begin; r < row_end; ++r) {
      const int32_t acc = I2SRowDot(w + r * (k / 4), q + t * k, k) - act_sum[t];
      y[t * y_stride + r] = static_cast<float>(acc) / act_scale[t] * w_scale;
    }
  }
}

void I2SGemv(const uint8_t* w, int64_t k, int64_t row_begin, int64_t row_end, const int8_t* q,
             float act_scale, int32_t act_sum, float w_scale, float* y) {
  I2SGemm(w, k, row_begin, row_end, q, &act_scale, &act_sum, 1, w_scale, y, row_end);
}

float F16BitsToF32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exponent = (h >> 10) & 0x1f;
  const uint32_t mantissa = h & 0x3ff;
  uint32_t bits;
  if (exponent == 0) {
    // Zero or subnormal: mantissa * 2^-24 is exact in float.
    float magnitude = static_cast<float>(mantissa) * 0x1p-24f;
    std::memcpy(&bits, &magnitude, sizeof(bits));
    bits |= sign;
  } else if (exponent == 31) {
    bits = sign | 0x7f800000u | (mantissa << 13) | (mantissa != 0 ? 0x400000u : 0u);
  } else {
    bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

uint16_t F32ToF16Bits(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof(bits));
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000);
  const uint32_t abs = bits & 0x7fffffffu;
  if (abs > 0x7f800000u) {  // NaN: quiet it, keep the top payload bits
    return static_cast<uint16_t>(sign | 0x7e00 | ((abs >> 13) & 0x3ff));
  }
  if (abs >= 0x477ff000u) {  // >= 65520 rounds to infinity
    return static_cast<uint16_t>(sign | 0x7c00);
  }
  if (abs < 0x38800000u) {
    // Below the smallest normal half (2^-14): adding 0.5 aligns the value so
    // the FPU's round-to-nearest-even leaves the subnormal half mantissa in
    // the low bits (0.5 has an ulp of 2^-24, the subnormal half step).
    float magnitude;
    std::memcpy(&magnitude, &abs, sizeof(magnitude));
    magnitude += 0.5f;
    uint32_t m;
    std::memcpy(&m, &magnitude, sizeof(m));
    return static_cast<uint16_t>(sign | (m - 0x3f000000u));
  }
  // Normal: round the 13 dropped mantissa bits to nearest even (a carry
  // correctly bumps the exponent), then rebias the exponent from 127 to 15.
  const uint32_t rounded = abs + 0xfffu + ((abs >> 13) & 1u);
  return static_cast<uint16_t>(sign | ((rounded >> 13) - (112u << 10)));
}

void F16ToF32(const uint16_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = F16BitsToF32(src[i]);
}

void F32ToF16(const float* src, uint16_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = F32ToF16Bits(src[i]);
}

void F16Gemm(const uint16_t* w, int64_t k, int64_t row_begin, int64_t row_end, const float* x,
             int64_t n, float* y, int64_t y_stride) {
  assert(k % 32 == 0 && row_begin <= row_end && y_stride >= row_end);
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t r = row_begin; r < row_end; ++r) {
      const uint16_t* wr = w + r * k;
      const float* xt = x + t * k;
      float sum = 0.0f;
      for (int64_t i = 0; i < k; ++i) sum += F16BitsToF32(wr[i]) * xt[i];
      y[t * y_stride + r] = sum;
    }
  }
}

void F16Gemv(const uint16_t* w, int64_t k, int64_t row_begin, int64_t row_end, const float* x,
             float* y) {
  F16Gemm(w, k, row_begin, row_end, x, 1, y, row_end);
}

void I8Gemm(const int8_t* w, const float* row_scale, int64_t k, int64_t row_begin, int64_t row_end,
            const int8_t* q, const float* act_scale, int64_t n, float* y, int64_t y_stride) {
  assert(k % 64 == 0 && row_begin <= row_end && y_stride >= row_end);
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t r = row_begin; r < row_end; ++r) {
      const int8_t* wr = w + r * k;
      const int8_t* qt = q + t * k;
      int32_t acc = 0;
      for (int64_t i = 0; i < k; ++i) acc += wr[i] * qt[i];
      y[t * y_stride + r] = static_cast<float>(acc) / act_scale[t] * row_scale[r];
    }
  }
}

void I8Gemv(const int8_t* w, const float* row_scale, int64_t k, int64_t row_begin, int64_t row_end,
            const int8_t* q, float act_scale, float* y) {
  I8Gemm(w, row_scale, k, row_begin, row_end, q, &act_scale, 1, y, row_end);
}

float F32Dot(const float* a, const float* b, int64_t n) {
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

uint64_t ReadSum(const uint8_t* p, int64_t n) {
  uint64_t sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += p[i];
  return sum;
}

// Twelve independent chains per round, like the SIMD probes; the compiler
// may vectorise these, which is fine: the figure is what this table can do.
int64_t I8MacProbe(int64_t rounds, int32_t* sink) {
  constexpr int kChains = 12;
  int32_t acc[kChains] = {};
  int32_t a = 2;
  const int32_t b = -3;
  for (int64_t r = 0; r < rounds; ++r) {
    for (int c = 0; c < kChains; ++c) acc[c] = static_cast<int16_t>(acc[c] + a * b + (a + c) * b);
    a ^= 1;
  }
  int32_t sum = 0;
  for (int c = 0; c < kChains; ++c) sum += acc[c];
  *sink = sum;
  return rounds * kChains * 2;
}

int64_t F32FmaProbe(int64_t rounds, float* sink) {
  constexpr int kChains = 12;
  float acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = 0.001f * static_cast<float>(c);
  const float m = 0.999f, add = 0.0001f;
  for (int64_t r = 0; r < rounds; ++r) {
    for (int c = 0; c < kChains; ++c) acc[c] = acc[c] * m + add;
  }
  float sum = 0.0f;
  for (int c = 0; c < kChains; ++c) sum += acc[c];
  *sink = sum;
  return rounds * kChains;
}

void F16Scores(const uint16_t* k, int64_t rows, int64_t hd, const float* q, int64_t n_q,
               float* out, int64_t out_stride) {
  assert(hd % 8 == 0 && n_q >= 1 && out_stride >= rows);
  for (int64_t g = 0; g < n_q; ++g) {
    for (int64_t j = 0; j < rows; ++j) {
      float sum = 0.0f;
      for (int64_t d = 0; d < hd; ++d) sum += q[g * hd + d] * F16BitsToF32(k[j * hd + d]);
      out[g * out_stride + j] = sum;
    }
  }
}

void F16AccumulateRows(const uint16_t* v, int64_t rows, int64_t hd, const float* p,
                       int64_t p_stride, int64_t n_q, float* acc) {
  assert(hd % 8 == 0 && n_q >= 1);
  for (int64_t j = 0; j < rows; ++j) {
    for (int64_t g = 0; g < n_q; ++g) {
      const float pj = p[g * p_stride + j];
      float* a = acc + g * hd;
      for (int64_t d = 0; d < hd; ++d) a[d] = std::fma(pj, F16BitsToF32(v[j * hd + d]), a[d]);
    }
  }
}

void Q8Scores(const int8_t* k, const float* k_scales, int64_t rows, int64_t hd, const float* q,
              int64_t n_q, float* out, int64_t out_stride) {
  assert(hd % kQ8Block == 0 && n_q >= 1 && out_stride >= rows);
  const int64_t blocks = hd / kQ8Block;
  for (int64_t g = 0; g < n_q; ++g) {
    for (int64_t j = 0; j < rows; ++j) {
      float lane[8] = {};
      for (int64_t d = 0; d < hd; ++d) {
        const float kf = static_cast<float>(k[j * hd + d]) * k_scales[j * blocks + d / kQ8Block];
        lane[d % 8] = std::fma(q[g * hd + d], kf, lane[d % 8]);
      }
      out[g * out_stride + j] = ((lane[0] + lane[1]) + (lane[2] + lane[3])) +
                                ((lane[4] + lane[5]) + (lane[6] + lane[7]));
    }
  }
}

void Q8AccumulateRows(const int8_t* v, const float* v_scales, int64_t rows, int64_t hd, const float* p,
                      int64_t p_stride, int64_t n_q, float* acc) {
  assert(hd % kQ8Block == 0 && n_q >= 1);
  const int64_t blocks = hd / kQ8Block;
  for (int64_t j = 0; j < rows; ++j) {
    for (int64_t g = 0; g < n_q; ++g) {
      float* a = acc + g * hd;
      for (int64_t b = 0; b < blocks; ++b) {
        const float w = p[g * p_stride + j] * v_scales[j * blocks + b];
        for (int64_t d = b * kQ8Block; d < (b + 1) * kQ8Block; ++d) {
          a[d] = std::fma(w, static_cast<float>(v[j * hd + d]), a[d]);
        }
      }
    }
  }
}

void F32Softmax(float* p, int64_t n, float scale) {
  assert(n >= 1);
  float max = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < n; ++j) {
    p[j] *= scale;
    max = std::max(max, p[j]);
  }
  double s[8] = {};
  for (int64_t j = 0; j < n; ++j) {
    p[j] = internal::ExpNonPositive(p[j] - max);
    s[j % 8] += static_cast<double>(p[j]);
  }
  const double sum = ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t j = 0; j < n; ++j) p[j] *= inv;
}

constexpr KernelTable kGenericTable = {
    .isa = Isa::kGeneric,
    .quantize_activations_i8 = &QuantizeActivationsI8,
    .i2s_gemv = &I2SGemv,
    .i2s_gemm = &I2SGemm,
    .i2s_gemm_i32 = &I2SGemmI32,
    .f16_gemv = &F16Gemv,
    .f16_gemm = &F16Gemm,
    .i8_gemv = &I8Gemv,
    .i8_gemm = &I8Gemm,
    .f32_dot = &F32Dot,
    .f16_to_f32 = &F16ToF32,
    .f32_to_f16 = &F32ToF16,
    .read_sum = &ReadSum,
    .i8_mac_probe = &I8MacProbe,
    .f32_fma_probe = &F32FmaProbe,
    .f16_scores = &F16Scores,
    .f16_accumulate_rows = &F16AccumulateRows,
    .q8_scores = &Q8Scores,
    .q8_accumulate_rows = &Q8AccumulateRows,
    .f32_softmax = &F32Softmax,
};

}  // namespace

const KernelTable& GenericKernelTable() { return kGenericTable; }

}  // namespace wf::kernels::internal

namespace wf::kernels {

void QuantizeQ8Blocks(const float* x, int64_t n, int8_t* codes, float* scales) {
  assert(n % kQ8Block == 0);
  for (int64_t b = 0; b < n / kQ8Block; ++b) {
    const float* xb = x + b * kQ8Block;
    float amax = 0.0f;
    for (int64_t i = 0; i < kQ8Block; ++i) amax = std::max(amax, std::fabs(xb[i]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int64_t i = 0; i < kQ8Block; ++i) {
      // x * (1 / d) can land a hair above 127 for the largest value.
      codes[b * kQ8Block + i] =
          static_cast<int8_t>(std::clamp(internal::NearestInt(xb[i] * id), -127, 127));
    }
    scales[b] = d;
  }
}

}  // namespace wf::kernels
