// Storage formats of ternary weights: bitnet.cpp's I2_S and ggml's TQ1_0 and
// TQ2_0. A ternary value is an int8_t in {-1, 0, +1}; weight = value * scale.
//
// I2_S (ggml type 36, per-tensor scale). The n values of the whole tensor are
// flattened row-major (ne0 fastest) and cut into blocks of 128 -> 32 bytes.
// Value j of block b is the 2-bit code in byte 32*b + j % 32, bits
// [7 - 2g : 6 - 2g] with g = j / 32 (byte k of a block holds values k, k+32,
// k+64, k+96 from the high bits down). Codes: 0 -> -1, 1 -> 0, 2 -> +1. After
// the n/4 code bytes comes one float32 scale (little-endian) and 28 bytes we
// write as zeros: I2SBytes(n) = n/4 + 32. Row r of an [ne0, ne1] tensor
// starts at byte r*ne0/4, so with ne0 % 128 == 0 a row can be decoded from
// its own bytes.
//
// TQ2_0 (ggml type 35, 256 values -> 66 bytes): uint8 qs[64]; fp16 d.
// qs[32c + m] holds value 128c + m + 32k (k = 0..3) at bits 2k..2k+1 as code
// value + 1. Dequantized value = (code - 1) * d.
//
// TQ1_0 (ggml type 34, 256 values -> 54 bytes): uint8 qs[48]; uint8 qh[4];
// fp16 d. Base-3 digits ("trits", value + 1) packed five per byte, most
// significant first: qs[m] (m < 32) holds values m + 32k (k = 0..4);
// qs[32 + m] (m < 16) holds values 160 + m + 16k (k = 0..4); qh[j] holds
// values 240 + j + 4k (k = 0..3) plus a zero fifth trit. A byte stores
// ceil(t * 256 / 243) for the 5-trit number t; trit k is recovered as
// ((uint8_t)(byte * 3^k) * 3) >> 8.
//
// The TQ formats carry one fp16 scale per 256-value block. Packing ternary
// values with a per-tensor scale stores d = F16(scale) in every block that
// has a nonzero value and d = 0 in all-zero blocks, so the scale is rounded to
// fp16 (relative error <= 2^-11; scales outside the fp16 range, |s| > 65504 or
// < 6e-8, are not representable). Dequantizing gives ternary * d per block.
//
// Preconditions (checked only with assertions enabled): I2_S needs n % 128 ==
// 0, TQ formats need n % 256 == 0, packed input values must be in {-1, 0, +1},
// scales finite and >= 0, buffers large enough (see *Bytes()). A model loader
// validates shapes once with CheckTernaryShape(), which returns errors.
// Corrupt codes never crash: an I2_S or TQ2_0 code 3 (never written) decodes
// as +2, the value the reference kernels compute from it.
//
// All functions are pure and thread-safe; buffers are owned by the caller and
// need no alignment.
//
// Example:
//   std::vector<uint8_t> packed(I2SBytes(n));
//   PackI2S(t.data(), n, scale, packed.data());
//   ...
//   std::vector<int8_t> row(ne0);
//   UnpackI2SRange(tensor_bytes, r * ne0, ne0, row.data());   // row r
//   float s = I2SScale(tensor_bytes, ne0 * ne1);
#ifndef WF_COMMON_QUANT_TERNARY_FORMATS_H_
#define WF_COMMON_QUANT_TERNARY_FORMATS_H_

#include <cstdint>
#include <string_view>

#include "absl/status/status.h"

