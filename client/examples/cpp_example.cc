// wf_client_example: streams one completion from a router's gRPC front to
// stdout with wf::client::RouterClient.
//
//   wf_client_example --target 127.0.0.1:50061 --prompt "Once upon a time"
//       [--max-tokens 64] [--temperature 0] [--api-key KEY]
//
// The text goes to stdout as it arrives, then a newline; the final usage goes
// to stderr as one line:
//   usage: prompt_tokens=5 completion_tokens=16 cached_prompt_tokens=0 finish_reason=length
// Exit status: 0 on success, 1 when the call fails (the gRPC code and message
// on stderr), 2 on bad usage.
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "client/wf_client.h"
#include "common/flags.h"

namespace {

namespace v1 = wrinklefree::v1;

// "FINISH_REASON_LENGTH" -> "length", as the Python and Node examples print it.
std::string FinishReasonName(v1::FinishReason r) {
  std::string name = v1::FinishReason_Name(r);
  if (absl::StartsWith(name, "FINISH_REASON_")) name = name.substr(14);
  return absl::AsciiStrToLower(name);
}

int Run(int argc, char** argv) {
  std::string target = "127.0.0.1:50061";
  std::string prompt;
  std::string api_key;
  int64_t max_tokens = 64;
  double temperature = 0.0;
  double timeout_seconds = 120;
  wf::FlagSet flags("wf_client_example --target HOST:PORT --prompt TEXT [options]");
  flags.String("target", &target, "the router's gRPC front (wf_router --grpc-port)");
  flags.String("prompt", &prompt, "the prompt (raw text, tokenized by the router)");
  flags.Int("max-tokens", &max_tokens, "tokens to generate at most");
  flags.Double("temperature", &temperature, "sampling temperature; 0 = greedy");
  flags.String("api-key", &api_key, "API key, when the router requires one (else env WF_API_KEY)");
  flags.Double("timeout", &timeout_seconds, "deadline of the whole call, in seconds");
  if (absl::Status s = flags.Parse(argc, argv); !s.ok()) {
    std::cerr << "wf_client_example: " << s.message() << "\n" << flags.Help();
    return 2;
  }
  if (flags.help()) {
    std::cout << flags.Help();
    return 0;
  }
  if (prompt.empty()) {
    std::cerr << "wf_client_example: --prompt is required\n" << flags.Help();
    return 2;
  }
  if (api_key.empty()) {
    if (const char* env = std::getenv("WF_API_KEY"); env != nullptr) api_key = env;
  }

  wf::client::ClientOptions options;
  options.target = target;
  options.api_key = api_key;
  options.timeout = absl::Seconds(timeout_seconds);
  absl::StatusOr<std::unique_ptr<wf::client::RouterClient>> client = wf::client::RouterClient::Create(options);
  if (!client.ok()) {
    std::cerr << "wf_client_example: " << client.status() << "\n";
    return 2;
  }

  wf::client::RouterGenerateRequest req;
  v1::GenerateRequest& g = *req.mutable_request();
  g.set_text(prompt);
  g.mutable_stop()->set_max_tokens(static_cast<int32_t>(max_tokens));
  g.mutable_sampling()->set_temperature(static_cast<float>(temperature));

  v1::GenerateResponse last;
  absl::Status status = (*client)->GenerateStream(req, [&last](const wf::client::Chunk& chunk) {
    std::fwrite(chunk.text_delta().data(), 1, chunk.text_delta().size(), stdout);
    std::fflush(stdout);
    if (chunk.finished()) last = chunk;
    return true;
  });
  std::fputs("\n", stdout);
  std::fflush(stdout);
  if (!status.ok()) {
    std::cerr << "wf_client_example: " << absl::StatusCodeToString(status.code()) << ": " << status.message() << "\n";
    return 1;
  }
  const v1::Usage& u = last.usage();
  std::cerr << absl::StrCat("usage: prompt_tokens=", u.prompt_tokens(), " completion_tokens=", u.completion_tokens(),
                            " cached_prompt_tokens=", u.cached_prompt_tokens(),
                            " finish_reason=", FinishReasonName(last.finish_reason()))
            << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return Run(argc, argv); }
