// Debian's Abseil is built with its own absl::string_view, distinct from
// std::string_view and not implicitly convertible either way. The gguf code
// speaks std::string_view and converts at the Abseil calls.
#ifndef WF_COMMON_GGUF_INTERNAL_STRING_VIEW_H_
#define WF_COMMON_GGUF_INTERNAL_STRING_VIEW_H_

#include <string_view>

#include "absl/strings/string_view.h"

namespace wf::gguf::internal {

inline absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }
inline std::string_view Sv(absl::string_view s) { return std::string_view(s.data(), s.size()); }

}  // namespace wf::gguf::internal

#endif  // WF_COMMON_GGUF_INTERNAL_STRING_VIEW_H_