namespace wf::quant {

enum class TernaryFormat : uint32_t {
  kTQ1_0 = 34,  // ggml type ids
  kTQ2_0 = 35,
  kI2S = 36,
};

// "I2_S", "TQ1_0", "TQ2_0".
std::string_view TernaryFormatName(TernaryFormat format);

inline constexpr int64_t kI2SBlockValues = 128;
inline constexpr int64_t kI2SBlockBytes = 32;
inline constexpr int64_t kI2STrailerBytes = 32;  // float32 scale + 28 unused
inline constexpr int64_t kTQBlockValues = 256;   // QK_K
inline constexpr int64_t kTQ1_0BlockBytes = 54;
inline constexpr int64_t kTQ2_0BlockBytes = 66;

// Bytes of a whole I2_S tensor of n values (n % 128 == 0): n/4 + 32.
inline constexpr int64_t I2SBytes(int64_t n) { return n / 4 + kI2STrailerBytes; }
// Bytes of n values (n % 256 == 0) in TQ1_0 / TQ2_0.
inline constexpr int64_t TQ1_0Bytes(int64_t n) { return n / kTQBlockValues * kTQ1_0BlockBytes; }
inline constexpr int64_t TQ2_0Bytes(int64_t n) { return n / kTQBlockValues * kTQ2_0BlockBytes; }

// Checks that a [ne0, ne1] tensor (ne0 contiguous) can be stored in `format`
// with whole blocks in every row: ne0 % 128 == 0 for I2_S (rows then start on
// block boundaries), ne0 % 256 == 0 for TQ1_0/TQ2_0; both dims > 0.
// InvalidArgument naming the tensor otherwise, e.g. "tensor
// 'blk.0.ffn_down.weight': TQ1_0 needs a row size divisible by 256, got 320".
absl::Status CheckTernaryShape(TernaryFormat format, int64_t ne0, int64_t ne1,
                               std::string_view tensor_name);

// ---- I2_S ----

// Packs n ternary values and the per-tensor scale into I2SBytes(n) bytes.
void PackI2S(const int8_t* t, int64_t n, float scale, uint8_t* out);
// Inverse of PackI2S: n values into t, the scale into *scale (may be null).
void UnpackI2S(const uint8_t* in, int64_t n, int8_t* t, float* scale);
// Decodes values [first, first + count) of the tensor whose code bytes start
// at `in`. Any range works; for row r pass first = r * ne0, count = ne0.
void UnpackI2SRange(const uint8_t* in, int64_t first, int64_t count, int8_t* t);
// The scale stored after the n/4 code bytes.
float I2SScale(const uint8_t* in, int64_t n);
// dst[i] = value(first + i) * scale.
void DequantizeI2SRange(const uint8_t* in, int64_t first, int64_t count, float scale, float* dst);
// Number of code-3 (invalid) entries among the first n values.
int64_t CountInvalidI2SCodes(const uint8_t* in, int64_t n);

// ---- TQ1_0 / TQ2_0 ----
// `out` gets TQx_0Bytes(n) bytes; n % 256 == 0.

// From ternary values and one per-tensor scale (see the file comment).
void PackTQ1_0(const int8_t* t, int64_t n, float scale, uint8_t* out);
void PackTQ2_0(const int8_t* t, int64_t n, float scale, uint8_t* out);
// From floats with ggml's reference semantics: per block d = max|x|,
// value = round_half_away(x / d) (0 when d == 0), d stored as fp16.
void QuantizeTQ1_0(const float* x, int64_t n, uint8_t* out);
void QuantizeTQ2_0(const float* x, int64_t n, uint8_t* out);
// To ternary values plus the per-block scales d (n/256 floats; may be null).
void UnpackTQ1_0(const uint8_t* in, int64_t n, int8_t* t, float* block_d);
void UnpackTQ2_0(const uint8_t* in, int64_t n, int8_t* t, float* block_d);
// To floats: value * d, bit-identical to ggml's dequantize_row_tq{1,2}_0.
void DequantizeTQ1_0(const uint8_t* in, int64_t n, float* dst);
void DequantizeTQ2_0(const uint8_t* in, int64_t n, float* dst);

}  // namespace wf::quant

#endif  // WF_COMMON_QUANT_TERNARY_FORMATS_H_
