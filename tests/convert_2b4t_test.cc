// End to end through the real binary: a synthetic checkpoint of the exact
// BitNet-b1.58-2B-4T shape with the Llama 3 tokenizer, converted by
// wf_convert, has the published ggml-model-i2_s.gguf layout (REFERENCE.md
// Part 1 §2): the same 24 metadata keys and value types in order (plus
// tokenizer.ggml.pre), 332 tensors = 121 F32 + 1 F16 + 210 I2_S with the
// published names and shapes, and the published tensor byte budget.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/gguf/gguf_reader.h"
#include "common/testing/status_matchers.h"
#include "common/testing/test_paths.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace wf {
namespace {

using ::testing::ElementsAreArray;

int Shell(const std::string& cmd) {
  std::fprintf(stderr, "+ %s\n", cmd.c_str());
  return std::system(cmd.c_str());
}

TEST(Convert2B4TTest, MatchesThePublishedLayout) {
  const std::string tokenizer = wf::testing::SourceDir() + "/../shared/tokenizers/llama3/tokenizer.json";
  struct stat st {};
  ASSERT_EQ(::stat(tokenizer.c_str(), &st), 0) << "missing " << tokenizer;
  char tmpl[] = "/tmp/wf_2b4t_XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  const std::string bin = wf::testing::BinaryDir() + "/converter/wf_convert";
  // Timing and peak memory of the conversion are printed for the record.
  ASSERT_EQ(Shell(absl::StrCat(bin, " synth --preset 2b4t --seed 7 --tokenizer ", tokenizer, " --out ", dir,
                             "/ckpt --quiet")), 0);
  const int rc = Shell(absl::StrCat("/usr/bin/time -f 'convert 2b4t: %e s wall, %M KB peak RSS' ", bin, " ", dir,
                                  "/ckpt --outfile ", dir, "/model.gguf --name bitnet2b --quiet"));
  Shell(absl::StrCat("rm -rf ", dir, "/ckpt"));
  ASSERT_EQ(rc, 0);

  ASSERT_OK_AND_ASSIGN(auto f, gguf::GgufFile::Open(dir + "/model.gguf"));
  std::vector<std::pair<std::string, std::string>> keys;
  for (const auto& kv : f->metadata()) keys.emplace_back(kv.key, kv.value.TypeName());
  const std::vector<std::pair<std::string, std::string>> published = {
      {"general.architecture", "string"}, {"general.name", "string"},
      {"bitnet-b1.58.vocab_size", "u32"}, {"bitnet-b1.58.context_length", "u32"},
      {"bitnet-b1.58.embedding_length", "u32"}, {"bitnet-b1.58.block_count", "u32"},
      {"bitnet-b1.58.feed_forward_length", "u32"}, {"bitnet-b1.58.rope.dimension_count", "u32"},
      {"bitnet-b1.58.attention.head_count", "u32"}, {"bitnet-b1.58.attention.head_count_kv", "u32"},
      {"tokenizer.ggml.add_bos_token", "bool"}, {"bitnet-b1.58.attention.layer_norm_rms_epsilon", "f32"},
      {"bitnet-b1.58.rope.freq_base", "f32"}, {"general.file_type", "u32"},
      {"tokenizer.ggml.model", "string"}, {"tokenizer.ggml.pre", "string"},
      {"tokenizer.ggml.tokens", "array[string]"}, {"tokenizer.ggml.scores", "array[f32]"},
      {"tokenizer.ggml.token_type", "array[i32]"}, {"tokenizer.ggml.merges", "array[string]"},
      {"tokenizer.ggml.bos_token_id", "u32"}, {"tokenizer.ggml.eos_token_id", "u32"},
      {"tokenizer.ggml.padding_token_id", "u32"}, {"tokenizer.chat_template", "string"},
      {"general.quantization_version", "u32"}};
  EXPECT_EQ(keys, published);
  EXPECT_EQ(f->GetString("tokenizer.ggml.pre").value(), "llama-bpe");
  EXPECT_EQ(f->GetString("general.name").value(), "bitnet2b");
  EXPECT_EQ(f->GetU32("bitnet-b1.58.vocab_size").value(), 128256u);
  EXPECT_EQ(f->GetU32("bitnet-b1.58.context_length").value(), 4096u);
  EXPECT_EQ(f->GetU32("bitnet-b1.58.embedding_length").value(), 2560u);
  EXPECT_EQ(f->GetU32("bitnet-b1.58.block_count").value(), 30u);
  EXPECT_EQ(f->GetU32("bitnet-b1.58.feed_forward_length").value(), 6912u);
  EXPECT_EQ(f->GetU32("bitnet-b1.58.rope.dimension_count").value(), 128u);
  EXPECT_EQ(f->GetU32("bitnet-b1.58.attention.head_count").value(), 20u);
  EXPECT_EQ(f->GetU32("bitnet-b1.58.attention.head_count_kv").value(), 5u);
  EXPECT_EQ(f->GetF32("bitnet-b1.58.rope.freq_base").value(), 500000.0f);
  EXPECT_EQ(f->GetF32("bitnet-b1.58.attention.layer_norm_rms_epsilon").value(), 1e-5f);
  EXPECT_EQ(f->GetU32("general.file_type").value(), 40u);
  EXPECT_EQ(f->GetU32("tokenizer.ggml.bos_token_id").value(), 128000u);
  EXPECT_EQ(f->GetU32("tokenizer.ggml.eos_token_id").value(), 128001u);
  EXPECT_EQ(f->GetStringArray("tokenizer.ggml.tokens").value().size(), 128256u);
  EXPECT_EQ(f->GetStringArray("tokenizer.ggml.merges").value().size(), 280147u);
  const auto types = f->GetI32Array("tokenizer.ggml.token_type").value();
  EXPECT_EQ(types[0], 1);
  EXPECT_EQ(types[128009], 3);

  std::map<gguf::GgmlType, int> counts;
  uint64_t i2s_bytes = 0, f16_bytes = 0, f32_bytes = 0;
  for (const auto& t : f->tensors()) {
    ++counts[t.type];
    if (t.type == gguf::GgmlType::I2_S) i2s_bytes += t.size_bytes;
    if (t.type == gguf::GgmlType::F16) f16_bytes += t.size_bytes;
    if (t.type == gguf::GgmlType::F32) f32_bytes += t.size_bytes;
  }
  EXPECT_EQ(f->tensors().size(), 332u);
  EXPECT_EQ(counts[gguf::GgmlType::F32], 121);
  EXPECT_EQ(counts[gguf::GgmlType::F16], 1);
  EXPECT_EQ(counts[gguf::GgmlType::I2_S], 210);
  // REFERENCE.md byte budget: I2_S 521,017,920; F16 656,670,720; norms 1,761,280.
  EXPECT_EQ(i2s_bytes, 521017920u);
  EXPECT_EQ(f16_bytes, 656670720u);
  EXPECT_EQ(f32_bytes, 1761280u);
  const std::vector<std::pair<std::string, std::vector<int64_t>>> shapes = {
      {"token_embd.weight", {2560, 128256}}, {"blk.0.attn_norm.weight", {2560}},
      {"blk.0.attn_q.weight", {2560, 2560}}, {"blk.0.attn_k.weight", {2560, 640}},
      {"blk.0.attn_v.weight", {2560, 640}}, {"blk.0.attn_sub_norm.weight", {2560}},
      {"blk.0.attn_output.weight", {2560, 2560}}, {"blk.0.ffn_norm.weight", {2560}},
      {"blk.0.ffn_gate.weight", {2560, 6912}}, {"blk.0.ffn_up.weight", {2560, 6912}},
      {"blk.0.ffn_sub_norm.weight", {6912}}, {"blk.29.ffn_down.weight", {6912, 2560}},
      {"output_norm.weight", {2560}}};
  for (const auto& [name, ne] : shapes) {
    const gguf::TensorInfo* t = f->FindTensor(name);
    ASSERT_NE(t, nullptr) << name;
    EXPECT_THAT(t->dims(), ElementsAreArray(ne)) << name;
  }
  EXPECT_EQ(f->FindTensor("output.weight"), nullptr);
  Shell(absl::StrCat("rm -rf ", dir));
}

}  // namespace
}  // namespace wf
