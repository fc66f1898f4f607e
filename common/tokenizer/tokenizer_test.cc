#include "common/tokenizer/tokenizer.h"

#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "common/gguf/gguf_reader.h"
#include "common/testing/status_matchers.h"
#include "common/testing/test_paths.h"
#include "common/tokenizer/gguf_vocab.h"
#include "common/tokenizer/internal/utf8.h"
#include "common/tokenizer/test_util.h"
#include "common/tokenizer/vocab.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace wf::tokenizer {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::wf::testing::IsOk;
using ::wf::testing::StatusIs;

using Ids = std::vector<int32_t>;

bool FileExists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

std::string Quoted(const std::string& s) {
  std::string out = nlohmann::json(s).dump();
  return out.size() > 120 ? out.substr(0, 120) + "..." : out;
}

// GPT-2 byte-level string of one byte, to find byte tokens by their text.
std::string ByteLevelChar(uint8_t b) {
  uint32_t next = 256;
  for (int x = 0; x < 256; ++x) {
    const bool printable = (x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE;
    const uint32_t cp = printable ? static_cast<uint32_t>(x) : next++;
    if (x == b) {
      std::string s;
      internal::AppendCodepoint(cp, &s);
      return s;
    }
  }
  return "";
}

// ---------------------------------------------------------------------------
// Llama 3 reference vectors.

class Llama3Test : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(FileExists(testing::Llama3VectorsPath()))
        << "no Llama 3 vectors at " << testing::Llama3VectorsPath() << "; set WF_TOKENIZER_VECTORS";
    const auto& load = testing::Llama3();
    ASSERT_THAT(load.status(), IsOk());
    tok_ = load->tokenizer.get();
  }

  static std::vector<nlohmann::json> ReadVectors() {
    std::vector<nlohmann::json> out;
    std::ifstream in(testing::Llama3VectorsPath());
    std::string line;
    while (std::getline(in, line)) {
      if (!line.empty()) out.push_back(nlohmann::json::parse(line));
    }
    return out;
  }

  Ids Enc(std::string_view text, bool parse_special) const {
    auto r = tok_->Encode(text, {.add_bos = false, .parse_special = parse_special});
    EXPECT_THAT(r.status(), IsOk()) << Quoted(std::string(text));
    return r.ok() ? *r : Ids{};
  }

  const Tokenizer* tok_ = nullptr;
};

TEST_F(Llama3Test, LoadsAndReportsLoadTime) {
  const auto& load = *testing::Llama3();
  std::cout << "[ info ] tokenizer.json parse " << load.parse_ms << " ms, Tokenizer::Create "
            << load.create_ms << " ms\n";
  EXPECT_EQ(tok_->vocab_size(), 128256);
  EXPECT_EQ(tok_->pre_tokenizer_name(), "llama-bpe");
  EXPECT_TRUE(tok_->ignore_merges());
  EXPECT_EQ(tok_->bos_id(), 128000);
  EXPECT_EQ(tok_->eos_id(), 128001);
  EXPECT_EQ(tok_->eot_id(), 128009);
  EXPECT_TRUE(tok_->IsEog(128001));
  EXPECT_TRUE(tok_->IsEog(128009));
  EXPECT_FALSE(tok_->IsEog(128000));
  EXPECT_FALSE(tok_->IsEog(-1));
  EXPECT_TRUE(tok_->IsControl(128255));
  EXPECT_EQ(tok_->vocab().merges.size(), 280147u);
  EXPECT_EQ(tok_->TokenId("Ġworld"), 1917);
  ASSERT_OK_AND_ASSIGN(std::string_view piece, tok_->TokenToPiece(1917));
  EXPECT_EQ(piece, " world");
}

