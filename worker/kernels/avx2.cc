// AVX2 + FMA + F16C kernels. Compiled with -mavx2 -mfma -mf16c; only called
// after dispatch checked the CPU. Everything here has internal linkage so no
// AVX2-encoded function can be picked by the linker for another file.
#include <immintrin.h>

#include <cassert>
#include <cstdint>

#include "worker/kernels/internal/isa_tables.h"
#include "worker/kernels/kernels.h"

namespace wf::kernels::internal {
namespace {

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

int32_t HorizontalSum(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}

float HorizontalSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

float HorizontalMax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

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
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  __m256 vmax = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= k; i += 8) {
    vmax = _mm256_max_ps(vmax, _mm256_and_ps(_mm256_loadu_ps(x + i), abs_mask));
  }
  float max_f = HorizontalMax(vmax);
  for (; i < k; ++i) {
    const float a = __builtin_fabsf(x[i]);
    if (a > max_f) max_f = a;
  }
  // The float max widened to double equals the max of the widened values.
  double max_abs = 0.00001;
  if (static_cast<double>(max_f) > max_abs) max_abs = max_f;
  const float s = static_cast<float>(127.0 / max_abs);

  const __m256 vs = _mm256_set1_ps(s);
  const __m256i lo = _mm256_set1_epi32(-128);
  const __m256i hi = _mm256_set1_epi32(127);
  // packs works per 128-bit lane; this restores the element order.
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  __m256i vsum = _mm256_setzero_si256();
  i = 0;
  for (; i + 32 <= k; i += 32) {
    __m256i v[4];
    for (int j = 0; j < 4; ++j) {
      const __m256 scaled = _mm256_mul_ps(_mm256_loadu_ps(x + i + 8 * j), vs);
      const __m256 rounded = _mm256_round_ps(scaled, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      v[j] = _mm256_min_epi32(_mm256_max_epi32(_mm256_cvtps_epi32(rounded), lo), hi);
      vsum = _mm256_add_epi32(vsum, v[j]);
    }
    const __m256i packed =
        _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]), _mm256_packs_epi32(v[2], v[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + i),
                        _mm256_permutevar8x32_epi32(packed, order));
  }
  int32_t sum = HorizontalSum(vsum);
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

// vpmaddubsw multiplies the unsigned codes (0..2) by the signed activations
// and adds adjacent pairs into int16: |result| <= 2 * 2 * 128 = 512, so it
// never saturates. A block of 128 values adds 4 such results per int16 lane,
// so 16 blocks reach at most 64 * 512 = 32768 in magnitude, and only
// -32768 (every code 2, every q -128) is reached exactly: the int16
// accumulators are widened to int32 every 16 blocks.
constexpr int64_t kBlocksPerChunk = 16;
static_assert(kBlocksPerChunk * 4 * 2 * 2 * 128 <= 32768);

// Register tiles. The gemm tile (I2STileWide) unpacks one row's codes and
// feeds them to up to 6 tokens whose activations are maddubs memory operands
// from L1; 7 or 8 tokens run out of registers for the token addresses and
// spill (llvm-mca -mcpu=znver3 on the inner loop: 45.7 MACs/cycle for 6
// tokens, 40 for 4, 38.5 for 8). Tiles that also keep activations in
// registers for several rows spill their accumulators. The gemv tile shares
// one token's 4 activation vectors between 4 rows.
constexpr int kGemmRows = 1;
constexpr int kGemmTokens = 6;
constexpr int64_t kI2STileActivationBytes = 24 * 1024;
constexpr int kGemvRows = 4;

