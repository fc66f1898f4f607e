#include "converter/synth_tokenizer.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace wf::convert {

const char kBitNetChatTemplate[] =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "message['role'] | capitalize + ': '+ message['content'] | trim + '<|eot_id|>' %}{{ content "
    "}}{% endfor %}{% if add_generation_prompt %}{{ 'Assistant: ' }}{% endif %}";

namespace {

// Public-domain style prose used only to learn merges; any English text works.
constexpr std::string_view kTrainingText =
    "The quick brown fox jumps over the lazy dog. A model reads text as tokens, and a "
    "tokenizer turns words into pieces that the model has seen before. The server answers "
    "many requests at once; each request shares its prefix with others, so the cache of keys "
    "and values saves work. In the beginning there was the word, and the word was split into "
    "bytes, and the bytes were merged into pairs, and the pairs into words again. What is the "
    "capital of France? Paris is the capital of France. What is two plus two? Two plus two is "
    "four. Hello, world! Hello there, how are you today? I am fine, thank you, and you? "
    "The weather is nice and the sun is shining over the hills and the river. Once upon a "
    "time, in a land far away, there lived a king who loved numbers: one, two, three, four, "
    "five, six, seven, eight, nine, ten. The king counted the stars every night and wrote "
    "them in a book. def main(): return 0  # a line of code\nint main() { return 0; }\n"
    "for i in range(10): print(i)\nThe end of the story is the start of another one. "
    "Ternary weights are minus one, zero or plus one; activations are eight-bit integers. "
    "Memory bandwidth limits decoding, while prefill is bound by compute. Routers send each "
    "request to the worker that holds its prefix, balanced against the load of every worker.";

// GPT-2's byte-level alphabet: printable bytes map to themselves, the others to
// code points from U+0100 upward, so every byte is one visible character.
std::vector<std::string> ByteSymbols() {
  std::vector<int> printable;
  for (int b = '!'; b <= '~'; ++b) printable.push_back(b);
  for (int b = 0xA1; b <= 0xAC; ++b) printable.push_back(b);
  for (int b = 0xAE; b <= 0xFF; ++b) printable.push_back(b);
  std::vector<int> code(256, -1);
  for (int b : printable) code[b] = b;
  int next = 256;
  for (int b = 0; b < 256; ++b) {
    if (code[b] < 0) code[b] = next++;
  }
  std::vector<std::string> out(256);
  for (int b = 0; b < 256; ++b) {
    const int cp = code[b];
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

// Splits into words with their leading space (GPT-2 style, simplified: the
// learned merges only need to be plausible, the tokenizer applies its own split).
std::vector<std::vector<std::string>> TrainingWords(const std::vector<std::string>& byte_sym) {
  std::vector<std::vector<std::string>> words;
  std::vector<std::string> cur;
  auto is_alnum = [](unsigned char c) { return std::isalnum(c) != 0; };
  bool cur_alnum = false;
  for (size_t i = 0; i < kTrainingText.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(kTrainingText[i]);
    const bool alnum = is_alnum(c);
    const bool starts_new = cur.empty() || c == ' ' || alnum != cur_alnum;
    if (starts_new && !cur.empty() && !(cur.size() == 1 && cur[0] == byte_sym[' '] && alnum)) {
      words.push_back(cur);
      cur.clear();
    }
    cur.push_back(byte_sym[c]);
    cur_alnum = alnum;
  }
  if (!cur.empty()) words.push_back(cur);
  return words;
}

}  // namespace

absl::StatusOr<SynthTokenizer> BuildSynthTokenizer(int32_t vocab_size) {
  static const std::vector<std::string> kFixedSpecials = {
      "<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
      "<|reserved_special_token_1|>", "<|start_header_id|>", "<|end_header_id|>",
      "<|reserved_special_token_2|>", "<|eot_id|>"};
  const int32_t kMinVocab = 256 + static_cast<int32_t>(kFixedSpecials.size());
  if (vocab_size < kMinVocab) {
    return absl::InvalidArgumentError(
        absl::StrCat("vocab size ", vocab_size, " is too small for a byte-level BPE (minimum ",
                     kMinVocab, ")"));
  }
  const std::vector<std::string> byte_sym = ByteSymbols();
  std::vector<std::string> tokens = byte_sym;
  absl::flat_hash_map<std::string, int> known;
  for (size_t i = 0; i < tokens.size(); ++i) known[tokens[i]] = static_cast<int>(i);

  // Plain BPE training: merge the most frequent adjacent pair (ties broken by
  // the pair's text, for determinism) until pairs occur only once or the
  // ordinary part of the vocabulary is full.
  const int32_t max_ordinary = vocab_size - static_cast<int32_t>(kFixedSpecials.size());
  std::vector<std::vector<std::string>> words = TrainingWords(byte_sym);
  std::vector<std::string> merges;
  while (static_cast<int32_t>(tokens.size()) < max_ordinary) {
    std::map<std::pair<std::string, std::string>, int> counts;
    for (const auto& w : words) {
      for (size_t i = 0; i + 1 < w.size(); ++i) ++counts[{w[i], w[i + 1]}];
    }
    const std::pair<std::string, std::string>* best = nullptr;
    int best_count = 1;
    for (const auto& [pair, count] : counts) {
      if (count > best_count && !known.contains(pair.first + pair.second)) {
        best = &pair;
        best_count = count;
      }
    }
    if (best == nullptr) break;
    const std::string a = best->first, b = best->second, ab = a + b;
    merges.push_back(a + " " + b);
    known[ab] = static_cast<int>(tokens.size());
    tokens.push_back(ab);
    for (auto& w : words) {
      std::vector<std::string> merged;
      for (size_t i = 0; i < w.size(); ++i) {
        if (i + 1 < w.size() && w[i] == a && w[i + 1] == b) {
          merged.push_back(ab);
          ++i;
        } else {
          merged.push_back(w[i]);
        }
      }
      w = std::move(merged);
    }
  }

  // The short text cannot teach enough merges for a large vocabulary; extend
  // learned tokens by one lowercase letter (valid merges of existing tokens)
  // so the vocabulary is mostly ordinary text, as a real one is.
  for (size_t base = 256; static_cast<int32_t>(tokens.size()) < max_ordinary && base < tokens.size(); ++base) {
    for (char c = 'a'; c <= 'z' && static_cast<int32_t>(tokens.size()) < max_ordinary; ++c) {
      const std::string a = tokens[base], b = byte_sym[static_cast<unsigned char>(c)], ab = a + b;
      if (known.contains(ab)) continue;
      merges.push_back(a + " " + b);
      known[ab] = static_cast<int>(tokens.size());
      tokens.push_back(ab);
    }
  }
  // Control tokens fill whatever is left, like Llama 3's reserved special tokens.
  std::vector<std::string> specials = kFixedSpecials;
  for (int k = 3; static_cast<int32_t>(tokens.size() + specials.size()) < vocab_size; ++k) {
    specials.push_back(absl::StrCat("<|reserved_special_token_", k, "|>"));
  }
  const int32_t first_special = static_cast<int32_t>(tokens.size());

  nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
  for (size_t i = 0; i < tokens.size(); ++i) vocab[tokens[i]] = i;
  nlohmann::ordered_json added = nlohmann::ordered_json::array();
  for (size_t i = 0; i < specials.size(); ++i) {
    added.push_back({{"id", first_special + static_cast<int32_t>(i)},
                     {"content", specials[i]},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  }
  nlohmann::ordered_json tok = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true},
        {"use_regex", true}}},
      {"post_processor", nullptr},
      {"decoder",
       {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true},
        {"use_regex", true}}},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr},
        {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr},
        {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
        {"vocab", vocab}, {"merges", merges}}},
  };
  SynthTokenizer out;
  out.bos_id = first_special + 0;
  out.eos_id = first_special + 1;
  out.eot_id = first_special + 7;
  out.tokenizer_json = tok.dump(1);
  nlohmann::ordered_json cfg = {
      {"bos_token", "<|begin_of_text|>"},
      {"eos_token", "<|end_of_text|>"},
      {"add_bos_token", true},
      {"clean_up_tokenization_spaces", false},
      {"model_max_length", 4096},
      {"tokenizer_class", "PreTrainedTokenizerFast"},
      {"chat_template", kBitNetChatTemplate},
  };
  out.tokenizer_config_json = cfg.dump(2);
  return out;
}

}  // namespace wf::convert
