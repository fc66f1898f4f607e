#include "router/openai/internal/request_fields.h"

#include <cmath>
#include <exception>
#include <limits>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "common/string_view_compat.h"
#include "router/openai/internal/json_util.h"
#include "router/openai/openai_api.h"

namespace wf::router::openai::internal {

// ------------------------------------------------------------ body parsing

// Rejects NUL bytes and nesting bombs before nlohmann builds a DOM for them.
absl::Status PreScan(std::string_view body, const RequestLimits& limits) {
  if (body.size() > limits.max_body_bytes) {
    return MakeApiStatus(
        413,
        absl::StrFormat("request body is %d bytes; the limit is %d bytes",
                        body.size(), limits.max_body_bytes),
        "", "request_too_large");
  }
  bool in_string = false;
  bool escape = false;
  int depth = 0;
  for (size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (c == '\0') {
      return InvalidRequest(
          absl::StrFormat("request body contains a NUL byte at offset %d", i),
          "");
    }
    if (in_string) {
      if (escape) {
        escape = false;
      } else if (c == '\\') {
        escape = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limits.max_json_depth) {
        return InvalidRequest(
            absl::StrFormat("request body nests arrays/objects deeper than the "
                            "limit of %d levels (at byte offset %d)",
                            limits.max_json_depth, i),
            "");
      }
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Json> ParseBody(std::string_view body,
                               const RequestLimits& limits) {
  if (absl::StripAsciiWhitespace(Av(body)).empty()) {
    return InvalidRequest("request body is empty; expected a JSON object", "");
  }
  BN_RETURN_IF_ERROR(PreScan(body, limits));
  Json j;
  try {
    j = Json::parse(body.begin(), body.end());
  } catch (const Json::parse_error& e) {
    std::string what = e.what();
    if (what.find("UTF-8") != std::string::npos) {
      return InvalidRequest(
          absl::StrFormat("request body contains invalid UTF-8 in a string "
                          "(near byte offset %d)",
                          e.byte),
          "");
    }
    // Drop nlohmann's "[json.exception.parse_error.101] " prefix.
    if (size_t p = what.find("] "); p != std::string::npos && what[0] == '[') {
      what = what.substr(p + 2);
    }
    return InvalidRequest(
        absl::StrCat("request body is not valid JSON: ", what), "");
  } catch (const std::exception& e) {
    // E.g. out_of_range.406 for a number beyond double ("1e400").
    std::string what = e.what();
    if (size_t p = what.find("] "); p != std::string::npos && what[0] == '[') {
      what = what.substr(p + 2);
    }
    return InvalidRequest(
        absl::StrCat("request body is not valid JSON: ", what), "");
  }
  if (!j.is_object()) {
    return InvalidRequest(absl::StrCat("request body must be a JSON object, got ",
                                       j.type_name()),
                          "");
  }
  return j;
}

// ------------------------------------------------------------ field access

// The value of `key`, or nullptr when it is absent or null (null means
// "unset" for every field we read, as in OpenAI's API).
const Json* Find(const Json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

// A JSON value for an error message, shortened.
std::string Show(const Json& v) {
  std::string s = internal::Dump(v);
  if (s.size() > 64) s = s.substr(0, 61) + "...";
  return s;
}

absl::Status WrongType(std::string_view param, std::string_view expected,
                       const Json& v) {
  return InvalidRequest(absl::StrFormat("%s must be %s, got %s", param,
                                        expected, v.type_name()),
                        param);
}

// `below` says which bound was violated; wide ranges name only that bound
// ("max_tokens must be >= 1, got -5").
absl::Status RangeError(std::string_view param, int64_t min, int64_t max,
                        const Json& v, bool below) {
  if (max >= kInt32Max) {
    return InvalidRequest(
        below ? absl::StrFormat("%s must be >= %d, got %s", param, min, Show(v))
              : absl::StrFormat("%s must be <= %d, got %s", param, max, Show(v)),
        param);
  }
  return InvalidRequest(absl::StrFormat("%s must be between %d and %d, got %s",
                                        param, min, max, Show(v)),
                        param);
}

absl::StatusOr<std::optional<bool>> GetBool(const Json& obj, const char* key,
                                            std::string_view param) {
  if (param.empty()) param = key;
  const Json* v = Find(obj, key);
  if (v == nullptr) return std::optional<bool>();
  if (!v->is_boolean()) return WrongType(param, "a boolean", *v);
  return std::optional<bool>(v->get<bool>());
}

// Integers; a float with an integral value (e.g. 16.0) is accepted.
absl::StatusOr<int64_t> AsInt(const Json& v, std::string_view param,
                              int64_t min, int64_t max) {
  int64_t value;
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(max)) {
      return RangeError(param, min, max, v, /*below=*/false);
    }
    value = static_cast<int64_t>(u);
  } else if (v.is_number_integer()) {
    value = v.get<int64_t>();
  } else if (v.is_number_float()) {
    const double d = v.get<double>();
    if (std::floor(d) != d) {
      return InvalidRequest(
          absl::StrFormat("%s must be an integer, got %s", param, Show(v)),
          param);
    }
    // 2^63 is a double equal to (double)INT64_MAX but outside int64_t, so
    // converting it would be undefined: it is out of range like anything
    // larger.
    if (d < static_cast<double>(min) || d > static_cast<double>(max) ||
        d >= 0x1p63) {
      return RangeError(param, min, max, v, d < static_cast<double>(min));
    }
    value = static_cast<int64_t>(d);
  } else {
    return WrongType(param, "an integer", v);
  }
  if (value < min || value > max) {
    return RangeError(param, min, max, v, value < min);
  }
  return value;
}

absl::StatusOr<std::optional<int64_t>> GetInt(const Json& obj, const char* key,
                                              int64_t min, int64_t max,
                                              std::string_view param) {
  if (param.empty()) param = key;
  const Json* v = Find(obj, key);
  if (v == nullptr) return std::optional<int64_t>();
  BN_ASSIGN_OR_RETURN(int64_t value, AsInt(*v, param, min, max));
  return std::optional<int64_t>(value);
}

// Numbers in [min, max] (or (min, max] with a kExclusive lower bound).
absl::StatusOr<std::optional<double>> GetNumber(
    const Json& obj, const char* key, double min, double max,
    Bound lower, std::string_view param) {
  if (param.empty()) param = key;
  const Json* v = Find(obj, key);
  if (v == nullptr) return std::optional<double>();
  if (!v->is_number()) return WrongType(param, "a number", *v);
  const double d = v->get<double>();
  const bool low_ok = lower == Bound::kInclusive ? d >= min : d > min;
  if (!low_ok || d > max) {
    if (max == std::numeric_limits<double>::max()) {
      return InvalidRequest(
          absl::StrFormat("%s must be %s %g, got %s", param,
                          lower == Bound::kInclusive ? ">=" : ">", min,
                          Show(*v)),
          param);
    }
    return InvalidRequest(
        absl::StrFormat("%s must be in %s%g, %g], got %s", param,
                        lower == Bound::kInclusive ? "[" : "(", min, max,
                        Show(*v)),
        param);
  }
  return std::optional<double>(d);
}

absl::Status CheckText(std::string_view param, const std::string& s) {
  if (s.find('\0') != std::string::npos) {
    return InvalidRequest(
        absl::StrFormat("%s must not contain NUL characters (\\u0000)", param),
        param);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<std::string>> GetString(
    const Json& obj, const char* key, std::string_view param) {
  if (param.empty()) param = key;
  const Json* v = Find(obj, key);
  if (v == nullptr) return std::optional<std::string>();
  if (!v->is_string()) return WrongType(param, "a string", *v);
  std::string s = v->get<std::string>();
  BN_RETURN_IF_ERROR(CheckText(param, s));
  return std::optional<std::string>(std::move(s));
}

absl::StatusOr<std::vector<int32_t>> TokenIdArray(const Json& arr,
                                                  std::string_view param,
                                                  size_t max_count) {
  if (arr.size() > max_count) {
    return InvalidRequest(
        absl::StrFormat("%s has %d token ids; the limit is %d", param,
                        arr.size(), max_count),
        param);
  }
  std::vector<int32_t> ids;
  ids.reserve(arr.size());
  for (size_t k = 0; k < arr.size(); ++k) {
    const Json& e = arr[k];
    const std::string p = absl::StrFormat("%s[%d]", param, k);
    if (!e.is_number_integer()) return WrongType(p, "an integer token id", e);
    BN_ASSIGN_OR_RETURN(int64_t id, AsInt(e, p, 0, kInt32Max));
    ids.push_back(static_cast<int32_t>(id));
  }
  return ids;
}

bool AllIntegers(const Json& arr) {
  for (const Json& e : arr) {
    if (!e.is_number_integer()) return false;
  }
  return true;
}

// Rejects a field we know but do not implement when it is set to anything
// but its "off" value.
absl::Status Unsupported(std::string_view param, std::string_view what) {
  return InvalidRequest(absl::StrCat(Av(param), " is not supported: ", Av(what)),
                        param);
}

}  // namespace wf::router::openai::internal
