// AVX-512 (F, BW, VL, DQ, VNNI) kernels, written for Zen 4. Compiled with the
// AVX-512 flags; only called after dispatch checked the CPU and the OS state.
// The structure mirrors avx2.cc function for function; the differences are
// 16-lane vectors, vpdpbusd accumulating straight into int32 (no int16 stage
// to widen), and the code unpacking described at I2STile.
//
// Everything here has internal linkage and calls no out-of-line library
// templates, so no AVX-512-encoded function can be shared by the linker with
// the other files.

// GCC 12's AVX-512 intrinsic headers self-initialise their "undefined"
// operands, which -Wuninitialized reports once inlined
// (https://gcc.gnu.org/bugzilla/show_bug.cgi?id=105593, fixed in GCC 13).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cassert>
#include <cstdint>

#include "worker/kernels/internal/isa_tables.h"
#include "worker/kernels/kernels.h"

namespace wf::kernels::internal {
namespace {

int64_t Min(int64_t a, int64_t b) { return a < b ? a : b; }

// ---------------------------------------------------------------------------
// Activation quantization
// ---------------------------------------------------------------------------

// Round half to even, as the generic magic-number add does for |v| < 2^22.
int32_t NearestInt(float v) {
  return _mm_cvtss_si32(
      _mm_round_ss(_mm_setzero_ps(), _mm_set_ss(v), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

void QuantizeActivationsI8(const float* x, int64_t k, int8_t* q, float* act_scale,
                           int32_t* act_sum) {
  assert(k >= 1);
  __m512 vmax = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= k; i += 16) {
    vmax = _mm512_max_ps(vmax, _mm512_abs_ps(_mm512_loadu_ps(x + i)));
  }
  float max_f = _mm512_reduce_max_ps(vmax);
  for (; i < k; ++i) {
    const float a = __builtin_fabsf(x[i]);
    if (a > max_f) max_f = a;
  }
  // The float max widened to double equals the max of the widened values.
  double max_abs = 0.00001;
  if (static_cast<double>(max_f) > max_abs) max_abs = max_f;
  const float s = static_cast<float>(127.0 / max_abs);

  const __m512 vs = _mm512_set1_ps(s);
  const __m512i lo = _mm512_set1_epi32(-128);
  const __m512i hi = _mm512_set1_epi32(127);
  __m512i vsum = _mm512_setzero_si512();
  i = 0;
  for (; i + 16 <= k; i += 16) {
    const __m512 scaled = _mm512_mul_ps(_mm512_loadu_ps(x + i), vs);
    const __m512 rounded =
        _mm512_roundscale_ps(scaled, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512i v = _mm512_min_epi32(_mm512_max_epi32(_mm512_cvtps_epi32(rounded), lo), hi);
    vsum = _mm512_add_epi32(vsum, v);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + i), _mm512_cvtsepi32_epi8(v));
  }
  int32_t sum = _mm512_reduce_add_epi32(vsum);
  for (; i < k; ++i) {
    const float scaled = x[i] * s;
    int32_t v = NearestInt(scaled);
    v = v > 127 ? 127 : (v < -128 ? -128 : v);
    q[i] = static_cast<int8_t>(v);
    sum += v;
  }
  *act_scale = s;
  *act_sum = sum;
}

// ---------------------------------------------------------------------------
// I2_S x int8
// ---------------------------------------------------------------------------

// Register tiles. The gemm tile keeps 4 rows x 4 tokens of int32 accumulators
// (16 zmm) plus 4 activation vectors, one code vector and constants within
// the 32 zmm registers, so each activation load feeds 4 vpdpbusd (Zen 4 loads
// at most one zmm per cycle). The gemv tile is the same with one token.
constexpr int kGemmRows = 4;
constexpr int kGemmTokens = 4;
constexpr int kGemvRows = 4;

// Raw dot products sum code * q of R rows (row r at w + r * row_bytes) with T
// tokens (token t at q + t * k); out[t * out_stride + r].
//
// The 32 code bytes of a block are broadcast to both 256-bit halves. Shifting
// the low half right by 6 and the high half by 4 (then masking) yields codes
// 0..31 and 32..63 of the block in order, which pair with the block's first 64
// activations; shifts 2 and 0 yield codes 64..127 for the last 64. vpdpbusd
// multiplies the unsigned codes by the signed activations and adds groups of
// 4 into int32: no saturation, and no overflow for k < 2^21.
template <int R, int T>
void I2STile(const uint8_t* w, int64_t row_bytes, const int8_t* q, int64_t k, int32_t* out,
             int64_t out_stride) {
  const __m512i mask = _mm512_set1_epi8(3);
  const __m512i shifts[2] = {_mm512_inserti64x4(_mm512_set1_epi16(6), _mm256_set1_epi16(4), 1),
                             _mm512_inserti64x4(_mm512_set1_epi16(2), _mm256_set1_epi16(0), 1)};
  __m512i acc[R][T];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_si512();
  }
  const int64_t blocks = k / kI2SBlock;
  for (int64_t b = 0; b < blocks; ++b) {
#pragma GCC unroll 2
    for (int half = 0; half < 2; ++half) {
      __m512i a[T];
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) {
        a[t] = _mm512_loadu_si512(q + t * k + kI2SBlock * b + 64 * half);
      }
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        // The next row tile's codes at this offset, as in avx2.cc.
        if (half == 0) {
          _mm_prefetch(reinterpret_cast<const char*>(w + (r + R) * row_bytes + 32 * b),
                       _MM_HINT_T0);
        }
        const __m512i raw = _mm512_broadcast_i64x4(
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + r * row_bytes + 32 * b)));
        const __m512i c = _mm512_and_si512(_mm512_srlv_epi16(raw, shifts[half]), mask);
#pragma GCC unroll 8
        for (int t = 0; t < T; ++t) acc[r][t] = _mm512_dpbusd_epi32(acc[r][t], c, a[t]);
      }
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) out[t * out_stride + r] = _mm512_reduce_add_epi32(acc[r][t]);
  }
}

