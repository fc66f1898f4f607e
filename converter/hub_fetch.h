// Getting a model from the Hugging Face hub: a repository that holds a GGUF
// file (e.g. microsoft/bitnet-b1.58-2B-4T-gguf) gives that file as is; any
// other is downloaded as a checkpoint (config, tokenizer, safetensors) for the
// converter.
#ifndef WF_CONVERTER_HUB_FETCH_H_
#define WF_CONVERTER_HUB_FETCH_H_

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "converter/hf_hub.h"

namespace wf::convert {

struct HubRequest {
  std::string repo;      // "OWNER/NAME".
  std::string revision = "main";
  std::string gguf_file;  // Which .gguf to take when there are several.
  std::string download_dir;
  std::string endpoint;  // Empty: $HF_ENDPOINT, else the public hub.
  std::function<void(const HubProgress&)> progress;
};

struct FetchResult {
  bool gguf_copied = false;  // true: `outfile` now holds the repository's GGUF.
  std::string gguf_file;     // Its repository path.
};

// Lists the repository; downloads a GGUF to `outfile` (kept in download_dir
// too, so a second run does not download again), or the checkpoint files into
// download_dir. Errors as DownloadRepo, plus INVALID_ARGUMENT when several
// .gguf files exist and none is chosen (the message lists them).
absl::StatusOr<FetchResult> FetchModel(const HubRequest& request, const std::string& outfile);

}  // namespace wf::convert

#endif  // WF_CONVERTER_HUB_FETCH_H_
