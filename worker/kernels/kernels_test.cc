#include "worker/kernels/kernels.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <ostream>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace wf::kernels {

// Found by gtest through argument-dependent lookup, so failures name the ISA.
void PrintTo(Isa isa, std::ostream* os) { *os << IsaName(isa); }

namespace {

using ::testing::HasSubstr;
using ::wf::testing::IsOk;
using ::wf::testing::StatusIs;

// --- Independent reference helpers (deliberately not the generic kernels) ---

// Packs a row-major [m][k] matrix of -1/0/+1 into I2_S codes.
std::vector<uint8_t> PackI2S(const std::vector<int8_t>& ternary, int64_t k) {
  std::vector<uint8_t> packed(ternary.size() / 4, 0);
  for (size_t i = 0; i < ternary.size(); ++i) {
    const int64_t row = static_cast<int64_t>(i) / k;
    const int64_t col = static_cast<int64_t>(i) % k;
    const int64_t block = col / 128;
    const int64_t group = (col % 128) / 32;
    const int64_t lane = col % 32;
    const uint8_t code = static_cast<uint8_t>(ternary[i] + 1);
    packed[row * (k / 4) + block * 32 + lane] |= static_cast<uint8_t>(code << (6 - 2 * group));
  }
  return packed;
}

int32_t Int8Dot(const int8_t* t, const int8_t* q, int64_t k) {
  int64_t sum = 0;
  for (int64_t i = 0; i < k; ++i) sum += static_cast<int64_t>(t[i]) * q[i];
  return static_cast<int32_t>(sum);
}

// binary16 -> double, by the definition of the format.
double HalfToDouble(uint16_t h) {
  const int sign = (h >> 15) ? -1 : 1;
  const int exponent = (h >> 10) & 0x1f;
  const int mantissa = h & 0x3ff;
  if (exponent == 0) return sign * std::ldexp(mantissa, -24);
  if (exponent == 31) {
    return mantissa ? std::numeric_limits<double>::quiet_NaN()
                    : sign * std::numeric_limits<double>::infinity();
  }
  return sign * std::ldexp(1024 + mantissa, exponent - 25);
}

uint32_t FloatBits(float f) { return std::bit_cast<uint32_t>(f); }

std::vector<int8_t> RandomTernary(int64_t count, std::mt19937& rng) {
  std::uniform_int_distribution<int> dist(-1, 1);
  std::vector<int8_t> v(count);
  for (auto& x : v) x = static_cast<int8_t>(dist(rng));
  return v;
}

std::vector<int8_t> RandomInt8(int64_t count, std::mt19937& rng) {
  std::uniform_int_distribution<int> dist(-128, 127);
  std::vector<int8_t> v(count);
  for (auto& x : v) x = static_cast<int8_t>(dist(rng));
  return v;
}

std::vector<float> RandomFloats(int64_t count, float scale, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(count);
  for (auto& x : v) x = dist(rng);
  return v;
}

// Float sums in any order stay within k * u * sum|terms| of the exact sum
// (u = 2^-24); the factor 2 covers the F16->F32 products' own rounding.
constexpr double kFloatSumErrorPerTerm = 2.0 * 0x1p-24;

// --- Fixture: one instance per ISA; ISAs this CPU lacks are skipped. ---

class KernelsTest : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override {
    kt_ = KernelsFor(GetParam());
    if (kt_ == nullptr) {
      GTEST_SKIP() << "this CPU cannot run " << IsaName(GetParam());
    }
    generic_ = KernelsFor(Isa::kGeneric);
    ASSERT_NE(generic_, nullptr);
  }

  // Runs I2SGemm, I2SGemmI32 (and I2SGemv when n == 1) of the ISA under test
  // and of the generic kernels on rows [row_begin, row_end) and checks:
  // integer parts exactly equal the reference, float parts bit-identical to
  // generic and to the documented float expression; rows outside the range
  // untouched.
  void CheckI2S(const std::vector<int8_t>& ternary, const std::vector<int8_t>& q, int64_t m,
                int64_t k, int64_t n, int64_t row_begin, int64_t row_end) {
    SCOPED_TRACE(::testing::Message() << "m=" << m << " k=" << k << " n=" << n << " rows=["
                                      << row_begin << "," << row_end << ")");
    const std::vector<uint8_t> w = PackI2S(ternary, k);
    std::vector<float> act_scale(n);
    std::vector<int32_t> q_sum(n), act_sum(n);
    for (int64_t t = 0; t < n; ++t) {
      int64_t s = 0;
      for (int64_t i = 0; i < k; ++i) s += q[t * k + i];
      q_sum[t] = static_cast<int32_t>(s);
      // The quantizer's sum for most tokens; other values for some, since
      // the kernels subtract whatever they are given.
      act_sum[t] = q_sum[t] + (t % 3 == 2 ? -1001 : 0);
      act_scale[t] = 0.37f + 0.11f * static_cast<float>(t);
    }
    const float w_scale = 0.8125f;
    constexpr int32_t kSentinelI = 0x5a5a5a5a;
    const float kSentinelF = -1234.5f;

    std::vector<int32_t> acc(n * m, kSentinelI);
    kt_->i2s_gemm_i32(w.data(), k, row_begin, row_end, q.data(), act_sum.data(), n, acc.data(), m);
    std::vector<float> y(n * m, kSentinelF), y_generic(n * m, kSentinelF);
    kt_->i2s_gemm(w.data(), k, row_begin, row_end, q.data(), act_scale.data(), act_sum.data(), n,
                  w_scale, y.data(), m);
    generic_->i2s_gemm(w.data(), k, row_begin, row_end, q.data(), act_scale.data(), act_sum.data(),
                       n, w_scale, y_generic.data(), m);
    std::vector<float> y_gemv(m, kSentinelF);
    if (n == 1) {
      kt_->i2s_gemv(w.data(), k, row_begin, row_end, q.data(), act_scale[0], act_sum[0], w_scale,
                    y_gemv.data());
    }
    int failures = 0;
    for (int64_t t = 0; t < n && failures < 5; ++t) {
      for (int64_t r = 0; r < m && failures < 5; ++r) {
        const int64_t i = t * m + r;
        if (r < row_begin || r >= row_end) {
          failures += acc[i] != kSentinelI || y[i] != kSentinelF;
          EXPECT_EQ(acc[i], kSentinelI) << "row " << r << " outside the range";
          EXPECT_EQ(y[i], kSentinelF) << "row " << r << " outside the range";
          continue;
        }
        // sum code * q - act_sum with code = t + 1.
        const int32_t expected =
            Int8Dot(ternary.data() + r * k, q.data() + t * k, k) + q_sum[t] - act_sum[t];
        const float expected_y = static_cast<float>(expected) / act_scale[t] * w_scale;
        failures += acc[i] != expected || FloatBits(y[i]) != FloatBits(y_generic[i]) ||
                    FloatBits(y[i]) != FloatBits(expected_y);
        EXPECT_EQ(acc[i], expected) << "t=" << t << " r=" << r;
        EXPECT_EQ(FloatBits(y[i]), FloatBits(y_generic[i])) << "t=" << t << " r=" << r;
        EXPECT_EQ(FloatBits(y[i]), FloatBits(expected_y)) << "t=" << t << " r=" << r;
        if (n == 1) {
          failures += FloatBits(y_gemv[r]) != FloatBits(expected_y);
          EXPECT_EQ(FloatBits(y_gemv[r]), FloatBits(expected_y)) << "gemv r=" << r;
        }
      }
    }
  }