// I2STile for the tokens left in the last token tile (1 <= tokens <= T).
template <int R, int T>
void I2STileForTokens(int64_t tokens, const uint8_t* w, int64_t row_bytes, const int8_t* q,
                      int64_t k, int32_t* out, int64_t out_stride) {
  if constexpr (T > 1) {
    if (tokens < T) {
      I2STileForTokens<R, T - 1>(tokens, w, row_bytes, q, k, out, out_stride);
      return;
    }
  }
  I2STile<R, T>(w, row_bytes, q, k, out, out_stride);
}

// Same walk as avx2.cc: L2-sized row blocks, then token tiles, then row tiles;
// sink(first_token, tokens, first_row, rows, dots) with
// dots[t * kI2SMaxRowsPerBlock + (r - first_row)].
template <int kRows, int kTokens, typename Sink>
void I2SDriver(const uint8_t* w, int64_t k, int64_t row_begin, int64_t row_end, const int8_t* q,
               int64_t n, Sink&& sink) {
  assert(k % kI2SBlock == 0 && k > 0 && row_begin <= row_end);
  const int64_t row_bytes = k / 4;
  int64_t rows_per_block = Min(kI2SMaxRowsPerBlock, kI2SRowBlockBytes / row_bytes);
  rows_per_block = rows_per_block < 4 ? 4 : rows_per_block / 4 * 4;
  alignas(64) int32_t dots[kTokens * kI2SMaxRowsPerBlock];
  for (int64_t rb = row_begin; rb < row_end; rb += rows_per_block) {
    const int64_t re = Min(row_end, rb + rows_per_block);
    for (int64_t t0 = 0; t0 < n; t0 += kTokens) {
      const int64_t tn = Min(kTokens, n - t0);
      const int8_t* qt = q + t0 * k;
      int64_t r = rb;
      for (; r + kRows <= re; r += kRows) {
        I2STileForTokens<kRows, kTokens>(tn, w + r * row_bytes, row_bytes, qt, k, dots + (r - rb),
                                         kI2SMaxRowsPerBlock);
      }
      for (; r < re; ++r) {
        I2STileForTokens<1, kTokens>(tn, w + r * row_bytes, row_bytes, qt, k, dots + (r - rb),
                                     kI2SMaxRowsPerBlock);
      }
      sink(t0, tn, rb, re - rb, static_cast<const int32_t*>(dots));
    }
  }
}

