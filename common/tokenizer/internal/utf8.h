// UTF-8 helpers of the tokenizer: strict validation (prompts must be valid
// UTF-8) and lossy decoding that replaces ill-formed input with U+FFFD the way
// the WHATWG Encoding Standard (TextDecoder with fatal = false) does: one
// U+FFFD per maximal ill-formed subpart.
//
// All functions are pure and thread-safe.
#ifndef WF_COMMON_TOKENIZER_INTERNAL_UTF8_H_
#define WF_COMMON_TOKENIZER_INTERNAL_UTF8_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace wf::tokenizer::internal {

inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD

// Returns the byte offset of the first byte of the first ill-formed sequence
// (overlong forms, surrogates, code points above U+10FFFF and truncated
// sequences are ill-formed), or std::string_view::npos if `text` is valid.
size_t FindInvalidUtf8(std::string_view text);

// Appends `bytes` to `out`, replacing ill-formed subparts with U+FFFD.
// If `final` is false, a trailing sequence that is incomplete but could still
// become valid is not decoded; the number of bytes decoded is returned, so the
// caller keeps bytes [returned, size) for the next call. If `final` is true,
// such a tail becomes one U+FFFD and the whole input is consumed.
size_t AppendUtf8Lossy(std::string_view bytes, bool final, std::string* out);

// Appends the UTF-8 encoding of code point `cp` (<= U+10FFFF) to `out`.
void AppendCodepoint(uint32_t cp, std::string* out);

// Decodes the code point starting at text[*pos] of VALID UTF-8 and advances
// *pos past it.
uint32_t NextCodepoint(std::string_view text, size_t* pos);

}  // namespace wf::tokenizer::internal

#endif  // WF_COMMON_TOKENIZER_INTERNAL_UTF8_H_