// Raw dot products sum code * q of R rows (row r at w + r * row_bytes) with T
// tokens (token t at q + t * k); out[t * out_stride + r].
template <int R, int T>
void I2STile(const uint8_t* w, int64_t row_bytes, const int8_t* q, int64_t k, int32_t* out,
             int64_t out_stride) {
  const __m256i mask = _mm256_set1_epi8(3);
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i acc32[R][T];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) acc32[r][t] = _mm256_setzero_si256();
  }
  const int64_t blocks = k / kI2SBlock;
  for (int64_t b0 = 0; b0 < blocks; b0 += kBlocksPerChunk) {
    const int64_t b1 = Min(blocks, b0 + kBlocksPerChunk);
    __m256i acc16[R][T];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) acc16[r][t] = _mm256_setzero_si256();
    }
    for (int64_t b = b0; b < b1; ++b) {
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        // Fetch the next row tile's codes at this offset: the hardware
        // prefetcher does not keep up with R short interleaved row streams
        // (a gemv over cold weights ran 1.7x faster with this on Zen 3).
        // Prefetching past the matrix end cannot fault.
        _mm_prefetch(reinterpret_cast<const char*>(w + (r + R) * row_bytes + 32 * b), _MM_HINT_T0);
        const __m256i raw =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + r * row_bytes + 32 * b));
        const __m256i c0 = _mm256_and_si256(_mm256_srli_epi16(raw, 6), mask);
        const __m256i c1 = _mm256_and_si256(_mm256_srli_epi16(raw, 4), mask);
        const __m256i c2 = _mm256_and_si256(_mm256_srli_epi16(raw, 2), mask);
        const __m256i c3 = _mm256_and_si256(raw, mask);
#pragma GCC unroll 8
        for (int t = 0; t < T; ++t) {
          const __m256i* qb = reinterpret_cast<const __m256i*>(q + t * k + kI2SBlock * b);
          __m256i a = acc16[r][t];
          a = _mm256_add_epi16(a, _mm256_maddubs_epi16(c0, _mm256_loadu_si256(qb)));
          a = _mm256_add_epi16(a, _mm256_maddubs_epi16(c1, _mm256_loadu_si256(qb + 1)));
          a = _mm256_add_epi16(a, _mm256_maddubs_epi16(c2, _mm256_loadu_si256(qb + 2)));
          a = _mm256_add_epi16(a, _mm256_maddubs_epi16(c3, _mm256_loadu_si256(qb + 3)));
          acc16[r][t] = a;
        }
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) {
        acc32[r][t] = _mm256_add_epi32(acc32[r][t], _mm256_madd_epi16(acc16[r][t], ones));
      }
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      out[t * out_stride + r] = HorizontalSum(acc32[r][t]);
    }
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

// One row x T tokens (T up to 8) for the gemm: the unpacked codes of a block
// feed every token, so the unpack cost is shared by twice as many tokens as
// in I2STile<1, 4>. The codes are unpacked two sub-blocks at a time and the
// int32 sums wait in memory between chunks, so 8 int16 accumulators, two
// code vectors, the raw bytes, the mask and two products fit 16 registers.
template <int T>
void I2STileWide(const uint8_t* w, const int8_t* q, int64_t k, int32_t* out, int64_t out_stride) {
  const __m256i mask = _mm256_set1_epi8(3);
  const __m256i ones = _mm256_set1_epi16(1);
  alignas(32) __m256i acc32[T];
#pragma GCC unroll 8
  for (int t = 0; t < T; ++t) acc32[t] = _mm256_setzero_si256();
  const int64_t blocks = k / kI2SBlock;
  for (int64_t b0 = 0; b0 < blocks; b0 += kBlocksPerChunk) {
    const int64_t b1 = Min(blocks, b0 + kBlocksPerChunk);
    __m256i acc16[T];
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) acc16[t] = _mm256_setzero_si256();
    for (int64_t b = b0; b < b1; ++b) {
      _mm_prefetch(reinterpret_cast<const char*>(w + k / 4 + 32 * b), _MM_HINT_T0);
      const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 32 * b));
      const int8_t* qb = q + kI2SBlock * b;
      {
        const __m256i c0 = _mm256_and_si256(_mm256_srli_epi16(raw, 6), mask);
        const __m256i c1 = _mm256_and_si256(_mm256_srli_epi16(raw, 4), mask);
#pragma GCC unroll 8
        for (int t = 0; t < T; ++t) {
          const __m256i* qt = reinterpret_cast<const __m256i*>(qb + t * k);
          const __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(c0, _mm256_loadu_si256(qt)),
                                             _mm256_maddubs_epi16(c1, _mm256_loadu_si256(qt + 1)));
          acc16[t] = _mm256_add_epi16(acc16[t], p);
        }
        // Keeps the compiler from interleaving the two halves, which would
        // need all four code vectors live at once and spill accumulators.