  const KernelTable* kt_ = nullptr;
  const KernelTable* generic_ = nullptr;
};

// --- Activation quantization ---

TEST_P(KernelsTest, QuantizeIsBitExactWithGeneric) {
  std::mt19937 rng(1);
  for (int64_t k : {1, 7, 16, 31, 32, 33, 100, 128, 2560, 6912}) {
    for (float scale : {1e-7f, 0.01f, 1.0f, 300.0f}) {
      SCOPED_TRACE(::testing::Message() << "k=" << k << " scale=" << scale);
      const std::vector<float> x = RandomFloats(k, scale, rng);
      std::vector<int8_t> q(k), q_generic(k);
      float s = 0, s_generic = 0;
      int32_t sum = 0, sum_generic = 0;
      kt_->quantize_activations_i8(x.data(), k, q.data(), &s, &sum);
      generic_->quantize_activations_i8(x.data(), k, q_generic.data(), &s_generic, &sum_generic);
      EXPECT_EQ(q, q_generic);
      EXPECT_EQ(FloatBits(s), FloatBits(s_generic));
      EXPECT_EQ(sum, sum_generic);
    }
  }
}

TEST_P(KernelsTest, QuantizeMatchesDefinition) {
  std::mt19937 rng(2);
  for (int64_t k : {5, 64, 2560}) {
    const std::vector<float> x = RandomFloats(k, 3.0f, rng);
    std::vector<int8_t> q(k);
    float s = 0;
    int32_t sum = 0;
    kt_->quantize_activations_i8(x.data(), k, q.data(), &s, &sum);
    double max_abs = 1e-5;
    for (float v : x) max_abs = std::max(max_abs, std::fabs(static_cast<double>(v)));
    const float expected_s = static_cast<float>(127.0 / max_abs);
    ASSERT_EQ(FloatBits(s), FloatBits(expected_s));
    int32_t expected_sum = 0;
    for (int64_t i = 0; i < k; ++i) {
      const float product = x[i] * expected_s;
      // std::nearbyint rounds half to even in the default rounding mode.
      const int v = static_cast<int>(std::clamp(std::nearbyint(product), -128.0f, 127.0f));
      EXPECT_EQ(q[i], v) << "i=" << i << " x=" << x[i];
      expected_sum += v;
    }
    EXPECT_EQ(sum, expected_sum);
  }
}

TEST_P(KernelsTest, QuantizeRoundsTiesToEven) {
  // max|x| = 127 makes s exactly 1, so x * s is x and the ties are exact.
  std::vector<float> x = {127.0f,  0.5f, 1.5f, 2.5f,  -0.5f,       -1.5f, -2.5f, 126.5f,
                          -127.0f, 3.5f, 4.5f, -3.5f, 0.49999997f, 1.0f,  0.0f,  -0.0f};
  // Twice, so the SIMD body (32 values) and the scalar tail both see ties.
  const std::vector<float> once = x;
  x.insert(x.end(), once.begin(), once.end());
  x.insert(x.end(), once.begin(), once.end());
  const std::vector<int8_t> expected_once = {127,  0, 2, 2,  0, -2, -2, 126,
                                             -127, 4, 4, -4, 0, 1,  0,  0};
  std::vector<int8_t> q(x.size());
  float s = 0;
  int32_t sum = 0;
  kt_->quantize_activations_i8(x.data(), static_cast<int64_t>(x.size()), q.data(), &s, &sum);
  EXPECT_EQ(s, 1.0f);
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(q[i], expected_once[i % once.size()]) << "x=" << x[i];
  }
  int32_t expected_sum = 0;
  for (int8_t v : expected_once) expected_sum += 3 * v;
  EXPECT_EQ(sum, expected_sum);
}

