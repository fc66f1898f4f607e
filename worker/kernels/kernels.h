// Compute kernels of the worker: ternary (I2_S) x int8 matrix products,
// per-token int8 activation quantization, the F16 embedding head (and an int8
// alternative to it) and a few float helpers.
//
// Kernels are pure, single-threaded functions on raw pointers and sizes. They
// see no tensors, models, threads or protos, allocate nothing on the heap and
// never fail: preconditions (stated per function type below) are validated
// once by the engine at model load and only assert()ed here. Every product
// works on a row range [row_begin, row_end) so the engine's thread pool can
// split rows between threads; calls on disjoint row ranges may run
// concurrently. Unaligned pointers are accepted, but activations aligned to
// 64 bytes avoid split loads in the SIMD kernels.
//
// One implementation per ISA (generic scalar reference, AVX2, AVX-512 VNNI)
// is gathered in a KernelTable. SelectKernels() picks the best table for this
// CPU once, honouring the BITNET_FORCE_ISA environment variable.
//
// Numerics: integer accumulations (I2_S, int8 head) are exact, and their
// float results are bit-identical in every ISA (the same IEEE operations in
// the same order), as is QuantizeActivationsI8. The F16 and F32 float kernels
// sum in an ISA-specific order and agree to rounding only.
//
// Example:
//   BN_ASSIGN_OR_RETURN(const wf::kernels::KernelTable* kt,
//                       wf::kernels::SelectKernels());
//   std::vector<int8_t> q(k);
//   float act_scale;
//   int32_t act_sum;
//   kt->quantize_activations_i8(x, k, q.data(), &act_scale, &act_sum);
//   kt->i2s_gemv(w_codes, k, 0, m, q.data(), act_scale, act_sum, w_scale, y);
#ifndef WF_WORKER_KERNELS_KERNELS_H_
#define WF_WORKER_KERNELS_KERNELS_H_

#include <cstdint>
#include <string_view>

#include "absl/status/statusor.h"

