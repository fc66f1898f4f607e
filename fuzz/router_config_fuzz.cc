// Fuzz target: the YAML configuration files of wf_router and wf_worker
// (--config FILE). The input becomes a file (a memfd) handed to
// ResolveRouterConfig and ResolveWorkerConfig exactly as each main does after
// parsing a command line that only names the file. An accepted configuration
// must pass its own validation.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/flags.h"
#include "fuzz/fuzz_util.h"
#include "router/server/router_config.h"
#include "worker/service/worker_config.h"

namespace {

using ::wf::fuzz::Fail;

// Parses "prog --config PATH" into `flags`, as main() would.
void ParseCommandLine(wf::FlagSet* flags, const std::string& path) {
  std::string prog = "prog", flag = "--config", value = path;
  char* argv[] = {prog.data(), flag.data(), value.data()};
  if (!flags->Parse(3, argv).ok()) Fail("--config PATH does not parse");
}

void FuzzRouterConfig(const std::string& path) {
  wf::router::RouterConfig config;
  wf::FlagSet flags("wf_router");
  wf::router::RegisterRouterFlags(&flags, &config);
  ParseCommandLine(&flags, path);
  absl::StatusOr<wf::router::RouterConfig> resolved = wf::router::ResolveRouterConfig(flags, config);
  if (resolved.ok() && !wf::router::ValidateRouterConfig(*resolved).ok()) {
    Fail("a resolved router config does not validate");
  }
}

void FuzzWorkerConfig(const std::string& path) {
  wf::service::WorkerConfig config;
  wf::FlagSet flags("wf_worker");
  wf::service::RegisterWorkerFlags(&flags, &config);
  ParseCommandLine(&flags, path);
  absl::StatusOr<wf::service::WorkerConfig> resolved = wf::service::ResolveWorkerConfig(flags, config);
  if (resolved.ok() && !wf::service::ValidateWorkerConfig(*resolved).ok()) {
    Fail("a resolved worker config does not validate");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static wf::fuzz::MemFile* const file = new wf::fuzz::MemFile("config.yaml");
  file->Assign(data, size);
  FuzzRouterConfig(file->path());
  FuzzWorkerConfig(file->path());
  return 0;
}
