#include "worker/engine/stop_matcher.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace wf::engine {
namespace {

using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::wf::testing::IsOk;
using ::wf::testing::StatusIs;

struct StopCase {
  std::string name;
  std::vector<std::string> stops;
  std::vector<std::string> pieces;
  std::vector<std::string> outputs;  // What each Push returns.
  int32_t stop_index;                // -1: no stop.
  std::string flush;                 // What Flush returns afterwards.
};

class StopMatcherCaseTest : public ::testing::TestWithParam<StopCase> {};

TEST_P(StopMatcherCaseTest, EmitsHoldsAndStops) {
  const StopCase& c = GetParam();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<StopMatcher> matcher,
                       StopMatcher::Create(c.stops));
  std::vector<std::string> outputs;
  int32_t stop_index = -1;
  for (const std::string& piece : c.pieces) {
    StopMatchResult r = matcher->Push(piece);
    outputs.push_back(r.text);
    if (r.stopped()) {
      // Reported once; the caller stops pushing. Every piece so far is
      // listed in `pieces`, so a stop must come from the last one.
      stop_index = r.stop_index;
    }
  }
  EXPECT_THAT(outputs, ElementsAreArray(c.outputs));
  EXPECT_EQ(stop_index, c.stop_index);
  EXPECT_EQ(matcher->stopped(), c.stop_index >= 0);
  EXPECT_EQ(matcher->Flush(), c.flush);
  EXPECT_EQ(matcher->held_bytes(), 0u);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, StopMatcherCaseTest,
    ::testing::Values(
        StopCase{"NoStopStringsPassThrough",
                 {},
                 {"Hello", " wor", "ld"},
                 {"Hello", " wor", "ld"},
                 -1,
                 ""},
        StopCase{
            "NoMatchNoHold", {"END"}, {"abc", "def"}, {"abc", "def"}, -1, ""},
        StopCase{"StopInsideOnePiece", {"END"}, {"abcENDxyz"}, {"abc"}, 0, ""},
        StopCase{"StopAtVeryStart", {"STOP"}, {"STOP here"}, {""}, 0, ""},
        StopCase{
            "StopIsWholeFirstPiece", {"STOP"}, {"ST", "OP"}, {"", ""}, 0, ""},
        StopCase{"SplitAcrossTwoPieces",
                 {"END"},
                 {"abc E", "ND more"},
                 {"abc ", ""},
                 0,
                 ""},
        StopCase{"SplitAcrossFourPieces",
                 {"<|end|>"},
                 {"Hi <|", "en", "d", "|> tail"},
                 {"Hi ", "", "", ""},
                 0,
                 ""},
        StopCase{"FalseStartIsReleased",
                 {"END"},
                 {"E", "N", "x"},
                 {"", "", "ENx"},
                 -1,
                 ""},
        StopCase{"SelfOverlappingPrefix",
                 {"aab"},
                 {"a", "a", "a", "b"},
                 {"", "", "a", ""},
                 0,
                 ""},
        StopCase{"EmptyPieces",
                 {"bcd"},
                 {"", "ab", "", "c"},
                 {"", "a", "", ""},
                 -1,
                 "bc"},
        StopCase{
            "FlushReleasesHeldPrefix", {"END"}, {"foo EN"}, {"foo "}, -1, "EN"},
        StopCase{"EarliestEndWins", {"xyz", "y"}, {"axyz"}, {"ax"}, 1, ""},
        StopCase{"EarliestEndWinsWhenSplit",
                 {"xyz", "y"},
                 {"ax", "yz"},
                 {"a", "x"},
                 1,
                 ""},
        StopCase{"SameEndPrefersLonger", {"bc", "abc"}, {"zabc"}, {"z"}, 1, ""},
        StopCase{"ShorterStopInsideLongerPrefix",
                 {"abcd", "ab"},
                 {"xa", "bcd"},
                 {"x", ""},
                 1,
                 ""},
        StopCase{"PrefixOfOneCompletesAnother",
                 {"abcd", "bce"},
                 {"ab", "ce!"},
                 {"", "a"},
                 1,
                 ""},
        StopCase{"SecondStopOnlyMatches",
                 {"###", "\nUser:"},
                 {"Sure.", "\nUs", "er: hi"},
                 {"Sure.", "", ""},
                 1,
                 ""},
        StopCase{"MultiByteHeldWhole",
                 {"é!"},
                 {"caf", "é", "?"},
                 {"caf", "", "é?"},
                 -1,
                 ""},
        StopCase{
            "MultiByteStop", {"日本"}, {"今日", "本語"}, {"今", ""}, 0, ""},
        StopCase{
            "MultiByteNoFalseHold", {"日本"}, {"今日は"}, {"今日は"}, -1, ""},
        StopCase{"SplitCharacterNotEmittedEarly",
                 {},
                 {"a\xE6\x97",
                  "\xA5"
                  "b"},
                 {"a",
                  "\xE6\x97\xA5"
                  "b"},
                 -1,
                 ""}),
    [](const ::testing::TestParamInfo<StopCase>& info) {
      return info.param.name;
    });

