#include "router/openai/internal/json_util.h"

#include <cmath>
#include <cstdint>
#include <exception>

#include "absl/strings/str_format.h"

namespace wf::router::openai::internal {
namespace {

template <typename Json>
std::string DumpImpl(const Json& value) {
  try {
    return value.dump(-1, ' ', false, Json::error_handler_t::replace);
  } catch (const std::exception&) {
    return "null";
  }
}

}  // namespace

std::string Dump(const OrderedJson& value) { return DumpImpl(value); }
std::string Dump(const nlohmann::json& value) { return DumpImpl(value); }

size_t ValidUtf8PrefixLength(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    const auto b0 = static_cast<uint8_t>(s[i]);
    if (b0 < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if ((b0 & 0xE0) == 0xC0) {
      len = 2;
      cp = b0 & 0x1F;
    } else if ((b0 & 0xF0) == 0xE0) {
      len = 3;
      cp = b0 & 0x0F;
    } else if ((b0 & 0xF8) == 0xF0) {
      len = 4;
      cp = b0 & 0x07;
    } else {
      return i;
    }
    if (i + len > n) return i;
    for (size_t k = 1; k < len; ++k) {
      const auto b = static_cast<uint8_t>(s[i + k]);
      if ((b & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (b & 0x3F);
    }
    const bool overlong = (len == 2 && cp < 0x80) ||
                          (len == 3 && cp < 0x800) ||
                          (len == 4 && cp < 0x10000);
    if (overlong || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += len;
  }
  return i;
}

size_t CountCodePoints(std::string_view s) {
  size_t count = 0;
  for (char c : s) {
    if ((static_cast<uint8_t>(c) & 0xC0) != 0x80) ++count;
  }
  return count;
}

std::string TokenDisplayString(std::string_view token_bytes) {
  if (IsValidUtf8(token_bytes)) return std::string(token_bytes);
  std::string out = "bytes:";
  for (char c : token_bytes) {
    absl::StrAppendFormat(&out, "\\x%02x", static_cast<uint8_t>(c));
  }
  return out;
}

OrderedJson BytesArray(std::string_view bytes) {
  OrderedJson array = OrderedJson::array();
  for (char c : bytes) array.push_back(static_cast<int>(static_cast<uint8_t>(c)));
  return array;
}

double FiniteLogprob(double logprob) {
  if (std::isnan(logprob)) return -9999.0;
  if (logprob < -9999.0) return -9999.0;
  if (logprob > 0.0) return 0.0;
  return logprob;
}

}  // namespace wf::router::openai::internal