TEST_F(Llama3Test, EncodeVectorsMatchExactly) {
  int cases = 0;
  int plain_cases = 0;
  std::vector<std::string> mismatches;
  for (const auto& v : ReadVectors()) {
    if (v["kind"] != "encode") continue;
    ++cases;
    const std::string text = v["text"].get<std::string>();
    const Ids want = v["ids"].get<Ids>();
    const Ids got = Enc(text, /*parse_special=*/true);
    if (got != want) {
      mismatches.push_back(absl::StrCat("ids ", Quoted(text), "\n   want [", absl::StrJoin(want, ","),
                                        "]\n    got [", absl::StrJoin(got, ","), "]"));
    }
    if (v.contains("ids_plain")) {
      ++plain_cases;
      const Ids want_plain = v["ids_plain"].get<Ids>();
      const Ids got_plain = Enc(text, /*parse_special=*/false);
      if (got_plain != want_plain) {
        mismatches.push_back(absl::StrCat("ids_plain ", Quoted(text), "\n   want [",
                                          absl::StrJoin(want_plain, ","), "]\n    got [",
                                          absl::StrJoin(got_plain, ","), "]"));
      }
    }
  }
  EXPECT_GE(cases, 100);
  EXPECT_GE(plain_cases, 1);
  EXPECT_TRUE(mismatches.empty()) << mismatches.size() << " mismatches:\n" << absl::StrJoin(mismatches, "\n");
}

TEST_F(Llama3Test, DecodeVectorsAndRoundTrips) {
  std::vector<std::string> mismatches;
  int decode_cases = 0;
  for (const auto& v : ReadVectors()) {
    const Ids ids = v["ids"].get<Ids>();
    std::vector<std::pair<bool, std::string>> checks;  // (skip_special, expected)
    if (v["kind"] == "decode") {
      ++decode_cases;
      checks = {{false, v["text"].get<std::string>()}, {true, v["text_skip_special"].get<std::string>()}};
    } else {
      checks = {{false, v["text"].get<std::string>()}};
    }
    for (const auto& [skip, want] : checks) {
      ASSERT_OK_AND_ASSIGN(std::string got, tok_->Decode(ids, skip));
      if (got != want) {
        mismatches.push_back(absl::StrCat("Decode(skip=", skip, ") ", Quoted(want), " got ", Quoted(got)));
      }
      StreamingDecoder dec(*tok_, skip);
      std::string streamed;
      for (int32_t id : ids) {
        ASSERT_OK_AND_ASSIGN(std::string part, dec.Add(id));
        ASSERT_EQ(internal::FindInvalidUtf8(part), std::string::npos) << "streamed part is not valid UTF-8";
        streamed += part;
      }
      streamed += dec.Finish();
      if (streamed != want) {
        mismatches.push_back(
            absl::StrCat("StreamingDecoder(skip=", skip, ") ", Quoted(want), " got ", Quoted(streamed)));
      }
    }
  }
  EXPECT_GE(decode_cases, 1);
  EXPECT_TRUE(mismatches.empty()) << mismatches.size() << " mismatches:\n" << absl::StrJoin(mismatches, "\n");
}

TEST_F(Llama3Test, SpecialTokenTextIsPlainUnlessParsed) {
  EXPECT_EQ(Enc("<|eot_id|>", true), (Ids{128009}));
  EXPECT_EQ(Enc("<|eot_id|>", false), (Ids{27, 91, 68, 354, 851, 91, 29}));
  EXPECT_EQ(Enc("Hello <|eot_id|> world", true), (Ids{9906, 220, 128009, 1917}));
  // Leftmost-longest: a prefix of a special token is plain text.
  EXPECT_EQ(Enc("<|eot_id|", true), Enc("<|eot_id|", false));
  ASSERT_OK_AND_ASSIGN(Ids with_bos, tok_->Encode("Hello", {.add_bos = true}));
  EXPECT_EQ(with_bos, (Ids{128000, 9906}));
}