// y = (float)(dot - act_sum) / act_scale * w_scale, 16 rows at a time; the
// same IEEE operations in the same order as the generic kernel.
void I2SEpilogue(const int32_t* dots, int64_t rows, int32_t act_sum, float act_scale, float w_scale,
                 float* y) {
  const __m512i vsum = _mm512_set1_epi32(act_sum);
  const __m512 vact = _mm512_set1_ps(act_scale);
  const __m512 vw = _mm512_set1_ps(w_scale);
  int64_t r = 0;
  for (; r + 16 <= rows; r += 16) {
    const __m512i d = _mm512_sub_epi32(_mm512_loadu_si512(dots + r), vsum);
    _mm512_storeu_ps(y + r, _mm512_mul_ps(_mm512_div_ps(_mm512_cvtepi32_ps(d), vact), vw));
  }
  for (; r < rows; ++r) {
    y[r] = static_cast<float>(dots[r] - act_sum) / act_scale * w_scale;
  }
}

void I2SGemmI32(const uint8_t* w, int64_t k, int64_t row_begin, int64_t row_end, const int8_t* q,
                const int32_t* act_sum, int64_t n, int32_t* acc, int64_t acc_stride) {
  assert(acc_stride >= row_end);
  I2SDriver<kGemmRows, kGemmTokens>(
      w, k, row_begin, row_end, q, n,
      [&](int64_t t0, int64_t tn, int64_t r0, int64_t rows, const int32_t* dots) {
        for (int64_t t = 0; t < tn; ++t) {
          int32_t* out = acc + (t0 + t) * acc_stride + r0;
          const int32_t* d = dots + t * kI2SMaxRowsPerBlock;
          for (int64_t r = 0; r < rows; ++r) out[r] = d[r] - act_sum[t0 + t];
        }
      });
}

void I2SGemm(const uint8_t* w, int64_t k, int64_t row_begin, int64_t row_end, const int8_t* q,
             const float* act_scale, const int32_t* act_sum, int64_t n, float w_scale, float* y,
             int64_t y_stride) {
  assert(y_stride >= row_end);
  I2SDriver<kGemmRows, kGemmTokens>(
      w, k, row_begin, row_end, q, n,
      [&](int64_t t0, int64_t tn, int64_t r0, int64_t rows, const int32_t* dots) {
        for (int64_t t = 0; t < tn; ++t) {
          I2SEpilogue(dots + t * kI2SMaxRowsPerBlock, rows, act_sum[t0 + t], act_scale[t0 + t],
                      w_scale, y + (t0 + t) * y_stride + r0);
        }
      });
}

void I2SGemv(const uint8_t* w, int64_t k, int64_t row_begin, int64_t row_end, const int8_t* q,
             float act_scale, int32_t act_sum, float w_scale, float* y) {
  I2SDriver<kGemvRows, 1>(w, k, row_begin, row_end, q, 1,
                          [&](int64_t, int64_t, int64_t r0, int64_t rows, const int32_t* dots) {
                            I2SEpilogue(dots, rows, act_sum, act_scale, w_scale, y + r0);
                          });
}

// ---------------------------------------------------------------------------
// F16 head and float helpers
// ---------------------------------------------------------------------------

// R rows x T tokens of F32 accumulators; with a single token each row keeps
// two accumulators to hide the FMA latency.
template <int R, int T>
void F16Tile(const uint16_t* w, int64_t k, const float* x, float* y, int64_t y_stride) {
  // Two accumulators per (row, token) in every tile shape, as in avx2.cc:
  // the gemm gives each token the bits of its gemv.
  constexpr int kSplit = 2;
  __m512 acc[R][T][kSplit];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
#pragma GCC unroll 2
      for (int s = 0; s < kSplit; ++s) acc[r][t][s] = _mm512_setzero_ps();
    }
  }
  for (int64_t i = 0; i < k; i += 16 * kSplit) {
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
#pragma GCC unroll 2
      for (int s = 0; s < kSplit; ++s) {
        const __m512 wv = _mm512_cvtph_ps(
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + r * k + i + 16 * s)));
#pragma GCC unroll 8
        for (int t = 0; t < T; ++t) {
          acc[r][t][s] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + t * k + i + 16 * s), acc[r][t][s]);
        }
      }
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      __m512 sum = acc[r][t][0];
      if constexpr (kSplit == 2) sum = _mm512_add_ps(sum, acc[r][t][1]);
      y[t * y_stride + r] = _mm512_reduce_add_ps(sum);
    }
  }
}

constexpr int kF16Rows = 4;
constexpr int kF16Tokens = 2;