TEST(StopMatcherTest, PushAfterStopReturnsNothing) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<StopMatcher> matcher,
                       StopMatcher::Create({"a", "END"}));
  StopMatchResult r = matcher->Push("xxENDyy");
  EXPECT_EQ(r.text, "xx");
  EXPECT_EQ(r.stop_index, 1);
  EXPECT_EQ(matcher->stop_strings()[r.stop_index], "END");
  r = matcher->Push("more a");
  EXPECT_EQ(r.text, "");
  EXPECT_EQ(r.stop_index, 1);
  EXPECT_EQ(matcher->Flush(), "");
}

// Deterministic pseudo-random split points.
std::vector<std::string> SplitText(const std::string& text, uint64_t seed) {
  std::vector<std::string> pieces;
  size_t i = 0;
  while (i < text.size()) {
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    size_t len = static_cast<size_t>(seed >> 61);  // 0..7, empty pieces too.
    len = std::min(len, text.size() - i);
    // Keep characters whole, as the streaming decoder does.
    while (i + len < text.size() &&
           (static_cast<unsigned char>(text[i + len]) & 0xC0) == 0x80) {
      ++len;
    }
    pieces.push_back(text.substr(i, len));
    i += len;
  }
  return pieces;
}

TEST(StopMatcherTest, ResultDoesNotDependOnHowTextIsSplit) {
  const std::vector<std::string> stops = {"</s>", "ab ab", "b a", "日本語!",
                                          "\n\n\n"};
  const std::vector<std::string> texts = {
      "plain text with no stop at all",
      "xx ab ab yy",
      "a b a",
      "<</</s</s>",
      "日本日本語日本語!",
      "line\n\nline\n\n\nafter",
      "ab ab",
  };
  for (const std::string& text : texts) {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<StopMatcher> whole,
                         StopMatcher::Create(stops));
    StopMatchResult expected = whole->Push(text);
    std::string expected_text =
        expected.text + (expected.stopped() ? "" : whole->Flush());
    for (uint64_t seed = 0; seed < 50; ++seed) {
      ASSERT_OK_AND_ASSIGN(std::unique_ptr<StopMatcher> matcher,
                           StopMatcher::Create(stops));
      std::string emitted;
      int32_t stop_index = -1;
      for (const std::string& piece : SplitText(text, seed)) {
        StopMatchResult r = matcher->Push(piece);
        emitted += r.text;
        // Nothing emitted may contain a stop string or start of one that
        // later completes.
        if (r.stopped()) {
          stop_index = r.stop_index;
          break;
        }
      }
      if (stop_index < 0) emitted += matcher->Flush();
      EXPECT_EQ(emitted, expected_text) << text << " seed " << seed;
      EXPECT_EQ(stop_index, expected.stop_index) << text << " seed " << seed;
      for (const std::string& stop : stops) {
        EXPECT_EQ(emitted.find(stop), std::string::npos) << text;
      }
    }
  }
}