TEST_P(KernelsTest, QuantizeAllZeroUsesMinimumMax) {
  for (int64_t k : {3, 128}) {
    std::vector<float> x(k, 0.0f);
    std::vector<int8_t> q(k, 99);
    float s = 0;
    int32_t sum = 7;
    kt_->quantize_activations_i8(x.data(), k, q.data(), &s, &sum);
    EXPECT_EQ(FloatBits(s), FloatBits(static_cast<float>(127.0 / 0.00001)));
    EXPECT_EQ(sum, 0);
    EXPECT_EQ(q, std::vector<int8_t>(k, 0));
  }
  // Values below 1e-5 are scaled by 127 / 1e-5, not to +-127.
  std::vector<float> tiny(64, 1e-6f);
  tiny[3] = -2e-6f;
  std::vector<int8_t> q(64);
  float s = 0;
  int32_t sum = 0;
  kt_->quantize_activations_i8(tiny.data(), 64, q.data(), &s, &sum);
  EXPECT_EQ(q[0], 13);   // 1e-6 * 1.27e7 = 12.7
  EXPECT_EQ(q[3], -25);  // -25.4
  EXPECT_EQ(sum, 63 * 13 - 25);
}

// --- I2_S products ---

TEST_P(KernelsTest, I2SExactOverShapes) {
  std::mt19937 rng(3);
  for (int64_t k : {128, 256, 384, 2560, 6912}) {
    for (int64_t m : {1, 3, 7, 64, 640}) {
      const std::vector<int8_t> ternary = RandomTernary(m * k, rng);
      for (int64_t n : {1, 2, 3, 5, 7, 8, 13, 16}) {
        const std::vector<int8_t> q = RandomInt8(n * k, rng);
        CheckI2S(ternary, q, m, k, n, 0, m);
        if (HasFailure()) return;
      }
    }
  }
}

TEST_P(KernelsTest, I2SRowRanges) {
  std::mt19937 rng(4);
  const int64_t k = 384;
  const int64_t m = 640;
  const std::vector<int8_t> ternary = RandomTernary(m * k, rng);
  for (int64_t n : {1, 3, 5}) {
    const std::vector<int8_t> q = RandomInt8(n * k, rng);
    for (auto [begin, end] : std::vector<std::pair<int64_t, int64_t>>{
             {0, 0}, {5, 5}, {1, 2}, {3, 64}, {1, 639}, {320, 640}, {7, 530}}) {
      CheckI2S(ternary, q, m, k, n, begin, end);
    }
  }
}

// The AVX2 kernels keep int16 partial sums for up to 16 blocks; all-extreme
// inputs reach exactly -32768 there. k values straddle that chunk size.
TEST_P(KernelsTest, I2SEdgeValues) {
  std::mt19937 rng(5);
  for (int64_t k : {128, 2048, 2176, 6912}) {
    const int64_t m = 9;
    std::vector<std::vector<int8_t>> weights = {std::vector<int8_t>(m * k, -1),
                                                std::vector<int8_t>(m * k, 1),
                                                std::vector<int8_t>(m * k, 0)};
    std::vector<int8_t> alternating(m * k);
    for (int64_t i = 0; i < m * k; ++i) alternating[i] = static_cast<int8_t>(i % 2 ? 1 : -1);
    weights.push_back(alternating);
    weights.push_back(RandomTernary(m * k, rng));
    for (const auto& ternary : weights) {
      for (int pattern = 0; pattern < 4; ++pattern) {
        const int64_t n = 7;  // a full gemm token tile and a partial one
        std::vector<int8_t> q(n * k);
        for (int64_t i = 0; i < n * k; ++i) {
          switch (pattern) {
            case 0:
              q[i] = 127;
              break;
            case 1:
              q[i] = -128;
              break;
            case 2:
              q[i] = static_cast<int8_t>(i % 2 ? 127 : -128);
              break;
            default:
              q[i] = static_cast<int8_t>((i / 3) % 2 ? -128 : 127);
              break;
          }
        }
        CheckI2S(ternary, q, m, k, n, 0, m);
        const std::vector<int8_t> q1(q.begin(), q.begin() + k);
        CheckI2S(ternary, q1, m, k, 1, 0, m);
        if (HasFailure()) return;
      }
    }
  }
}

// --- Int8 head ---