// F16Tile for the tokens left in the last token tile (1 <= tokens <= T).
template <int R, int T>
void F16TileForTokens(int64_t tokens, const uint16_t* w, int64_t k, const float* x, float* y,
                      int64_t y_stride) {
  if constexpr (T > 1) {
    if (tokens < T) {
      F16TileForTokens<R, T - 1>(tokens, w, k, x, y, y_stride);
      return;
    }
  }
  F16Tile<R, T>(w, k, x, y, y_stride);
}

// Rows outer, tokens inner, as in avx2.cc.
void F16Gemm(const uint16_t* w, int64_t k, int64_t row_begin, int64_t row_end, const float* x,
             int64_t n, float* y, int64_t y_stride) {
  assert(k % 32 == 0 && row_begin <= row_end && y_stride >= row_end);
  int64_t r = row_begin;
  for (; r + kF16Rows <= row_end; r += kF16Rows) {
    for (int64_t t0 = 0; t0 < n; t0 += kF16Tokens) {
      F16TileForTokens<kF16Rows, kF16Tokens>(Min(kF16Tokens, n - t0), w + r * k, k, x + t0 * k,
                                             y + t0 * y_stride + r, y_stride);
    }
  }
  for (; r < row_end; ++r) {
    for (int64_t t0 = 0; t0 < n; t0 += kF16Tokens) {
      F16TileForTokens<1, kF16Tokens>(Min(kF16Tokens, n - t0), w + r * k, k, x + t0 * k,
                                      y + t0 * y_stride + r, y_stride);
    }
  }
}

void F16Gemv(const uint16_t* w, int64_t k, int64_t row_begin, int64_t row_end, const float* x,
             float* y) {
  F16Gemm(w, k, row_begin, row_end, x, 1, y, row_end);
}

// ---------------------------------------------------------------------------
// Int8 head
// ---------------------------------------------------------------------------

// As avx2.cc, with vpdpbusd: |q| is the unsigned operand and w * sign(q),
// built with a masked negate (AVX-512 has no vpsignb), the signed one;
// exact for w in [-127, 127] and any q.
template <int R, int T>
void I8Tile(const int8_t* w, int64_t k, const int8_t* q, int32_t* out, int64_t out_stride) {
  const __m512i zero = _mm512_setzero_si512();
  __m512i acc[R][T];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_si512();
  }
  for (int64_t i = 0; i < k; i += 64) {
    __m512i qa[T];
    __mmask64 negative[T];
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      const __m512i qv = _mm512_loadu_si512(q + t * k + i);
      qa[t] = _mm512_abs_epi8(qv);
      negative[t] = _mm512_movepi8_mask(qv);
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512i wv = _mm512_loadu_si512(w + r * k + i);
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) {
        const __m512i signed_w = _mm512_mask_sub_epi8(wv, negative[t], zero, wv);
        acc[r][t] = _mm512_dpbusd_epi32(acc[r][t], qa[t], signed_w);
      }
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) out[t * out_stride + r] = _mm512_reduce_add_epi32(acc[r][t]);
  }
}

constexpr int kI8Rows = 4;
constexpr int kI8Tokens = 2;

template <int R>
void I8TileForTokens(int64_t tokens, const int8_t* w, int64_t k, const int8_t* q, int32_t* out,
                     int64_t out_stride) {
  if (tokens == 1) {
    I8Tile<R, 1>(w, k, q, out, out_stride);
  } else {
    I8Tile<R, kI8Tokens>(w, k, q, out, out_stride);
  }
}

// Rows outer, tokens inner, as in avx2.cc.
void I8Gemm(const int8_t* w, const float* row_scale, int64_t k, int64_t row_begin, int64_t row_end,
            const int8_t* q, const float* act_scale, int64_t n, float* y, int64_t y_stride) {
  assert(k % 64 == 0 && row_begin <= row_end && y_stride >= row_end);
  int32_t dots[kI8Tokens * kI8Rows];
  for (int64_t r = row_begin; r < row_end;) {
    const int64_t rows = row_end - r >= kI8Rows ? kI8Rows : 1;
    for (int64_t t0 = 0; t0 < n; t0 += kI8Tokens) {
      const int64_t tn = Min(kI8Tokens, n - t0);
      if (rows == kI8Rows) {
        I8TileForTokens<kI8Rows>(tn, w + r * k, k, q + t0 * k, dots, kI8Rows);
      } else {
        I8TileForTokens<1>(tn, w + r * k, k, q + t0 * k, dots, kI8Rows);
      }
      for (int64_t t = 0; t < tn; ++t) {
        for (int64_t i = 0; i < rows; ++i) {
          y[(t0 + t) * y_stride + r + i] =
              static_cast<float>(dots[t * kI8Rows + i]) / act_scale[t0 + t] * row_scale[r + i];
        }
      }
    }
    r += rows;
  }
}

