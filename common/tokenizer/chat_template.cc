#include "common/tokenizer/chat_template.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/tokenizer/internal/regex.h"
#include "common/string_view_compat.h"
#include "common/tokenizer/internal/utf8.h"

namespace wf::tokenizer {
namespace {

using ::wf::Av;

bool Contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

constexpr std::string_view kBeginOfText = "<|begin_of_text|>";
constexpr std::string_view kEotId = "<|eot_id|>";
constexpr std::string_view kStartHeader = "<|start_header_id|>";
constexpr std::string_view kEndHeader = "<|end_header_id|>";
constexpr std::string_view kImStart = "<|im_start|>";
constexpr std::string_view kImEnd = "<|im_end|>";

// Jinja's `trim` is Python's str.strip(): Unicode White_Space plus the
// information separators U+001C..U+001F, which Python also treats as space.
// Null only if PCRE2 lacks White_Space support; Trim then falls back to
// ASCII whitespace.
const internal::Regex* TrimChar() {
  static const internal::Regex* re = [] {
    auto compiled = internal::Regex::Compile("[\\p{White_Space}\\x{1C}-\\x{1F}]");
    return compiled.ok() ? compiled->release() : nullptr;
  }();
  return re;
}

bool IsTrimmed(const internal::Regex* ws, std::string_view one_char) {
  if (ws == nullptr)
    return one_char.size() == 1 && absl::ascii_isspace(static_cast<unsigned char>(one_char[0]));
  return ws->MatchesWhole(one_char);
}

std::string_view Trim(std::string_view s) {
  const internal::Regex* ws = TrimChar();
  auto cp_len = [](uint8_t b) -> size_t { return b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4; };
  while (!s.empty()) {
    const size_t len = std::min(cp_len(static_cast<uint8_t>(s[0])), s.size());
    if (!IsTrimmed(ws, s.substr(0, len))) break;
    s.remove_prefix(len);
  }
  while (!s.empty()) {
    size_t start = s.size() - 1;
    while (start > 0 && (static_cast<uint8_t>(s[start]) & 0xC0) == 0x80) --start;
    if (!IsTrimmed(ws, s.substr(start))) break;
    s.remove_suffix(s.size() - start);
  }
  return s;
}

// Jinja's `capitalize` (first character upper case, the rest lower case),
// for the ASCII letters roles are made of.
std::string Capitalize(std::string_view role) {
  std::string out = absl::AsciiStrToLower(Av(role));
  if (!out.empty()) out[0] = absl::ascii_toupper(static_cast<unsigned char>(out[0]));
  return out;
}

class SegmentBuilder {
 public:
  void Plain(std::string_view text) {
    if (text.empty()) return;
    if (segments_.empty() || segments_.back().special) segments_.push_back({std::string(), false});
    segments_.back().text.append(text);
  }
  void Special(std::string_view text) { segments_.push_back({std::string(text), true}); }
  std::vector<ChatSegment> Take() { return std::move(segments_); }

