#include "converter/ternarize.h"

#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace wf::convert {
namespace {

// If every nonzero |w| equals one value a, returns a; else 0.
float CommonMagnitude(const float* w, int64_t n) {
  float a = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    const float m = std::fabs(w[i]);
    if (m == 0.0f) continue;
    if (a == 0.0f) {
      a = m;
    } else if (m != a) {
      return 0.0f;
    }
  }
  return std::isfinite(a) ? a : 0.0f;
}

}  // namespace

absl::StatusOr<TernaryTensor> Ternarize(const float* w, int64_t n) {
  TernaryTensor out;
  out.values.resize(static_cast<size_t>(n));
  // Four partial sums in double: exact enough, and independent chains run in
  // parallel (one chain is a latency-bound loop over billions of values).
  double sums[4] = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    for (int k = 0; k < 4; ++k) sums[k] += std::fabs(static_cast<double>(w[i + k]));
  }
  for (; i < n; ++i) sums[0] += std::fabs(static_cast<double>(w[i]));
  const double sum = (sums[0] + sums[1]) + (sums[2] + sums[3]);
  if (!std::isfinite(sum)) {
    for (int64_t j = 0; j < n; ++j) {
      if (!std::isfinite(w[j])) {
        return absl::InvalidArgumentError(absl::StrCat("non-finite value ", w[j], " at element ", j));
      }
    }
  }
  const float a = CommonMagnitude(w, n);
  if (a > 0.0f) {
    for (int64_t j = 0; j < n; ++j) {
      out.values[j] = static_cast<int8_t>(w[j] > 0.0f ? 1 : (w[j] < 0.0f ? -1 : 0));
    }
    out.scale = a;
    out.was_ternary = true;
    return out;
  }
  float gamma = n > 0 ? static_cast<float>(sum / static_cast<double>(n)) : 0.0f;
  if (!(gamma >= 1e-5f)) gamma = 1e-5f;
  const float s = 1.0f / gamma;
  // Clamping to [-2, 2] first keeps the magic-number rounding exact: adding
  // 1.5 * 2^23 rounds half to even (as torch.round) for |x| < 2^22, and the
  // clamp to [-1, 1] afterwards gives the same result as clamping last.
  constexpr float kMagic = 12582912.0f;
  int8_t* dst = out.values.data();
  for (int64_t j = 0; j < n; ++j) {
    float x = w[j] * s;
    x = x < -2.0f ? -2.0f : (x > 2.0f ? 2.0f : x);
    float r = (x + kMagic) - kMagic;
    r = r < -1.0f ? -1.0f : (r > 1.0f ? 1.0f : r);
    dst[j] = static_cast<int8_t>(r);
  }
  out.scale = 1.0f / s;
  return out;
}

absl::StatusOr<TernaryTensor> UnpackHfPacked(const uint8_t* packed, int64_t packed_rows,
                                             int64_t cols, float weight_scale) {
  if (!(weight_scale > 0.0f) || !std::isfinite(weight_scale)) {
    return absl::InvalidArgumentError(
        absl::StrCat("weight_scale must be finite and > 0, got ", weight_scale));
  }
  TernaryTensor out;
  out.values.resize(static_cast<size_t>(4 * packed_rows * cols));
  for (int shift = 0; shift < 4; ++shift) {
    for (int64_t p = 0; p < packed_rows; ++p) {
      const uint8_t* src = packed + p * cols;
      int8_t* dst = out.values.data() + (shift * packed_rows + p) * cols;
      for (int64_t c = 0; c < cols; ++c) {
        const int code = (src[c] >> (2 * shift)) & 3;
        if (code == 3) {
          return absl::InvalidArgumentError(absl::StrCat(
              "invalid 2-bit code 3 at packed row ", p, ", column ", c, " (bits ", 2 * shift, "..",
              2 * shift + 1, ")"));
        }
        dst[c] = static_cast<int8_t>(code - 1);
      }
    }
  }
  out.scale = 1.0f / weight_scale;
  out.was_ternary = true;
  return out;
}

}  // namespace wf::convert