#pragma GCC unroll 8
        for (int t = 0; t < T; ++t) asm("" : "+x"(acc16[t]));
      }
      {
        const __m256i c2 = _mm256_and_si256(_mm256_srli_epi16(raw, 2), mask);
        const __m256i c3 = _mm256_and_si256(raw, mask);
#pragma GCC unroll 8
        for (int t = 0; t < T; ++t) {
          const __m256i* qt = reinterpret_cast<const __m256i*>(qb + t * k);
          const __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(c2, _mm256_loadu_si256(qt + 2)),
                                             _mm256_maddubs_epi16(c3, _mm256_loadu_si256(qt + 3)));
          acc16[t] = _mm256_add_epi16(acc16[t], p);
        }
      }
    }
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) acc32[t] = _mm256_add_epi32(acc32[t], _mm256_madd_epi16(acc16[t], ones));
    asm volatile("" : : : "memory");
  }
#pragma GCC unroll 8
  for (int t = 0; t < T; ++t) out[t * out_stride] = HorizontalSum(acc32[t]);
}

// I2STileWide for 1 <= tokens <= 6.
void I2STileWideForTokens(int64_t tokens, const uint8_t* w, const int8_t* q, int64_t k, int32_t* out,
                          int64_t out_stride) {
  switch (tokens) {
    case 6: I2STileWide<6>(w, q, k, out, out_stride); break;
    case 5: I2STileWide<5>(w, q, k, out, out_stride); break;
    case 4: I2STileWide<4>(w, q, k, out, out_stride); break;
    case 3: I2STileWide<3>(w, q, k, out, out_stride); break;
    case 2: I2STileWide<2>(w, q, k, out, out_stride); break;
    default: I2STileWide<1>(w, q, k, out, out_stride); break;
  }
}

// Walks [row_begin, row_end) in L2-sized row blocks; within a block, every
// tile of up to kTokens tokens meets every tile of kRows rows. After each
// (row block, token tile) it hands the raw dot products to
// sink(first_token, tokens, first_row, rows, dots) with
// dots[t * kI2SMaxRowsPerBlock + (r - first_row)].
template <int kRows, int kTokens, typename Sink>
void I2SDriver(const uint8_t* w, int64_t k, int64_t row_begin, int64_t row_end, const int8_t* q,
               int64_t n, Sink&& sink) {
  assert(k % kI2SBlock == 0 && k > 0 && row_begin <= row_end);
  const int64_t row_bytes = k / 4;
  int64_t rows_per_block = Min(kI2SMaxRowsPerBlock, kI2SRowBlockBytes / row_bytes);
  rows_per_block = rows_per_block < 4 ? 4 : rows_per_block / 4 * 4;
  alignas(32) int32_t dots[kTokens * kI2SMaxRowsPerBlock];
  // The activations of a token tile are re-read for every row: keep them
  // within L1 (6 tokens of the 6912-wide FFN down rows would be 41 KB).
  const int64_t token_tile = kRows == 1 && k * kTokens > kI2STileActivationBytes ? 4 : kTokens;
  for (int64_t rb = row_begin; rb < row_end; rb += rows_per_block) {
    const int64_t re = Min(row_end, rb + rows_per_block);
    for (int64_t t0 = 0; t0 < n; t0 += token_tile) {
      const int64_t tn = Min(token_tile, n - t0);
      const int8_t* qt = q + t0 * k;
      int64_t r = rb;
      if constexpr (kRows == 1) {
        for (; r < re; ++r) {
          I2STileWideForTokens(tn, w + r * row_bytes, qt, k, dots + (r - rb), kI2SMaxRowsPerBlock);
        }
      } else {
        for (; r + kRows <= re; r += kRows) {
          I2STileForTokens<kRows, kTokens>(tn, w + r * row_bytes, row_bytes, qt, k, dots + (r - rb),
                                           kI2SMaxRowsPerBlock);
        }
        for (; r < re; ++r) {
          I2STileForTokens<1, kTokens>(tn, w + r * row_bytes, row_bytes, qt, k, dots + (r - rb),
                                       kI2SMaxRowsPerBlock);
        }
      }
      sink(t0, tn, rb, re - rb, static_cast<const int32_t*>(dots));
    }
  }
}

