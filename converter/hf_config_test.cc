#include "converter/hf_config.h"

#include <string>

#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace wf::convert {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::wf::testing::IsOk;
using ::wf::testing::StatusIs;
using Json = nlohmann::ordered_json;

// config.json of microsoft/bitnet-b1.58-2B-4T (packed weights).
constexpr char k2B4TConfig[] = R"({
  "architectures": ["BitNetForCausalLM"],
  "auto_map": {
    "AutoConfig": "configuration_bitnet.BitNetConfig",
    "AutoModelForCausalLM": "modeling_bitnet.BitNetForCausalLM"
  },
  "bos_token_id": 128000,
  "eos_token_id": 128001,
  "hidden_act": "relu2",
  "hidden_size": 2560,
  "initializer_range": 0.02,
  "intermediate_size": 6912,
  "max_position_embeddings": 4096,
  "model_type": "bitnet",
  "rms_norm_eps": 1e-05,
  "num_attention_heads": 20,
  "num_hidden_layers": 30,
  "num_key_value_heads": 5,
  "rope_theta": 500000.0,
  "tie_word_embeddings": true,
  "torch_dtype": "bfloat16",
  "use_cache": true,
  "vocab_size": 128256,
  "quantization_config": {
    "quant_method": "bitnet",
    "linear_class": "autobitlinear",
    "quantization_mode": "offline"
  }
})";

Json Base() { return Json::parse(k2B4TConfig); }

absl::StatusOr<BitNetConfig> Parse(const Json& j) { return ParseBitNetConfig(j.dump()); }

TEST(HfConfigTest, ParsesThe2B4TConfig) {
  ASSERT_OK_AND_ASSIGN(BitNetConfig c, ParseBitNetConfig(k2B4TConfig));
  EXPECT_EQ(c.architecture, "BitNetForCausalLM");
  EXPECT_EQ(c.model_type, "bitnet");
  EXPECT_EQ(c.hidden_size, 2560);
  EXPECT_EQ(c.intermediate_size, 6912);
  EXPECT_EQ(c.num_hidden_layers, 30);
  EXPECT_EQ(c.num_attention_heads, 20);
  EXPECT_EQ(c.num_key_value_heads, 5);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.vocab_size, 128256);
  EXPECT_EQ(c.max_position_embeddings, 4096);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.hidden_act, "relu2");
  EXPECT_EQ(c.bos_token_id, 128000);
  EXPECT_THAT(c.eos_token_ids, ElementsAre(128001));
  EXPECT_FALSE(c.pad_token_id.has_value());
  EXPECT_EQ(c.torch_dtype, "bfloat16");
  ASSERT_TRUE(c.quantization_config.has_value());
  EXPECT_EQ(c.quantization_config->quant_method, "bitnet");
  EXPECT_EQ(c.quantization_config->linear_class, "autobitlinear");
  EXPECT_EQ(c.quantization_config->quantization_mode, "offline");
  EXPECT_TRUE(c.HasPackedWeights());
}

TEST(HfConfigTest, Bf16VariantHasOnlineQuantization) {
  Json j = Base();
  j["quantization_config"]["quantization_mode"] = "online";
  ASSERT_OK_AND_ASSIGN(BitNetConfig c, Parse(j));
  EXPECT_FALSE(c.HasPackedWeights());
}

TEST(HfConfigTest, AppliesDefaults) {
  Json j = Base();
  for (const char* key : {"num_key_value_heads", "tie_word_embeddings", "hidden_act",
                          "quantization_config", "bos_token_id", "eos_token_id", "torch_dtype"}) {
    j.erase(key);
  }
  j["pad_token_id"] = nullptr;
  ASSERT_OK_AND_ASSIGN(BitNetConfig c, Parse(j));
  EXPECT_EQ(c.num_key_value_heads, 20);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.hidden_act, "relu2");
  EXPECT_FALSE(c.quantization_config.has_value());
  EXPECT_FALSE(c.HasPackedWeights());
  EXPECT_FALSE(c.bos_token_id.has_value());
  EXPECT_TRUE(c.eos_token_ids.empty());
  EXPECT_FALSE(c.pad_token_id.has_value());
}

TEST(HfConfigTest, KeepsEveryEosId) {
  Json j = Base();
  j["eos_token_id"] = {128001, 128009};
  j["pad_token_id"] = 128001;
  ASSERT_OK_AND_ASSIGN(BitNetConfig c, Parse(j));
  EXPECT_THAT(c.eos_token_ids, ElementsAre(128001, 128009));
  EXPECT_EQ(c.pad_token_id, 128001);
}

TEST(HfConfigTest, MissingRequiredKeyIsNamed) {
  for (const char* key :
       {"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
        "vocab_size", "max_position_embeddings", "rms_norm_eps", "rope_theta"}) {
    SCOPED_TRACE(key);
    Json j = Base();
    j.erase(key);
    EXPECT_THAT(Parse(j), StatusIs(absl::StatusCode::kInvalidArgument,
                                   HasSubstr(std::string("\"") + key + "\" is missing")));
  }
  Json j = Base();
  j.erase("architectures");
  j.erase("model_type");
  EXPECT_THAT(Parse(j), StatusIs(absl::StatusCode::kInvalidArgument,
                                 HasSubstr("\"architectures\" is missing")));
}

