#include "router/dispatch/model_tokenizer.h"

#include <string>
#include <vector>

#include "common/kv/block_hash.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace wf::router {
namespace {

using ::testing::HasSubstr;
using ::wf::testing::StatusIs;
namespace v1 = ::wrinklefree::v1;

// GPT-2's byte-to-unicode table: printable bytes map to themselves, the rest
// to U+0100 onwards, in byte order.
std::vector<std::string> ByteLevelAlphabet() {
  std::vector<std::string> out(256);
  int next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    const int cp = printable ? b : next++;
    std::string s;
    if (cp < 0x80) {
      s.push_back(static_cast<char>(cp));
    } else {
      s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
    out[b] = s;
  }
  return out;
}

// Bytes as tokens 0..255, then the Llama 3 chat specials (256..259).
v1::ModelInfo TinyModelInfo() {
  v1::ModelInfo info;
  info.set_model_name("tiny");
  info.set_tokenizer_model("gpt2");
  info.set_tokenizer_pre("gpt-2");
  for (const std::string& t : ByteLevelAlphabet()) {
    info.add_vocab_tokens(t);
    info.add_token_types(1);
  }
  for (const char* t : {"<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"}) {
    info.add_vocab_tokens(t);
    info.add_token_types(3);
  }
  info.add_merges("h i");  // not a vocabulary entry: skipped with a warning
  auto special = [&](const char* name, int id) {
    v1::SpecialToken* s = info.add_special_tokens();
    s->set_name(name);
    s->set_id(id);
  };
  special("bos", 256);
  special("eos", 257);
  special("eot", 257);
  special("pad", 257);
  info.add_eog_token_ids(257);
  info.set_add_bos(true);
  info.set_chat_format("llama3");
  info.set_kv_block_size(4);
  info.set_kv_block_hash_scheme(kv::kBlockHashScheme);
  info.set_max_context(512);
  return info;
}

TEST(ModelTokenizerTest, EncodesLikeTheWorker) {
  ASSERT_OK_AND_ASSIGN(auto mt, ModelTokenizer::Create(TinyModelInfo()));
  EXPECT_EQ(mt->tokenizer().bos_id(), 256);
  EXPECT_EQ(mt->tokenizer().eot_id(), 257);
  EXPECT_EQ(mt->block_size(), 4);
  EXPECT_EQ(mt->max_context(), 512);
  EXPECT_THAT(mt->eog_token_ids(), ::testing::ElementsAre(257));
  ASSERT_TRUE(mt->chat_format().has_value());
  EXPECT_EQ(*mt->chat_format(), tokenizer::ChatFormat::kLlama3);

  ASSERT_OK_AND_ASSIGN(std::vector<int32_t> ids, mt->EncodeText("hi<|eot_id|>"));
  EXPECT_THAT(ids, ::testing::ElementsAre(256, 'h', 'i', 257));
  ASSERT_OK_AND_ASSIGN(ids, mt->EncodeText("hi", /*add_special_tokens=*/false));
  EXPECT_THAT(ids, ::testing::ElementsAre('h', 'i'));

  ASSERT_OK_AND_ASSIGN(ids, mt->EncodeChat({{"user", "hi"}}));
  EXPECT_EQ(ids.front(), 256);
  EXPECT_THAT(ids, ::testing::Contains(258));
  EXPECT_EQ(mt->BlockHashes(ids), kv::HashFullBlocks(ids, 4));
  EXPECT_EQ(mt->BlockHashes(ids).size(), ids.size() / 4);

  EXPECT_THAT(mt->EncodeChat({}), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(mt->EncodeChat({{"tool", "x"}}), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("role")));
  EXPECT_THAT(mt->EncodeText("\xff"), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
}

TEST(ModelTokenizerTest, ChatFormatDetectedFromTemplateOrAbsent) {
  v1::ModelInfo info = TinyModelInfo();
  info.clear_chat_format();
  info.set_chat_template("{{ '<|start_header_id|>' + message['role'] }}");
  ASSERT_OK_AND_ASSIGN(auto mt, ModelTokenizer::Create(info));
  EXPECT_EQ(mt->chat_format(), tokenizer::ChatFormat::kLlama3);

  info.clear_chat_template();
  ASSERT_OK_AND_ASSIGN(mt, ModelTokenizer::Create(info));
  EXPECT_FALSE(mt->chat_format().has_value());
  EXPECT_THAT(mt->EncodeChat({{"user", "hi"}}), StatusIs(absl::StatusCode::kFailedPrecondition, ::testing::_));
}

TEST(ModelTokenizerTest, RejectsBadModelInfo) {
  v1::ModelInfo info = TinyModelInfo();
  info.clear_vocab_tokens();
  EXPECT_THAT(ModelTokenizer::Create(info),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("include_tokenizer")));

  info = TinyModelInfo();
  info.mutable_token_types()->RemoveLast();
  EXPECT_THAT(ModelTokenizer::Create(info), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("token_types")));

  info = TinyModelInfo();
  info.mutable_special_tokens(0)->set_id(999);
  EXPECT_THAT(ModelTokenizer::Create(info),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("special_tokens 'bos' has id 999")));

  info = TinyModelInfo();
  info.set_kv_block_hash_scheme("md5-v0");
  EXPECT_THAT(ModelTokenizer::Create(info), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("md5-v0")));

  info = TinyModelInfo();
  info.set_kv_block_size(0);
  EXPECT_THAT(ModelTokenizer::Create(info), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("kv_block_size")));

  info = TinyModelInfo();
  info.set_tokenizer_model("llama");
  EXPECT_THAT(ModelTokenizer::Create(info), StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("llama")));

  info = TinyModelInfo();
  info.clear_token_types();  // all NORMAL: accepted
  EXPECT_THAT(ModelTokenizer::Create(info).status(), ::wf::testing::IsOk());
}

}  // namespace
}  // namespace wf::router