void I8Gemv(const int8_t* w, const float* row_scale, int64_t k, int64_t row_begin, int64_t row_end,
            const int8_t* q, float act_scale, float* y) {
  I8Gemm(w, row_scale, k, row_begin, row_end, q, &act_scale, 1, y, row_end);
}

float F32Dot(const float* a, const float* b, int64_t n) {
  __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    acc[0] = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc[0]);
    acc[1] = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), acc[1]);
  }
  for (; i + 16 <= n; i += 16) {
    acc[0] = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc[0]);
  }
  float sum = _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1]));
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

void F16ToF32(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    _mm512_storeu_ps(
        dst + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i))));
  }
  for (; i < n; ++i) dst[i] = _cvtsh_ss(src[i]);
}

void F32ToF16(const float* src, uint16_t* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i),
                        _mm512_cvtps_ph(_mm512_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
  }
  for (; i < n; ++i) dst[i] = _cvtss_sh(src[i], _MM_FROUND_TO_NEAREST_INT);
}

// The attention kernels, on 256-bit vectors as in avx2.cc.
#include "worker/kernels/internal/attention_avx2.inc"

// Compute probes: 12 independent chains per round, each step depending on
// the last, every chain in a register. The int8 probe uses vpdpbusd, as the
// I2_S kernels of this table do: 64 unsigned x signed byte products summed
// into int32 per instruction (the chain feeds its own bytes back as the
// unsigned operand, so nothing folds).
int64_t I8MacProbe(int64_t rounds, int32_t* sink) {
  constexpr int kChains = 12;
  __m512i acc[kChains];
#pragma GCC unroll 12
  for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_epi32(c + 1);
  const __m512i b = _mm512_set1_epi8(-3);
  for (int64_t r = 0; r < rounds; ++r) {
#pragma GCC unroll 12
    for (int c = 0; c < kChains; ++c) acc[c] = _mm512_dpbusd_epi32(acc[c], acc[c], b);
  }
  __m512i sum = acc[0];
#pragma GCC unroll 12
  for (int c = 1; c < kChains; ++c) sum = _mm512_add_epi32(sum, acc[c]);
  *sink = _mm512_reduce_add_epi32(sum);
  return rounds * kChains * 64;
}

int64_t F32FmaProbe(int64_t rounds, float* sink) {
  constexpr int kChains = 12;
  __m512 acc[kChains];
#pragma GCC unroll 12
  for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_ps(0.001f * static_cast<float>(c));
  const __m512 m = _mm512_set1_ps(0.999f), add = _mm512_set1_ps(0.0001f);
  for (int64_t r = 0; r < rounds; ++r) {
#pragma GCC unroll 12
    for (int c = 0; c < kChains; ++c) acc[c] = _mm512_fmadd_ps(acc[c], m, add);
  }
  __m512 sum = acc[0];
#pragma GCC unroll 12
  for (int c = 1; c < kChains; ++c) sum = _mm512_add_ps(sum, acc[c]);
  *sink = _mm512_reduce_add_ps(sum);
  return rounds * kChains * 16;
}

// As avx2.cc, 64 bytes per load.
uint64_t ReadSum(const uint8_t* p, int64_t n) {
  const __m512i zero = _mm512_setzero_si512();
  __m512i acc[4] = {zero, zero, zero, zero};
  int64_t i = 0;
  for (; i + 256 <= n; i += 256) {
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      const __m512i v = _mm512_loadu_si512(p + i + 64 * j);
      acc[j] = _mm512_add_epi64(acc[j], _mm512_sad_epu8(v, zero));
    }
  }
  uint64_t sum = static_cast<uint64_t>(_mm512_reduce_add_epi64(
      _mm512_add_epi64(_mm512_add_epi64(acc[0], acc[1]), _mm512_add_epi64(acc[2], acc[3]))));
  for (; i < n; ++i) sum += p[i];
  return sum;
}

constexpr KernelTable kAvx512Table = {
    .isa = Isa::kAvx512,
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

const KernelTable& Avx512KernelTable() { return kAvx512Table; }

}  // namespace wf::kernels::internal
