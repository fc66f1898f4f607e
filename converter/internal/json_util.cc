#include "converter/internal/json_util.h"

#include <exception>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/string_view_compat.h"

namespace wf::convert::internal {

absl::Status CheckJsonDepth(std::string_view text, int max_depth, std::string_view what) {
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > max_depth) {
        return absl::InvalidArgumentError(absl::StrCat(Av(what), ": JSON nesting deeper than ",
                                                       max_depth, " levels at byte ", i));
      }
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<nlohmann::ordered_json> ParseJson(std::string_view text, std::string_view what,
                                                 int max_depth) {
  absl::Status depth = CheckJsonDepth(text, max_depth, what);
  if (!depth.ok()) return depth;
  using Json = nlohmann::ordered_json;
  // One set of seen keys per open object.
  std::vector<absl::flat_hash_set<std::string>> open_objects;
  std::string duplicate;
  auto callback = [&](int /*depth*/, Json::parse_event_t event, Json& parsed) {
    switch (event) {
      case Json::parse_event_t::object_start:
        open_objects.emplace_back();
        break;
      case Json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      case Json::parse_event_t::key:
        if (!open_objects.empty() && duplicate.empty() &&
            !open_objects.back().insert(parsed.get<std::string>()).second) {
          duplicate = parsed.get<std::string>();
        }
        break;
      default:
        break;
    }
    return true;
  };
  try {
    Json value = Json::parse(text.begin(), text.end(), callback);
    if (!duplicate.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(Av(what), ": duplicate JSON key \"", duplicate, "\""));
    }
    return value;
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(Av(what), ": invalid JSON: ", e.what()));
  }
}

const char* JsonTypeName(const nlohmann::ordered_json& value) {
  if (value.is_null()) return "null";
  if (value.is_boolean()) return "boolean";
  if (value.is_number_integer()) return "integer";
  if (value.is_number_float()) return "number";
  if (value.is_string()) return "string";
  if (value.is_array()) return "array";
  if (value.is_object()) return "object";
  return "binary";
}

}  // namespace wf::convert::internal
