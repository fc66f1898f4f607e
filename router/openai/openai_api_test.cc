#include "router/openai/openai_api.h"

#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace wf::router::openai {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::json;

TEST(ApiErrorTest, MakeApiStatusRoundTripsThroughToApiError) {
  absl::Status s = MakeApiStatus(400, "n must be between 1 and 8, got 9", "n");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  ApiError e = ToApiError(s);
  EXPECT_EQ(e.http_status, 400);
  EXPECT_EQ(e.message, "n must be between 1 and 8, got 9");
  EXPECT_EQ(e.type, "invalid_request_error");
  EXPECT_EQ(e.param, "n");
  EXPECT_EQ(e.code, "");
}

TEST(ApiErrorTest, ExplicitTypeAndCodeSurvive) {
  ApiError e = ToApiError(
      MakeApiStatus(429, "slow down", "", "rate_limit_exceeded", "requests"));
  EXPECT_EQ(e.http_status, 429);
  EXPECT_EQ(e.type, "requests");
  EXPECT_EQ(e.code, "rate_limit_exceeded");
  EXPECT_EQ(e.param, "");
}

TEST(ApiErrorTest, HttpStatusChoosesAbslCode) {
  EXPECT_EQ(MakeApiStatus(404, "x").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(MakeApiStatus(413, "x").code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(MakeApiStatus(503, "x").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(MakeApiStatus(504, "x").code(),
            absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(MakeApiStatus(500, "x").code(), absl::StatusCode::kInternal);
}

struct PlainStatusCase {
  absl::StatusCode code;
  int http_status;
  const char* type;
};

class PlainStatusTest : public ::testing::TestWithParam<PlainStatusCase> {};

TEST_P(PlainStatusTest, MapsCodeToHttp) {
  const PlainStatusCase& c = GetParam();
  ApiError e = ToApiError(absl::Status(c.code, "worker said no"));
  EXPECT_EQ(e.http_status, c.http_status);
  EXPECT_EQ(e.type, c.type);
  EXPECT_EQ(e.message, "worker said no");
}

INSTANTIATE_TEST_SUITE_P(
    Codes, PlainStatusTest,
    ::testing::Values(
        PlainStatusCase{absl::StatusCode::kInvalidArgument, 400,
                        "invalid_request_error"},
        PlainStatusCase{absl::StatusCode::kFailedPrecondition, 400,
                        "invalid_request_error"},
        PlainStatusCase{absl::StatusCode::kUnauthenticated, 401,
                        "authentication_error"},
        PlainStatusCase{absl::StatusCode::kPermissionDenied, 403,
                        "permission_error"},
        PlainStatusCase{absl::StatusCode::kNotFound, 404, "not_found_error"},
        PlainStatusCase{absl::StatusCode::kResourceExhausted, 503,
                        "unavailable_error"},
        PlainStatusCase{absl::StatusCode::kUnavailable, 503,
                        "unavailable_error"},
        PlainStatusCase{absl::StatusCode::kDeadlineExceeded, 504,
                        "server_error"},
        PlainStatusCase{absl::StatusCode::kUnimplemented, 501,
                        "not_supported_error"},
        PlainStatusCase{absl::StatusCode::kInternal, 500, "server_error"},
        PlainStatusCase{absl::StatusCode::kDataLoss, 500, "server_error"}));

TEST(ApiErrorTest, OkStatusIsReportedAsInternalError) {
  ApiError e = ToApiError(absl::OkStatus());
  EXPECT_EQ(e.http_status, 500);
  EXPECT_THAT(e.message, HasSubstr("OK status"));
}

TEST(ErrorBodyTest, EnvelopeHasOpenAiShapeWithNulls) {
  ApiError e{400, "bad \"thing\"\n", "invalid_request_error", "", ""};
  Json j = Json::parse(ErrorBody(e));
  ASSERT_TRUE(j.is_object());
  ASSERT_EQ(j.size(), 1u);
  const Json& err = j.at("error");
  EXPECT_EQ(err.size(), 4u);
  EXPECT_EQ(err.at("message"), "bad \"thing\"\n");
  EXPECT_EQ(err.at("type"), "invalid_request_error");
  EXPECT_TRUE(err.at("param").is_null());
  EXPECT_TRUE(err.at("code").is_null());
}

TEST(ErrorBodyTest, ParamAndCodeAreStrings) {
  ApiError e{400, "m", "invalid_request_error", "messages[0].role",
             "context_length_exceeded"};
  Json err = Json::parse(ErrorBody(e)).at("error");
  EXPECT_EQ(err.at("param"), "messages[0].role");
  EXPECT_EQ(err.at("code"), "context_length_exceeded");
}

TEST(ErrorBodyTest, InvalidUtf8InMessageDoesNotThrow) {
  ApiError e{400, std::string("bad \xff byte"), "invalid_request_error", "",
             ""};
  Json err = Json::parse(ErrorBody(e)).at("error");
  EXPECT_THAT(err.at("message").get<std::string>(), HasSubstr("bad "));
}

TEST(SseTest, ErrorEventThenDone) {
  ApiError e{500, "boom", "server_error", "", "generation_error"};
  std::string ev = SseErrorEvent(e);
  ASSERT_EQ(ev.rfind("data: ", 0), 0u);
  ASSERT_GE(ev.size(), 2u);
  EXPECT_EQ(ev.substr(ev.size() - 2), "\n\n");
  EXPECT_EQ(ev.find('\n'), ev.size() - 2) << "one line per event";
  Json j = Json::parse(ev.substr(6, ev.size() - 8));
  EXPECT_EQ(j.at("error").at("message"), "boom");
  EXPECT_EQ(j.at("error").at("code"), "generation_error");
  EXPECT_EQ(SseDoneEvent(), "data: [DONE]\n\n");
  EXPECT_EQ(SseEvent("{}"), "data: {}\n\n");
}

TEST(ContextLengthTest, MessageNamesBothNumbers) {
  ApiError e = ContextLengthError(4096, 4000, 500, PromptNoun::kMessages);
  EXPECT_EQ(e.http_status, 400);
  EXPECT_EQ(e.code, "context_length_exceeded");
  EXPECT_EQ(e.param, "messages");
  EXPECT_EQ(e.type, "invalid_request_error");
  EXPECT_EQ(e.message,
            "This model's maximum context length is 4096 tokens. However, you "
            "requested 4500 tokens (4000 in the messages, 500 in the "
            "completion). Please reduce the length of the messages or "
            "completion.");
}

TEST(ContextLengthTest, PromptOnlyWording) {
  ApiError e = ContextLengthError(2048, 5000, 0, PromptNoun::kPrompt);
  EXPECT_EQ(e.param, "prompt");
  EXPECT_THAT(e.message, HasSubstr("maximum context length is 2048 tokens"));
  EXPECT_THAT(e.message, HasSubstr("resulted in 5000 tokens"));
}

TEST(ContextLengthTest, CheckContextLength) {
  EXPECT_TRUE(CheckContextLength(100, 50, 50, PromptNoun::kPrompt).ok());
  EXPECT_TRUE(CheckContextLength(100, 99, 0, PromptNoun::kPrompt).ok());
  absl::Status s = CheckContextLength(100, 100, 0, PromptNoun::kPrompt);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  absl::Status t = CheckContextLength(100, 60, 41, PromptNoun::kMessages);
  ApiError e = ToApiError(t);
  EXPECT_EQ(e.http_status, 400);
  EXPECT_EQ(e.code, "context_length_exceeded");
  EXPECT_EQ(e.param, "messages");
  EXPECT_THAT(e.message, HasSubstr("requested 101 tokens (60 in the messages, "
                                   "41 in the completion)"));
}

TEST(FinishReasonTest, Mapping) {
  EXPECT_EQ(FinishReasonString(wrinklefree::v1::FINISH_REASON_STOP), "stop");
  EXPECT_EQ(FinishReasonString(wrinklefree::v1::FINISH_REASON_LENGTH),
            "length");
  EXPECT_EQ(FinishReasonString(wrinklefree::v1::FINISH_REASON_ABORT), "");
  EXPECT_EQ(FinishReasonString(wrinklefree::v1::FINISH_REASON_ERROR), "");
  EXPECT_EQ(FinishReasonString(wrinklefree::v1::FINISH_REASON_UNSPECIFIED),
            "");
}

TEST(FinishReasonTest, ErrorForFinish) {
  wrinklefree::v1::GenerateResponse r;
  r.set_finish_reason(wrinklefree::v1::FINISH_REASON_ERROR);
  r.set_error("kv cache corrupted");
  ApiError e = ErrorForFinish(r);
  EXPECT_EQ(e.http_status, 500);
  EXPECT_THAT(e.message, HasSubstr("kv cache corrupted"));

  r.set_finish_reason(wrinklefree::v1::FINISH_REASON_ABORT);
  e = ErrorForFinish(r);
  EXPECT_EQ(e.http_status, 503);
  EXPECT_EQ(e.code, "request_aborted");

  r.set_finish_reason(wrinklefree::v1::FINISH_REASON_UNSPECIFIED);
  e = ErrorForFinish(r);
  EXPECT_EQ(e.http_status, 502);
}

}  // namespace
}  // namespace wf::router::openai
