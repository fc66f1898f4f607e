// Conversions between std::string_view and absl::string_view.
//
// Debian 12's Abseil is built with its own absl::string_view (not an alias of
// std::string_view), so absl::StrCat, absl hash-map lookups and absl string
// functions do not take a std::string_view directly.
//
// Example:
//   std::string_view name = ...;
//   return absl::InvalidArgumentError(absl::StrCat("unknown '", Av(name), "'"));
#ifndef WF_COMMON_STRING_VIEW_COMPAT_H_
#define WF_COMMON_STRING_VIEW_COMPAT_H_

#include <string_view>

#include "absl/strings/string_view.h"

namespace wf {

inline absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }
inline std::string_view Sv(absl::string_view s) { return std::string_view(s.data(), s.size()); }

}  // namespace wf

#endif  // WF_COMMON_STRING_VIEW_COMPAT_H_
