// Safetensors checkpoints: a validating reader, sharded-directory lookup and a
// streaming writer.
//
// File layout: an 8-byte little-endian u64 N, then N bytes of JSON header
//   {"<tensor>": {"dtype": "BF16", "shape": [..], "data_offsets": [b, e]},
//    "__metadata__": {"<key>": "<string>"}}
// then the data area; data_offsets are relative to the start of the data area.
//
// The reader trusts nothing in the header: every entry is checked against the
// file size before any byte is read, and each error names the tensor and the
// numbers involved. Tensor bytes are read with pread into caller buffers (no
// long-lived mapping), so a multi-GB checkpoint can be converted with bounded
// resident memory by reading one tensor, or one chunk, at a time.
//
// Example:
//   BN_ASSIGN_OR_RETURN(auto ckpt, Checkpoint::Open("/models/bitnet-2b"));
//   for (const TensorRef& t : ckpt->tensors()) {
//     BN_ASSIGN_OR_RETURN(std::vector<float> w, ckpt->ReadTensorAsF32(t.info->name));
//   }
#ifndef WF_CONVERTER_SAFETENSORS_H_
#define WF_CONVERTER_SAFETENSORS_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace wf {
class AtomicFileWriter;
}  // namespace wf

namespace wf::convert {

enum class SafetensorsDtype {
  kBool,
  kU8,
  kI8,
  kF8E4M3,
  kF8E5M2,
  kU16,
  kI16,
  kF16,
  kBF16,
  kU32,
  kI32,
  kF32,
  kU64,
  kI64,
  kF64,
};

// "BF16", "F8_E4M3", ... as spelled in safetensors headers.
std::string_view SafetensorsDtypeName(SafetensorsDtype dtype);
// Bytes per element (1, 2, 4 or 8).
size_t SafetensorsDtypeSize(SafetensorsDtype dtype);
// INVALID_ARGUMENT naming `name` and the supported spellings if unknown.
absl::StatusOr<SafetensorsDtype> ParseSafetensorsDtype(std::string_view name);

// Upper bound on the JSON header the reader accepts.
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = uint64_t{100} << 20;
// Deepest JSON nesting the reader accepts (a valid header needs 3).
inline constexpr int kMaxSafetensorsJsonDepth = 64;

struct TensorInfo {
  std::string name;
  SafetensorsDtype dtype = SafetensorsDtype::kF32;
  std::vector<int64_t> shape;  // Row-major, outermost first (PyTorch order).
  uint64_t numel = 0;
  // Byte range inside the data area: [data_begin, data_end).
  uint64_t data_begin = 0;
  uint64_t data_end = 0;

  uint64_t nbytes() const { return data_end - data_begin; }
};

// One open .safetensors file. All methods are const and use pread on a file
// descriptor owned by the object, so they may be called from several threads
// at once. Errors: NOT_FOUND for an unknown tensor name, INVALID_ARGUMENT for
// a malformed file or a bad caller argument, DATA_LOSS when the file shrank
// after Open, INTERNAL for I/O errors.
class SafetensorsFile {
 public:
  // Opens and validates `path` (header length, JSON, every entry, overlaps).
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  // Tensors in header order.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  // nullptr if absent.
  const TensorInfo* Find(std::string_view name) const;
  // "__metadata__" (string to string); empty if the header has none.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Absolute file offset of the data area (8 + header length).
  uint64_t data_offset() const { return data_offset_; }
  uint64_t file_size() const { return file_size_; }

  // Copies the whole tensor; dst_size must equal its byte size.
  absl::Status ReadTensor(std::string_view name, void* dst, size_t dst_size) const;
  // Copies bytes [byte_offset, byte_offset + n) of the tensor's data.
  absl::Status ReadTensorRange(std::string_view name, uint64_t byte_offset, void* dst,
                               size_t n) const;
  // Converts an F32, F16 or BF16 tensor to float32 (numel values, row-major).
  // INVALID_ARGUMENT for other dtypes.
  absl::StatusOr<std::vector<float>> ReadTensorAsF32(std::string_view name) const;

 private:
  SafetensorsFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  absl::Status ParseHeader(std::string_view header, uint64_t data_size);
  absl::StatusOr<const TensorInfo*> Get(std::string_view name) const;

