// Private helpers of router/openai/: JSON serialization that never throws and
// UTF-8 utilities. Only the .cc files of this directory include it (it pulls
// in nlohmann::json, a private dependency of bitnet_router_openai).
#ifndef WF_ROUTER_OPENAI_INTERNAL_JSON_UTIL_H_
#define WF_ROUTER_OPENAI_INTERNAL_JSON_UTIL_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "nlohmann/json.hpp"

namespace wf::router::openai::internal {

using OrderedJson = nlohmann::ordered_json;

// Compact JSON; invalid UTF-8 in strings is replaced by U+FFFD instead of
// throwing. Returns "null" if serialization fails anyway.
std::string Dump(const OrderedJson& value);
std::string Dump(const nlohmann::json& value);

// Length of the longest prefix of `s` made of whole, valid UTF-8 characters
// (no overlongs, no surrogates, nothing above U+10FFFF).
size_t ValidUtf8PrefixLength(std::string_view s);
inline bool IsValidUtf8(std::string_view s) {
  return ValidUtf8PrefixLength(s) == s.size();
}

// Number of code points in `s`, counting every byte that is not a UTF-8
// continuation byte (so partial characters count once).
size_t CountCodePoints(std::string_view s);

// A token's display string: its bytes if they are valid UTF-8, else
// "bytes:\xNN..." (OpenAI's spelling for tokens holding part of a character).
std::string TokenDisplayString(std::string_view token_bytes);

// The bytes as a JSON array of integers 0..255.
OrderedJson BytesArray(std::string_view bytes);

// Log-probabilities clamped to finite values (-inf becomes -9999, which is
// what OpenAI reports); JSON has no infinities.
double FiniteLogprob(double logprob);

}  // namespace wf::router::openai::internal

#endif  // WF_ROUTER_OPENAI_INTERNAL_JSON_UTIL_H_
