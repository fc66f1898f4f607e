#include "converter/synth_tokenizer.h"

#include <algorithm>
#include <string>
#include <vector>

#include "common/testing/status_matchers.h"
#include "common/tokenizer/tokenizer.h"
#include "common/tokenizer/vocab.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace wf::convert {
namespace {

using ::testing::HasSubstr;
using ::wf::testing::StatusIs;

TEST(SynthTokenizerTest, IsAWorkingDeterministicByteLevelBpe) {
  ASSERT_OK_AND_ASSIGN(SynthTokenizer a, BuildSynthTokenizer(2048));
  ASSERT_OK_AND_ASSIGN(SynthTokenizer b, BuildSynthTokenizer(2048));
  EXPECT_EQ(a.tokenizer_json, b.tokenizer_json);
  ASSERT_OK_AND_ASSIGN(tokenizer::Vocab vocab, tokenizer::ParseHfTokenizerJson(a.tokenizer_json));
  ASSERT_EQ(vocab.tokens.size(), 2048u);
  // Only the eight fixed control tokens are special; the rest is ordinary text.
  EXPECT_EQ(std::count(vocab.token_types.begin(), vocab.token_types.end(), tokenizer::kTokenControl), 8);
  EXPECT_EQ(vocab.tokens[a.bos_id], "<|begin_of_text|>");
  EXPECT_EQ(vocab.tokens[a.eot_id], "<|eot_id|>");
  ASSERT_OK_AND_ASSIGN(auto tok, tokenizer::Tokenizer::Create(vocab));
  const std::string text = "The quick brown fox jumps over the lazy dog. Ünïcödé 123!";
  ASSERT_OK_AND_ASSIGN(std::vector<int32_t> ids, tok->Encode(text));
  ASSERT_OK_AND_ASSIGN(std::vector<int32_t> english, tok->Encode("The quick brown fox jumps over the lazy dog."));
  EXPECT_LT(english.size(), 44u * 2 / 3);  // Learned merges apply (44 bytes).
  ASSERT_OK_AND_ASSIGN(std::string back, tok->Decode(ids, false));
  EXPECT_EQ(back, text);
}

TEST(SynthTokenizerTest, RejectsTooSmallVocabularies) {
  EXPECT_THAT(BuildSynthTokenizer(100).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("too small")));
}

}  // namespace
}  // namespace wf::convert