  std::string path_;
  int fd_;
  uint64_t file_size_ = 0;
  uint64_t data_offset_ = 0;
  std::vector<TensorInfo> tensors_;
  absl::flat_hash_map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// A tensor of a Checkpoint and the file that holds it.
struct TensorRef {
  const TensorInfo* info;
  const SafetensorsFile* file;
};

// A checkpoint directory: either a single "model.safetensors", or
// "model.safetensors.index.json" ({"weight_map": {tensor: shard}}) plus its
// shards. Open validates that every mapped shard exists and holds the tensor
// mapped to it, that no tensor appears in two shards and that every tensor
// of a shard is listed in the index. Thread safety as SafetensorsFile.
class Checkpoint {
 public:
  static constexpr std::string_view kSingleFileName = "model.safetensors";
  static constexpr std::string_view kIndexFileName = "model.safetensors.index.json";

  // NOT_FOUND if `dir` has neither file (the message lists what it has).
  static absl::StatusOr<std::unique_ptr<Checkpoint>> Open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  // Shards in file-name order (one element for a single-file checkpoint).
  const std::vector<std::unique_ptr<SafetensorsFile>>& files() const { return files_; }
  // All tensors: shards in file-name order, header order within a shard.
  const std::vector<TensorRef>& tensors() const { return tensors_; }
  // nullptr if absent.
  const TensorRef* Find(std::string_view name) const;

  absl::Status ReadTensor(std::string_view name, void* dst, size_t dst_size) const;
  absl::Status ReadTensorRange(std::string_view name, uint64_t byte_offset, void* dst,
                               size_t n) const;
  absl::StatusOr<std::vector<float>> ReadTensorAsF32(std::string_view name) const;

 private:
  explicit Checkpoint(std::string dir) : dir_(std::move(dir)) {}
  absl::Status OpenIndexed(const std::string& index_path);
  absl::StatusOr<const TensorRef*> Get(std::string_view name) const;
  absl::Status AddFile(std::unique_ptr<SafetensorsFile> file);

  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::vector<TensorRef> tensors_;
  absl::flat_hash_map<std::string, size_t> index_;
};

// Streams a .safetensors file: declare every tensor (and metadata) first,
// then write tensor bytes in declaration order, in as many Write calls as
// convenient; the header is emitted before the first data byte. The output
// appears at `path` only after a successful Commit(). The header keeps
// declaration order and is padded with spaces to a multiple of 8 bytes.
// Not thread-safe. Errors: INVALID_ARGUMENT for a bad declaration or a data
// size that does not match the declarations, FAILED_PRECONDITION for calls
// out of order, I/O errors from AtomicFileWriter.
class SafetensorsWriter {
 public:
  static absl::StatusOr<std::unique_ptr<SafetensorsWriter>> Create(const std::string& path);
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  absl::Status SetMetadata(std::string key, std::string value);
  absl::Status Declare(std::string name, SafetensorsDtype dtype, std::vector<int64_t> shape);
  // Appends raw bytes to the data area; they fill the declared tensors in order.
  absl::Status Write(const void* data, size_t size);
  // Writes all bytes of `name`, which must be the next tensor not yet started.
  absl::Status WriteTensor(std::string_view name, const void* data, size_t size);
  // Fails unless every declared byte has been written.
  absl::Status Commit();

  // Header bytes the file will have (after the 8-byte length), padding
  // included. INVALID_ARGUMENT if a name or metadata string is not UTF-8.
  absl::StatusOr<std::string> HeaderJson() const;

 private:
  explicit SafetensorsWriter(std::unique_ptr<AtomicFileWriter> out);
  absl::Status EnsureHeaderWritten();

  std::unique_ptr<AtomicFileWriter> out_;
  std::vector<TensorInfo> tensors_;
  absl::flat_hash_map<std::string, size_t> index_;
  std::vector<std::pair<std::string, std::string>> metadata_;
  uint64_t data_size_ = 0;
  uint64_t data_written_ = 0;
  bool header_written_ = false;
  bool committed_ = false;
};

}  // namespace wf::convert

#endif  // WF_CONVERTER_SAFETENSORS_H_