TEST_P(KernelsTest, I8HeadExactOverShapesAndExtremes) {
  std::mt19937 rng(9);
  std::uniform_int_distribution<int> weight(-127, 127);
  for (int64_t k : {64, 128, 2560}) {
    for (int64_t m : {1, 3, 7, 64}) {
      for (int pattern = 0; pattern < 4; ++pattern) {
        std::vector<int8_t> w(m * k);
        for (int64_t i = 0; i < m * k; ++i) {
          w[i] = static_cast<int8_t>(pattern == 0   ? weight(rng)
                                     : pattern == 1 ? 127
                                     : pattern == 2 ? -127
                                                    : (i % 2 ? 127 : -127));
        }
        std::vector<float> row_scale(m);
        for (int64_t r = 0; r < m; ++r) row_scale[r] = 0.001f * static_cast<float>(r + 1);
        for (int64_t n : {1, 2, 3, 5}) {
          SCOPED_TRACE(::testing::Message()
                       << "k=" << k << " m=" << m << " n=" << n << " pattern=" << pattern);
          std::vector<int8_t> q = RandomInt8(n * k, rng);
          if (pattern != 0) {
            for (int64_t i = 0; i < n * k; ++i) q[i] = static_cast<int8_t>(i % 3 ? -128 : 127);
          }
          std::vector<float> act_scale(n);
          for (int64_t t = 0; t < n; ++t) act_scale[t] = 3.0f + static_cast<float>(t);
          const int64_t begin = m > 2 ? 1 : 0;
          std::vector<float> y(n * m, -7.0f), y_gemv(m, -7.0f);
          kt_->i8_gemm(w.data(), row_scale.data(), k, begin, m, q.data(), act_scale.data(), n,
                       y.data(), m);
          kt_->i8_gemv(w.data(), row_scale.data(), k, begin, m, q.data(), act_scale[0],
                       y_gemv.data());
          for (int64_t t = 0; t < n; ++t) {
            for (int64_t r = 0; r < m; ++r) {
              if (r < begin) {
                EXPECT_EQ(y[t * m + r], -7.0f);
                continue;
              }
              const int32_t acc = Int8Dot(w.data() + r * k, q.data() + t * k, k);
              const float expected = static_cast<float>(acc) / act_scale[t] * row_scale[r];
              ASSERT_EQ(FloatBits(y[t * m + r]), FloatBits(expected)) << "t=" << t << " r=" << r;
              if (t == 0) {
                ASSERT_EQ(FloatBits(y_gemv[r]), FloatBits(expected)) << "gemv r=" << r;
              }
            }
          }
        }
      }
    }
  }
}

// --- F16 head and helpers ---

TEST_P(KernelsTest, F16GemmMatchesReference) {
  std::mt19937 rng(6);
  std::uniform_int_distribution<int> mant(0, 0x3ff);
  std::uniform_int_distribution<int> expo(9, 17);  // |w| in about [2^-6, 2^2)
  std::uniform_int_distribution<int> sign(0, 1);
  for (int64_t k : {32, 128, 2560}) {
    for (int64_t m : {1, 3, 7, 64}) {
      std::vector<uint16_t> w(m * k);
      for (auto& h : w)
        h = static_cast<uint16_t>((sign(rng) << 15) | (expo(rng) << 10) | mant(rng));
      for (int64_t n : {1, 2, 3, 5, 9, 17, 33}) {  // 33: past one 32-token block
        SCOPED_TRACE(::testing::Message() << "k=" << k << " m=" << m << " n=" << n);
        const std::vector<float> x = RandomFloats(n * k, 1.0f, rng);
        const int64_t begin = m > 2 ? 1 : 0;
        const int64_t end = m;
        std::vector<float> y(n * m, -7.0f);
        kt_->f16_gemm(w.data(), k, begin, end, x.data(), n, y.data(), m);
        std::vector<float> y_gemv(m, -7.0f);
        kt_->f16_gemv(w.data(), k, begin, end, x.data(), y_gemv.data());
        for (int64_t t = 0; t < n; ++t) {
          for (int64_t r = 0; r < m; ++r) {
            const float got = y[t * m + r];
            if (r < begin) {
              EXPECT_EQ(got, -7.0f);
              continue;
            }
            double exact = 0, magnitude = 0;
            for (int64_t i = 0; i < k; ++i) {
              const double term = HalfToDouble(w[r * k + i]) * x[t * k + i];
              exact += term;
              magnitude += std::fabs(term);
            }
            const double bound = kFloatSumErrorPerTerm * k * magnitude;
            EXPECT_NEAR(got, exact, bound) << "t=" << t << " r=" << r;
            if (t == 0) {
              EXPECT_NEAR(y_gemv[r], exact, bound) << "gemv r=" << r;
            }
            // Each token gets the bits of its own gemv.
            std::vector<float> alone(m, -7.0f);
            kt_->f16_gemv(w.data(), k, r, r + 1, x.data() + t * k, alone.data());
            EXPECT_EQ(std::bit_cast<uint32_t>(got), std::bit_cast<uint32_t>(alone[r]))
                << "t=" << t << " r=" << r;
          }
        }
        if (begin > 0) {
          EXPECT_EQ(y_gemv[0], -7.0f);
        }
      }
    }
  }
}

TEST_P(KernelsTest, F32DotMatchesReference) {
  std::mt19937 rng(7);
  for (int64_t n : {0, 1, 7, 8, 33, 100, 2560}) {
    const std::vector<float> a = RandomFloats(n, 1.0f, rng);
    const std::vector<float> b = RandomFloats(n, 2.0f, rng);
    double exact = 0, magnitude = 0;
    for (int64_t i = 0; i < n; ++i) {
      exact += static_cast<double>(a[i]) * b[i];
      magnitude += std::fabs(static_cast<double>(a[i]) * b[i]);
    }
    EXPECT_NEAR(kt_->f32_dot(a.data(), b.data(), n), exact,
                kFloatSumErrorPerTerm * (n + 1) * magnitude)
        << "n=" << n;
  }
}

TEST_P(KernelsTest, F16ToF32AllValues) {
  std::vector<uint16_t> all(65536 + 3);
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint16_t>(i);
  std::vector<float> got(all.size()), generic(all.size());
  kt_->f16_to_f32(all.data(), got.data(), static_cast<int64_t>(all.size()));
  generic_->f16_to_f32(all.data(), generic.data(), static_cast<int64_t>(all.size()));
  for (size_t i = 0; i < all.size(); ++i) {
    const double expected = HalfToDouble(all[i]);
    if (std::isnan(expected)) {
      EXPECT_TRUE(std::isnan(got[i])) << "h=" << all[i];
      EXPECT_TRUE(std::isnan(generic[i])) << "h=" << all[i];
    } else {
      ASSERT_EQ(static_cast<double>(got[i]), expected) << "h=" << all[i];
      ASSERT_EQ(FloatBits(got[i]), FloatBits(generic[i])) << "h=" << all[i];
    }
  }
}