TEST_F(Llama3Test, WhiteSpaceIsUnicodeWhiteSpace) {
  // U+FEFF is not White_Space (JavaScript's \s would say it is).
  EXPECT_EQ(Enc("a \xEF\xBB\xBF"
                "b",
                false),
            (Ids{64, 76880, 65}));
  // U+3000 is White_Space: "\s+(?!\S)" leaves the last one to the word.
  ASSERT_OK_AND_ASSIGN(auto ideographic, tok_->PreTokenize("a\xE3\x80\x80\xE3\x80\x80"
                                                           "b"));
  EXPECT_THAT(ideographic, ElementsAre("a", "\xE3\x80\x80",
                                       "\xE3\x80\x80"
                                       "b"));
  // U+180E is not White_Space, although PCRE2's \s with UCP matches it.
  ASSERT_OK_AND_ASSIGN(auto mongolian, tok_->PreTokenize("a\xE1\xA0\x8E\xE1\xA0\x8E"
                                                         "b"));
  EXPECT_THAT(mongolian, ElementsAre("a", "\xE1\xA0\x8E\xE1\xA0\x8E", "b"));
  // U+0085 and U+00A0 are White_Space.
  ASSERT_OK_AND_ASSIGN(auto nel, tok_->PreTokenize("a\xC2\x85\xC2\xA0"
                                                   "b"));
  EXPECT_THAT(nel, ElementsAre("a", "\xC2\x85",
                               "\xC2\xA0"
                               "b"));
}

TEST_F(Llama3Test, InvalidUtf8IsRejectedWithOffset) {
  EXPECT_THAT(tok_->Encode("ab\xFF"
                           "cd")
                  .status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("byte offset 2")));
  EXPECT_THAT(tok_->Encode("abc\xE2\x82").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("byte offset 3")));
  EXPECT_THAT(tok_->Encode("\xED\xA0\x80").status(),  // UTF-16 surrogate
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("byte offset 0")));
  EXPECT_THAT(tok_->Encode("x\xC0\xAF").status(),  // overlong '/'
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("byte offset 1")));
  EXPECT_THAT(tok_->Encode("0123456789\xF4\x90\x80\x80", {.parse_special = true}).status(),  // > U+10FFFF
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("byte offset 10")));
}

TEST_F(Llama3Test, OutOfVocabularyIdsAreErrors) {
  EXPECT_THAT(tok_->Decode({9906, 128256}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("token id 128256 at position 1")));
  EXPECT_THAT(tok_->Decode({-1}).status(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("-1")));
  EXPECT_THAT(tok_->TokenToPiece(1 << 30).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("outside")));
  StreamingDecoder dec(*tok_);
  ASSERT_OK_AND_ASSIGN(std::string a, dec.Add(*tok_->TokenId(ByteLevelChar(0xE2))));
  EXPECT_EQ(a, "");
  EXPECT_THAT(dec.Add(999999).status(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("999999")));
  EXPECT_EQ(dec.pending_bytes(), 1u);  // The bad id did not disturb the state.
}

TEST_F(Llama3Test, StreamingDecoderHoldsBackSplitCharacters) {
  auto byte_id = [&](uint8_t b) { return *tok_->TokenId(ByteLevelChar(b)); };
  // U+20AC EURO SIGN = E2 82 AC, one byte token at a time.
  StreamingDecoder dec(*tok_);
  std::vector<std::string> parts;
  for (uint8_t b : {0xE2, 0x82, 0xAC}) {
    ASSERT_OK_AND_ASSIGN(std::string part, dec.Add(byte_id(b)));
    parts.push_back(part);
  }
  EXPECT_THAT(parts, ElementsAre("", "", "\xE2\x82\xAC"));
  EXPECT_EQ(dec.Finish(), "");

  // An incomplete tail at the end flushes as one U+FFFD, like Decode.
  ASSERT_OK_AND_ASSIGN(std::string p1, dec.Add(byte_id(0xF0)));
  ASSERT_OK_AND_ASSIGN(std::string p2, dec.Add(byte_id(0x9F)));
  EXPECT_EQ(p1 + p2, "");
  EXPECT_EQ(dec.pending_bytes(), 2u);
  EXPECT_EQ(dec.Finish(), "\xEF\xBF\xBD");
  ASSERT_OK_AND_ASSIGN(std::string whole, tok_->Decode({byte_id(0xF0), byte_id(0x9F)}));
  EXPECT_EQ(whole, "\xEF\xBF\xBD");

  // An interrupted sequence becomes U+FFFD as soon as the next byte shows it.
  ASSERT_OK_AND_ASSIGN(std::string p3, dec.Add(byte_id(0xE2)));
  ASSERT_OK_AND_ASSIGN(std::string p4, dec.Add(9906));  // "Hello"
  EXPECT_EQ(p3, "");
  EXPECT_EQ(p4, "\xEF\xBF\xBDHello");
  EXPECT_EQ(dec.Finish(), "");

  // Special tokens are kept or skipped.
  StreamingDecoder skipping(*tok_, /*skip_special=*/true);
  ASSERT_OK_AND_ASSIGN(std::string s1, skipping.Add(128009));
  EXPECT_EQ(s1, "");
  StreamingDecoder keeping(*tok_);
  ASSERT_OK_AND_ASSIGN(std::string s2, keeping.Add(128009));
  EXPECT_EQ(s2, "<|eot_id|>");
}

