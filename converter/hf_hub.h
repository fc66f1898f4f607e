// Downloads files of a Hugging Face Hub model repository over HTTPS (libcurl).
//
// DownloadRepo lists the repository at a revision
//   GET {endpoint}/api/models/{repo}/revision/{revision}?blobs=true
// keeps the files matching the include patterns, and fetches each one from
//   GET {endpoint}/{repo}/resolve/{commit}/{path}
// (following the hub's redirect to its CDN) into {dest}/{path}.incomplete,
// resuming a partial file with a Range request, then checks the size and,
// for LFS files, the sha256 before renaming it into place. Files already
// present with the right size (and sha256) are skipped. Transient failures
// (network errors, 5xx, cut connections) are retried, each retry resuming.
//
// Example:
//   HubOptions opts;
//   opts.repo = "microsoft/bitnet-b1.58-2B-4T-bf16";
//   opts.dest_dir = "/models/bitnet-bf16";
//   opts.include = {"*.json", "*.safetensors"};
//   opts.progress = [](const HubProgress& p) { /* print p */ };
//   BN_RETURN_IF_ERROR(DownloadRepo(opts));
#ifndef WF_CONVERTER_HF_HUB_H_
#define WF_CONVERTER_HF_HUB_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace wf::convert {

inline constexpr char kDefaultHubEndpoint[] = "https://huggingface.co";

struct HubProgress {
  std::string file;    // Repository path of the file in flight.
  int file_index = 0;  // 0-based, among the files selected.
  int file_count = 0;
  uint64_t file_bytes_done = 0;
  uint64_t file_bytes_total = 0;  // 0 if the listing gave no size.
  uint64_t bytes_done = 0;        // Over all selected files, skipped ones included.
  uint64_t bytes_total = 0;
  double bytes_per_second = 0;  // Bytes received by this call / elapsed time.
  bool file_done = false;       // Last report of this file.
  bool skipped = false;         // Already present and verified; nothing fetched.
};

struct HubOptions {
  std::string repo;               // "OWNER/NAME".
  std::string revision = "main";  // Branch, tag or commit.
  // Empty: $HF_ENDPOINT if set, else kDefaultHubEndpoint.
  std::string endpoint;
  // Empty: $HF_TOKEN if set. Sent as "Authorization: Bearer <token>".
  std::string token;
  std::string dest_dir;  // Created if missing.
  // fnmatch patterns over repository paths ("*.gguf", "config.json"); a file
  // is kept if it matches any. Empty keeps every file.
  std::vector<std::string> include;
  // Called on the calling thread, at most every progress_interval_ms and
  // once at the end of each file. May be empty.
  std::function<void(const HubProgress&)> progress;
  int progress_interval_ms = 200;
  long connect_timeout_seconds = 30;
  // A transfer slower than low_speed_bytes_per_second for
  // low_speed_time_seconds is abandoned (and retried).
  long low_speed_bytes_per_second = 1024;
  long low_speed_time_seconds = 60;
  int max_attempts = 5;       // Per file, for transient failures.
  int retry_delay_ms = 1000;  // Grows linearly with the attempt number.
};

// One file of a repository listing.
struct HubFile {
  std::string path;  // Relative, '/'-separated, validated.
  std::optional<uint64_t> size;
  std::string sha256;  // Lowercase hex; empty for non-LFS files.
};

struct HubListing {
  std::string commit;  // 40-hex commit the revision resolved to; may be empty.
  std::vector<HubFile> files;
};

// Lists the repository. Errors: INVALID_ARGUMENT for a malformed repo id or
// listing (including unsafe file names such as "../x" or "/etc/x"),
// UNAUTHENTICATED (401) / PERMISSION_DENIED (403) mentioning HF_TOKEN,
// NOT_FOUND (404) for an unknown repository or revision, UNAVAILABLE for
// network errors and 5xx (message names the URL).
absl::StatusOr<HubListing> ListRepoFiles(const HubOptions& options);

// Downloads the selected files into options.dest_dir. Returns the files
// selected (after the include filter) in listing order when `selected` is
// not null. Errors as ListRepoFiles, plus NOT_FOUND when the include
// patterns match nothing, DATA_LOSS when a downloaded file has the wrong
// size or sha256 (the bad file is deleted), and I/O errors for dest_dir.
// Blocking; safe to run concurrently only for different dest_dir values.
absl::Status DownloadRepo(const HubOptions& options, std::vector<HubFile>* selected = nullptr);

// True if `path` from a listing is safe to join under a destination
// directory: relative, no "." / ".." / empty components, no backslash or
// control characters.
bool IsSafeRepoPath(const std::string& path);

}  // namespace wf::convert

#endif  // WF_CONVERTER_HF_HUB_H_