TEST(HfConfigTest, WrongJsonTypeIsNamed) {
  const std::pair<const char*, Json> cases[] = {
      {"hidden_size", "2560"},
      {"num_hidden_layers", 30.5},
      {"rms_norm_eps", "1e-5"},
      {"tie_word_embeddings", 1},
      {"hidden_act", Json::array()},
      {"eos_token_id", "</s>"},
      {"quantization_config", "bitnet"},
      {"architectures", "BitNetForCausalLM"},
      {"torch_dtype", 16},
  };
  for (const auto& [key, value] : cases) {
    SCOPED_TRACE(key);
    Json j = Base();
    j[key] = value;
    EXPECT_THAT(Parse(j),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr(std::string("\"") + key + "\""), HasSubstr("must be"))));
  }
  Json j = Base();
  j["eos_token_id"] = {128001, "x"};
  EXPECT_THAT(Parse(j),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"eos_token_id\"")));
}

TEST(HfConfigTest, NonPositiveSizesAreNamed) {
  for (const auto& [key, value] : {std::pair<const char*, int>{"hidden_size", -2560},
                                   {"num_hidden_layers", 0},
                                   {"vocab_size", -1},
                                   {"num_key_value_heads", 0}}) {
    SCOPED_TRACE(key);
    Json j = Base();
    j[key] = value;
    EXPECT_THAT(Parse(j), StatusIs(absl::StatusCode::kInvalidArgument,
                                   AllOf(HasSubstr(std::string("\"") + key + "\""),
                                         HasSubstr("must be positive"))));
  }
  Json j = Base();
  j["rope_theta"] = 0;
  EXPECT_THAT(Parse(j), StatusIs(absl::StatusCode::kInvalidArgument,
                                 HasSubstr("\"rope_theta\" must be positive")));
  j = Base();
  j["hidden_size"] = int64_t{1} << 40;
  EXPECT_THAT(Parse(j), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("above the limit")));
}

TEST(HfConfigTest, InconsistentHeadsAreNamed) {
  Json j = Base();
  j["num_attention_heads"] = 7;
  EXPECT_THAT(Parse(j), StatusIs(absl::StatusCode::kInvalidArgument,
                                 HasSubstr("\"num_attention_heads\" (7) does not divide "
                                           "hidden_size (2560)")));
  j = Base();
  j["num_key_value_heads"] = 3;
  EXPECT_THAT(Parse(j), StatusIs(absl::StatusCode::kInvalidArgument,
                                 HasSubstr("\"num_key_value_heads\" (3) does not divide "
                                           "num_attention_heads (20)")));
  j = Base();
  j["head_dim"] = 64;
  EXPECT_THAT(Parse(j),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"head_dim\" is 64")));
  j["head_dim"] = 128;
  EXPECT_THAT(Parse(j), IsOk());
}

TEST(HfConfigTest, UnsupportedModelsAreNamed) {
  Json j = Base();
  j["architectures"] = {"LlamaForCausalLM"};
  EXPECT_THAT(Parse(j), StatusIs(absl::StatusCode::kInvalidArgument,
                                 AllOf(HasSubstr("\"LlamaForCausalLM\""),
                                       HasSubstr("supported: BitNetForCausalLM"))));
  j = Base();
  j["hidden_act"] = "silu";
  EXPECT_THAT(Parse(j), StatusIs(absl::StatusCode::kInvalidArgument,
                                 HasSubstr("\"hidden_act\" is \"silu\"")));
  j = Base();
  j["quantization_config"]["quant_method"] = "gptq";
  EXPECT_THAT(Parse(j), StatusIs(absl::StatusCode::kInvalidArgument,
                                 HasSubstr("\"quantization_config.quant_method\" is \"gptq\"")));
  j = Base();
  j["quantization_config"]["quantization_mode"] = "dynamic";
  EXPECT_THAT(Parse(j),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("quantization_mode")));
  j = Base();
  j["quantization_config"].erase("quant_method");
  EXPECT_THAT(Parse(j), StatusIs(absl::StatusCode::kInvalidArgument,
                                 HasSubstr("\"quantization_config.quant_method\" is missing")));
}

TEST(HfConfigTest, TokenIdsMustBeInVocabulary) {
  Json j = Base();
  j["bos_token_id"] = 128256;
  EXPECT_THAT(Parse(j), StatusIs(absl::StatusCode::kInvalidArgument,
                                 HasSubstr("\"bos_token_id\" is 128256, outside the vocabulary")));
  j = Base();
  j["eos_token_id"] = {128001, -1};
  EXPECT_THAT(Parse(j),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"eos_token_id\"")));
}

