// Debian's Abseil is built with its own absl::string_view (not an alias of
// std::string_view), so StrCat and the string-keyed hash maps need explicit
// conversions from std::string_view.
#ifndef WF_COMMON_TOKENIZER_INTERNAL_STRING_VIEW_H_
#define WF_COMMON_TOKENIZER_INTERNAL_STRING_VIEW_H_

#include <string_view>

#include "absl/strings/string_view.h"

namespace wf::tokenizer::internal {

inline absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

}  // namespace wf::tokenizer::internal

#endif  // WF_COMMON_TOKENIZER_INTERNAL_STRING_VIEW_H_
