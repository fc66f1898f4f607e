#include "common/quant/fp16.h"

#include <bit>
#include <cstddef>
#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#define WF_QUANT_X86 1
#endif

namespace wf::quant {

uint16_t F32ToF16(float f) {
  const uint32_t bits = std::bit_cast<uint32_t>(f);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t abs = bits & 0x7fffffffu;
  if (abs > 0x7f800000u) {
    // Quiet the NaN and keep the top payload bits, matching VCVTPS2PH.
    return static_cast<uint16_t>(sign | 0x7e00u | ((abs >> 13) & 0x3ffu));
  }
  if (abs >= 0x38800000u) {  // >= 2^-14: a normal half, or overflow to inf.
    // Rebias the exponent (127 -> 15), then round the 13 dropped bits to
    // nearest even; a mantissa carry correctly bumps the exponent.
    const uint32_t rebased = abs - 0x38000000u;
    const uint32_t rounded = (rebased + 0x0fffu + ((rebased >> 13) & 1u)) >> 13;
    return static_cast<uint16_t>(sign | (rounded >= 0x7c00u ? 0x7c00u : rounded));
  }
  if (abs <= 0x33000000u) {  // <= 2^-25: ties to even round down to zero.
    return sign;
  }
  // Subnormal half: the result counts units of 2^-24. The float is
  // mant * 2^(e - 150) with the implicit bit, so shift by 126 - e (14..24).
  const uint32_t e = abs >> 23;
  const uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
  const uint32_t shift = 126u - e;
  uint32_t q = mant >> shift;
  const uint32_t rem = mant & ((1u << shift) - 1u);
  const uint32_t half = 1u << (shift - 1u);
  if (rem > half || (rem == half && (q & 1u) != 0)) ++q;  // may reach 0x400
  return static_cast<uint16_t>(sign | q);
}

void F32ToF16(const float* src, uint16_t* dst, size_t n) {
  for (size_t i = 0; i < n; ++i) dst[i] = F32ToF16(src[i]);
}

void BF16ToF32(const uint16_t* src, float* dst, size_t n) {
  for (size_t i = 0; i < n; ++i) dst[i] = BF16ToF32(src[i]);
}

void F32ToBF16(const float* src, uint16_t* dst, size_t n) {
  for (size_t i = 0; i < n; ++i) dst[i] = F32ToBF16(src[i]);
}

namespace {

void F16ToF32Scalar(const uint16_t* src, float* dst, size_t n) {
  for (size_t i = 0; i < n; ++i) dst[i] = F16ToF32(src[i]);
}

}  // namespace

#ifdef WF_QUANT_X86
namespace {

// Per-function target attributes keep the rest of the library baseline x86-64;
// these only run after HasF16C() said yes.
__attribute__((target("avx,f16c"))) void F16ToF32F16C(const uint16_t* src, float* dst, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
  }
  for (; i < n; ++i) dst[i] = _cvtsh_ss(src[i]);
}

__attribute__((target("avx,f16c"))) void F32ToF16F16C(const float* src, uint16_t* dst, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), h);
  }
  for (; i < n; ++i) dst[i] = _cvtss_sh(src[i], _MM_FROUND_TO_NEAREST_INT);
}

}  // namespace

bool HasF16C() {
  // __builtin_cpu_supports("avx") also checks that the OS saves YMM state.
  // F16C comes from CPUID leaf 1 (ECX bit 29) directly: clang 14 does not
  // accept "f16c" in __builtin_cpu_supports.
  static const bool has = [] {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    return __builtin_cpu_supports("avx") && __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 &&
           (ecx & bit_F16C) != 0;
  }();
  return has;
}

void F16ToF32HardwareF16C(const uint16_t* src, float* dst, size_t n) {
  if (!HasF16C()) return F16ToF32Scalar(src, dst, n);
  F16ToF32F16C(src, dst, n);
}

void F32ToF16HardwareF16C(const float* src, uint16_t* dst, size_t n) {
  if (!HasF16C()) return F32ToF16(src, dst, n);
  F32ToF16F16C(src, dst, n);
}

#else  // !WF_QUANT_X86

bool HasF16C() { return false; }

void F16ToF32HardwareF16C(const uint16_t* src, float* dst, size_t n) {
  F16ToF32Scalar(src, dst, n);
}

void F32ToF16HardwareF16C(const float* src, uint16_t* dst, size_t n) { F32ToF16(src, dst, n); }

#endif  // WF_QUANT_X86

void F16ToF32(const uint16_t* src, float* dst, size_t n) {
  // Bit-identical to the scalar path (the tests check all 65536 inputs).
  F16ToF32HardwareF16C(src, dst, n);
}

}  // namespace wf::quant