TEST_P(KernelsTest, F32ToF16RoundsToNearestEven) {
  const float inf = std::numeric_limits<float>::infinity();
  struct Case {
    float f;
    uint16_t h;
  };
  const std::vector<Case> cases = {
      {0.0f, 0x0000},         {-0.0f, 0x8000},        {1.0f, 0x3c00},
      {-2.0f, 0xc000},        {65504.0f, 0x7bff},     {65519.996f, 0x7bff},
      {65520.0f, 0x7c00},     {1e9f, 0x7c00},         {inf, 0x7c00},
      {-inf, 0xfc00},         {0x1p-24f, 0x0001},     {0x1p-25f, 0x0000},
      {0x1.8p-24f, 0x0002},   {0x1.4p-24f, 0x0001},   {0x1p-14f, 0x0400},
      {0x1.ff8p-15f, 0x03ff}, {0x1.ffcp-15f, 0x0400}, {0x1.ffep-15f, 0x0400},
      {0x1.002p+0f, 0x3c00},  {0x1.006p+0f, 0x3c02},  {0x1.002002p+0f, 0x3c01},
      {0x1p-149f, 0x0000},    {-0x1p-30f, 0x8000},
  };
  std::vector<float> in;
  for (const Case& c : cases) in.push_back(c.f);
  // Also random values, converted by both kernels.
  std::mt19937 rng(8);
  std::uniform_int_distribution<uint32_t> bits;
  for (int i = 0; i < 20000; ++i) {
    const float f = std::bit_cast<float>(bits(rng));
    if (!std::isnan(f)) in.push_back(f);
  }
  std::vector<uint16_t> got(in.size()), generic(in.size());
  kt_->f32_to_f16(in.data(), got.data(), static_cast<int64_t>(in.size()));
  generic_->f32_to_f16(in.data(), generic.data(), static_cast<int64_t>(in.size()));
  for (size_t i = 0; i < cases.size(); ++i) {
    EXPECT_EQ(got[i], cases[i].h) << "f=" << cases[i].f;
  }
  for (size_t i = 0; i < in.size(); ++i) {
    ASSERT_EQ(got[i], generic[i]) << "f=" << in[i];
  }
  // Every finite half survives the round trip.
  std::vector<uint16_t> halves;
  for (uint32_t h = 0; h < 65536; ++h) {
    if (((h >> 10) & 0x1f) != 0x1f) halves.push_back(static_cast<uint16_t>(h));
  }
  std::vector<float> widened(halves.size());
  std::vector<uint16_t> back(halves.size());
  kt_->f16_to_f32(halves.data(), widened.data(), static_cast<int64_t>(halves.size()));
  kt_->f32_to_f16(widened.data(), back.data(), static_cast<int64_t>(back.size()));
  EXPECT_EQ(back, halves);
}

std::vector<uint16_t> RandomHalves(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  std::vector<float> f(n);
  for (float& x : f) x = u(rng);
  std::vector<uint16_t> h(n);
  KernelsFor(Isa::kGeneric)->f32_to_f16(f.data(), h.data(), n);
  return h;
}

// Scores: within float rounding of the exact dot product, and a row's score
// does not depend on the rows or queries it is computed with.
TEST_P(KernelsTest, F16ScoresMatchReferenceAndDoNotDependOnTheCall) {
  for (int64_t hd : {8, 64, 128}) {
    for (int64_t n_q : {1, 2, 3, 4, 5, 8}) {
      const int64_t rows = 13;
      const std::vector<uint16_t> k = RandomHalves(rows * hd, 3 + hd);
      std::vector<float> q(n_q * hd);
      std::mt19937 rng(5 + n_q);
      std::uniform_real_distribution<float> u(-1.0f, 1.0f);
      for (float& x : q) x = u(rng);
      const int64_t stride = rows + 3;
      std::vector<float> out(n_q * stride, -7.0f);
      kt_->f16_scores(k.data(), rows, hd, q.data(), n_q, out.data(), stride);
      for (int64_t g = 0; g < n_q; ++g) {
        for (int64_t j = 0; j < rows; ++j) {
          double exact = 0.0, magnitude = 0.0;
          for (int64_t d = 0; d < hd; ++d) {
            const double term = static_cast<double>(q[g * hd + d]) * HalfToDouble(k[j * hd + d]);
            exact += term;
            magnitude += std::fabs(term);
          }
          EXPECT_NEAR(out[g * stride + j], exact, hd * kFloatSumErrorPerTerm * magnitude + 1e-30)
              << "hd " << hd << " n_q " << n_q << " g " << g << " j " << j;
          // Alone: one row, one query.
          float alone = 0.0f;
          kt_->f16_scores(k.data() + j * hd, 1, hd, q.data() + g * hd, 1, &alone, 1);
          EXPECT_EQ(std::bit_cast<uint32_t>(alone), std::bit_cast<uint32_t>(out[g * stride + j]));
        }
        for (int64_t j = rows; j < stride; ++j) EXPECT_EQ(out[g * stride + j], -7.0f);
      }
    }
  }
}