TEST(HfConfigTest, RejectsMalformedJson) {
  EXPECT_THAT(ParseBitNetConfig("{\"hidden_size\": ", "my/config.json"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("my/config.json"), HasSubstr("invalid JSON"))));
  EXPECT_THAT(ParseBitNetConfig("[]"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not an object")));
  EXPECT_THAT(ParseBitNetConfig(R"({"hidden_size": 1, "hidden_size": 2})"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("duplicate JSON key")));
  EXPECT_THAT(LoadBitNetConfig("/nonexistent/config.json"),
              StatusIs(absl::StatusCode::kNotFound, ::testing::_));
}

TEST(HfConfigTest, ToJsonRoundTrips) {
  ASSERT_OK_AND_ASSIGN(BitNetConfig c, ParseBitNetConfig(k2B4TConfig));
  c.eos_token_ids = {128001, 128009};
  c.pad_token_id = 128001;
  c.tie_word_embeddings = false;
  ASSERT_OK_AND_ASSIGN(BitNetConfig back, ParseBitNetConfig(c.ToJson()));
  EXPECT_EQ(back.hidden_size, c.hidden_size);
  EXPECT_EQ(back.intermediate_size, c.intermediate_size);
  EXPECT_EQ(back.num_hidden_layers, c.num_hidden_layers);
  EXPECT_EQ(back.num_attention_heads, c.num_attention_heads);
  EXPECT_EQ(back.num_key_value_heads, c.num_key_value_heads);
  EXPECT_EQ(back.vocab_size, c.vocab_size);
  EXPECT_EQ(back.max_position_embeddings, c.max_position_embeddings);
  EXPECT_EQ(back.rms_norm_eps, c.rms_norm_eps);
  EXPECT_EQ(back.rope_theta, c.rope_theta);
  EXPECT_FALSE(back.tie_word_embeddings);
  EXPECT_EQ(back.bos_token_id, c.bos_token_id);
  EXPECT_EQ(back.eos_token_ids, c.eos_token_ids);
  EXPECT_EQ(back.pad_token_id, c.pad_token_id);
  EXPECT_EQ(back.torch_dtype, c.torch_dtype);
  ASSERT_TRUE(back.quantization_config.has_value());
  EXPECT_EQ(back.quantization_config->linear_class, "autobitlinear");
  EXPECT_TRUE(back.HasPackedWeights());
}

TEST(HfConfigTest, ValidateCatchesHandBuiltMistakes) {
  ASSERT_OK_AND_ASSIGN(BitNetConfig c, ParseBitNetConfig(k2B4TConfig));
  EXPECT_THAT(ValidateBitNetConfig(c), IsOk());
  c.num_key_value_heads = 6;
  EXPECT_THAT(ValidateBitNetConfig(c),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("num_key_value_heads")));
}

TEST(HfTokenizerConfigTest, ParsesStringTemplateAndTokenForms) {
  ASSERT_OK_AND_ASSIGN(HfTokenizerConfig t, ParseHfTokenizerConfig(R"({
    "add_bos_token": true,
    "bos_token": "<|begin_of_text|>",
    "eos_token": {"__type": "AddedToken", "content": "<|eot_id|>", "special": true},
    "chat_template": "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}"
  })"));
  EXPECT_EQ(t.bos_token, "<|begin_of_text|>");
  EXPECT_EQ(t.eos_token, "<|eot_id|>");
  EXPECT_EQ(t.add_bos_token, true);
  EXPECT_FALSE(t.add_eos_token.has_value());
  EXPECT_THAT(t.chat_template, HasSubstr("for m in messages"));
  EXPECT_TRUE(t.named_chat_templates.empty());
}

TEST(HfTokenizerConfigTest, PicksDefaultFromTemplateList) {
  ASSERT_OK_AND_ASSIGN(HfTokenizerConfig t, ParseHfTokenizerConfig(R"({
    "chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]
  })"));
  EXPECT_EQ(t.chat_template, "D");
  ASSERT_EQ(t.named_chat_templates.size(), 2u);
  EXPECT_EQ(t.named_chat_templates[0].first, "tool_use");
  ASSERT_OK_AND_ASSIGN(HfTokenizerConfig none, ParseHfTokenizerConfig(R"({
    "chat_template": [{"name": "rag", "template": "R"}], "bos_token": null
  })"));
  EXPECT_EQ(none.chat_template, "");
  EXPECT_FALSE(none.bos_token.has_value());
}

TEST(HfTokenizerConfigTest, MalformedFieldsAreNamed) {
  EXPECT_THAT(ParseHfTokenizerConfig(R"({"chat_template": 5})"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"chat_template\"")));
  EXPECT_THAT(ParseHfTokenizerConfig(R"({"chat_template": [{"name": "default"}]})"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("\"chat_template[0].template\" is missing")));
  EXPECT_THAT(ParseHfTokenizerConfig(R"({"eos_token": {"id": 3}})"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"eos_token\"")));
  EXPECT_THAT(ParseHfTokenizerConfig(R"({"add_bos_token": "yes"})"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"add_bos_token\"")));
}

}  // namespace
}  // namespace wf::convert
