// Row dequantization of the ggml tensor types this project reads (embeddings,
// norms, output heads), and a Q8_0 quantizer. Reference scalar code: results
// are bit-identical to ggml's dequantize_row_* for the same bytes.
//
// Block layouts (little-endian, no padding, no alignment required):
//   Q8_0 (type 8):  32 values -> 34 bytes: fp16 d; int8 qs[32].
//                   value i = qs[i] * d.
//   Q6_K (type 14): 256 values -> 210 bytes: uint8 ql[128]; uint8 qh[64];
//                   int8 scales[16]; fp16 d. Each half h (128 values) uses
//                   ql[64h..], qh[32h..], scales[8h..]; for l in 0..31 and
//                   is = l / 16, the 6-bit codes are
//                     value l      : ql[l]    & 15 | (qh[l] >> 0 & 3) << 4
//                     value l + 32 : ql[l+32] & 15 | (qh[l] >> 2 & 3) << 4
//                     value l + 64 : ql[l]    >> 4 | (qh[l] >> 4 & 3) << 4
//                     value l + 96 : ql[l+32] >> 4 | (qh[l] >> 6 & 3) << 4
//                   and value = d * scales[is + 2k] * (code - 32) for the
//                   k-th of those four lines.
//   F32 (0), F16 (1), BF16 (30): plain little-endian arrays.
// TQ1_0 (34) and TQ2_0 (35) are in common/quant/ternary_formats.h and are
// also reachable through DequantizeRow(). I2_S (36) needs the per-tensor
// scale and is not: use DequantizeI2SRange().
//
// All functions are pure and thread-safe. `n` must be a multiple of the block
// size (asserted in the typed functions; DequantizeRow returns an error).
//
// Example:
//   const uint8_t* row = embd_data + token * row_bytes;
//   BN_RETURN_IF_ERROR(DequantizeRow(type_id, row, out.data(), n_embd));
#ifndef WF_COMMON_QUANT_DEQUANT_H_
#define WF_COMMON_QUANT_DEQUANT_H_

#include <cstdint>

#include "absl/status/status.h"

namespace wf::quant {

// ggml type ids accepted by DequantizeRow().
inline constexpr uint32_t kGgmlTypeF32 = 0;
inline constexpr uint32_t kGgmlTypeF16 = 1;
inline constexpr uint32_t kGgmlTypeQ8_0 = 8;
inline constexpr uint32_t kGgmlTypeQ6_K = 14;
inline constexpr uint32_t kGgmlTypeBF16 = 30;
inline constexpr uint32_t kGgmlTypeTQ1_0 = 34;
inline constexpr uint32_t kGgmlTypeTQ2_0 = 35;
inline constexpr uint32_t kGgmlTypeI2S = 36;

inline constexpr int64_t kQ8_0BlockValues = 32;
inline constexpr int64_t kQ8_0BlockBytes = 34;
inline constexpr int64_t kQ6_KBlockValues = 256;
inline constexpr int64_t kQ6_KBlockBytes = 210;

void DequantizeRowF32(const uint8_t* src, float* dst, int64_t n);
void DequantizeRowF16(const uint8_t* src, float* dst, int64_t n);
void DequantizeRowBF16(const uint8_t* src, float* dst, int64_t n);
void DequantizeRowQ8_0(const uint8_t* src, float* dst, int64_t n);
void DequantizeRowQ6_K(const uint8_t* src, float* dst, int64_t n);

// ggml's quantize_row_q8_0_ref: per block d = max|x| / 127, q = roundf(x / d)
// (half away from zero; 0 when d == 0), d stored as fp16. Writes
// n / 32 * 34 bytes.
void QuantizeRowQ8_0(const float* src, uint8_t* dst, int64_t n);

// Dequantizes one row of n values of ggml type `ggml_type` from `src` into
// `dst` (n floats). Errors: InvalidArgument if n < 0 or n is not a multiple of
// the type's block size; Unimplemented for I2_S (needs the tensor scale) and
// for types not listed above.
absl::Status DequantizeRow(uint32_t ggml_type, const uint8_t* src, float* dst, int64_t n);

}  // namespace wf::quant

#endif  // WF_COMMON_QUANT_DEQUANT_H_