TEST_F(Llama3Test, LongRunsAndPathologicalInput) {
  // Cross-checked with an independent implementation (Python regex + BPE).
  const Ids as = Enc(std::string(5000, 'a'), false);
  EXPECT_EQ(as.size(), 625u);
  EXPECT_EQ(std::count(as.begin(), as.end(), 70540), 625);

  for (const std::string& text : {std::string(200000, ' '), std::string(100000, '\n') + "x",
                                  std::string(100000, '!'), std::string(300000, '7')}) {
    ASSERT_OK_AND_ASSIGN(Ids ids, tok_->Encode(text));
    ASSERT_OK_AND_ASSIGN(std::string back, tok_->Decode(ids));
    EXPECT_EQ(back, text);
  }
}

TEST_F(Llama3Test, ConcurrentEncodeMatchesSerial) {
  std::vector<std::string> texts;
  for (const auto& v : ReadVectors()) {
    if (v["kind"] == "encode") texts.push_back(v["text"].get<std::string>());
  }
  std::vector<Ids> serial;
  for (const auto& t : texts) serial.push_back(Enc(t, true));
  std::vector<int> failures(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int rep = 0; rep < 5; ++rep) {
        for (size_t i = 0; i < texts.size(); ++i) {
          auto r = tok_->Encode(texts[(i + t * 7) % texts.size()], {.parse_special = true});
          if (!r.ok() || *r != serial[(i + t * 7) % texts.size()]) ++failures[t];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_THAT(failures, ElementsAre(0, 0, 0, 0));
}

TEST_F(Llama3Test, ReportsEncodeSpeed) {
  std::string english;
  for (const auto& v : ReadVectors()) {
    if (v["kind"] == "encode" && v["tag"] == "prose") english += v["text"].get<std::string>() + "\n";
  }
  ASSERT_FALSE(english.empty());
  std::string corpus;
  while (corpus.size() < (4u << 20)) corpus += english;
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_OK_AND_ASSIGN(Ids ids, tok_->Encode(corpus));
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cout << "[ info ] encoded " << corpus.size() / 1e6 << " MB of English prose into " << ids.size()
            << " tokens: " << corpus.size() / 1e6 / s << " MB/s\n";
  ASSERT_OK_AND_ASSIGN(std::string back, tok_->Decode(ids));
  EXPECT_EQ(back, corpus);
}

TEST_F(Llama3Test, PreTokenizerSelection) {
  Vocab v = tok_->vocab();
  v.pre.clear();
  v.ignore_merges.reset();
  ASSERT_OK_AND_ASSIGN(auto detected, Tokenizer::Create(v));
  EXPECT_EQ(detected->pre_tokenizer_name(), "llama-bpe");  // Llama 3 vocabulary detected.
  EXPECT_TRUE(detected->ignore_merges());

  v.pre = "default";
  ASSERT_OK_AND_ASSIGN(auto forced, Tokenizer::Create(v));
  EXPECT_EQ(forced->pre_tokenizer_name(), "default");
  EXPECT_FALSE(forced->ignore_merges());
  // The default chain splits digits differently: "1234" -> "1234" then "123","4".
  ASSERT_OK_AND_ASSIGN(auto pieces, forced->PreTokenize("ab 1234, x"));
  EXPECT_THAT(pieces, ElementsAre("ab", " ", "123", "4", ",", " x"));

  v.pre = "qwen2";
  EXPECT_THAT(Tokenizer::Create(v).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'qwen2'")));
}

// ---------------------------------------------------------------------------
// The golden model's own vocabulary (gpt2 model, no tokenizer.ggml.pre).

TEST(GoldenVocabTest, TextPromptsTokenizeToGoldenIds) {
  const std::string dir = ::wf::testing::GoldenDir();
  ASSERT_TRUE(FileExists(dir + "/golden-h256-l4.json")) << "no golden data in " << dir << "; set WF_GOLDEN_DIR";
  ASSERT_OK_AND_ASSIGN(auto file, gguf::GgufFile::Open(dir + "/bitnet-synth-h256-l4.gguf"));
  ASSERT_OK_AND_ASSIGN(Vocab vocab, VocabFromGgufFile(*file));
  EXPECT_EQ(vocab.pre, "");
  EXPECT_EQ(vocab.eot_id, 2042);  // Found by its text.
  EXPECT_TRUE(vocab.add_bos);
  ASSERT_OK_AND_ASSIGN(auto tok, Tokenizer::Create(std::move(vocab)));
  EXPECT_EQ(tok->pre_tokenizer_name(), "default");
  EXPECT_EQ(tok->bos_id(), 2040);
  EXPECT_TRUE(tok->IsEog(2041));
  EXPECT_TRUE(tok->IsEog(2042));

  ASSERT_OK_AND_ASSIGN(std::string json, ReadFileToString(dir + "/golden-h256-l4.json"));
  const auto golden = nlohmann::json::parse(json);
  int text_cases = 0;
  for (const auto& c : golden["cases"]) {
    if (!c.contains("prompt_text")) continue;
    ++text_cases;
    const std::string text = c["prompt_text"].get<std::string>();
    ASSERT_OK_AND_ASSIGN(Ids ids, tok->Encode(text, {.add_bos = true, .parse_special = false}));
    EXPECT_EQ(ids, c["prompt_ids"].get<Ids>()) << c["name"] << " " << Quoted(text);
    ASSERT_OK_AND_ASSIGN(std::string back, tok->Decode(ids, /*skip_special=*/true));
    EXPECT_EQ(back, text);
  }
  EXPECT_GE(text_cases, 3);
}

// ---------------------------------------------------------------------------
// Small synthetic vocabularies.

// All 256 byte tokens (ids 0..255 in byte order) plus `extra` tokens.
Vocab ByteVocab(const std::vector<std::string>& extra, const std::vector<std::string>& merges) {
  Vocab v;
  for (int b = 0; b < 256; ++b) v.tokens.push_back(ByteLevelChar(static_cast<uint8_t>(b)));
  for (const auto& e : extra) v.tokens.push_back(e);
  v.token_types.assign(v.tokens.size(), kTokenNormal);
  v.merges = merges;
  v.pre = "gpt-2";
  return v;
}

TEST(SyntheticVocabTest, MergesApplyByRankNotPosition) {
  // "abc": with "b c" ranked first the result is [a, bc]; otherwise [ab, c].
  ASSERT_OK_AND_ASSIGN(auto t1, Tokenizer::Create(ByteVocab({"ab", "bc"}, {"b c", "a b"})));
  ASSERT_OK_AND_ASSIGN(Ids r1, t1->Encode("abc"));
  EXPECT_EQ(r1, (Ids{'a', 257}));
  ASSERT_OK_AND_ASSIGN(auto t2, Tokenizer::Create(ByteVocab({"ab", "bc"}, {"a b", "b c"})));
  ASSERT_OK_AND_ASSIGN(Ids r2, t2->Encode("abc"));
  EXPECT_EQ(r2, (Ids{256, 'c'}));
  // Equal pairs merge leftmost first: "aaa" -> [aa, a].
  ASSERT_OK_AND_ASSIGN(auto t3, Tokenizer::Create(ByteVocab({"aa"}, {"a a"})));
  ASSERT_OK_AND_ASSIGN(Ids r3, t3->Encode("aaa"));
  EXPECT_EQ(r3, (Ids{256, 'a'}));
}

TEST(SyntheticVocabTest, IgnoreMergesEmitsWholeVocabularyPieces) {
  // "abc" is a token, but no merge path builds it.
  Vocab v = ByteVocab({"abc"}, {});
  v.ignore_merges = false;
  ASSERT_OK_AND_ASSIGN(auto without, Tokenizer::Create(v));
  ASSERT_OK_AND_ASSIGN(Ids r1, without->Encode("abc"));
  EXPECT_EQ(r1, (Ids{'a', 'b', 'c'}));
  v.ignore_merges = true;
  ASSERT_OK_AND_ASSIGN(auto with, Tokenizer::Create(v));
  ASSERT_OK_AND_ASSIGN(Ids r2, with->Encode("abc"));
  EXPECT_EQ(r2, (Ids{256}));
}

TEST(SyntheticVocabTest, UserDefinedTokensNeedParseSpecial) {
  Vocab v = ByteVocab({"<tool>"}, {});
  v.token_types.back() = kTokenUserDefined;
  ASSERT_OK_AND_ASSIGN(auto tok, Tokenizer::Create(v));
  ASSERT_OK_AND_ASSIGN(Ids parsed, tok->Encode("x<tool>", {.parse_special = true}));
  EXPECT_EQ(parsed, (Ids{'x', 256}));
  ASSERT_OK_AND_ASSIGN(Ids plain, tok->Encode("x<tool>"));
  EXPECT_EQ(plain.size(), 7u);
  // USER_DEFINED tokens are not CONTROL: skip_special keeps them.
  ASSERT_OK_AND_ASSIGN(std::string text, tok->Decode({256}, /*skip_special=*/true));
  EXPECT_EQ(text, "<tool>");
}

TEST(SyntheticVocabTest, CreateValidatesIds) {
  Vocab v = ByteVocab({}, {});
  v.bos_id = 256;
  EXPECT_THAT(Tokenizer::Create(v).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bos id 256")));
  v.bos_id = -1;
  v.token_types.pop_back();
  EXPECT_THAT(Tokenizer::Create(v).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("token types")));
  ASSERT_OK_AND_ASSIGN(auto tok, Tokenizer::Create(ByteVocab({}, {})));
  EXPECT_THAT(tok->Encode("x", {.add_bos = true}).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("BOS")));
}

TEST(SyntheticVocabTest, MissingByteTokenIsAnError) {
  Vocab v = ByteVocab({}, {});
  v.tokens['q'] = "<unused>";
  ASSERT_OK_AND_ASSIGN(auto tok, Tokenizer::Create(v));
  EXPECT_THAT(tok->Encode("aqa").status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("0x71")));
}

// ---------------------------------------------------------------------------
// Vocab builders.

TEST(VocabTest, ParsesHfTokenizerJson) {
  const std::string json = R"({
    "added_tokens": [
      {"id": 5, "content": "<|begin_of_text|>", "special": true},
      {"id": 6, "content": "<|eot_id|>", "special": true},
      {"id": 7, "content": "<tool>", "special": false}],
    "normalizer": null,
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
      {"type": "Split", "pattern": {"Regex": )" +
                           nlohmann::json(std::string(kLlama3SplitRegex)).dump() + R"(},
       "behavior": "Isolated", "invert": false},
      {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]},
    "model": {"type": "BPE", "ignore_merges": true,
              "vocab": {"a": 0, "b": 1, "ab": 2, "Ġ": 3, "Ġab": 4},
              "merges": ["a b", ["Ġ", "ab"]]}})";
  ASSERT_OK_AND_ASSIGN(Vocab v, ParseHfTokenizerJson(json));
  EXPECT_THAT(v.tokens, ElementsAre("a", "b", "ab", "Ġ", "Ġab", "<|begin_of_text|>", "<|eot_id|>", "<tool>"));
  EXPECT_THAT(v.token_types, ElementsAre(1, 1, 1, 1, 1, 3, 3, 4));
  EXPECT_THAT(v.merges, ElementsAre("a b", "Ġ ab"));
  EXPECT_EQ(v.pre, "llama-bpe");
  EXPECT_EQ(v.ignore_merges, true);
  EXPECT_EQ(v.bos_id, 5);
  EXPECT_EQ(v.eos_id, -1);
  EXPECT_EQ(v.eot_id, 6);
  EXPECT_TRUE(v.add_bos);

  ASSERT_THAT(ApplyHfTokenizerConfig(
                  R"({"bos_token": {"content": "<|begin_of_text|>"}, "eos_token": "<|eot_id|>",
                      "add_bos_token": false, "chat_template": "{{ x }}"})",
                  &v),
              IsOk());
  EXPECT_EQ(v.eos_id, 6);
  EXPECT_FALSE(v.add_bos);
  EXPECT_EQ(v.chat_template, "{{ x }}");
  EXPECT_THAT(ApplyHfTokenizerConfig(R"({"eos_token": "<nope>"})", &v),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("<nope>")));
}