// y = (float)(dot - act_sum) / act_scale * w_scale, 8 rows at a time; the same
// IEEE operations in the same order as the generic kernel.
void I2SEpilogue(const int32_t* dots, int64_t rows, int32_t act_sum, float act_scale, float w_scale,
                 float* y) {
  const __m256i vsum = _mm256_set1_epi32(act_sum);
  const __m256 vact = _mm256_set1_ps(act_scale);
  const __m256 vw = _mm256_set1_ps(w_scale);
  int64_t r = 0;
  for (; r + 8 <= rows; r += 8) {
    const __m256i d =
        _mm256_sub_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(dots + r)), vsum);
    _mm256_storeu_ps(y + r, _mm256_mul_ps(_mm256_div_ps(_mm256_cvtepi32_ps(d), vact), vw));
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

// R rows x T tokens of F32 accumulators, two per (row, token) over
// alternating 8-value chunks, so enough FMA chains hide the FMA latency and
// the summation order of a (row, token) is the same in every tile shape:
// the gemm gives each token the bits of its gemv.
template <int R, int T>
void F16Tile(const uint16_t* w, int64_t k, const float* x, float* y, int64_t y_stride) {
  constexpr int kSplit = 2;
  __m256 acc[R][T][kSplit];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
#pragma GCC unroll 2
      for (int s = 0; s < kSplit; ++s) acc[r][t][s] = _mm256_setzero_ps();
    }
  }
  for (int64_t i = 0; i < k; i += 8 * kSplit) {
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      // One cache line per row every other step, two row tiles ahead: with
      // R interleaved row streams, each only k * 2 bytes long, the 2B-4T
      // head streamed about 9% faster this way than with the hardware
      // prefetcher alone. Prefetching past the matrix end cannot fault.
      if ((i & 16) == 0) {
        _mm_prefetch(reinterpret_cast<const char*>(w + (r + 2 * R) * k + i), _MM_HINT_T0);
      }
#pragma GCC unroll 2
      for (int s = 0; s < kSplit; ++s) {
        const __m256 wv = _mm256_cvtph_ps(
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + r * k + i + 8 * s)));
#pragma GCC unroll 8
        for (int t = 0; t < T; ++t) {
          acc[r][t][s] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + t * k + i + 8 * s), acc[r][t][s]);
        }
      }
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      __m256 sum = acc[r][t][0];
      if constexpr (kSplit == 2) sum = _mm256_add_ps(sum, acc[r][t][1]);
      y[t * y_stride + r] = HorizontalSum(sum);
    }
  }
}

// One token: 4 rows (8 accumulators).
constexpr int kF16Rows = 4;