 private:
  std::vector<ChatSegment> segments_;
};

}  // namespace

std::string_view ChatFormatName(ChatFormat format) {
  switch (format) {
    case ChatFormat::kBitNet:
      return "bitnet";
    case ChatFormat::kLlama3:
      return "llama3";
    case ChatFormat::kChatMl:
      return "chatml";
  }
  return "unknown";
}

absl::StatusOr<ChatFormat> ParseChatFormatName(std::string_view name) {
  for (ChatFormat f : {ChatFormat::kBitNet, ChatFormat::kLlama3, ChatFormat::kChatMl}) {
    if (absl::EqualsIgnoreCase(Av(name), Av(ChatFormatName(f)))) return f;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown chat format '", Av(name), "' (known: bitnet, llama3, chatml)"));
}

absl::StatusOr<ChatFormat> DetectChatFormat(std::string_view template_text) {
  if (template_text.empty()) {
    return absl::NotFoundError(
        "the model has no chat template; choose a chat format by name (bitnet, llama3, chatml)");
  }
  // The GGUF written by BitNet's converter ("BITNETAssistant: "); llama.cpp
  // keys its built-in bitnet format on the same substring.
  if (Contains(template_text, "BITNET")) return ChatFormat::kBitNet;
  if (Contains(template_text, kStartHeader)) return ChatFormat::kLlama3;
  // The Hugging Face template of bitnet-b1.58-2B-4T: capitalised role,
  // "Assistant: " generation prompt, <|eot_id|> after each message.
  if (Contains(template_text, "capitalize") && Contains(template_text, "'Assistant: '") &&
      Contains(template_text, kEotId)) {
    return ChatFormat::kBitNet;
  }
  if (Contains(template_text, kImStart)) return ChatFormat::kChatMl;
  std::string head(template_text.substr(0, 80));
  return absl::NotFoundError(absl::StrCat("chat template not recognised (starts with \"", head,
                                          "\"); choose a chat format by name (bitnet, llama3, chatml)"));
}

absl::StatusOr<std::vector<ChatSegment>> RenderChatSegments(ChatFormat format,
                                                            absl::Span<const ChatMessage> messages,
                                                            bool add_generation_prompt) {
  SegmentBuilder b;
  for (size_t i = 0; i < messages.size(); ++i) {
    if (messages[i].role.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("message ", i, " has an empty role"));
    }
    for (const auto& [field, text] : {std::pair<const char*, std::string_view>{"role", messages[i].role},
                                      {"content", messages[i].content}}) {
      if (const size_t bad = internal::FindInvalidUtf8(text); bad != std::string_view::npos) {
        return absl::InvalidArgumentError(
            absl::StrCat("message ", i, " ", field, ": invalid UTF-8 at byte offset ", bad));
      }
    }
  }
  switch (format) {
    case ChatFormat::kBitNet:
      b.Special(kBeginOfText);
      for (const ChatMessage& m : messages) {
        b.Plain(Capitalize(m.role));
        b.Plain(": ");
        b.Plain(Trim(m.content));
        b.Special(kEotId);
      }
      if (add_generation_prompt) b.Plain("Assistant: ");
      break;
    case ChatFormat::kLlama3:
      b.Special(kBeginOfText);
      for (const ChatMessage& m : messages) {
        b.Special(kStartHeader);
        b.Plain(m.role);
        b.Special(kEndHeader);
        b.Plain("\n\n");
        b.Plain(Trim(m.content));
        b.Special(kEotId);
      }
      if (add_generation_prompt) {
        b.Special(kStartHeader);
        b.Plain("assistant");
        b.Special(kEndHeader);
        b.Plain("\n\n");
      }
      break;
    case ChatFormat::kChatMl:
      for (const ChatMessage& m : messages) {
        b.Special(kImStart);
        b.Plain(m.role);
        b.Plain("\n");
        b.Plain(m.content);
        b.Special(kImEnd);
        b.Plain("\n");
      }
      if (add_generation_prompt) {
        b.Special(kImStart);
        b.Plain("assistant\n");
      }
      break;
  }
  return b.Take();
}

absl::StatusOr<std::string> RenderChat(ChatFormat format, absl::Span<const ChatMessage> messages,
                                       bool add_generation_prompt) {
  BN_ASSIGN_OR_RETURN(std::vector<ChatSegment> segments,
                      RenderChatSegments(format, messages, add_generation_prompt));
  std::string out;
  for (const ChatSegment& s : segments) out += s.text;
  return out;
}

absl::StatusOr<std::vector<int32_t>> EncodeChat(const Tokenizer& tokenizer, ChatFormat format,
                                                absl::Span<const ChatMessage> messages,
                                                bool add_generation_prompt) {
  BN_ASSIGN_OR_RETURN(std::vector<ChatSegment> segments,
                      RenderChatSegments(format, messages, add_generation_prompt));
  std::vector<int32_t> ids;
  for (const ChatSegment& s : segments) {
    if (s.special) {
      const std::optional<int32_t> id = tokenizer.TokenId(s.text);
      if (!id.has_value()) {
        return absl::FailedPreconditionError(absl::StrCat("chat format ", Av(ChatFormatName(format)),
                                                          " needs the token ", s.text,
                                                          ", which is not in the vocabulary"));
      }
      ids.push_back(*id);
      continue;
    }
    // Segments alternate, so this is a whole run of plain text between two
    // special tokens: one Encode call, never parsing specials.
    BN_RETURN_IF_ERROR(
        tokenizer.EncodeAppend(s.text, EncodeOptions{.add_bos = false, .parse_special = false}, &ids));
  }
  return ids;
}

}  // namespace wf::tokenizer
