// Status propagation macros for absl::Status / absl::StatusOr.
//
// Abseil 20220623 (Debian 12) predates ABSL_RETURN_IF_ERROR and
// ABSL_ASSIGN_OR_RETURN, so common/ ships its own.
//
// Example:
//   absl::StatusOr<int> ParseCount(std::string_view s);
//   absl::Status Load(std::string_view s) {
//     BN_ASSIGN_OR_RETURN(int n, ParseCount(s));
//     BN_RETURN_IF_ERROR(CheckRange(n));
//     return absl::OkStatus();
//   }
#ifndef WF_COMMON_STATUS_MACROS_H_
#define WF_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define BN_RETURN_IF_ERROR(expr)                      \
  do {                                                \
    ::absl::Status bn_status_ = (expr);               \
    if (!bn_status_.ok()) return bn_status_;          \
  } while (0)

#define BN_STATUS_CONCAT_INNER_(a, b) a##b
#define BN_STATUS_CONCAT_(a, b) BN_STATUS_CONCAT_INNER_(a, b)

#define BN_ASSIGN_OR_RETURN(lhs, expr) \
  BN_ASSIGN_OR_RETURN_IMPL_(BN_STATUS_CONCAT_(bn_statusor_, __LINE__), lhs, expr)

#define BN_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                              \
  if (!statusor.ok()) return statusor.status();        \
  lhs = std::move(statusor).value()

#endif  // WF_COMMON_STATUS_MACROS_H_