TEST(StopMatcherTest, CreateValidatesStopStrings) {
  EXPECT_THAT(StopMatcher::Create(std::vector<std::string>(16, "x")), IsOk());
  EXPECT_THAT(StopMatcher::Create(std::vector<std::string>(17, "x")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("stop has 17 strings; at most 16")));
  EXPECT_THAT(StopMatcher::Create({"ok", ""}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("stop[1] is empty")));
  EXPECT_THAT(StopMatcher::Create({std::string(256, 'a')}), IsOk());
  EXPECT_THAT(StopMatcher::Create({std::string(257, 'a')}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("stop[0] is 257 bytes long; at most 256")));
  EXPECT_THAT(
      StopMatcher::Create({"ok", "bad\xC3"}),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("stop[1] is not valid UTF-8 (byte offset 3)")));
  EXPECT_THAT(StopMatcher::Create({"\xED\xA0\x80"}),  // A surrogate.
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("not valid UTF-8")));
  EXPECT_THAT(StopMatcher::Create({"\xC0\xAF"}),  // Overlong.
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("not valid UTF-8")));
}

TEST(StopMatcherTest, LongStopStringSpanningManyPieces) {
  const std::string stop(256, 'z');
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<StopMatcher> matcher,
                       StopMatcher::Create({stop}));
  EXPECT_EQ(matcher->Push("head ").text, "head ");
  for (int i = 0; i < 255; ++i) {
    StopMatchResult r = matcher->Push("z");
    ASSERT_EQ(r.text, "");
    ASSERT_FALSE(r.stopped());
  }
  EXPECT_EQ(matcher->held_bytes(), 255u);
  StopMatchResult r = matcher->Push("z tail");
  EXPECT_EQ(r.text, "");
  EXPECT_EQ(r.stop_index, 0);
}

TEST(StopConditionsTest, Validate) {
  StopConditions ok;
  ok.stop_token_ids = {0, 99};
  ok.stop_strings = {"\n\n"};
  ok.max_tokens = 1;
  EXPECT_THAT(Validate(ok, 100), IsOk());
  EXPECT_THAT(Validate(StopConditions{}, 100), IsOk());

  StopConditions c = ok;
  c.stop_token_ids = {5, 100};
  EXPECT_THAT(Validate(c, 100),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("stop_token_ids[1] = 100 is outside the "
                                 "vocabulary [0, 100)")));
  c.stop_token_ids = {-1};
  EXPECT_THAT(Validate(c, 100), StatusIs(absl::StatusCode::kInvalidArgument,
                                         HasSubstr("stop_token_ids[0] = -1")));
  c.stop_token_ids.assign(65, 1);
  EXPECT_THAT(Validate(c, 100),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("stop_token_ids has 65 entries; at most 64")));
  c = ok;
  c.max_tokens = 0;
  EXPECT_THAT(Validate(c, 100), StatusIs(absl::StatusCode::kInvalidArgument,
                                         HasSubstr("max_tokens must be >= 1")));
  c.max_tokens = -2;
  EXPECT_THAT(Validate(c, 100), StatusIs(absl::StatusCode::kInvalidArgument,
                                         HasSubstr("max_tokens must be >= 1")));
  c = ok;
  c.stop_strings = {""};
  EXPECT_THAT(Validate(c, 100), StatusIs(absl::StatusCode::kInvalidArgument,
                                         HasSubstr("stop[0] is empty")));
}

TEST(StopConditionsTest, StopTokensAndMaxTokens) {
  constexpr int32_t kEos = 2;
  constexpr int32_t kEot = 9;
  const std::vector<int32_t> eog = {kEos, kEot, -1};
  StopConditions c;
  c.stop_token_ids = {7};
  EXPECT_TRUE(c.IsStopToken(kEos, eog));
  EXPECT_TRUE(c.IsStopToken(kEot, eog));
  EXPECT_TRUE(c.IsStopToken(7, eog));
  EXPECT_FALSE(c.IsStopToken(3, eog));
  EXPECT_FALSE(c.IsStopToken(-1, eog));
  c.ignore_eos = true;
  EXPECT_FALSE(c.IsStopToken(kEos, eog));
  EXPECT_FALSE(c.IsStopToken(kEot, eog));
  EXPECT_TRUE(c.IsStopToken(7, eog));

  EXPECT_FALSE(c.ReachedMaxTokens(1000000));  // -1: no limit.
  c.max_tokens = 3;
  EXPECT_FALSE(c.ReachedMaxTokens(2));
  EXPECT_TRUE(c.ReachedMaxTokens(3));
}

}  // namespace
}  // namespace wf::engine
