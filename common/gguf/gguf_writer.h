// Writes GGUF v2/v3 files in one streaming pass, crash-safely: output goes to
// a temporary file next to the destination (wf::AtomicFileWriter) that is
// renamed over it only by a successful Finish(). A writer destroyed before
// that leaves nothing behind.
//
// Protocol: declare everything first (AddMetadata, AddTensorInfo, in the order
// they should appear in the file), then stream each tensor's data in the
// declared order (BeginTensor, WriteTensorBytes any number of times,
// EndTensor; or WriteTensor for a whole buffer), then Finish(). The header is
// written when the first tensor begins; tensor offsets follow the declarations:
// each tensor starts at the next multiple of the alignment (32 unless a
// "general.alignment" u32 entry says otherwise) and padding bytes are zeros.
// Padding also follows the last tensor, as ggml's own writer does.
//
// Example:
//   BN_ASSIGN_OR_RETURN(auto w, GgufWriter::Create("out.gguf"));
//   BN_RETURN_IF_ERROR(w->AddMetadata("general.architecture", Value::String("bitnet-b1.58")));
//   BN_RETURN_IF_ERROR(w->AddTensorInfo("output_norm.weight", GgmlType::F32, {2560}));
//   BN_RETURN_IF_ERROR(w->WriteTensor("output_norm.weight", norm.data(), norm.size() * 4));
//   BN_RETURN_IF_ERROR(w->Finish());
//
// Errors: InvalidArgument for bad declarations (bad key/value, unknown type,
// bad shape, wrong byte count), AlreadyExists for a duplicate key or tensor
// name, FailedPrecondition for calls out of protocol order, and I/O errors
// from the file system. Declaration errors leave the writer usable; an error
// from BeginTensor, WriteTensorBytes, EndTensor or Finish makes every later
// call fail (the partial output is discarded when the writer is destroyed).
//
// Not thread-safe: one thread drives a writer.
#ifndef WF_COMMON_GGUF_GGUF_WRITER_H_
#define WF_COMMON_GGUF_GGUF_WRITER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/file_util.h"
#include "common/gguf/gguf_reader.h"
#include "common/gguf/gguf_types.h"
#include "common/gguf/gguf_value.h"

namespace wf::gguf {

class GgufWriter {
 public:
  // `version` must be 2 or 3 (same layout; 3 is current).
  static absl::StatusOr<std::unique_ptr<GgufWriter>> Create(const std::string& path,
                                                             uint32_t version = 3);
  // Writes a copy of `src` (same version, metadata, tensors and order) to
  // `path`. A file laid out the way this writer lays files out comes back
  // byte-identical.
  static absl::Status CopyFrom(const GgufFile& src, const std::string& path);

  GgufWriter(const GgufWriter&) = delete;
  GgufWriter& operator=(const GgufWriter&) = delete;

  // Appends a metadata entry. A "general.alignment" entry must be a u32 power
  // of two and sets the alignment of the data section.
  absl::Status AddMetadata(std::string key, Value value);
  // Declares a tensor; its size is TensorBytes(type, ne).
  absl::Status AddTensorInfo(std::string name, GgmlType type, std::vector<int64_t> ne);
  // Declares all metadata and tensors of `src`, in its order.
  absl::Status AddAllFrom(const GgufFile& src);

  // Starts the data of `name`, which must be the next declared tensor.
  absl::Status BeginTensor(std::string_view name);
  // Appends bytes to the current tensor; more than its size is an error.
  absl::Status WriteTensorBytes(const void* data, size_t size);
  // Ends the current tensor; the bytes written must equal its size.
  absl::Status EndTensor();
  // BeginTensor + WriteTensorBytes + EndTensor.
  absl::Status WriteTensor(std::string_view name, const void* data, size_t size);
  // Checks that every declared tensor was written, then commits the file.
  absl::Status Finish();

  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  const std::string& path() const { return out_->path(); }

 private:
  enum class State { kDeclaring, kBetweenTensors, kInTensor, kFinished, kFailed };
  struct TensorDecl {
    std::string name;
    GgmlType type;
    std::vector<int64_t> ne;
    uint64_t size_bytes;
    uint64_t offset;  // Relative to the data section; set by WriteHeader().
  };

  GgufWriter(std::unique_ptr<AtomicFileWriter> out, uint32_t version)
      : out_(std::move(out)), version_(version) {}
  absl::Status CheckUsable() const;
  absl::Status Fail(absl::Status s);
  absl::Status WriteHeader();
  absl::Status PadToAlignment();

  std::unique_ptr<AtomicFileWriter> out_;
  uint32_t version_;
  uint32_t alignment_ = kDefaultAlignment;
  std::vector<KeyValue> metadata_;
  absl::flat_hash_map<std::string, size_t> key_index_;
  std::vector<TensorDecl> tensors_;
  absl::flat_hash_map<std::string, size_t> tensor_index_;
  State state_ = State::kDeclaring;
  absl::Status failure_;
  size_t next_tensor_ = 0;
  uint64_t tensor_bytes_written_ = 0;
  uint64_t data_start_ = 0;  // Absolute offset of the data section.
};

}  // namespace wf::gguf

#endif  // WF_COMMON_GGUF_GGUF_WRITER_H_
