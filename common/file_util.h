// Files: read-only memory maps and crash-safe output files.
//
// MappedFile maps a whole file read-only (the GGUF reader and the worker read
// weights in place). AtomicFileWriter writes to "<path>.partial-<pid>" in the
// same directory and renames it over <path> only on Commit(), so a reader never
// sees a half-written file, whatever happens to the writer.
//
// Example:
//   BN_ASSIGN_OR_RETURN(auto out, AtomicFileWriter::Create("model.gguf"));
//   BN_RETURN_IF_ERROR(out->Write(bytes.data(), bytes.size()));
//   BN_RETURN_IF_ERROR(out->Commit());
#ifndef WF_COMMON_FILE_UTIL_H_
#define WF_COMMON_FILE_UTIL_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace wf {

class MappedFile {
 public:
  // Maps `path` read-only. An empty file maps to size() == 0, data() == nullptr.
  static absl::StatusOr<std::unique_ptr<MappedFile>> Open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile(std::string path, const uint8_t* data, size_t size)
      : path_(std::move(path)), data_(data), size_(size) {}
  std::string path_;
  const uint8_t* data_;
  size_t size_;
};

class AtomicFileWriter {
 public:
  // Creates the temporary file next to `path`. Fails if the directory is not
  // writable. Not thread-safe; one writer per output file.
  static absl::StatusOr<std::unique_ptr<AtomicFileWriter>> Create(const std::string& path);
  // Removes the temporary file unless Commit() succeeded.
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  absl::Status Write(const void* data, size_t size);
  // Writes `size` zero bytes.
  absl::Status WriteZeros(size_t size);
  // Flushes, fsyncs and renames the temporary file to the final path.
  absl::Status Commit();
  // Bytes written so far.
  uint64_t offset() const { return offset_; }
  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return temp_path_; }

 private:
  AtomicFileWriter(std::string path, std::string temp_path, int fd)
      : path_(std::move(path)), temp_path_(std::move(temp_path)), fd_(fd) {}
  absl::Status FlushBuffer();

  std::string path_;
  std::string temp_path_;
  int fd_;
  uint64_t offset_ = 0;
  std::string buffer_;
  bool committed_ = false;
};

// The temporary path AtomicFileWriter uses for `path` in this process; signal
// handlers of the binaries unlink it on interruption.
std::string PartialPathFor(const std::string& path);

// Reads a whole (small) file into a string, with a size cap.
absl::StatusOr<std::string> ReadFileToString(const std::string& path,
                                             size_t max_bytes = size_t{1} << 30);

}  // namespace wf

#endif  // WF_COMMON_FILE_UTIL_H_
