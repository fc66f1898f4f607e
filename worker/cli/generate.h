// `wf_worker --prompt`: one completion on the command line (the llama-cli of
// this stack), streamed to stdout as it is generated.
#ifndef WF_WORKER_CLI_GENERATE_H_
#define WF_WORKER_CLI_GENERATE_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "worker/engine/kv_cache.h"
#include "worker/engine/model.h"
#include "worker/engine/sampling.h"

namespace wf::cli {

struct GenerateOptions {
  std::string model_path;
  engine::HeadType head_type = engine::HeadType::kF16;  // kQ8: int8 head quantized at load
  engine::KvCacheType kv_cache_type = engine::KvCacheType::kF16;  // kQ8: 8-bit KV cache
  std::string prompt;
  bool chat = false;         // Render the model's chat format around the prompt.
  std::string chat_format;   // "bitnet", "llama3", "chatml"; empty: from the file's template.
  std::string system;        // Optional system message (with chat).
  int64_t n_predict = 64;
  int64_t threads = 0;       // 0: all cores.
  engine::SamplingParams sampling;
  std::vector<std::string> stop;
  bool ignore_eos = false;
  bool show_stats = true;    // Timing lines on stderr.
};

// Errors: the model or prompt is unusable (INVALID_ARGUMENT / NOT_FOUND with
// the reason), or the prompt does not fit the context (OUT_OF_RANGE naming both
// numbers).
absl::Status RunGenerate(const GenerateOptions& options, std::ostream& out);

}  // namespace wf::cli

#endif  // WF_WORKER_CLI_GENERATE_H_
