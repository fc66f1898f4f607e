// Ternarization of BitNet b1.58 projection weights.
//
// BitNet b1.58 ("The Era of 1-bit LLMs", Ma et al. 2024, eq. 1-3) quantizes each
// projection matrix W with one absmean scale for the whole tensor:
//
//   gamma = max(mean(|W|), 1e-5)
//   s     = 1 / gamma                      (float32)
//   t     = clamp(round_half_even(W * s), -1, 1)
//   scale = 1 / s                          (float32)
//
// so W ~= t * scale. This is what bitnet.cpp's own pipeline stores for the
// published 2B-4T file: its preprocessing writes t / s as float32 and its I2_S
// quantizer keeps max|w| = 1 / s as the per-tensor scale. The mean is summed in
// double here; PyTorch sums float32 in a different order, so `scale` can differ
// from the reference by one float32 ulp.
//
// A tensor that is already ternary (every value in {-a, 0, +a} for one a > 0)
// keeps its values and a exactly, so converting a converted model is lossless.
//
// The packed Hugging Face format (quantization_mode "offline",
// microsoft/bitnet-b1.58-2B-4T) stores uint8 [out/4, in]: row i*P + p of the
// unpacked matrix (P = out/4) is bits 2i..2i+1 of packed row p, code - 1 is the
// ternary value, and the layer computes y = (x . t) / weight_scale, so
// scale = 1 / weight_scale.
#ifndef WF_CONVERTER_TERNARIZE_H_
#define WF_CONVERTER_TERNARIZE_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace wf::convert {

struct TernaryTensor {
  std::vector<int8_t> values;  // Row-major, each in {-1, 0, +1}.
  float scale = 0.0f;          // W ~= values * scale.
  bool was_ternary = false;    // The input already was {-a, 0, +a}.
};

// Absmean ternarization of n float weights (see the file comment).
// INVALID_ARGUMENT names the first non-finite value.
absl::StatusOr<TernaryTensor> Ternarize(const float* w, int64_t n);

// Unpacks the Hugging Face packed layout: `packed` is [packed_rows, cols]
// uint8, the result is [4 * packed_rows, cols]. Codes of 3 are invalid.
// `weight_scale` must be finite and > 0.
absl::StatusOr<TernaryTensor> UnpackHfPacked(const uint8_t* packed, int64_t packed_rows,
                                             int64_t cols, float weight_scale);

}  // namespace wf::convert

#endif  // WF_CONVERTER_TERNARIZE_H_
