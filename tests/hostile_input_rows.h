// The table of hostile_input_test: malformed and hostile requests, each
// with its transport (HTTP JSON body, raw socket bytes, or a gRPC method on
// the router's front or the worker), the status or gRPC code it must get and
// a substring of the message (naming the field or the limit). The values
// assume the router and worker started by the test: the golden model
// (vocabulary kVocab, context kContext), --max-body-bytes kMaxBodyBytes,
// --read-timeout-seconds kReadTimeoutSeconds and an API key kApiKey.
#ifndef WF_TESTS_HOSTILE_INPUT_ROWS_H_
#define WF_TESTS_HOSTILE_INPUT_ROWS_H_

#include <string>
#include <vector>

#include "wrinklefree/v1/router.pb.h"
#include "wrinklefree/v1/worker.pb.h"

namespace wf::hostile {

namespace v1 = wrinklefree::v1;

inline constexpr char kApiKey[] = "hostile-input-test-key";
inline constexpr int kVocab = 2048;
inline constexpr int kContext = 4096;
inline constexpr int kMaxBodyBytes = 256 << 10;
inline constexpr int kReadTimeoutSeconds = 2;

enum class Via {
  kHttp,              // JSON request through HttpRequestFull (auth header added)
  kRaw,               // `raw` bytes on a plain TCP socket
  kRouterGenerate,    // wrinklefree.v1.Router/Generate
  kRouterTokenize,    // wrinklefree.v1.Router/Tokenize
  kWorkerGenerate,    // wrinklefree.v1.Worker/Generate
  kWorkerTokenize,    // wrinklefree.v1.Worker/Tokenize
  kWorkerDetokenize,  // wrinklefree.v1.Worker/Detokenize
  kRouterBytes,       // raw bytes as the message of `method` on the router's gRPC port
  kWorkerBytes,       // ... on the worker's gRPC port
};

struct Row {
  std::string name;
  Via via = Via::kHttp;
  // kHttp: method, path, body and extra header lines ("Name: value").
  std::string method = "POST";
  std::string path;
  std::string body;
  std::vector<std::string> headers;
  bool auth = true;  // send the API key (HTTP header or gRPC metadata)
  // kRaw: the bytes sent; `half_close` shuts our sending side afterwards.
  std::string raw;
  bool half_close = false;
  // gRPC requests.
  v1::RouterGenerateRequest router_generate;
  v1::GenerateRequest generate;
  v1::TokenizeRequest tokenize;
  v1::DetokenizeRequest detokenize;
  std::string method_path;  // k*Bytes: "/package.Service/Method"
  // Expected: HTTP status (0 = closed without an answer) or grpc::StatusCode.
  int expect = 400;
  std::string message;  // substring of the error message
  std::string param;    // HTTP: error.param must equal it ("" = not checked)
  // kRaw: statuses of the responses after the first, in order; whether the
  // first request is a HEAD (its response has no body).
  std::vector<int> more;
  bool first_is_head = false;
};

// Rows by transport family. `model` is the served model name.
std::vector<Row> HttpRows(const std::string& model);  // Via::kHttp
std::vector<Row> RawRows(const std::string& model);   // Via::kRaw
std::vector<Row> GrpcRows();                          // every gRPC transport

}  // namespace wf::hostile

#endif  // WF_TESTS_HOSTILE_INPUT_ROWS_H_