// Several tokens: each weight is converted to F32 once per token block into
// an L1 buffer of kF16BufRows rows x kF16BufK values, and tiles of
// kF16BufRows rows x kF16BufTokens tokens run over it with their
// accumulators parked in memory between passes. Converting per tile made
// vcvtph2ps (under one per cycle here) the bottleneck. A pass covers one
// k chunk and one of F16Tile's two interleaved accumulator sets (the 8-value
// chunks i + 8 * s of a 16-value step), so the per-lane FMA sequence of a
// (row, token) is F16Tile's: a token gets the bits of its gemv. 12
// accumulators, 3 tokens and 1 weight fill the 16 registers; the compiler
// reads the 4th token as an FMA memory operand, so 9 loads feed 12 FMAs.
// On Zen 3 the 3 x 4 tile ran 42 GFMA/s from L1 against 31 for
// 3 x 3, whose 9 accumulator chains do not cover the FMA latency at two
// FMAs per cycle; and batches of 4, 8 and 16 fill whole tiles.
constexpr int kF16BufRows = 3;
constexpr int kF16BufTokens = 4;
constexpr int64_t kF16BufK = 512;
constexpr int64_t kF16BufMaxTokens = 32;
constexpr int kF16BufAcc = 2 * kF16BufRows * kF16BufTokens;

// acc[s * R * T + r * T + t]: set s of (row r, token t).
template <int R, int T>
void F16BufTile(const float* wbuf, int64_t kc, const float* x, int64_t k, __m256* acc,
                bool first) {
#pragma GCC unroll 2
  for (int s = 0; s < 2; ++s) {
    __m256* set = acc + s * R * T;
    __m256 a[R][T];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
      for (int t = 0; t < T; ++t) a[r][t] = first ? _mm256_setzero_ps() : set[r * T + t];
    }
    for (int64_t i = 8 * s; i < kc; i += 16) {
      __m256 xv[T];
#pragma GCC unroll 4
      for (int t = 0; t < T; ++t) xv[t] = _mm256_loadu_ps(x + t * k + i);
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        const __m256 wv = _mm256_load_ps(wbuf + r * kF16BufK + i);
#pragma GCC unroll 4
        for (int t = 0; t < T; ++t) a[r][t] = _mm256_fmadd_ps(wv, xv[t], a[r][t]);
      }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
      for (int t = 0; t < T; ++t) set[r * T + t] = a[r][t];
    }
  }
}

template <int R, int T>
void F16BufTileForTokens(int64_t tokens, const float* wbuf, int64_t kc, const float* x, int64_t k,
                         __m256* acc, bool first) {
  if constexpr (T > 1) {
    if (tokens < T) {
      F16BufTileForTokens<R, T - 1>(tokens, wbuf, kc, x, k, acc, first);
      return;
    }
  }
  F16BufTile<R, T>(wbuf, kc, x, k, acc, first);
}

// R (<= kF16BufRows) rows starting at w, tokens [0, n) of x (n <=
// kF16BufMaxTokens): y[t * y_stride + r].
template <int R>
void F16BufRows(const uint16_t* w, int64_t k, const float* x, int64_t n, float* y,
                int64_t y_stride) {
  alignas(32) float wbuf[kF16BufRows * kF16BufK];
  __m256 acc[kF16BufMaxTokens / kF16BufTokens][kF16BufAcc];
  for (int64_t k0 = 0; k0 < k; k0 += kF16BufK) {
    const int64_t kc = Min(kF16BufK, k - k0);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const uint16_t* src = w + r * k + k0;
      float* dst = wbuf + r * kF16BufK;
      for (int64_t i = 0; i < kc; i += 8) {
        _mm256_store_ps(dst + i,
                        _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
      }
    }
    // The next chunk's weights arrive while this one is multiplied.
    if (k0 + kF16BufK < k) {
      for (int r = 0; r < R; ++r) {
        const char* next = reinterpret_cast<const char*>(w + r * k + k0 + kF16BufK);
        for (int64_t b = 0; b < 2 * kF16BufK; b += 64) _mm_prefetch(next + b, _MM_HINT_T0);
      }
    }
    for (int64_t t0 = 0, tile = 0; t0 < n; t0 += kF16BufTokens, ++tile) {
      F16BufTileForTokens<R, kF16BufTokens>(n - t0, wbuf, kc, x + t0 * k + k0, k, acc[tile],
                                            k0 == 0);
    }
  }
  for (int64_t t0 = 0, tile = 0; t0 < n; t0 += kF16BufTokens, ++tile) {
    const int64_t tn = Min(kF16BufTokens, n - t0);
    for (int r = 0; r < R; ++r) {
      for (int64_t t = 0; t < tn; ++t) {
        const __m256* a = acc[tile];
        y[(t0 + t) * y_stride + r] =
            HorizontalSum(_mm256_add_ps(a[r * tn + t], a[R * tn + r * tn + t]));
      }
    }
  }
}