// Accumulation: the documented fused multiply-add in row order, so every ISA
// matches generic bit for bit and split calls equal one call.
TEST_P(KernelsTest, F16AccumulateRowsIsBitExactWithGenericAndSplittable) {
  for (int64_t hd : {8, 64, 128}) {
    for (int64_t n_q : {1, 3, 4, 6}) {
      const int64_t rows = 21;
      const std::vector<uint16_t> v = RandomHalves(rows * hd, 9 + hd);
      const int64_t stride = rows + 2;
      std::vector<float> p(n_q * stride);
      std::mt19937 rng(11 + n_q);
      std::uniform_real_distribution<float> u(0.0f, 1.0f);
      for (float& x : p) x = u(rng);
      std::vector<float> init(n_q * hd);
      for (float& x : init) x = u(rng) - 0.5f;
      std::vector<float> ours = init, reference = init, split = init;
      kt_->f16_accumulate_rows(v.data(), rows, hd, p.data(), stride, n_q, ours.data());
      generic_->f16_accumulate_rows(v.data(), rows, hd, p.data(), stride, n_q, reference.data());
      kt_->f16_accumulate_rows(v.data(), 5, hd, p.data(), stride, n_q, split.data());
      kt_->f16_accumulate_rows(v.data() + 5 * hd, rows - 5, hd, p.data() + 5, stride, n_q,
                               split.data());
      // The definition, spelled out.
      std::vector<float> manual = init;
      for (int64_t j = 0; j < rows; ++j) {
        for (int64_t g = 0; g < n_q; ++g) {
          for (int64_t d = 0; d < hd; ++d) {
            manual[g * hd + d] = std::fma(p[g * stride + j],
                                          static_cast<float>(HalfToDouble(v[j * hd + d])),
                                          manual[g * hd + d]);
          }
        }
      }
      EXPECT_EQ(0, std::memcmp(ours.data(), reference.data(), ours.size() * sizeof(float)))
          << "hd " << hd << " n_q " << n_q;
      EXPECT_EQ(0, std::memcmp(ours.data(), split.data(), ours.size() * sizeof(float)));
      EXPECT_EQ(0, std::memcmp(ours.data(), manual.data(), ours.size() * sizeof(float)));
    }
  }
}

// Random q8 codes in [-127, 127] with the extremes forced in, and scales of
// varied magnitude.
std::vector<int8_t> RandomQ8Codes(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int8_t> c(n);
  for (int8_t& x : c) x = static_cast<int8_t>(static_cast<int>(rng() % 255) - 127);
  for (int64_t i = 0; i < n; i += 37) c[i] = (i / 37) % 2 == 0 ? 127 : -127;
  return c;
}

std::vector<float> RandomQ8Scales(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-8.0f, 2.0f);
  std::vector<float> s(n);
  for (float& x : s) x = std::exp2(u(rng)) / 127.0f;
  return s;
}

TEST(Q8BlocksTest, QuantizeMatchesTheDefinitionAndRoundTrips) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-3.0f, 3.0f);
  std::vector<float> x(128);
  for (float& v : x) v = u(rng);
  std::fill(x.begin() + 32, x.begin() + 64, 0.0f);  // an all-zero block
  x[70] = -5.0f;                                    // a negative maximum
  std::vector<int8_t> codes(128);
  std::vector<float> scales(4);
  QuantizeQ8Blocks(x.data(), 128, codes.data(), scales.data());
  EXPECT_EQ(scales[1], 0.0f);
  for (int i = 32; i < 64; ++i) EXPECT_EQ(codes[i], 0);
  EXPECT_EQ(scales[2], 5.0f / 127.0f);
  EXPECT_EQ(codes[70], -127);
  for (int b = 0; b < 4; ++b) {
    float amax = 0.0f;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[32 * b + i]));
    EXPECT_EQ(scales[b], amax / 127.0f);
    for (int i = 0; i < 32; ++i) {
      const int64_t at = 32 * b + i;
      EXPECT_GE(codes[at], -127);
      EXPECT_LE(codes[at], 127);
      if (scales[b] == 0.0f) continue;
      const float expected = std::nearbyint(x[at] * (1.0f / scales[b]));
      EXPECT_EQ(codes[at], static_cast<int>(expected)) << at;
      EXPECT_LE(std::fabs(codes[at] * scales[b] - x[at]), 0.5f * scales[b] * 1.0001f) << at;
    }
  }
}

