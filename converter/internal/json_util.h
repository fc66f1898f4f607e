// Strict JSON parsing for untrusted converter inputs (safetensors headers,
// config.json, hub listings). Never throws.
#ifndef WF_CONVERTER_INTERNAL_JSON_UTIL_H_
#define WF_CONVERTER_INTERNAL_JSON_UTIL_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace wf::convert::internal {

// Rejects nesting deeper than `max_depth` by a linear scan before any
// recursive parsing happens. INVALID_ARGUMENT names the byte offset.
absl::Status CheckJsonDepth(std::string_view text, int max_depth, std::string_view what);

// Depth check, then parse keeping object key order. Duplicate keys in any
// object are an error (the parser would silently keep one of them).
// Errors are INVALID_ARGUMENT prefixed with `what` (e.g. "config.json").
absl::StatusOr<nlohmann::ordered_json> ParseJson(std::string_view text, std::string_view what,
                                                 int max_depth = 64);

// "string", "integer", "number", "object", ... for error messages.
const char* JsonTypeName(const nlohmann::ordered_json& value);

}  // namespace wf::convert::internal

#endif  // WF_CONVERTER_INTERNAL_JSON_UTIL_H_
