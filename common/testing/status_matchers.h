// gMock matchers for absl::Status and absl::StatusOr (Abseil 20220623 has none).
//
// Example:
//   EXPECT_THAT(Parse("x"), IsOk());
//   EXPECT_THAT(Parse(""), StatusIs(absl::StatusCode::kInvalidArgument,
//                                   HasSubstr("empty")));
#ifndef WF_COMMON_TESTING_STATUS_MATCHERS_H_
#define WF_COMMON_TESTING_STATUS_MATCHERS_H_

#include <ostream>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"

namespace wf::testing {

inline const absl::Status& GetStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& s) {
  return s.status();
}

MATCHER(IsOk, "is OK") {
  const absl::Status& s = ::wf::testing::GetStatus(arg);
  if (!s.ok()) *result_listener << "status is " << s;
  return s.ok();
}

MATCHER_P2(StatusIs, code, message_matcher,
           "has code " + ::testing::PrintToString(code)) {
  const absl::Status& s = ::wf::testing::GetStatus(arg);
  *result_listener << "status is " << s;
  return s.code() == code &&
         ::testing::ExplainMatchResult(message_matcher, std::string(s.message()),
                                       result_listener);
}

}  // namespace wf::testing

#define ASSERT_OK_AND_ASSIGN(lhs, expr)                                  \
  ASSERT_OK_AND_ASSIGN_IMPL_(BN_TEST_CONCAT_(bn_test_so_, __LINE__), lhs, expr)
#define BN_TEST_CONCAT_INNER_(a, b) a##b
#define BN_TEST_CONCAT_(a, b) BN_TEST_CONCAT_INNER_(a, b)
#define ASSERT_OK_AND_ASSIGN_IMPL_(so, lhs, expr)       \
  auto so = (expr);                                    \
  ASSERT_TRUE(so.ok()) << so.status();                 \
  lhs = std::move(so).value()

#endif  // WF_COMMON_TESTING_STATUS_MATCHERS_H_