namespace wf::kernels {

// Instruction sets with a kernel implementation, lowest first.
enum class Isa {
  kGeneric = 0,  // portable scalar C++, the reference for the others
  kAvx2 = 1,     // AVX2 + FMA + F16C
  kAvx512 = 2,   // AVX-512 F/BW/VL/DQ + VNNI
};

// Lower-case name, as accepted by BITNET_FORCE_ISA: "generic", "avx2", "avx512".
std::string_view IsaName(Isa isa);
// Parses an IsaName() (case-insensitive). INVALID_ARGUMENT names the value and
// the accepted ones.
absl::StatusOr<Isa> ParseIsa(std::string_view name);

// Packed I2_S weights: a row-major matrix of ternary values with k values per
// row; row r starts at byte r * k / 4. Within a row, block b of 128 values
// occupies bytes [32b, 32b + 32); value 32g + j of the block (g in 0..3, j in
// 0..31) is in bits [7 - 2g : 6 - 2g] of byte 32b + j. Codes 0, 1, 2 mean
// -1, 0, +1 (3 never occurs). One float scale per tensor, passed separately.
inline constexpr int64_t kI2SBlock = 128;

// --- Function types. All pointers are non-null and do not alias outputs. ---

// Per-token int8 quantization of x[0, k): s = (float)(127 / max(max|x|, 1e-5))
// with the max taken in double; q[i] = clamp(round_half_even(x[i] * s),
// -128, 127) with the product rounded to float first; *act_scale = s;
// *act_sum = sum of q. x must be finite. k >= 1.
using QuantizeActivationsI8Fn = void (*)(const float* x, int64_t k, int8_t* q, float* act_scale,
                                         int32_t* act_sum);

// One token: for r in [row_begin, row_end),
//   acc = sum_i code(r, i) * q[i] - act_sum   (exact int32, = sum t * q)
//   y[r] = (float)acc / act_scale * w_scale    (that float order)
// w: I2_S codes of the whole matrix (row r at w + r * k / 4). k % 128 == 0,
// 0 <= row_begin <= row_end. y is indexed by absolute row.
using I2SGemvFn = void (*)(const uint8_t* w, int64_t k, int64_t row_begin, int64_t row_end,
                           const int8_t* q, float act_scale, int32_t act_sum, float w_scale,
                           float* y);

// n tokens: q is [n][k] row-major, act_scale/act_sum have n entries; writes
// y[t * y_stride + r] for t < n and r in [row_begin, row_end) with the gemv
// formula of token t. y_stride >= row_end (usually the matrix's row count m).
using I2SGemmFn = void (*)(const uint8_t* w, int64_t k, int64_t row_begin, int64_t row_end,
                           const int8_t* q, const float* act_scale, const int32_t* act_sum,
                           int64_t n, float w_scale, float* y, int64_t y_stride);

// The exact integer part of I2SGemm: acc[t * acc_stride + r] =
// sum_i code(r, i) * q[t * k + i] - act_sum[t]. For callers that fuse their
// own epilogue, and for tests.
using I2SGemmI32Fn = void (*)(const uint8_t* w, int64_t k, int64_t row_begin, int64_t row_end,
                              const int8_t* q, const int32_t* act_sum, int64_t n, int32_t* acc,
                              int64_t acc_stride);

// F16 weights [rows][k] (IEEE binary16 bits, row r at w + r * k) times float
// activations, F32 accumulation: y[r] = sum_i f32(w[r][i]) * x[i] for r in
// [row_begin, row_end). k % 32 == 0. Rounding x to F16 first, where a caller
// wants to reproduce that, is the caller's job.
using F16GemvFn = void (*)(const uint16_t* w, int64_t k, int64_t row_begin, int64_t row_end,
                           const float* x, float* y);

// n tokens: x is [n][k] row-major; y[t * y_stride + r]. k % 32 == 0. The
// summation order of one (row, token) depends on k only, so each token gets
// exactly the bits F16GemvFn gives it alone, whatever n and the row range.
using F16GemmFn = void (*)(const uint16_t* w, int64_t k, int64_t row_begin, int64_t row_end,
                           const float* x, int64_t n, float* y, int64_t y_stride);

// 8-bit head: int8 weights [rows][k] (row r at w + r * k) with one float scale
// per row, times int8 activations of n tokens ([n][k], as QuantizeActivationsI8
// produces them): for t < n and r in [row_begin, row_end),
//   acc = sum_i w[r][i] * q[t][i]   (exact int32)
//   y[t * y_stride + r] = (float)acc / act_scale[t] * row_scale[r]
// (that float order in every ISA). Weights must lie in [-127, 127]; any
// int8 activation is fine. k % 64 == 0, k < 2^17.
using I8GemmFn = void (*)(const int8_t* w, const float* row_scale, int64_t k, int64_t row_begin,
                          int64_t row_end, const int8_t* q, const float* act_scale, int64_t n,
                          float* y, int64_t y_stride);
using I8GemvFn = void (*)(const int8_t* w, const float* row_scale, int64_t k, int64_t row_begin,
                          int64_t row_end, const int8_t* q, float act_scale, float* y);

// sum_i a[i] * b[i] in float, any n >= 0.
using F32DotFn = float (*)(const float* a, const float* b, int64_t n);

// IEEE binary16 <-> binary32 conversion of n values, round to nearest even,
// subnormals, infinities and NaNs handled as F16C does. Any n >= 0.
using F16ToF32Fn = void (*)(const uint16_t* src, float* dst, int64_t n);
using F32ToF16Fn = void (*)(const float* src, uint16_t* dst, int64_t n);

// Attention scores of n_q query vectors against `rows` F16 key rows
// (row j at k + j * hd): out[g * out_stride + j] = sum_d q[g * hd + d] *
// f32(k[j * hd + d]) for g < n_q, j < rows. Summed in F32 in an ISA-specific
// order that depends on hd only, so a score never depends on rows, n_q or
// where its row sits in the call. hd % 8 == 0, n_q >= 1, out_stride >= rows.
using F16ScoresFn = void (*)(const uint16_t* k, int64_t rows, int64_t hd, const float* q,
                             int64_t n_q, float* out, int64_t out_stride);

// Probability-weighted sum of F16 value rows (row j at v + j * hd): for
// g < n_q and d < hd, acc[g * hd + d] is updated for j = 0, 1, ..., rows - 1
// in that order with acc = fma(p[g * p_stride + j], f32(v[j * hd + d]), acc),
// one correctly rounded fused multiply-add, so every ISA gives the same bits
// and a sum split over several calls equals one call.
// hd % 8 == 0, n_q >= 1.
using F16AccumulateRowsFn = void (*)(const uint16_t* v, int64_t rows, int64_t hd, const float* p,
                                     int64_t p_stride, int64_t n_q, float* acc);

// 8-bit KV cache rows ("q8": llama.cpp's q8_0 blocks, with float scales): a row of hd values
// (hd % 32 == 0) is hd int8 codes plus hd / 32 float scales, one per block of
// 32 consecutive values; value i is codes[i] * scales[i / 32].
inline constexpr int64_t kQ8Block = 32;

// Quantizes x[0, n) (n % 32 == 0, finite) into q8 blocks: per block,
// d = max|x| / 127, code = round_half_even(x * (1 / d)) (all 0 when d == 0),
// scale = d. Codes lie in [-127, 127]. One scalar function for every ISA: the
// cache and the queries quantize identically whatever the CPU.
void QuantizeQ8Blocks(const float* x, int64_t n, int8_t* codes, float* scales);

// Attention scores of n_q float query rows (q + g * hd) against `rows` q8
// key rows (row j: codes k + j * hd, scales k_scales + j * hd / 32). The
// queries stay in float: only the cache is quantized. Per (query, row),
// eight float lanes l start at 0 and for d = l, l + 8, l + 16, ... in order
//   lane_l = fma(q[d], (float)k[d] * k_scale[d / 32], lane_l)
// then out[g * out_stride + j] = ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)).
// The same bits on every ISA, whatever rows, n_q or the row's place in the
// call. hd % 32 == 0, n_q >= 1, out_stride >= rows.
using Q8ScoresFn = void (*)(const int8_t* k, const float* k_scales, int64_t rows, int64_t hd,
                            const float* q, int64_t n_q, float* out, int64_t out_stride);

// P.V over q8 value rows (row j: v + j * hd, v_scales + j * hd / 32): for
// g < n_q, j = 0, 1, ..., rows - 1 in that order and d < hd,
//   acc[g * hd + d] = fma(p[g * p_stride + j] * v_scale[j][d / 32], (float)v[j][d], acc[g * hd + d])
// (the weight a float product, then one fused multiply-add), so every ISA
// gives the same bits and a sum split over several calls equals one call.
// hd % 32 == 0, n_q >= 1.
using Q8AccumulateRowsFn = void (*)(const int8_t* v, const float* v_scales, int64_t rows, int64_t hd,
                                    const float* p, int64_t p_stride, int64_t n_q, float* acc);

// Softmax of n >= 1 attention scores in place, the same bits on every ISA:
//   x_j = p[j] * scale;  m = max_j x_j;
//   e_j = ExpNonPositive(x_j - m)   (internal/fast_exp.h, operation for operation)
//   sum = the e_j widened to double, summed into 8 partial sums by j % 8 in
//         increasing j, then ((s0 + s4) + (s2 + s6)) + ((s1 + s5) + (s3 + s7))
//   p[j] = e_j * (float)(1.0 / sum)
using F32SoftmaxFn = void (*)(float* p, int64_t n, float scale);

// Sum of the n bytes p[0, n) as unsigned values (exact). A memory-read
// bandwidth probe: it streams its input with the widest loads of the ISA, as
// the decode kernels do. Any n >= 0.
using ReadSumFn = uint64_t (*)(const uint8_t* p, int64_t n);

// Compute-throughput probes, the other half of the benchmark's roofline: each
// runs `rounds` rounds of independent register-only multiply-add chains of
// the kind the kernels are made of, and returns how many multiply-adds it
// did (the caller times it). `sink` receives a value that depends on every
// chain, so the work cannot be optimised away.
//   int8 probe: unsigned x signed byte products summed in pairs into int16
//   (vpmaddubsw + vpaddw, the core of the ternary and int8 kernels);
//   f32 probe: single-precision fused multiply-adds (the F16 head and
//   attention). Any rounds >= 0.
using I8MacProbeFn = int64_t (*)(int64_t rounds, int32_t* sink);
using F32FmaProbeFn = int64_t (*)(int64_t rounds, float* sink);

// The kernels of one ISA. Tables are immutable and live for the whole
// program; share the pointer freely between threads.
struct KernelTable {
  Isa isa;
  QuantizeActivationsI8Fn quantize_activations_i8;
  I2SGemvFn i2s_gemv;
  I2SGemmFn i2s_gemm;
  I2SGemmI32Fn i2s_gemm_i32;
  F16GemvFn f16_gemv;
  F16GemmFn f16_gemm;
  I8GemvFn i8_gemv;
  I8GemmFn i8_gemm;
  F32DotFn f32_dot;
  F16ToF32Fn f16_to_f32;
  F32ToF16Fn f32_to_f16;
  ReadSumFn read_sum;
  I8MacProbeFn i8_mac_probe;
  F32FmaProbeFn f32_fma_probe;
  F16ScoresFn f16_scores;
  F16AccumulateRowsFn f16_accumulate_rows;
  Q8ScoresFn q8_scores;
  Q8AccumulateRowsFn q8_accumulate_rows;
  F32SoftmaxFn f32_softmax;
};

// True if this CPU and OS can run `isa` (cpuid feature bits plus XCR0 state
// enabled by the OS). Always true for kGeneric.
bool CpuSupports(Isa isa);

// The highest ISA this CPU supports.
Isa BestSupportedIsa();

// The table of `isa`, or nullptr if this CPU cannot run it. Lets tests and
// benchmarks run every supported ISA side by side.
const KernelTable* KernelsFor(Isa isa);

// The table the worker should use, chosen as if BITNET_FORCE_ISA were
// `force_isa` ("" = unset = the best supported ISA). Errors:
// INVALID_ARGUMENT for an unknown name, FAILED_PRECONDITION when the forced
// ISA is not supported by this CPU (never a silent fallback).
absl::StatusOr<const KernelTable*> SelectKernelsForOverride(std::string_view force_isa);

// SelectKernelsForOverride(getenv("BITNET_FORCE_ISA")), decided once per
// process (the environment is read on the first call) and thread-safe. The
// worker calls it at start-up and reports an error status.
absl::StatusOr<const KernelTable*> SelectKernels();

}  // namespace wf::kernels

#endif  // WF_WORKER_KERNELS_KERNELS_H_