// One token: rows outer, each row tile (kF16Rows * k * 2 bytes) streamed once.
void F16Gemm(const uint16_t* w, int64_t k, int64_t row_begin, int64_t row_end, const float* x,
             int64_t n, float* y, int64_t y_stride) {
  assert(k % 32 == 0 && row_begin <= row_end && y_stride >= row_end);
  if (n == 1) {
    int64_t r = row_begin;
    for (; r + kF16Rows <= row_end; r += kF16Rows) {
      F16Tile<kF16Rows, 1>(w + r * k, k, x, y + r, y_stride);
    }
    for (; r < row_end; ++r) F16Tile<1, 1>(w + r * k, k, x, y + r, y_stride);
    return;
  }
  for (int64_t t0 = 0; t0 < n; t0 += kF16BufMaxTokens) {
    const int64_t tn = Min(kF16BufMaxTokens, n - t0);
    const float* xt = x + t0 * k;
    float* yt = y + t0 * y_stride;
    int64_t r = row_begin;
    for (; r + kF16BufRows <= row_end; r += kF16BufRows) {
      F16BufRows<kF16BufRows>(w + r * k, k, xt, tn, yt + r, y_stride);
    }
    if (row_end - r == 2) F16BufRows<2>(w + r * k, k, xt, tn, yt + r, y_stride);
    if (row_end - r == 1) F16BufRows<1>(w + r * k, k, xt, tn, yt + r, y_stride);
  }
}

void F16Gemv(const uint16_t* w, int64_t k, int64_t row_begin, int64_t row_end, const float* x,
             float* y) {
  F16Gemm(w, k, row_begin, row_end, x, 1, y, row_end);
}

// ---------------------------------------------------------------------------
// Int8 head
// ---------------------------------------------------------------------------

// R rows x T tokens of int32 accumulators. vpmaddubsw needs one unsigned
// operand: |q| is unsigned (|-128| = 128 fits a byte) and w * sign(q) stays
// in [-127, 127], so the product is exact and a pair sums to at most
// 2 * 128 * 127 < 2^15 (no saturation); it is widened to int32 at once.
template <int R, int T>
void I8Tile(const int8_t* w, int64_t k, const int8_t* q, int32_t* out, int64_t out_stride) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i acc[R][T];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_si256();
  }
  for (int64_t i = 0; i < k; i += 32) {
    __m256i qv[T], qa[T];
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      qv[t] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + t * k + i));
      qa[t] = _mm256_abs_epi8(qv[t]);
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      // As in F16Tile: one line per row every 64 bytes, two row tiles
      // ahead (the 2B-4T q8 head, one thread, from memory: 11.7 -> 13.5 GB/s
      // median of 5 kernels_bench runs). Past the matrix end cannot fault.
      if ((i & 32) == 0) {
        _mm_prefetch(reinterpret_cast<const char*>(w + (r + 2 * R) * k + i), _MM_HINT_T0);
      }
      const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + r * k + i));
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) {
        const __m256i p = _mm256_maddubs_epi16(qa[t], _mm256_sign_epi8(wv, qv[t]));
        acc[r][t] = _mm256_add_epi32(acc[r][t], _mm256_madd_epi16(p, ones));
      }
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) out[t * out_stride + r] = HorizontalSum(acc[r][t]);
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

// Rows outer, tokens inner, as for the F16 head: the weights stream once.
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
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps()};
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      acc[j] =
          _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8 * j), _mm256_loadu_ps(b + i + 8 * j), acc[j]);
    }
  }
  for (; i + 8 <= n; i += 8) {
    acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc[0]);
  }
  float sum =
      HorizontalSum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

