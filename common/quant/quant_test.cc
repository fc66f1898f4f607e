#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "common/testing/test_paths.h"
#include "common/gguf/gguf_reader.h"
#include "common/quant/dequant.h"
#include "common/quant/fp16.h"
#include "common/quant/ternary_formats.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace wf::quant {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::wf::testing::IsOk;
using ::wf::testing::StatusIs;

uint32_t Bits(float f) { return std::bit_cast<uint32_t>(f); }
float FromBits(uint32_t u) { return std::bit_cast<float>(u); }

std::vector<int8_t> RandomTernary(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> dist(-1, 1);
  std::vector<int8_t> t(n);
  for (auto& v : t) v = static_cast<int8_t>(dist(rng));
  return t;
}

// ---------------------------------------------------------------- fp16 / bf16

TEST(Fp16Test, KnownValues) {
  EXPECT_EQ(F32ToF16(1.0f), 0x3c00);
  EXPECT_EQ(F32ToF16(-2.0f), 0xc000);
  EXPECT_EQ(F32ToF16(0.1f), 0x2e66);
  EXPECT_EQ(F32ToF16(65504.0f), 0x7bff);
  EXPECT_EQ(F32ToF16(65519.996f), 0x7bff);
  EXPECT_EQ(F32ToF16(65520.0f), 0x7c00);  // tie rounds to even: the "1024th" mantissa = inf
  EXPECT_EQ(F32ToF16(1e10f), 0x7c00);
  EXPECT_EQ(F32ToF16(-std::numeric_limits<float>::infinity()), 0xfc00);
  EXPECT_EQ(F32ToF16(-0.0f), 0x8000);
  EXPECT_EQ(F32ToF16(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
  EXPECT_EQ(F32ToF16(std::ldexp(1.0f, -25)), 0x0000);  // tie -> even (0)
  EXPECT_EQ(F32ToF16(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(F32ToF16(std::ldexp(3.0f, -25)), 0x0002);             // 1.5 units: tie -> even (2)
  EXPECT_EQ(F32ToF16(std::ldexp(1.0f, -14)), 0x0400);             // smallest normal
  EXPECT_EQ(F32ToF16(std::ldexp(1023.5f, -24)), 0x0400);          // rounds up into the normals
  EXPECT_EQ(F32ToF16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);      // tie -> even
  EXPECT_EQ(F32ToF16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);  // tie -> even (up)
  const uint16_t nan = F32ToF16(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(nan & 0x7c00, 0x7c00);
  EXPECT_NE(nan & 0x03ff, 0);
  EXPECT_EQ(F32ToF16(FromBits(0x7f800001u)), 0x7e00);  // signalling NaN -> quiet NaN

  EXPECT_EQ(F16ToF32(0x3c00), 1.0f);
  EXPECT_EQ(F16ToF32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(F16ToF32(0x03ff), std::ldexp(1023.0f, -24));
  EXPECT_EQ(F16ToF32(0x7bff), 65504.0f);
  EXPECT_EQ(F16ToF32(0xfc00), -std::numeric_limits<float>::infinity());
  EXPECT_EQ(Bits(F16ToF32(0x8000)), 0x80000000u);
  EXPECT_TRUE(std::isnan(F16ToF32(0x7c01)));
  EXPECT_EQ(Bits(F16ToF32(0x7c01)), 0x7fc02000u);
}

TEST(Fp16Test, AllHalvesRoundTripThroughFloat) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = F16ToF32(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_EQ(F32ToF16(f), h | 0x0200) << h;  // comes back quiet
    } else {
      EXPECT_EQ(F32ToF16(f), h) << h;
    }
  }
}

TEST(Fp16Test, ScalarF16ToF32MatchesHardwareOnAllHalves) {
  if (!HasF16C()) GTEST_SKIP() << "CPU has no F16C";
  std::vector<uint16_t> all(65536);
  for (uint32_t h = 0; h < 65536; ++h) all[h] = static_cast<uint16_t>(h);
  std::vector<float> hw(all.size()), bulk(all.size());
  F16ToF32HardwareF16C(all.data(), hw.data(), all.size());
  F16ToF32(all.data(), bulk.data(), all.size());
  for (uint32_t h = 0; h < 65536; ++h) {
    ASSERT_EQ(Bits(F16ToF32(all[h])), Bits(hw[h])) << "half 0x" << std::hex << h;
    ASSERT_EQ(Bits(bulk[h]), Bits(hw[h])) << "half 0x" << std::hex << h;
  }
}

std::vector<float> Fp16EdgeAndRandomFloats() {
  std::vector<float> v;
  // Every exponent with edge mantissas (incl. the rounding ties at bit 12/13).
  const uint32_t mantissas[] = {0,        1,        0xfff,    0x1000,   0x1001,   0x2000,
                                0x3000,   0x2fff,   0x3001,   0x7fffff, 0x7ff000, 0x7fefff,
                                0x400000, 0x400001, 0x000fff, 0x7fe000, 0x7fd000, 0x555555};
  for (uint32_t sign = 0; sign < 2; ++sign) {
    for (uint32_t e = 0; e < 256; ++e) {
      for (uint32_t m : mantissas) v.push_back(FromBits((sign << 31) | (e << 23) | m));
    }
  }
  // Uniform random bit patterns, and random values in and around the half range.
  std::mt19937 rng(42);
  for (int i = 0; i < 200000; ++i) v.push_back(FromBits(rng()));
  std::uniform_int_distribution<uint32_t> exp(95, 145);
  for (int i = 0; i < 300000; ++i) {
    v.push_back(FromBits((rng() & 0x807fffffu) | (exp(rng) << 23)));
  }
  // A sweep over all float32 with a prime stride.
  for (uint64_t u = 0; u < (uint64_t{1} << 32); u += 4099) v.push_back(FromBits(uint32_t(u)));
  return v;
}

TEST(Fp16Test, ScalarF32ToF16MatchesHardware) {
  if (!HasF16C()) GTEST_SKIP() << "CPU has no F16C";
  const std::vector<float> v = Fp16EdgeAndRandomFloats();
  std::vector<uint16_t> hw(v.size()), bulk(v.size());
  F32ToF16HardwareF16C(v.data(), hw.data(), v.size());
  F32ToF16(v.data(), bulk.data(), v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    ASSERT_EQ(F32ToF16(v[i]), hw[i]) << "float bits 0x" << std::hex << Bits(v[i]);
    ASSERT_EQ(bulk[i], hw[i]);
  }
}

TEST(Bf16Test, KnownValuesAndRounding) {
  EXPECT_EQ(F32ToBF16(1.0f), 0x3f80);
  EXPECT_EQ(F32ToBF16(-2.0f), 0xc000);
  EXPECT_EQ(F32ToBF16(FromBits(0x3f808000u)), 0x3f80);  // tie -> even (down)
  EXPECT_EQ(F32ToBF16(FromBits(0x3f818000u)), 0x3f82);  // tie -> even (up)
  EXPECT_EQ(F32ToBF16(FromBits(0x3f808001u)), 0x3f81);
  EXPECT_EQ(F32ToBF16(FromBits(0x3f807fffu)), 0x3f80);
  EXPECT_EQ(F32ToBF16(std::numeric_limits<float>::max()), 0x7f80);  // overflow -> inf
  EXPECT_EQ(F32ToBF16(-std::numeric_limits<float>::infinity()), 0xff80);
  EXPECT_EQ(F32ToBF16(FromBits(0x00000001u)), 0x0000);  // tiny subnormal rounds to 0
  EXPECT_EQ(F32ToBF16(FromBits(0x00008000u)), 0x0000);  // subnormal tie -> even
  EXPECT_EQ(F32ToBF16(FromBits(0x00018000u)), 0x0002);
  const uint16_t nan = F32ToBF16(FromBits(0x7f800001u));  // payload only in low bits
  EXPECT_TRUE(std::isnan(BF16ToF32(nan)));
  EXPECT_EQ(F32ToBF16(FromBits(0xffc00000u)), 0xffc0);
  EXPECT_EQ(BF16ToF32(0x4049), FromBits(0x40490000u));
}

TEST(Bf16Test, AllBf16RoundTripAndBulkMatchesScalar) {
  std::vector<uint16_t> all(65536);
  for (uint32_t h = 0; h < 65536; ++h) all[h] = static_cast<uint16_t>(h);
  std::vector<float> f(all.size());
  BF16ToF32(all.data(), f.data(), all.size());
  std::vector<uint16_t> back(all.size());
  F32ToBF16(f.data(), back.data(), f.size());
  for (uint32_t h = 0; h < 65536; ++h) {
    ASSERT_EQ(Bits(f[h]), h << 16);
    if (std::isnan(f[h])) {
      ASSERT_TRUE(std::isnan(BF16ToF32(back[h])));
    } else {
      ASSERT_EQ(back[h], h);
    }
  }
}

// ---------------------------------------------------------------- I2_S

TEST(I2STest, HandComputedBytes) {
  // Two blocks: +1 at j=0, -1 at j=32 (block 0); +1 at value 255 (block 1,
  // j=127: byte 32+31, bits 1:0).
  std::vector<int8_t> t(256, 0);
  t[0] = 1;
  t[32] = -1;
  t[255] = 1;
  std::vector<uint8_t> out(I2SBytes(256), 0xcc);
  ASSERT_EQ(out.size(), 96u);
  PackI2S(t.data(), 256, 0.5f, out.data());
  // byte 0: value 0 -> code 2 (bits 7:6), value 32 -> code 0 (5:4), values 64
  // and 96 -> code 1: 0b10'00'01'01.
  EXPECT_EQ(out[0], 0b10000101);
  for (int k = 1; k < 63; ++k) EXPECT_EQ(out[k], 0b01010101) << k;
  EXPECT_EQ(out[63], 0b01010110);
  float s;
  std::memcpy(&s, &out[64], 4);
  EXPECT_EQ(s, 0.5f);
  for (int k = 68; k < 96; ++k) EXPECT_EQ(out[k], 0) << k;
}

TEST(I2STest, UniformTensorsGiveUniformBytes) {
  const struct {
    int8_t value;
    uint8_t byte;
  } cases[] = {{-1, 0x00}, {0, 0x55}, {1, 0xaa}};
  for (const auto& c : cases) {
    std::vector<int8_t> t(384, c.value);
    std::vector<uint8_t> out(I2SBytes(384));
    PackI2S(t.data(), 384, 1.25f, out.data());
    for (int k = 0; k < 96; ++k) ASSERT_EQ(out[k], c.byte);
    std::vector<int8_t> back(384, 7);
    float s = 0;
    UnpackI2S(out.data(), 384, back.data(), &s);
    EXPECT_EQ(back, t);
    EXPECT_EQ(s, 1.25f);
  }
}

TEST(I2STest, SingleNonzeroAtEveryPosition) {
  const int64_t n = 256;
  std::vector<uint8_t> out(I2SBytes(n));
  std::vector<int8_t> back(n);
  for (int64_t pos = 0; pos < n; ++pos) {
    std::vector<int8_t> t(n, 0);
    t[pos] = pos % 2 ? 1 : -1;
    PackI2S(t.data(), n, 2.0f, out.data());
    // Exactly one byte differs from 0x55, the one the layout names.
    const int64_t j = pos % 128;
    const int64_t byte = pos / 128 * 32 + j % 32;
    for (int64_t k = 0; k < n / 4; ++k) {
      if (k != byte) {
        ASSERT_EQ(out[k], 0x55) << pos;
      }
    }
    const int shift = 6 - 2 * static_cast<int>(j / 32);
    ASSERT_EQ((out[byte] >> shift) & 3, t[pos] + 1) << pos;
    UnpackI2S(out.data(), n, back.data(), nullptr);
    ASSERT_EQ(back, t) << pos;
  }
}

TEST(I2STest, RandomRoundTripAndRanges) {
  const int64_t ne0 = 640, ne1 = 7, n = ne0 * ne1;
  const std::vector<int8_t> t = RandomTernary(n, 7);
  std::vector<uint8_t> packed(I2SBytes(n));
  PackI2S(t.data(), n, 0.0421f, packed.data());
  EXPECT_EQ(CountInvalidI2SCodes(packed.data(), n), 0);
  EXPECT_EQ(I2SScale(packed.data(), n), 0.0421f);

  std::vector<int8_t> back(n);
  float scale = 0;
  UnpackI2S(packed.data(), n, back.data(), &scale);
  EXPECT_EQ(back, t);
  EXPECT_EQ(scale, 0.0421f);

  // Rows through the tensor pointer and through the row's own bytes.
  std::vector<int8_t> row(ne0);
  for (int64_t r = 0; r < ne1; ++r) {
    UnpackI2SRange(packed.data(), r * ne0, ne0, row.data());
    EXPECT_TRUE(std::equal(row.begin(), row.end(), t.begin() + r * ne0)) << r;
    UnpackI2SRange(packed.data() + r * ne0 / 4, 0, ne0, row.data());
    EXPECT_TRUE(std::equal(row.begin(), row.end(), t.begin() + r * ne0)) << r;
  }
  // Unaligned ranges.
  const std::pair<int64_t, int64_t> ranges[] = {
      {0, 1}, {5, 300}, {127, 2}, {130, 1000}, {n - 3, 3}};
  for (auto [first, count] : ranges) {
    std::vector<int8_t> part(count);
    UnpackI2SRange(packed.data(), first, count, part.data());
    EXPECT_TRUE(std::equal(part.begin(), part.end(), t.begin() + first)) << first;
    std::vector<float> f(count);
    DequantizeI2SRange(packed.data(), first, count, 0.0421f, f.data());
    for (int64_t i = 0; i < count; ++i) ASSERT_EQ(f[i], t[first + i] * 0.0421f);
  }
}

TEST(I2STest, InvalidCodeIsCountedAndDecodesAsPlusTwo) {
  std::vector<uint8_t> packed(I2SBytes(128), 0x55);
  packed[3] = 0b11010101;  // value 3 has code 3
  EXPECT_EQ(CountInvalidI2SCodes(packed.data(), 128), 1);
  std::vector<int8_t> t(128);
  UnpackI2S(packed.data(), 128, t.data(), nullptr);
  EXPECT_EQ(t[3], 2);
  EXPECT_EQ(t[35], 0);
}

// ---------------------------------------------------------------- TQ1_0 / TQ2_0

float F16Round(float f) { return F16ToF32(F32ToF16(f)); }

uint16_t StoredD(const std::vector<uint8_t>& bytes, int64_t block, int64_t block_bytes) {
  uint16_t d;
  std::memcpy(&d, &bytes[(block + 1) * block_bytes - 2], 2);
  return d;
}

TEST(TQ2_0Test, HandComputedBytes) {
  std::vector<int8_t> t(256, 0);
  t[0] = 1;    // qs[0] bits 0..1 -> code 2
  t[32] = -1;  // qs[0] bits 2..3 -> code 0
  t[200] = 1;  // 128*1 + 8 + 32*2: qs[32 + 8] bits 4..5 -> code 2
  std::vector<uint8_t> out(TQ2_0Bytes(256));
  ASSERT_EQ(out.size(), 66u);
  PackTQ2_0(t.data(), 256, 0.25f, out.data());
  EXPECT_EQ(out[0], 0b01010010);
  EXPECT_EQ(out[40], 0b01100101);
  for (int k = 1; k < 64; ++k) {
    if (k != 40) {
      EXPECT_EQ(out[k], 0x55) << k;
    }
  }
  EXPECT_EQ(StoredD(out, 0, 66), 0x3400);  // fp16(0.25)
}

TEST(TQ1_0Test, HandComputedBytes) {
  std::vector<int8_t> t(256, 0);
  t[0] = 1;  // qs[0] trits (2,0,1,1,1): 175 -> ceil(175*256/243) = 185
  t[32] = -1;
  t[170] = 1;  // 160 + 10 + 16*0: qs[42] trits (2,1,1,1,1): 202 -> 213
  t[245] = 1;  // 240 + 1 + 4*1: qh[1] trits (1,2,1,1,[0]): 49*3 = 147 -> 155
  std::vector<uint8_t> out(TQ1_0Bytes(256));
  ASSERT_EQ(out.size(), 54u);
  PackTQ1_0(t.data(), 256, 0.25f, out.data());
  EXPECT_EQ(out[0], 185);
  EXPECT_EQ(out[42], 213);
  EXPECT_EQ(out[48 + 1], 155);
  // All-zero bytes: 121 -> 128 in qs; 40*3 = 120 -> 127 in qh.
  for (int k = 1; k < 48; ++k) {
    if (k != 42) {
      EXPECT_EQ(out[k], 128) << k;
    }
  }
  EXPECT_EQ(out[48], 127);
  EXPECT_EQ(out[50], 127);
  EXPECT_EQ(out[51], 127);
  EXPECT_EQ(StoredD(out, 0, 54), 0x3400);

  std::vector<int8_t> all_plus(256, 1), all_minus(256, -1);
  PackTQ1_0(all_plus.data(), 256, 1.0f, out.data());
  EXPECT_EQ(out[0], 255);   // 242 -> ceil(242*256/243) = 255
  EXPECT_EQ(out[48], 253);  // 80*3 = 240 -> ceil(240*256/243) = 253
  PackTQ1_0(all_minus.data(), 256, 1.0f, out.data());
  for (int k = 0; k < 52; ++k) EXPECT_EQ(out[k], 0) << k;
}

TEST(TQ1_0Test, AllFiveTritPatternsRoundTrip) {
  // Values 0, 32, 64, 96, 128 share qs[0]; 240, 244, 248, 252 share qh[0].
  std::vector<uint8_t> out(TQ1_0Bytes(256));
  std::vector<int8_t> back(256);
  for (int pattern = 0; pattern < 243; ++pattern) {
    std::vector<int8_t> t(256, 0);
    int p = pattern;
    for (int k = 4; k >= 0; --k, p /= 3) t[32 * k] = static_cast<int8_t>(p % 3 - 1);
    p = pattern;
    for (int k = 3; k >= 0; --k, p /= 3) t[240 + 4 * k] = static_cast<int8_t>(p % 3 - 1);
    PackTQ1_0(t.data(), 256, 1.0f, out.data());
    UnpackTQ1_0(out.data(), 256, back.data(), nullptr);
    ASSERT_EQ(back, t) << pattern;
  }
}

class TernaryTQTest : public ::testing::TestWithParam<TernaryFormat> {
 protected:
  int64_t Bytes(int64_t n) const {
    return GetParam() == TernaryFormat::kTQ1_0 ? TQ1_0Bytes(n) : TQ2_0Bytes(n);
  }
  int64_t BlockBytes() const {
    return GetParam() == TernaryFormat::kTQ1_0 ? kTQ1_0BlockBytes : kTQ2_0BlockBytes;
  }
  void Pack(const int8_t* t, int64_t n, float s, uint8_t* out) const {
    GetParam() == TernaryFormat::kTQ1_0 ? PackTQ1_0(t, n, s, out) : PackTQ2_0(t, n, s, out);
  }
  void Quantize(const float* x, int64_t n, uint8_t* out) const {
    GetParam() == TernaryFormat::kTQ1_0 ? QuantizeTQ1_0(x, n, out) : QuantizeTQ2_0(x, n, out);
  }
  void Unpack(const uint8_t* in, int64_t n, int8_t* t, float* d) const {
    GetParam() == TernaryFormat::kTQ1_0 ? UnpackTQ1_0(in, n, t, d) : UnpackTQ2_0(in, n, t, d);
  }
  void Dequantize(const uint8_t* in, int64_t n, float* y) const {
    GetParam() == TernaryFormat::kTQ1_0 ? DequantizeTQ1_0(in, n, y) : DequantizeTQ2_0(in, n, y);
  }
};

TEST_P(TernaryTQTest, RandomAndEdgeRoundTrips) {
  const int64_t n = 256 * 6;
  std::vector<std::vector<int8_t>> inputs = {RandomTernary(n, 1), RandomTernary(n, 2),
                                             std::vector<int8_t>(n, -1), std::vector<int8_t>(n, 1),
                                             std::vector<int8_t>(n, 0)};
  std::vector<int8_t> single(n, 0);
  single[777] = -1;
  inputs.push_back(single);
  std::vector<int8_t> zero_blocks = RandomTernary(n, 3);
  std::fill(zero_blocks.begin() + 256, zero_blocks.begin() + 768, 0);
  inputs.push_back(zero_blocks);

  const float scale = 0.0371f;  // not exact in fp16
  const float d16 = F16Round(scale);
  ASSERT_NE(d16, scale);
  for (const auto& t : inputs) {
    std::vector<uint8_t> packed(Bytes(n));
    Pack(t.data(), n, scale, packed.data());
    std::vector<int8_t> back(n);
    std::vector<float> d(n / 256);
    Unpack(packed.data(), n, back.data(), d.data());
    EXPECT_EQ(back, t);
    std::vector<float> y(n);
    Dequantize(packed.data(), n, y.data());
    ASSERT_THAT(DequantizeRow(static_cast<uint32_t>(GetParam()), packed.data(), y.data(), n),
                IsOk());
    for (int64_t b = 0; b < n / 256; ++b) {
      const bool any = std::any_of(t.begin() + 256 * b, t.begin() + 256 * (b + 1),
                                   [](int8_t v) { return v != 0; });
      EXPECT_EQ(d[b], any ? d16 : 0.0f) << b;
      for (int64_t i = 256 * b; i < 256 * (b + 1); ++i) ASSERT_EQ(y[i], t[i] * d[b]);
    }
  }
}

TEST_P(TernaryTQTest, SingleNonzeroAtEveryPosition) {
  std::vector<uint8_t> packed(Bytes(256));
  std::vector<float> y(256);
  for (int pos = 0; pos < 256; ++pos) {
    std::vector<int8_t> t(256, 0);
    t[pos] = 1;
    Pack(t.data(), 256, 2.0f, packed.data());
    Dequantize(packed.data(), 256, y.data());
    for (int i = 0; i < 256; ++i) ASSERT_EQ(y[i], i == pos ? 2.0f : 0.0f) << pos << " " << i;
  }
}

TEST_P(TernaryTQTest, QuantizeFromFloatFollowsGgml) {
  const int64_t n = 256 * 4;
  std::mt19937 rng(11);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(n);
  for (auto& v : x) v = dist(rng);
  std::fill(x.begin() + 512, x.begin() + 768, 0.0f);  // an all-zero block
  std::vector<uint8_t> packed(Bytes(n));
  Quantize(x.data(), n, packed.data());
  std::vector<int8_t> t(n);
  std::vector<float> d(n / 256);
  Unpack(packed.data(), n, t.data(), d.data());
  for (int64_t b = 0; b < n / 256; ++b) {
    float amax = 0;
    for (int64_t i = 256 * b; i < 256 * (b + 1); ++i) amax = std::max(amax, std::fabs(x[i]));
    EXPECT_EQ(StoredD(packed, b, BlockBytes()), F32ToF16(amax));
    for (int64_t i = 256 * b; i < 256 * (b + 1); ++i) {
      if (amax == 0) {
        ASSERT_EQ(t[i], 0);
      } else {
        ASSERT_LE(std::fabs(x[i] / amax - t[i]), 0.5f + 1e-6f) << i;
      }
    }
  }
  // Values that already are ternary * a come back exactly.
  const std::vector<int8_t> tern = RandomTernary(n, 5);
  for (int64_t i = 0; i < n; ++i) x[i] = tern[i] * 0.37f;
  Quantize(x.data(), n, packed.data());
  Unpack(packed.data(), n, t.data(), d.data());
  EXPECT_EQ(t, tern);
  EXPECT_EQ(d[0], F16Round(0.37f));
  // ggml rounds half away from zero: 0.5 * amax -> 1.
  std::vector<float> half(256, 0.5f);
  half[0] = -1.0f;
  half[1] = -0.5f;
  Quantize(half.data(), 256, packed.data());
  Unpack(packed.data(), 256, t.data(), nullptr);
  EXPECT_EQ(t[0], -1);
  EXPECT_EQ(t[1], -1);
  EXPECT_EQ(t[2], 1);
}

INSTANTIATE_TEST_SUITE_P(Formats, TernaryTQTest,
                         ::testing::Values(TernaryFormat::kTQ1_0, TernaryFormat::kTQ2_0),
                         [](const auto& info) {
                           return std::string(TernaryFormatName(info.param));
                         });

TEST(TQ2_0Test, InvalidCodeDecodesAsPlusTwo) {
  std::vector<uint8_t> packed(66, 0x55);
  packed[0] = 0x57;  // value 0 has code 3
  const uint16_t one = 0x3c00;
  std::memcpy(&packed[64], &one, 2);
  std::vector<float> y(256);
  DequantizeTQ2_0(packed.data(), 256, y.data());
  EXPECT_EQ(y[0], 2.0f);
  EXPECT_EQ(y[1], 0.0f);
}

TEST(CheckTernaryShapeTest, AcceptsModelShapes) {
  for (auto f : {TernaryFormat::kI2S, TernaryFormat::kTQ1_0, TernaryFormat::kTQ2_0}) {
    EXPECT_THAT(CheckTernaryShape(f, 2560, 6912, "blk.0.ffn_up.weight"), IsOk());
    EXPECT_THAT(CheckTernaryShape(f, 6912, 2560, "blk.0.ffn_down.weight"), IsOk());
  }
  EXPECT_THAT(CheckTernaryShape(TernaryFormat::kI2S, 640, 1, "x"), IsOk());
}

TEST(CheckTernaryShapeTest, RejectsWithTensorName) {
  EXPECT_THAT(
      CheckTernaryShape(TernaryFormat::kTQ1_0, 320, 64, "blk.0.ffn_down.weight"),
      StatusIs(absl::StatusCode::kInvalidArgument,
               "tensor 'blk.0.ffn_down.weight': TQ1_0 needs a row size divisible by 256, got 320"));
  EXPECT_THAT(CheckTernaryShape(TernaryFormat::kTQ2_0, 640, 64, "w"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("TQ2_0 needs a row size")));
  EXPECT_THAT(CheckTernaryShape(TernaryFormat::kI2S, 320, 64, "blk.3.attn_q.weight"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "tensor 'blk.3.attn_q.weight': I2_S needs a row size divisible by 128, "
                       "got 320"));
  EXPECT_THAT(CheckTernaryShape(TernaryFormat::kI2S, 128, 0, "w"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("positive dimensions")));
  EXPECT_THAT(CheckTernaryShape(TernaryFormat::kI2S, int64_t{1} << 40, int64_t{1} << 20, "w"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("2^48")));
}

// ---------------------------------------------------------------- Q8_0 / Q6_K

TEST(Q8_0Test, HandBuiltBlockDequantizes) {
  std::vector<uint8_t> block(34 + 1, 0);
  uint8_t* b = block.data() + 1;  // rows inside a GGUF need not be aligned
  const uint16_t d = 0x3800;      // 0.5
  std::memcpy(b, &d, 2);
  b[2] = 1;
  b[3] = static_cast<uint8_t>(-2);
  b[2 + 31] = 127;
  b[2 + 30] = static_cast<uint8_t>(-128);
  std::vector<float> y(32);
  ASSERT_THAT(DequantizeRow(kGgmlTypeQ8_0, b, y.data(), 32), IsOk());
  EXPECT_EQ(y[0], 0.5f);
  EXPECT_EQ(y[1], -1.0f);
  EXPECT_EQ(y[2], 0.0f);
  EXPECT_EQ(y[30], -64.0f);
  EXPECT_EQ(y[31], 63.5f);
}

TEST(Q8_0Test, QuantizeMatchesGgmlReference) {
  // amax = 127 -> d = 1 exactly; roundf rounds halves away from zero.
  std::vector<float> x(32, 0.0f);
  x[0] = 127.0f;
  x[1] = 2.5f;
  x[2] = -2.5f;
  x[3] = 0.49f;
  x[4] = -100.2f;
  std::vector<uint8_t> q(34);
  QuantizeRowQ8_0(x.data(), q.data(), 32);
  uint16_t d;
  std::memcpy(&d, q.data(), 2);
  EXPECT_EQ(d, 0x3c00);
  EXPECT_EQ(static_cast<int8_t>(q[2]), 127);
  EXPECT_EQ(static_cast<int8_t>(q[3]), 3);
  EXPECT_EQ(static_cast<int8_t>(q[4]), -3);
  EXPECT_EQ(static_cast<int8_t>(q[5]), 0);
  EXPECT_EQ(static_cast<int8_t>(q[6]), -100);

  // Random round trip: error within half a step plus the fp16 error of d.
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> dist(-3.0f, 3.0f);
  const int64_t n = 32 * 20;
  std::vector<float> r(n), y(n);
  for (auto& v : r) v = dist(rng);
  std::fill(r.begin() + 64, r.begin() + 96, 0.0f);
  std::vector<uint8_t> packed(n / 32 * 34);
  QuantizeRowQ8_0(r.data(), packed.data(), n);
  DequantizeRowQ8_0(packed.data(), y.data(), n);
  for (int64_t i = 0; i < n; ++i) {
    float amax = 0;
    for (int64_t j = i / 32 * 32; j < i / 32 * 32 + 32; ++j) amax = std::max(amax, std::fabs(r[j]));
    const float step = amax / 127.0f;
    ASSERT_LE(std::fabs(y[i] - r[i]), 0.5f * step + 127.0f * step * 1e-3f + 1e-7f) << i;
  }
  for (int i = 64; i < 96; ++i) EXPECT_EQ(y[i], 0.0f);
}

TEST(Q6_KTest, HandBuiltBlockDequantizes) {
  std::vector<uint8_t> b(210, 0);
  uint8_t* ql = b.data();
  uint8_t* qh = b.data() + 128;
  int8_t* sc = reinterpret_cast<int8_t*>(b.data() + 192);
  for (int i = 0; i < 16; ++i) sc[i] = static_cast<int8_t>(i + 1);
  sc[5] = -3;
  const uint16_t d = 0x3400;  // 0.25
  std::memcpy(b.data() + 208, &d, 2);
  ql[0] = 0x3a;
  qh[0] = 0b11100110;
  ql[64 + 17] = 0x0f;  // second half, l = 17
  qh[32 + 17] = 0x03;
  std::vector<float> y(256);
  ASSERT_THAT(DequantizeRow(kGgmlTypeQ6_K, b.data(), y.data(), 256), IsOk());
  // y[0]: ql[0] & 15 = 10 | (qh[0] & 3 = 2) << 4 -> 42 - 32 = 10; 0.25 * sc[0]=1 * 10.
  EXPECT_EQ(y[0], 2.5f);
  // y[32]: 0 | (qh[0] >> 2 & 3 = 1) << 4 -> 16 - 32 = -16; 0.25 * sc[2]=3 * -16.
  EXPECT_EQ(y[32], -12.0f);
  // y[64]: ql[0] >> 4 = 3 | (qh[0] >> 4 & 3 = 2) << 4 -> 35 - 32 = 3; 0.25 * sc[4]=5 * 3.
  EXPECT_EQ(y[64], 3.75f);
  // y[96]: 0 | (qh[0] >> 6 = 3) << 4 -> 48 - 32 = 16; 0.25 * sc[6]=7 * 16.
  EXPECT_EQ(y[96], 28.0f);
  // y[16]: code 0 -> -32; is = 1 -> sc[1] = 2.
  EXPECT_EQ(y[16], -16.0f);
  // y[80] = y[64 + 16]: code 0, sc[1 + 4] = -3 -> 0.25 * -3 * -32.
  EXPECT_EQ(y[80], 24.0f);
  // y[128 + 17]: 15 | 3 << 4 = 63 -> 31; sc[8 + 1] = 10 -> 77.5.
  EXPECT_EQ(y[145], 77.5f);
  // y[128]: code 0, sc[8] = 9 -> 0.25 * 9 * -32.
  EXPECT_EQ(y[128], -72.0f);
}

// Packs 6-bit codes the way ggml's quantize_row_q6_K_ref stores them, which is
// written independently of the decoder's formulas.
std::vector<uint8_t> PackQ6_KBlock(const std::vector<int>& codes, const std::vector<int8_t>& sc,
                                   uint16_t d) {
  std::vector<uint8_t> b(210, 0);
  uint8_t* ql = b.data();
  uint8_t* qh = b.data() + 128;
  for (int j = 0; j < 256; j += 128) {
    for (int l = 0; l < 32; ++l) {
      const int* L = codes.data() + j;
      ql[l] = static_cast<uint8_t>((L[l] & 0xf) | ((L[l + 64] & 0xf) << 4));
      ql[l + 32] = static_cast<uint8_t>((L[l + 32] & 0xf) | ((L[l + 96] & 0xf) << 4));
      qh[l] = static_cast<uint8_t>((L[l] >> 4) | ((L[l + 32] >> 4) << 2) | ((L[l + 64] >> 4) << 4) |
                                   ((L[l + 96] >> 4) << 6));
    }
    ql += 64;
    qh += 32;
  }
  std::memcpy(b.data() + 192, sc.data(), 16);
  std::memcpy(b.data() + 208, &d, 2);
  return b;
}

TEST(Q6_KTest, RandomBlocksMatchCodeTimesScale) {
  std::mt19937 rng(9);
  for (int iter = 0; iter < 50; ++iter) {
    std::vector<int> codes(256);
    for (auto& c : codes) c = static_cast<int>(rng() % 64);
    std::vector<int8_t> sc(16);
    for (auto& s : sc) s = static_cast<int8_t>(rng() % 256);
    const uint16_t d = F32ToF16(std::ldexp(1.0f + (rng() % 1000) / 1000.0f, -8));
    const std::vector<uint8_t> b = PackQ6_KBlock(codes, sc, d);
    std::vector<float> y(256);
    DequantizeRowQ6_K(b.data(), y.data(), 256);
    for (int i = 0; i < 256; ++i) {
      const float expected =
          F16ToF32(d) * static_cast<float>(sc[i / 16]) * static_cast<float>(codes[i] - 32);
      ASSERT_EQ(y[i], expected) << iter << " " << i;
    }
  }
}

// ---------------------------------------------------------------- DequantizeRow

TEST(DequantizeRowTest, PlainTypes) {
  const float src[4] = {1.0f, -2.5f, 3.25f, 0.0f};
  std::vector<float> y(4);
  ASSERT_THAT(DequantizeRow(kGgmlTypeF32, reinterpret_cast<const uint8_t*>(src), y.data(), 4),
              IsOk());
  EXPECT_THAT(y, ElementsAre(1.0f, -2.5f, 3.25f, 0.0f));

  std::vector<uint8_t> raw(1 + 2 * 300);  // odd offset: unaligned halves
  std::vector<uint16_t> h(300);
  for (int i = 0; i < 300; ++i) h[i] = static_cast<uint16_t>(0x3c00 + 37 * i);
  std::memcpy(raw.data() + 1, h.data(), 600);
  std::vector<float> yf(300);
  ASSERT_THAT(DequantizeRow(kGgmlTypeF16, raw.data() + 1, yf.data(), 300), IsOk());
  for (int i = 0; i < 300; ++i) ASSERT_EQ(Bits(yf[i]), Bits(F16ToF32(h[i])));
  ASSERT_THAT(DequantizeRow(kGgmlTypeBF16, raw.data() + 1, yf.data(), 300), IsOk());
  for (int i = 0; i < 300; ++i) ASSERT_EQ(Bits(yf[i]), static_cast<uint32_t>(h[i]) << 16);
}

TEST(DequantizeRowTest, Errors) {
  std::vector<uint8_t> buf(1024);
  std::vector<float> y(512);
  EXPECT_THAT(DequantizeRow(kGgmlTypeQ8_0, buf.data(), y.data(), 40),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("multiple of 32")));
  EXPECT_THAT(DequantizeRow(kGgmlTypeTQ1_0, buf.data(), y.data(), 320),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("multiple of 256")));
  EXPECT_THAT(DequantizeRow(kGgmlTypeI2S, buf.data(), y.data(), 128),
              StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("per-tensor scale")));
  EXPECT_THAT(DequantizeRow(2, buf.data(), y.data(), 32),
              StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("type 2")));
  EXPECT_THAT(DequantizeRow(kGgmlTypeF32, buf.data(), y.data(), -1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("negative")));
  EXPECT_THAT(DequantizeRow(kGgmlTypeF16, buf.data(), y.data(), 0), IsOk());
}