TEST(VocabTest, HfTokenizerJsonErrors) {
  EXPECT_THAT(ParseHfTokenizerJson("{not json").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("tokenizer.json")));
  EXPECT_THAT(ParseHfTokenizerJson(R"({"model": {"type": "Unigram", "vocab": []}})").status(),
              StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("Unigram")));
  EXPECT_THAT(
      ParseHfTokenizerJson(R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 2}, "merges": []}})").status(),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("token id 1")));
  EXPECT_THAT(ParseHfTokenizerJson(R"({"pre_tokenizer": {"type": "Whitespace"},
                                       "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})")
                  .status(),
              StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("Whitespace")));
  EXPECT_THAT(
      ParseHfTokenizerJson(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [3]}})").status(),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("model.merges[0]")));
}

TEST(VocabTest, FromGgufMetadata) {
  GgufTokenizerMetadata md;
  md.model = "gpt2";
  md.tokens = {"a", "b", "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"};
  md.token_types = {1, 1, 3, 3, 3};
  md.merges = {"a b"};
  md.bos_id = 2;
  md.eos_id = 3;
  ASSERT_OK_AND_ASSIGN(Vocab v, VocabFromGgufMetadata(md));
  EXPECT_EQ(v.eot_id, 4);
  EXPECT_EQ(v.pre, "");
  EXPECT_FALSE(v.add_bos);  // Key absent and not the Llama 3 vocabulary.

  GgufTokenizerMetadata bad = md;
  bad.token_types.pop_back();
  EXPECT_THAT(VocabFromGgufMetadata(bad).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("tokenizer.ggml.token_type has 4")));
  bad = md;
  bad.eos_id = 5;
  EXPECT_THAT(VocabFromGgufMetadata(bad).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("tokenizer.ggml.eos_token_id = 5")));
  bad = md;
  bad.model = "llama";
  EXPECT_THAT(VocabFromGgufMetadata(bad).status(),
              StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("'llama'")));
  bad = md;
  bad.token_types[0] = 9;
  EXPECT_THAT(VocabFromGgufMetadata(bad).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("token_type[0] = 9")));
}

// ---------------------------------------------------------------------------
// UTF-8 helpers.

TEST(Utf8Test, LossyDecodingFollowsWhatwg) {
  auto lossy = [](std::string_view s) {
    std::string out;
    internal::AppendUtf8Lossy(s, true, &out);
    return out;
  };
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(lossy("a\x80"
                  "b"),
            "a" + r + "b");
  EXPECT_EQ(lossy("\xE2\x82"), r);  // One maximal subpart.
  EXPECT_EQ(lossy("\xE2\x82"
                  "A"),
            r + "A");
  EXPECT_EQ(lossy("\xF0\x80\x80"), r + r + r);  // F0 needs 90..BF next.
  EXPECT_EQ(lossy("\xED\xA0\x80"), r + r + r);  // Surrogate.
  EXPECT_EQ(lossy("\xF4\x8F\xBF\xBF"), "\xF4\x8F\xBF\xBF");
  std::string out;
  EXPECT_EQ(internal::AppendUtf8Lossy("ok\xF0\x9F\x98", false, &out), 2u);
  EXPECT_EQ(out, "ok");
}

}  // namespace
}  // namespace wf::tokenizer