void F16ToF32(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(dst + i,
                     _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  }
  for (; i < n; ++i) dst[i] = _cvtsh_ss(src[i]);
}

void F32ToF16(const float* src, uint16_t* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
  }
  for (; i < n; ++i) dst[i] = _cvtss_sh(src[i], _MM_FROUND_TO_NEAREST_INT);
}

// ---------------------------------------------------------------------------
// Attention over F16 keys and values (shared with avx512.cc)
// ---------------------------------------------------------------------------

#include "worker/kernels/internal/attention_avx2.inc"

// Compute probes: 10-12 independent chains per round, each step depending on
// the last through a saturating (int8) or rounding (f32) operation the
// compiler cannot fold, with every chain in a register (enough chains to
// cover the multiplier's latency at two per cycle).
int64_t I8MacProbe(int64_t rounds, int32_t* sink) {
  constexpr int kChains = 8;  // + 2 constants: no spills
  __m256i acc[kChains];
#pragma GCC unroll 8
  for (int c = 0; c < kChains; ++c) acc[c] = _mm256_set1_epi16(static_cast<int16_t>(c + 1));
  const __m256i b = _mm256_set1_epi8(-3);
  const __m256i one = _mm256_set1_epi16(1);
  for (int64_t r = 0; r < rounds; ++r) {
#pragma GCC unroll 8
    for (int c = 0; c < kChains; ++c) {
      acc[c] = _mm256_add_epi16(_mm256_maddubs_epi16(acc[c], b), one);
    }
  }
  __m256i sum = acc[0];
#pragma GCC unroll 8
  for (int c = 1; c < kChains; ++c) sum = _mm256_add_epi16(sum, acc[c]);
  *sink = _mm256_extract_epi32(sum, 0);
  return rounds * kChains * 32;
}

int64_t F32FmaProbe(int64_t rounds, float* sink) {
  constexpr int kChains = 12;
  __m256 acc[kChains];
#pragma GCC unroll 12
  for (int c = 0; c < kChains; ++c) acc[c] = _mm256_set1_ps(0.001f * static_cast<float>(c));
  const __m256 m = _mm256_set1_ps(0.999f), add = _mm256_set1_ps(0.0001f);
  for (int64_t r = 0; r < rounds; ++r) {
#pragma GCC unroll 12
    for (int c = 0; c < kChains; ++c) acc[c] = _mm256_fmadd_ps(acc[c], m, add);
  }
  __m256 sum = acc[0];
#pragma GCC unroll 12
  for (int c = 1; c < kChains; ++c) sum = _mm256_add_ps(sum, acc[c]);
  *sink = _mm256_cvtss_f32(sum);
  return rounds * kChains * 8;
}

// vpsadbw against zero sums each 8 bytes into a 64-bit lane: exact, and
// cheap enough that the loop runs at memory speed.
uint64_t ReadSum(const uint8_t* p, int64_t n) {
  const __m256i zero = _mm256_setzero_si256();
  __m256i acc[4] = {zero, zero, zero, zero};
  int64_t i = 0;
  for (; i + 128 <= n; i += 128) {
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 32 * j));
      acc[j] = _mm256_add_epi64(acc[j], _mm256_sad_epu8(v, zero));
    }
  }
  const __m256i s =
      _mm256_add_epi64(_mm256_add_epi64(acc[0], acc[1]), _mm256_add_epi64(acc[2], acc[3]));
  alignas(32) uint64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), s);
  uint64_t sum = lanes[0] + lanes[1] + lanes[2] + lanes[3];
  for (; i < n; ++i) sum += p[i];
  return sum;
}

constexpr KernelTable kAvx2Table = {
    .isa = Isa::kAvx2,
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

const KernelTable& Avx2KernelTable() { return kAvx2Table; }

}  // namespace wf::kernels::internal