// Scores: float queries against dequantized keys in the documented lanes;
// every ISA matches generic and the definition bit for bit, alone or in a
// batch.
TEST_P(KernelsTest, Q8ScoresAreBitExactWithGenericAndTheDefinition) {
  for (int64_t hd : {32, 64, 128}) {
    const int64_t blocks = hd / 32;
    for (int64_t n_q : {1, 2, 3, 4, 5, 8}) {
      const int64_t rows = 13;
      const std::vector<int8_t> k = RandomQ8Codes(rows * hd, 3 + hd);
      const std::vector<float> ks = RandomQ8Scales(rows * blocks, 4 + hd);
      std::vector<float> q(n_q * hd);
      std::mt19937 rng(5 + n_q);
      std::uniform_real_distribution<float> u(-1.0f, 1.0f);
      for (float& x : q) x = u(rng);
      const int64_t stride = rows + 3;
      std::vector<float> out(n_q * stride, -7.0f), reference(n_q * stride, -7.0f);
      kt_->q8_scores(k.data(), ks.data(), rows, hd, q.data(), n_q, out.data(), stride);
      generic_->q8_scores(k.data(), ks.data(), rows, hd, q.data(), n_q, reference.data(), stride);
      EXPECT_EQ(0, std::memcmp(out.data(), reference.data(), out.size() * sizeof(float)))
          << "hd " << hd << " n_q " << n_q;
      for (int64_t g = 0; g < n_q; ++g) {
        for (int64_t j = 0; j < rows; ++j) {
          float lane[8] = {};
          double exact = 0.0, magnitude = 0.0;
          for (int64_t d = 0; d < hd; ++d) {
            const float kf = static_cast<float>(k[j * hd + d]) * ks[j * blocks + d / 32];
            lane[d % 8] = std::fma(q[g * hd + d], kf, lane[d % 8]);
            const double term = static_cast<double>(q[g * hd + d]) * k[j * hd + d] * ks[j * blocks + d / 32];
            exact += term;
            magnitude += std::fabs(term);
          }
          const float manual = ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
          EXPECT_EQ(std::bit_cast<uint32_t>(out[g * stride + j]), std::bit_cast<uint32_t>(manual))
              << "hd " << hd << " n_q " << n_q << " g " << g << " j " << j;
          EXPECT_NEAR(out[g * stride + j], exact, hd * kFloatSumErrorPerTerm * magnitude + 1e-30);
          float alone = 0.0f;
          kt_->q8_scores(k.data() + j * hd, ks.data() + j * blocks, 1, hd, q.data() + g * hd, 1, &alone, 1);
          EXPECT_EQ(std::bit_cast<uint32_t>(alone), std::bit_cast<uint32_t>(out[g * stride + j]));
        }
        for (int64_t j = rows; j < stride; ++j) EXPECT_EQ(out[g * stride + j], -7.0f);
      }
    }
  }
}

TEST_P(KernelsTest, Q8AccumulateRowsIsBitExactWithGenericAndSplittable) {
  for (int64_t hd : {32, 64, 128}) {
    const int64_t blocks = hd / 32;
    for (int64_t n_q : {1, 3, 4, 6}) {
      const int64_t rows = 21;
      const std::vector<int8_t> v = RandomQ8Codes(rows * hd, 9 + hd);
      const std::vector<float> vs = RandomQ8Scales(rows * blocks, 10 + hd);
      const int64_t stride = rows + 2;
      std::vector<float> p(n_q * stride);
      std::mt19937 rng(11 + n_q);
      std::uniform_real_distribution<float> u(0.0f, 1.0f);
      for (float& x : p) x = u(rng);
      std::vector<float> init(n_q * hd);
      for (float& x : init) x = u(rng) - 0.5f;
      std::vector<float> ours = init, reference = init, split = init;
      kt_->q8_accumulate_rows(v.data(), vs.data(), rows, hd, p.data(), stride, n_q, ours.data());
      generic_->q8_accumulate_rows(v.data(), vs.data(), rows, hd, p.data(), stride, n_q, reference.data());
      kt_->q8_accumulate_rows(v.data(), vs.data(), 5, hd, p.data(), stride, n_q, split.data());
      kt_->q8_accumulate_rows(v.data() + 5 * hd, vs.data() + 5 * blocks, rows - 5, hd, p.data() + 5, stride, n_q,
                              split.data());
      std::vector<float> manual = init;
      for (int64_t j = 0; j < rows; ++j) {
        for (int64_t g = 0; g < n_q; ++g) {
          for (int64_t d = 0; d < hd; ++d) {
            const float w = p[g * stride + j] * vs[j * blocks + d / 32];
            manual[g * hd + d] = std::fma(w, static_cast<float>(v[j * hd + d]), manual[g * hd + d]);
          }
        }
      }
      EXPECT_EQ(0, std::memcmp(ours.data(), reference.data(), ours.size() * sizeof(float)))
          << "hd " << hd << " n_q " << n_q;
      EXPECT_EQ(0, std::memcmp(ours.data(), split.data(), ours.size() * sizeof(float)));
      EXPECT_EQ(0, std::memcmp(ours.data(), manual.data(), ours.size() * sizeof(float)));
    }
  }
}

TEST_P(KernelsTest, ReadSumIsExactForEveryLengthAndOffset) {
  std::mt19937 rng(77);
  std::vector<uint8_t> bytes(4096 + 64);
  for (uint8_t& b : bytes) b = static_cast<uint8_t>(rng());
  std::fill(bytes.begin() + 1000, bytes.begin() + 1600, 0xff);  // the largest bytes
  for (int64_t offset : {0, 1, 31}) {
    for (int64_t n : {0, 1, 31, 127, 128, 255, 256, 257, 1000, 4096}) {
      uint64_t expected = 0;
      for (int64_t i = 0; i < n; ++i) expected += bytes[offset + i];
      EXPECT_EQ(kt_->read_sum(bytes.data() + offset, n), expected)
          << "offset " << offset << " n " << n;
    }
  }
}

TEST_P(KernelsTest, F32SoftmaxIsBitExactWithGenericAndMatchesExp) {
  const KernelTable* generic = KernelsFor(Isa::kGeneric);
  std::mt19937 rng(31);
  for (int64_t n : {1, 2, 7, 8, 9, 15, 16, 17, 100, 4097}) {
    for (float spread : {0.1f, 10.0f, 400.0f}) {  // 400: many exps below the -87 cutoff
      SCOPED_TRACE(::testing::Message() << "n=" << n << " spread=" << spread);
      std::uniform_real_distribution<float> u(-spread, spread);
      std::vector<float> scores(n);
      for (float& x : scores) x = u(rng);
      const float scale = 0.0883883f;  // 1/sqrt(128)
      std::vector<float> ours = scores, ref = scores;
      kt_->f32_softmax(ours.data(), n, scale);
      generic->f32_softmax(ref.data(), n, scale);
      EXPECT_EQ(0, std::memcmp(ours.data(), ref.data(), n * sizeof(float)));
      double max = -1e30, total = 0;
      for (float x : scores) max = std::max(max, static_cast<double>(x * scale));
      std::vector<double> exact(n);
      for (int64_t j = 0; j < n; ++j) total += exact[j] = std::exp(scores[j] * scale - max);
      double sum = 0;
      for (int64_t j = 0; j < n; ++j) {
        sum += ours[j];
        EXPECT_NEAR(ours[j], exact[j] / total, 1e-6 + 1e-5 * exact[j] / total) << "j=" << j;
      }
      EXPECT_NEAR(sum, 1.0, 1e-4);
    }
  }
}

