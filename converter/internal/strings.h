// String glue for the converter.
#ifndef WF_CONVERTER_INTERNAL_STRINGS_H_
#define WF_CONVERTER_INTERNAL_STRINGS_H_

#include <string_view>

#include "absl/strings/string_view.h"

namespace wf::convert::internal {

// Debian's Abseil keeps absl::string_view distinct from std::string_view, and
// StrCat and the heterogeneous lookups of absl hash containers accept only
// the former.
inline absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

}  // namespace wf::convert::internal

#endif  // WF_CONVERTER_INTERNAL_STRINGS_H_
