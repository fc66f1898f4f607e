// Half-precision conversions: IEEE 754 binary16 ("F16", ggml type 1) and
// bfloat16 ("BF16", ggml type 30) to and from float32.
//
// F32 -> F16 rounds to nearest, ties to even; values whose magnitude rounds
// above 65504 become +-inf, values below half the smallest subnormal (2^-25)
// become +-0, subnormal halves are produced exactly. NaN stays NaN: the sign
// and the top 10 payload bits are kept and the result is always a quiet NaN,
// which is what the x86 F16C instruction VCVTPS2PH does.
// F16 -> F32 is exact for every finite value and infinity; a NaN keeps its sign
// and payload and comes back quiet (as VCVTPH2PS does).
//
// F32 -> BF16 rounds to nearest, ties to even (overflow gives +-inf; NaN stays
// a quiet NaN with its sign). BF16 -> F32 is exact (a 16-bit shift).
//
// The scalar functions are the reference; the bulk F16 -> F32 converter uses
// F16C when the CPU has it, which gives bit-identical results (tested over all
// 65536 halves). Everything here is pure and thread-safe.
//
// Example:
//   uint16_t h = F32ToF16(0.1f);        // 0x2e66
//   float f = F16ToF32(h);              // 0.0999755859375f
//   std::vector<float> row(ne0);
//   F16ToF32(embd_row, row.data(), row.size());  // one embedding row
#ifndef WF_COMMON_QUANT_FP16_H_
#define WF_COMMON_QUANT_FP16_H_

#include <bit>
#include <cstddef>
#include <cstdint>

namespace wf::quant {

// Scalar conversions.
uint16_t F32ToF16(float f);

inline float F16ToF32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13) | (mant != 0 ? 0x00400000u : 0u);
  } else if (exp != 0) {
    bits = sign | ((exp + 112u) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {
    // Subnormal half: normalize into a float32 normal number.
    uint32_t e = 113;
    while ((mant & 0x400u) == 0) {
      mant <<= 1;
      --e;
    }
    bits = sign | (e << 23) | ((mant & 0x3ffu) << 13);
  }
  return std::bit_cast<float>(bits);
}

inline uint16_t F32ToBF16(float f) {
  const uint32_t bits = std::bit_cast<uint32_t>(f);
  if ((bits & 0x7fffffffu) > 0x7f800000u) {
    return static_cast<uint16_t>((bits >> 16) | 0x0040u);  // quiet NaN
  }
  return static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

inline float BF16ToF32(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }

// Bulk row converters; `src` and `dst` must not overlap. No alignment needed.
void F16ToF32(const uint16_t* src, float* dst, size_t n);
void F32ToF16(const float* src, uint16_t* dst, size_t n);
void BF16ToF32(const uint16_t* src, float* dst, size_t n);
void F32ToBF16(const float* src, uint16_t* dst, size_t n);

// True when the CPU (and OS) support x86 F16C with AVX.
bool HasF16C();
// Hardware conversions through F16C, used by F16ToF32 and by the tests that
// check the scalar code against the hardware. On a CPU without F16C (see
// HasF16C()) they fall back to the scalar code.
void F16ToF32HardwareF16C(const uint16_t* src, float* dst, size_t n);
void F32ToF16HardwareF16C(const float* src, uint16_t* dst, size_t n);

}  // namespace wf::quant

#endif  // WF_COMMON_QUANT_FP16_H_
