// Branch-free float exp for the sampler's weights and the attention softmax.
// Private to worker/ (the kernels' softmax follows it operation for
// operation; the engine's sampler calls it); a header so that the tests can
// check its accuracy.
#ifndef WF_WORKER_KERNELS_INTERNAL_FAST_EXP_H_
#define WF_WORKER_KERNELS_INTERNAL_FAST_EXP_H_

#include <cstdint>

#include "absl/base/casts.h"

namespace wf::kernels::internal {

// cond ? a : b through bit masks. Written as a ternary, GCC turns the float
// arithmetic around it into branches it will not if-convert (the multiplies
// could trap under -ftrapping-math), and loops using it stop vectorising.
inline float Select(bool cond, float a, float b) {
  const uint32_t mask = 0u - static_cast<uint32_t>(cond);
  return absl::bit_cast<float>((absl::bit_cast<uint32_t>(a) & mask) |
                               (absl::bit_cast<uint32_t>(b) & ~mask));
}

// exp(x) for x <= 0 in float, 0 below -87 (and for -inf). Branch-free so
// that loops over a vocabulary vectorise, and free of libm so that the
// sampling weights are the same bits everywhere (the target builds with
// -ffp-contract=off). x = n*ln2 + r with |r| <= ln2/2, where the degree-7
// Taylor polynomial of exp(r) is accurate to about one float ulp.
inline float ExpNonPositive(float x) {
  const bool in_range = x > -87.0f;
  const float clamped = Select(in_range, x, -87.0f);
  // Round to nearest integer by adding and removing 1.5 * 2^23.
  const float n = (clamped * 1.44269504f + 12582912.0f) - 12582912.0f;
  // ln2 split so that n * kLn2Hi is exact for |n| < 2^9.
  constexpr float kLn2Hi = 0.693359375f;
  constexpr float kLn2Lo = -2.12194440e-4f;
  const float r = (clamped - n * kLn2Hi) - n * kLn2Lo;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const float scale =
      absl::bit_cast<float>((static_cast<int32_t>(n) + 127) << 23);
  return Select(in_range, p * scale, 0.0f);
}

}  // namespace wf::kernels::internal

#endif  // WF_WORKER_KERNELS_INTERNAL_FAST_EXP_H_
