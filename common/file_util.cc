#include "common/file_util.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace wf {
namespace {

constexpr size_t kWriteBufferBytes = size_t{4} << 20;

absl::Status ErrnoStatus(const std::string& what, int err) {
  const std::string msg = absl::StrCat(what, ": ", std::strerror(err));
  switch (err) {
    case ENOENT: return absl::NotFoundError(msg);
    case EACCES:
    case EPERM:
    case EROFS: return absl::PermissionDeniedError(msg);
    case ENOSPC: return absl::ResourceExhaustedError(msg);
    default: return absl::InternalError(msg);
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<MappedFile>> MappedFile::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(absl::StrCat("cannot open '", path, "'"), errno);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return ErrnoStatus(absl::StrCat("cannot stat '", path, "'"), err);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat("'", path, "' is not a regular file"));
  }
  const size_t size = static_cast<size_t>(st.st_size);
  const uint8_t* data = nullptr;
  if (size > 0) {
    void* p = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      return ErrnoStatus(absl::StrCat("cannot mmap '", path, "'"), err);
    }
    data = static_cast<const uint8_t*>(p);
  }
  ::close(fd);  // The mapping keeps the file alive.
  return std::unique_ptr<MappedFile>(new MappedFile(path, data, size));
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
}

std::string PartialPathFor(const std::string& path) {
  return absl::StrCat(path, ".partial-", ::getpid());
}

absl::StatusOr<std::unique_ptr<AtomicFileWriter>> AtomicFileWriter::Create(
    const std::string& path) {
  if (path.empty()) return absl::InvalidArgumentError("output path is empty");
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat("output path '", path, "' is a directory"));
  }
  std::string temp = PartialPathFor(path);
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return ErrnoStatus(absl::StrCat("cannot create output file '", temp, "'"), errno);
  }
  auto writer = std::unique_ptr<AtomicFileWriter>(new AtomicFileWriter(path, std::move(temp), fd));
  writer->buffer_.reserve(kWriteBufferBytes);
  return writer;
}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temp_path_.c_str());
}

absl::Status AtomicFileWriter::FlushBuffer() {
  const char* p = buffer_.data();
  size_t left = buffer_.size();
  while (left > 0) {
    const ssize_t n = ::write(fd_, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(absl::StrCat("write to '", temp_path_, "' failed"), errno);
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  buffer_.clear();
  return absl::OkStatus();
}

absl::Status AtomicFileWriter::Write(const void* data, size_t size) {
  if (committed_ || fd_ < 0) return absl::FailedPreconditionError("writer already committed");
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const size_t room = kWriteBufferBytes - buffer_.size();
    const size_t n = size < room ? size : room;
    buffer_.append(p, n);
    p += n;
    size -= n;
    offset_ += n;
    if (buffer_.size() == kWriteBufferBytes) {
      absl::Status s = FlushBuffer();
      if (!s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

absl::Status AtomicFileWriter::WriteZeros(size_t size) {
  static const char kZeros[4096] = {};
  while (size > 0) {
    const size_t n = size < sizeof(kZeros) ? size : sizeof(kZeros);
    absl::Status s = Write(kZeros, n);
    if (!s.ok()) return s;
    size -= n;
  }
  return absl::OkStatus();
}

absl::Status AtomicFileWriter::Commit() {
  if (committed_ || fd_ < 0) return absl::FailedPreconditionError("writer already committed");
  absl::Status s = FlushBuffer();
  if (!s.ok()) return s;
  if (::fsync(fd_) != 0) return ErrnoStatus(absl::StrCat("fsync of '", temp_path_, "' failed"), errno);
  if (::close(fd_) != 0) {
    fd_ = -1;
    return ErrnoStatus(absl::StrCat("close of '", temp_path_, "' failed"), errno);
  }
  fd_ = -1;
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    return ErrnoStatus(absl::StrCat("cannot rename '", temp_path_, "' to '", path_, "'"), errno);
  }
  committed_ = true;
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFileToString(const std::string& path, size_t max_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(absl::StrCat("cannot open '", path, "'"), errno);
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat("'", path, "' is not a regular file"));
  }
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat("'", path, "' is ", st.st_size,
                                                   " bytes, more than the limit of ", max_bytes));
  }
  std::string out(static_cast<size_t>(st.st_size), '\0');
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = ::read(fd, out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : EIO;
      ::close(fd);
      return ErrnoStatus(absl::StrCat("read of '", path, "' failed"), err);
    }
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  return out;
}

}  // namespace wf
