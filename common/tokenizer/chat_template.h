// Chat prompt formats: detection from a model's Jinja chat template, rendering,
// and tokenization that keeps message content plain text.
//
// We do not run Jinja. The formats we serve are fixed strings:
//   kBitNet  <|begin_of_text|> then per message "Role: " + trim(content) +
//            <|eot_id|> (role capitalised), then "Assistant: " as the
//            generation prompt (the microsoft/bitnet-b1.58-2B-4T template; the
//            published GGUF's "BITNETAssistant" template maps here too, as in
//            llama.cpp).
//   kLlama3  <|begin_of_text|> then per message <|start_header_id|>role
//            <|end_header_id|>"\n\n" + trim(content) + <|eot_id|>; generation
//            prompt <|start_header_id|>assistant<|end_header_id|>"\n\n".
//   kChatMl  per message <|im_start|>role"\n" + content + <|im_end|>"\n";
//            generation prompt <|im_start|>assistant"\n". No BOS.
//
// Rendering produces segments: special tokens of the format, and plain text
// (format text such as "User: " together with message content). EncodeChat
// turns each special segment into its token and encodes each run of adjacent
// plain segments in one piece WITHOUT special-token parsing, so that
//   * "<|eot_id|>" typed by a user stays text (no prompt injection), and
//   * "User: " + "Hello" tokenizes like the rendered string ("User: Hello" ->
//     [1502, 25, 22691]: " Hello" is one token), as Hugging Face
//     apply_chat_template followed by tokenization does.
//
// Example:
//   BN_ASSIGN_OR_RETURN(ChatFormat f, DetectChatFormat(tok->vocab().chat_template));
//   BN_ASSIGN_OR_RETURN(std::vector<int32_t> ids,
//                       EncodeChat(*tok, f, {{"user", "Hello"}}, /*add_generation_prompt=*/true));
//   // ids == {128000, 1502, 25, 22691, 128009, 72803, 25, 220}
//
// All functions are pure and thread-safe.
#ifndef WF_COMMON_TOKENIZER_CHAT_TEMPLATE_H_
#define WF_COMMON_TOKENIZER_CHAT_TEMPLATE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/tokenizer/tokenizer.h"

namespace wf::tokenizer {

enum class ChatFormat { kBitNet, kLlama3, kChatMl };

struct ChatMessage {
  std::string role;  // "system", "user", "assistant", ...
  std::string content;
};

struct ChatSegment {
  std::string text;
  bool special = false;  // `text` is the text of one special token.
  bool operator==(const ChatSegment& o) const { return text == o.text && special == o.special; }
};

// "bitnet", "llama3" or "chatml".
std::string_view ChatFormatName(ChatFormat format);
// Inverse of ChatFormatName (case-insensitive). InvalidArgument listing the
// known names otherwise.
absl::StatusOr<ChatFormat> ParseChatFormatName(std::string_view name);

// Recognises a chat template: the BitNet 2B-4T Hugging Face template and the
// published GGUF's template (contains "BITNET") -> kBitNet; one using
// <|start_header_id|> -> kLlama3; one using <|im_start|> -> kChatMl.
// NotFound for an empty or unrecognised template (the message says how to
// choose a format by name instead).
absl::StatusOr<ChatFormat> DetectChatFormat(std::string_view template_text);

// The prompt as segments (see file comment). Adjacent plain segments are
// merged, so segments alternate plain/special. InvalidArgument if a message
// has an empty role.
absl::StatusOr<std::vector<ChatSegment>> RenderChatSegments(ChatFormat format,
                                                            absl::Span<const ChatMessage> messages,
                                                            bool add_generation_prompt);

// The rendered prompt as one string (for logs and display).
absl::StatusOr<std::string> RenderChat(ChatFormat format, absl::Span<const ChatMessage> messages,
                                       bool add_generation_prompt);

// Token ids of the prompt (BOS included by the formats that have one).
// FailedPrecondition if a special token of the format is not in the
// tokenizer's vocabulary; Encode's errors (e.g. invalid UTF-8 in content,
// InvalidArgument) otherwise.
absl::StatusOr<std::vector<int32_t>> EncodeChat(const Tokenizer& tokenizer, ChatFormat format,
                                                absl::Span<const ChatMessage> messages,
                                                bool add_generation_prompt);

}  // namespace wf::tokenizer

#endif  // WF_COMMON_TOKENIZER_CHAT_TEMPLATE_H_
