// A real wf_worker child process on 127.0.0.1 with ephemeral ports, and a
// gRPC stub to it, for multi-process tests.
//
// Example:
//   ASSERT_OK_AND_ASSIGN(auto worker, WorkerProcess::Start({"--max-running", "4"}));
//   grpc::ClientContext ctx;
//   wrinklefree::v1::ModelInfo info;
//   ASSERT_TRUE(worker->stub().GetModelInfo(&ctx, {}, &info).ok());
#ifndef WF_TESTS_TESTING_WORKER_PROCESS_H_
#define WF_TESTS_TESTING_WORKER_PROCESS_H_

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/testing/subprocess.h"
#include "common/testing/test_paths.h"
#include "grpcpp/grpcpp.h"
#include "wrinklefree/v1/worker.grpc.pb.h"

namespace wf::testing {

inline std::string GoldenModelPath() { return GoldenDir() + "/bitnet-synth-h256-l4.gguf"; }
inline std::string WorkerBinary() { return BinaryDir() + "/worker/wf_worker"; }

class WorkerProcess {
 public:
  // Starts wf_worker on the golden tiny model (unless extra_args has
  // --model-path) and waits (bounded) for its "ready" line.
  static absl::StatusOr<std::unique_ptr<WorkerProcess>> Start(std::vector<std::string> extra_args = {},
                                                              std::chrono::seconds timeout = std::chrono::seconds(60)) {
    auto w = std::unique_ptr<WorkerProcess>(new WorkerProcess());
    std::vector<std::string> args = {WorkerBinary(), "--host", "127.0.0.1", "--port", "0",
                                     "--metrics-host", "127.0.0.1", "--metrics-port", "0",
                                     "--log-level", "warning"};
    bool has_model = false;
    for (const std::string& a : extra_args) has_model |= a == "--model-path" || a == "-m";
    if (!has_model) {
      args.push_back("--model-path");
      args.push_back(GoldenModelPath());
    }
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    if (absl::Status s = w->child_.Start(args); !s.ok()) return s;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return absl::DeadlineExceededError("wf_worker did not become ready in time");
      absl::StatusOr<std::string> line = w->child_.ReadLine(left);
      if (!line.ok()) return line.status();
      w->lines_.push_back(*line);
      if (absl::StartsWith(*line, "wf_worker: grpc listening on ")) {
        if (!absl::SimpleAtoi(line->substr(line->rfind(':') + 1), &w->grpc_port_)) {
          return absl::InternalError("bad port line: " + *line);
        }
      } else if (absl::StartsWith(*line, "wf_worker: metrics listening on ")) {
        if (!absl::SimpleAtoi(line->substr(line->rfind(':') + 1), &w->metrics_port_)) {
          return absl::InternalError("bad port line: " + *line);
        }
      } else if (absl::StartsWith(*line, "wf_worker: ready")) {
        break;
      }
    }
    grpc::ChannelArguments ch_args;
    ch_args.SetMaxReceiveMessageSize(64 << 20);
    w->channel_ = grpc::CreateCustomChannel(w->address(), grpc::InsecureChannelCredentials(), ch_args);
    w->stub_ = wrinklefree::v1::Worker::NewStub(w->channel_);
    return w;
  }

  ~WorkerProcess() { child_.StopWithin(SIGKILL, std::chrono::seconds(5)); }

  std::string address() const { return absl::StrCat("127.0.0.1:", grpc_port_); }
  int grpc_port() const { return grpc_port_; }
  int metrics_port() const { return metrics_port_; }
  wrinklefree::v1::Worker::Stub& stub() { return *stub_; }
  std::shared_ptr<grpc::Channel> channel() { return channel_; }
  ChildProcess& child() { return child_; }
  // The worker's load now: the first report of a fresh WatchLoad
  // subscription (empty if none arrives within 10 s).
  wrinklefree::v1::Load CurrentLoad() {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    wrinklefree::v1::WatchLoadRequest req;
    req.set_include_kv_events(false);
    auto reader = stub_->WatchLoad(&ctx, req);
    wrinklefree::v1::LoadReport report;
    if (!reader->Read(&report)) return {};
    ctx.TryCancel();
    (void)reader->Finish();
    return report.load();
  }
  // Reads the next stdout line (e.g. "wf_worker: stopped").
  absl::StatusOr<std::string> ReadLine(std::chrono::milliseconds timeout) { return child_.ReadLine(timeout); }

 private:
  WorkerProcess() = default;
  ChildProcess child_;
  std::vector<std::string> lines_;
  int grpc_port_ = 0;
  int metrics_port_ = 0;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<wrinklefree::v1::Worker::Stub> stub_;
};

}  // namespace wf::testing

#endif  // WF_TESTS_TESTING_WORKER_PROCESS_H_