// ---------------------------------------------------------------- golden GGUF

TEST(GoldenI2STest, DecodesEveryTernaryTensorOfTheSyntheticModel) {
  const std::string path = ::wf::testing::GoldenDir() + "/bitnet-synth-h256-l4.gguf";
  ASSERT_OK_AND_ASSIGN(auto file, gguf::GgufFile::Open(path));
  int i2s_tensors = 0;
  for (const gguf::TensorInfo& info : file->tensors()) {
    const std::string& name = info.name;
    if (static_cast<uint32_t>(info.type) != kGgmlTypeI2S) continue;
    ++i2s_tensors;
    ASSERT_EQ(info.n_dims, 2u) << name;
    const int64_t ne0 = info.ne[0], ne1 = info.ne[1], n = ne0 * ne1;
    EXPECT_THAT(CheckTernaryShape(TernaryFormat::kI2S, ne0, ne1, name), IsOk());
    ASSERT_EQ(info.size_bytes, static_cast<uint64_t>(I2SBytes(n))) << name;
    const uint8_t* bytes = info.data;
    EXPECT_EQ(CountInvalidI2SCodes(bytes, n), 0) << name;
    std::vector<int8_t> t(n);
    float scale = 0;
    UnpackI2S(bytes, n, t.data(), &scale);
    EXPECT_TRUE(std::isfinite(scale) && scale > 0.0f) << name << " scale " << scale;
    // Packing the decoded values again reproduces the codes and the scale.
    std::vector<uint8_t> repacked(I2SBytes(n));
    PackI2S(t.data(), n, scale, repacked.data());
    EXPECT_EQ(std::memcmp(repacked.data(), bytes, n / 4 + 4), 0) << name;
    // Row access from the row's own bytes agrees with the whole-tensor decode.
    std::vector<int8_t> row(ne0);
    for (int64_t r : {int64_t{0}, ne1 / 2, ne1 - 1}) {
      UnpackI2SRange(bytes + r * ne0 / 4, 0, ne0, row.data());
      EXPECT_TRUE(std::equal(row.begin(), row.end(), t.begin() + r * ne0)) << name << " " << r;
    }
  }
  EXPECT_EQ(i2s_tensors, 28);  // 4 layers x 7 projections

  // Values computed independently (Python) from the same file.
  const gguf::TensorInfo* q = file->FindTensor("blk.0.attn_q.weight");
  ASSERT_NE(q, nullptr);
  ASSERT_THAT(q->dims(), ElementsAre(256, 256));
  const int64_t n = 256 * 256;
  std::vector<int8_t> t(n);
  float scale = 0;
  UnpackI2S(q->data, n, t.data(), &scale);
  EXPECT_EQ(scale, 0.08792345970869064f);
  EXPECT_EQ(std::count(t.begin(), t.end(), -1), 21871);
  EXPECT_EQ(std::count(t.begin(), t.end(), 0), 21809);
  EXPECT_EQ(std::count(t.begin(), t.end(), 1), 21856);
  EXPECT_THAT(std::vector<int8_t>(t.begin(), t.begin() + 8), ElementsAre(0, 0, 1, -1, 1, 0, 1, 1));

  // The F16 embedding dequantizes like the scalar conversion.
  const gguf::TensorInfo* embd = file->FindTensor("token_embd.weight");
  ASSERT_NE(embd, nullptr);
  ASSERT_EQ(static_cast<uint32_t>(embd->type), kGgmlTypeF16);
  const int64_t ne0 = embd->ne[0];
  std::vector<float> row(ne0);
  const uint8_t* row7 = embd->data + 7 * ne0 * 2;
  ASSERT_THAT(DequantizeRow(kGgmlTypeF16, row7, row.data(), ne0), IsOk());
  for (int64_t i = 0; i < ne0; ++i) {
    uint16_t h;
    std::memcpy(&h, row7 + 2 * i, 2);
    ASSERT_EQ(Bits(row[i]), Bits(F16ToF32(h)));
    ASSERT_TRUE(std::isfinite(row[i]));
  }
}

}  // namespace
}  // namespace wf::quant
