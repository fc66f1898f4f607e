// Private helpers of the request parsers: safe body parsing (size, NUL and
// nesting checks before nlohmann builds a DOM) and typed field access that
// turns every type or range problem into a 400 naming the field, e.g.
// "max_tokens must be >= 1, got -5" (param "max_tokens"). A JSON null counts
// as an absent field throughout. None of these functions throws.
#ifndef WF_ROUTER_OPENAI_INTERNAL_REQUEST_FIELDS_H_
#define WF_ROUTER_OPENAI_INTERNAL_REQUEST_FIELDS_H_

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "router/openai/openai_request.h"

namespace wf::router::openai::internal {

using Json = nlohmann::json;

constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();
constexpr int64_t kNoMax = std::numeric_limits<int64_t>::max();

// Rejects oversized bodies (413), NUL bytes and nesting deeper than
// limits.max_json_depth by scanning the raw bytes.
absl::Status PreScan(std::string_view body, const RequestLimits& limits);

// PreScan, then parse; the result is a JSON object. Malformed JSON and
// invalid UTF-8 give 400s with the byte offset.
absl::StatusOr<Json> ParseBody(std::string_view body,
                               const RequestLimits& limits);

// The value of `key`, or nullptr when it is absent or null.
const Json* Find(const Json& obj, const char* key);

// A JSON value for an error message, shortened to 64 characters.
std::string Show(const Json& v);

// "<param> must be <expected>, got <type>".
absl::Status WrongType(std::string_view param, std::string_view expected,
                       const Json& v);

// `below` says which bound was violated; ranges with max >= INT32_MAX name
// only that bound.
absl::Status RangeError(std::string_view param, int64_t min, int64_t max,
                        const Json& v, bool below);

// An integer in [min, max]; an integral float (16.0) is accepted.
absl::StatusOr<int64_t> AsInt(const Json& v, std::string_view param,
                              int64_t min, int64_t max);

// Optional fields; `param` defaults to `key`.
absl::StatusOr<std::optional<bool>> GetBool(const Json& obj, const char* key,
                                            std::string_view param = "");
absl::StatusOr<std::optional<int64_t>> GetInt(const Json& obj, const char* key,
                                              int64_t min, int64_t max,
                                              std::string_view param = "");

enum class Bound { kInclusive, kExclusive };

// A number in [min, max], or (min, max] with Bound::kExclusive.
absl::StatusOr<std::optional<double>> GetNumber(
    const Json& obj, const char* key, double min, double max,
    Bound lower = Bound::kInclusive, std::string_view param = "");

// Strings may not contain NUL characters (\u0000).
absl::Status CheckText(std::string_view param, const std::string& s);
absl::StatusOr<std::optional<std::string>> GetString(
    const Json& obj, const char* key, std::string_view param = "");

// An array of token ids in [0, INT32_MAX], at most max_count of them.
absl::StatusOr<std::vector<int32_t>> TokenIdArray(const Json& arr,
                                                  std::string_view param,
                                                  size_t max_count);

bool AllIntegers(const Json& arr);

// "<param> is not supported: <what>" (400, param set).
absl::Status Unsupported(std::string_view param, std::string_view what);

}  // namespace wf::router::openai::internal

#endif  // WF_ROUTER_OPENAI_INTERNAL_REQUEST_FIELDS_H_
