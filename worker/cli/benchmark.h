// `wf_worker --benchmark`: prefill and decode speed, load time and peak memory
// of one model on this machine, in the shape of llama-bench's pp/tg tests so
// the figures compare with bitnet.cpp's (REFERENCE.md Part 2).
#ifndef WF_WORKER_CLI_BENCHMARK_H_
#define WF_WORKER_CLI_BENCHMARK_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace wf::cli {

struct BenchmarkOptions {
  std::string model_path;
  int64_t threads = 0;  // 0: all cores.
  bool json = false;    // One JSON object on stdout instead of a table.
  int64_t repetitions = 3;
  std::vector<int64_t> prefill_tokens = {128, 512};
  int64_t decode_tokens = 128;
};

absl::Status RunBenchmark(const BenchmarkOptions& options, std::ostream& out);

}  // namespace wf::cli

#endif  // WF_WORKER_CLI_BENCHMARK_H_