TEST_P(KernelsTest, ComputeProbesCountTheirWorkAndAreDeterministic) {
  int32_t i8_sink = 0, i8_again = 1;
  const int64_t i8_per_round = kt_->i8_mac_probe(1, &i8_sink);
  EXPECT_GT(i8_per_round, 0);
  EXPECT_EQ(kt_->i8_mac_probe(0, &i8_sink), 0);
  EXPECT_EQ(kt_->i8_mac_probe(1000, &i8_sink), 1000 * i8_per_round);
  EXPECT_EQ(kt_->i8_mac_probe(1000, &i8_again), 1000 * i8_per_round);
  EXPECT_EQ(i8_sink, i8_again);
  float f_sink = 0.0f, f_again = 1.0f;
  const int64_t f32_per_round = kt_->f32_fma_probe(1, &f_sink);
  EXPECT_GT(f32_per_round, 0);
  EXPECT_EQ(kt_->f32_fma_probe(1000, &f_sink), 1000 * f32_per_round);
  EXPECT_EQ(kt_->f32_fma_probe(1000, &f_again), 1000 * f32_per_round);
  EXPECT_EQ(f_sink, f_again);
  EXPECT_TRUE(std::isfinite(f_sink));
}

TEST_P(KernelsTest, TableReportsItsIsa) { EXPECT_EQ(kt_->isa, GetParam()); }

INSTANTIATE_TEST_SUITE_P(AllIsas, KernelsTest,
                         ::testing::Values(Isa::kGeneric, Isa::kAvx2, Isa::kAvx512),
                         [](const ::testing::TestParamInfo<Isa>& info) {
                           return std::string(IsaName(info.param));
                         });

// --- Dispatch ---

TEST(DispatchTest, ParseIsa) {
  for (Isa isa : {Isa::kGeneric, Isa::kAvx2, Isa::kAvx512}) {
    ASSERT_OK_AND_ASSIGN(Isa parsed, ParseIsa(IsaName(isa)));
    EXPECT_EQ(parsed, isa);
  }
  ASSERT_OK_AND_ASSIGN(Isa upper, ParseIsa("AVX2"));
  EXPECT_EQ(upper, Isa::kAvx2);
  EXPECT_THAT(ParseIsa("sse9"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'sse9'")));
}

TEST(DispatchTest, KernelsForFollowsCpuSupport) {
  EXPECT_TRUE(CpuSupports(Isa::kGeneric));
  for (Isa isa : {Isa::kGeneric, Isa::kAvx2, Isa::kAvx512}) {
    EXPECT_EQ(KernelsFor(isa) != nullptr, CpuSupports(isa)) << IsaName(isa);
  }
  // The AVX-512 file also uses AVX2, FMA and F16C instructions.
  if (CpuSupports(Isa::kAvx512)) {
    EXPECT_TRUE(CpuSupports(Isa::kAvx2));
  }
  EXPECT_TRUE(CpuSupports(BestSupportedIsa()));
}

TEST(DispatchTest, OverrideSelectsOrFails) {
  ASSERT_OK_AND_ASSIGN(const KernelTable* best, SelectKernelsForOverride(""));
  EXPECT_EQ(best->isa, BestSupportedIsa());
  ASSERT_OK_AND_ASSIGN(const KernelTable* generic, SelectKernelsForOverride("generic"));
  EXPECT_EQ(generic, KernelsFor(Isa::kGeneric));
  EXPECT_THAT(SelectKernelsForOverride("neon"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("BITNET_FORCE_ISA")));
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512}) {
    if (CpuSupports(isa)) {
      EXPECT_THAT(SelectKernelsForOverride(IsaName(isa)), IsOk());
    } else {
      EXPECT_THAT(
          SelectKernelsForOverride(IsaName(isa)),
          StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr(std::string(IsaName(isa)))));
    }
  }
}

// SelectKernels() reads the environment once per process, so each case runs
// in a fresh child process ("threadsafe" death tests re-execute the binary).
TEST(DispatchDeathTest, SelectKernelsHonoursForceIsa) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        setenv("BITNET_FORCE_ISA", "generic", 1);
        absl::StatusOr<const KernelTable*> kt = SelectKernels();
        std::exit(kt.ok() && (*kt)->isa == Isa::kGeneric ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
  if (!CpuSupports(Isa::kAvx512)) {
    EXPECT_EXIT(
        {
          setenv("BITNET_FORCE_ISA", "avx512", 1);
          absl::StatusOr<const KernelTable*> kt = SelectKernels();
          std::exit(kt.status().code() == absl::StatusCode::kFailedPrecondition ? 0 : 1);
        },
        ::testing::ExitedWithCode(0), "");
  }
  EXPECT_EXIT(
      {
        unsetenv("BITNET_FORCE_ISA");
        absl::StatusOr<const KernelTable*> kt = SelectKernels();
        std::exit(kt.ok() && (*kt)->isa == BestSupportedIsa() ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace wf::kernels
