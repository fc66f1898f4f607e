#include "converter/ternarize.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace wf::convert {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::wf::testing::StatusIs;

TEST(TernarizeTest, AbsmeanFormula) {
  // mean|W| = (0.1 + 0.5 + 1.0 + 0.4) / 4 = 0.5, s = 2:
  // W*s = 0.2 -> 0, -1.0 -> -1, 2.0 -> 1 (clamped), 0.8 -> 1.
  const std::vector<float> w = {0.1f, -0.5f, 1.0f, 0.4f};
  ASSERT_OK_AND_ASSIGN(TernaryTensor t, Ternarize(w.data(), 4));
  EXPECT_THAT(t.values, ElementsAre(0, -1, 1, 1));
  EXPECT_FLOAT_EQ(t.scale, 0.5f);
  EXPECT_FALSE(t.was_ternary);
}

TEST(TernarizeTest, RoundsHalfToEven) {
  // mean = 1, s = 1: 0.5 -> 0 and -0.5 -> -0 (half to even), 1.5 -> 2 -> clamp 1.
  const std::vector<float> w = {0.5f, -0.5f, 1.5f, 1.5f};
  ASSERT_OK_AND_ASSIGN(TernaryTensor t, Ternarize(w.data(), 4));
  EXPECT_FLOAT_EQ(t.scale, 1.0f);
  EXPECT_THAT(t.values, ElementsAre(0, 0, 1, 1));
}

TEST(TernarizeTest, AlreadyTernaryKeepsValuesAndScaleExactly) {
  const float a = 0.0123456f;
  const std::vector<float> w = {a, 0.0f, -a, -a, 0.0f, a};
  ASSERT_OK_AND_ASSIGN(TernaryTensor t, Ternarize(w.data(), 6));
  EXPECT_TRUE(t.was_ternary);
  EXPECT_EQ(t.scale, a);
  EXPECT_THAT(t.values, ElementsAre(1, 0, -1, -1, 0, 1));
}

TEST(TernarizeTest, AllZerosUsesTheFloorScale) {
  const std::vector<float> w(8, 0.0f);
  ASSERT_OK_AND_ASSIGN(TernaryTensor t, Ternarize(w.data(), 8));
  EXPECT_THAT(t.values, ::testing::Each(0));
  EXPECT_NEAR(t.scale, 1e-5f, 1e-10f);
}

TEST(TernarizeTest, IsIdempotentThroughDequantization) {
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.0f, 0.02f);
  std::vector<float> w(4096);
  for (float& x : w) x = dist(rng);
  ASSERT_OK_AND_ASSIGN(TernaryTensor first, Ternarize(w.data(), static_cast<int64_t>(w.size())));
  std::vector<float> deq(w.size());
  for (size_t i = 0; i < w.size(); ++i) deq[i] = first.values[i] * first.scale;
  ASSERT_OK_AND_ASSIGN(TernaryTensor second, Ternarize(deq.data(), static_cast<int64_t>(deq.size())));
  EXPECT_EQ(second.values, first.values);
  EXPECT_EQ(second.scale, first.scale);
  // A Gaussian tensor has about a third zeros after absmean ternarization.
  const auto zeros = std::count(first.values.begin(), first.values.end(), 0);
  EXPECT_GT(zeros, 1000);
  EXPECT_LT(zeros, 1600);
}

TEST(TernarizeTest, MatchesNearbyintReferenceOnWideRanges) {
  std::mt19937 rng(11);
  std::vector<float> w;
  for (float scale : {1e-3f, 1.0f, 1e3f, 1e30f}) {
    std::normal_distribution<float> dist(0.0f, scale);
    for (int i = 0; i < 2000; ++i) w.push_back(dist(rng));
  }
  w.push_back(3e38f);  // Far outside the magic-rounding range before clamping.
  w.push_back(-3e38f);
  ASSERT_OK_AND_ASSIGN(TernaryTensor t, Ternarize(w.data(), static_cast<int64_t>(w.size())));
  double sum = 0;
  for (float x : w) sum += std::fabs(static_cast<double>(x));
  const float s = 1.0f / static_cast<float>(sum / w.size());
  for (size_t i = 0; i < w.size(); ++i) {
    const float ref = std::clamp(std::nearbyint(w[i] * s), -1.0f, 1.0f);
    ASSERT_EQ(t.values[i], static_cast<int8_t>(ref)) << "element " << i << " = " << w[i];
  }
}

TEST(TernarizeTest, NonFiniteInputIsAnError) {
  const std::vector<float> w = {0.1f, NAN, 0.2f, 0.3f};
  EXPECT_THAT(Ternarize(w.data(), 4).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("non-finite value nan at element 1")));
  const std::vector<float> inf = {0.1f, 0.2f, -INFINITY};
  EXPECT_THAT(Ternarize(inf.data(), 3).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("element 2")));
}

TEST(UnpackHfPackedTest, FollowsTheTransformersLayout) {
  // Two packed rows, two columns -> 8 rows. Column 0 of packed row 0 is
  // 0b10100001: codes 1, 0, 2, 2 -> rows 0, 2, 4, 6 = 0, -1, 1, 1.
  const std::vector<uint8_t> packed = {0b10100001, 0b00011000, 0b10010000, 0b00001010};
  ASSERT_OK_AND_ASSIGN(TernaryTensor t, UnpackHfPacked(packed.data(), 2, 2, 4.0f));
  EXPECT_THAT(t.values, ElementsAre(0, -1, -1, 1, -1, 1, -1, 1, 1, 0, 0, -1, 1, -1, 1, -1));
  EXPECT_FLOAT_EQ(t.scale, 0.25f);
}

TEST(UnpackHfPackedTest, RejectsCodeThreeAndBadScales) {
  const std::vector<uint8_t> packed = {0b00001100};
  EXPECT_THAT(UnpackHfPacked(packed.data(), 1, 1, 1.0f).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("invalid 2-bit code 3")));
  const std::vector<uint8_t> ok = {0b01010101};
  EXPECT_THAT(UnpackHfPacked(ok.data(), 1, 1, 0.0f).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("weight_scale")));
  EXPECT_THAT(UnpackHfPacked(ok.data(), 1, 1, NAN).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("weight_scale")));
}

}  // namespace
}  // namespace wf::convert
