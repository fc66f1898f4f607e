// main() of the replay tests a normal (non-fuzz) build makes of each fuzz
// target: every file under the directories (or the files) given on the
// command line goes through LLVMFuzzerTestOneInput once, in name order.
// Dot files (.gitkeep) are skipped. A missing directory is an error, so a
// renamed corpus cannot silently turn the test into a no-op.
//
// Exit status: 0 when every input ran (a crash aborts the process), 1 on a
// bad argument or an unreadable file.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "common/file_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

namespace fs = std::filesystem;

bool CollectInputs(const fs::path& arg, std::vector<fs::path>* inputs) {
  std::error_code ec;
  if (fs::is_regular_file(arg, ec)) {
    inputs->push_back(arg);
    return true;
  }
  if (!fs::is_directory(arg, ec)) {
    std::fprintf(stderr, "%s: not a file or directory\n", arg.c_str());
    return false;
  }
  for (fs::recursive_directory_iterator it(arg, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file() && it->path().filename().string().rfind('.', 0) != 0) {
      inputs->push_back(it->path());
    }
  }
  if (ec) {
    std::fprintf(stderr, "%s: %s\n", arg.c_str(), ec.message().c_str());
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
    return 1;
  }
  std::vector<fs::path> inputs;
  for (int i = 1; i < argc; ++i) {
    if (!CollectInputs(argv[i], &inputs)) return 1;
  }
  std::sort(inputs.begin(), inputs.end());
  for (const fs::path& path : inputs) {
    absl::StatusOr<std::string> bytes = wf::ReadFileToString(path.string());
    if (!bytes.ok()) {
      std::fprintf(stderr, "%s\n", std::string(bytes.status().message()).c_str());
      return 1;
    }
    std::fprintf(stderr, "replay %s (%zu bytes)\n", path.c_str(), bytes->size());
    // A heap copy of exactly the input's size (never null, even when empty,
    // as under libFuzzer), so a sanitizer sees any read past its end.
    auto copy = std::make_unique<uint8_t[]>(bytes->size() + (bytes->empty() ? 1 : 0));
    std::copy(bytes->begin(), bytes->end(), copy.get());
    LLVMFuzzerTestOneInput(copy.get(), bytes->size());
  }
  std::printf("%zu inputs replayed\n", inputs.size());
  return 0;
}
