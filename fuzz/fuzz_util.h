// Helpers shared by the fuzz targets of fuzz/ (not a library: each target
// compiles what it includes).
//
// MemFile gives parsers that only open paths (safetensors, YAML configs) the
// fuzz input as a file without touching the disk: an anonymous memfd, reached
// through /proc/self/fd/N, rewritten for every input.
//
// Example:
//   static MemFile* file = new MemFile("config.yaml");
//   file->Assign(data, size);
//   absl::Status s = ApplyYamlFile(file->path(), &config);
//
// Not thread-safe; one MemFile per fuzz process, kept for its whole life.
#ifndef WF_FUZZ_FUZZ_UTIL_H_
#define WF_FUZZ_FUZZ_UTIL_H_

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/log.h"

namespace wf::fuzz {

// Parsers log at INFO/WARNING on ordinary bad input; at fuzzing speed that
// is noise that slows every run down.
inline void QuietLogs() { SetLogLevel(LogLevel::kError); }

// A property the target checks failed: report it the way a sanitizer would,
// so libFuzzer saves the input.
[[noreturn]] inline void Fail(const char* what) {
  std::fprintf(stderr, "fuzz property violated: %s\n", what);
  std::abort();
}

class MemFile {
 public:
  // Aborts if the kernel refuses a memfd: nothing can be fuzzed without it.
  explicit MemFile(const char* name) : fd_(::memfd_create(name, MFD_CLOEXEC)) {
    if (fd_ < 0) Fail("memfd_create failed");
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  ~MemFile() { ::close(fd_); }
  MemFile(const MemFile&) = delete;
  MemFile& operator=(const MemFile&) = delete;

  // Replaces the file's contents with [data, data + size).
  void Assign(const uint8_t* data, size_t size) {
    if (::ftruncate(fd_, 0) != 0) Fail("ftruncate of the memfd failed");
    size_t done = 0;
    while (done < size) {
      const ssize_t n = ::pwrite(fd_, data + done, size - done, static_cast<off_t>(done));
      if (n <= 0) Fail("write to the memfd failed");
      done += static_cast<size_t>(n);
    }
  }
  const std::string& path() const { return path_; }

 private:
  int fd_;
  std::string path_;
};

}  // namespace wf::fuzz

#endif  // WF_FUZZ_FUZZ_UTIL_H_
