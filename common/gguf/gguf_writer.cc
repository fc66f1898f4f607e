#include "common/gguf/gguf_writer.h"

#include <bit>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/string_view_compat.h"
#include "common/status_macros.h"

namespace wf::gguf {

static_assert(std::endian::native == std::endian::little,
              "the GGUF writer copies host-order data as is");

namespace {

using ::wf::Av;

template <typename T>
void AppendPod(std::string* out, T v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof(T));
}

void AppendString(std::string* out, std::string_view s) {
  AppendPod<uint64_t>(out, s.size());
  out->append(s.data(), s.size());
}

template <typename T>
void AppendVector(std::string* out, const std::vector<T>* v) {
  AppendPod<uint64_t>(out, v->size());
  if (!v->empty()) out->append(reinterpret_cast<const char*>(v->data()), v->size() * sizeof(T));
}

void AppendArray(std::string* out, const Value& value);

void AppendValue(std::string* out, const Value& value) {
  if (value.type() == ValueType::STRING) {
    AppendString(out, *value.ToString());
  } else if (value.is_array()) {
    AppendArray(out, value);
  } else {
    const uint64_t bits = value.raw_bits();
    out->append(reinterpret_cast<const char*>(&bits), ValueTypeSize(value.type()));
  }
}

// Element type, count, elements (the count is part of each AppendVector).
void AppendArray(std::string* out, const Value& value) {
  AppendPod<uint32_t>(out, static_cast<uint32_t>(value.element_type()));
  switch (value.element_type()) {
    case ValueType::UINT8:
    case ValueType::BOOL: return AppendVector(out, value.ArrayData<uint8_t>());
    case ValueType::INT8: return AppendVector(out, value.ArrayData<int8_t>());
    case ValueType::UINT16: return AppendVector(out, value.ArrayData<uint16_t>());
    case ValueType::INT16: return AppendVector(out, value.ArrayData<int16_t>());
    case ValueType::UINT32: return AppendVector(out, value.ArrayData<uint32_t>());
    case ValueType::INT32: return AppendVector(out, value.ArrayData<int32_t>());
    case ValueType::FLOAT32: return AppendVector(out, value.ArrayData<float>());
    case ValueType::UINT64: return AppendVector(out, value.ArrayData<uint64_t>());
    case ValueType::INT64: return AppendVector(out, value.ArrayData<int64_t>());
    case ValueType::FLOAT64: return AppendVector(out, value.ArrayData<double>());
    case ValueType::STRING: {
      const std::vector<std::string>& v = *value.ArrayData<std::string>();
      AppendPod<uint64_t>(out, v.size());
      for (const std::string& s : v) AppendString(out, s);
      return;
    }
    case ValueType::ARRAY: {
      const std::vector<Value>& v = *value.ArrayData<Value>();
      AppendPod<uint64_t>(out, v.size());
      for (const Value& e : v) AppendArray(out, e);
      return;
    }
  }
}

uint64_t AlignUp(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

}  // namespace

absl::StatusOr<std::unique_ptr<GgufWriter>> GgufWriter::Create(const std::string& path,
                                                               uint32_t version) {
  if (version != 2 && version != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot write GGUF version ", version, "; only 2 and 3 are supported"));
  }
  BN_ASSIGN_OR_RETURN(std::unique_ptr<AtomicFileWriter> out, AtomicFileWriter::Create(path));
  return std::unique_ptr<GgufWriter>(new GgufWriter(std::move(out), version));
}

absl::Status GgufWriter::CopyFrom(const GgufFile& src, const std::string& path) {
  BN_ASSIGN_OR_RETURN(std::unique_ptr<GgufWriter> w, Create(path, src.version()));
  BN_RETURN_IF_ERROR(w->AddAllFrom(src));
  for (const TensorInfo& t : src.tensors()) {
    BN_RETURN_IF_ERROR(w->WriteTensor(t.name, t.data, t.size_bytes));
  }
  return w->Finish();
}

absl::Status GgufWriter::CheckUsable() const {
  switch (state_) {
    case State::kFailed:
      return absl::FailedPreconditionError(
          absl::StrCat("GGUF writer for '", out_->path(), "' failed earlier: ",
                       failure_.message()));
    case State::kFinished:
      return absl::FailedPreconditionError(
          absl::StrCat("GGUF writer for '", out_->path(), "' is already finished"));
    default: return absl::OkStatus();
  }
}

absl::Status GgufWriter::Fail(absl::Status s) {
  state_ = State::kFailed;
  failure_ = s;
  return s;
}

absl::Status GgufWriter::AddMetadata(std::string key, Value value) {
  BN_RETURN_IF_ERROR(CheckUsable());
  if (state_ != State::kDeclaring) {
    return absl::FailedPreconditionError(
        absl::StrCat("metadata key '", key, "' added after tensor data started"));
  }
  if (key.empty()) return absl::InvalidArgumentError("metadata key is empty");
  if (absl::Status s = value.Validate(); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("metadata key '", key, "': ", s.message()));
  }
  if (key_index_.contains(key)) {
    return absl::AlreadyExistsError(absl::StrCat("duplicate metadata key '", key, "'"));
  }
  if (key == kAlignmentKey) {
    if (value.type() != ValueType::UINT32) {
      return absl::InvalidArgumentError(
          absl::StrCat("metadata key '", key, "' must be u32, found ", value.TypeName()));
    }
    const uint32_t a = static_cast<uint32_t>(value.raw_bits());
    if (!std::has_single_bit(a)) {
      return absl::InvalidArgumentError(
          absl::StrCat("metadata key '", key, "': alignment ", a, " is not a power of two"));
    }
    alignment_ = a;
  }
  key_index_.emplace(key, metadata_.size());
  metadata_.push_back(KeyValue{std::move(key), std::move(value)});
  return absl::OkStatus();
}

absl::Status GgufWriter::AddTensorInfo(std::string name, GgmlType type,
                                       std::vector<int64_t> ne) {
  BN_RETURN_IF_ERROR(CheckUsable());
  if (state_ != State::kDeclaring) {
    return absl::FailedPreconditionError(
        absl::StrCat("tensor '", name, "' declared after tensor data started"));
  }
  if (name.empty()) return absl::InvalidArgumentError("tensor name is empty");
  if (tensor_index_.contains(name)) {
    return absl::AlreadyExistsError(absl::StrCat("duplicate tensor name '", name, "'"));
  }
  absl::StatusOr<uint64_t> bytes = TensorBytes(type, ne);
  if (!bytes.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor '", name, "': ", bytes.status().message()));
  }
  tensor_index_.emplace(name, tensors_.size());
  tensors_.push_back(TensorDecl{std::move(name), type, std::move(ne), *bytes, 0});
  return absl::OkStatus();
}

absl::Status GgufWriter::AddAllFrom(const GgufFile& src) {
  for (const KeyValue& kv : src.metadata()) {
    BN_RETURN_IF_ERROR(AddMetadata(kv.key, kv.value));
  }
  for (const TensorInfo& t : src.tensors()) {
    const absl::Span<const int64_t> dims = t.dims();
    BN_RETURN_IF_ERROR(
        AddTensorInfo(t.name, t.type, std::vector<int64_t>(dims.begin(), dims.end())));
  }
  return absl::OkStatus();
}

absl::Status GgufWriter::WriteHeader() {
  std::string header;
  AppendPod<uint32_t>(&header, kGgufMagic);
  AppendPod<uint32_t>(&header, version_);
  AppendPod<uint64_t>(&header, tensors_.size());
  AppendPod<uint64_t>(&header, metadata_.size());
  for (const KeyValue& kv : metadata_) {
    AppendString(&header, kv.key);
    AppendPod<uint32_t>(&header, static_cast<uint32_t>(kv.value.type()));
    AppendValue(&header, kv.value);
  }
  uint64_t offset = 0;
  for (TensorDecl& t : tensors_) {
    t.offset = offset;
    // Declared sizes are each below 2^63 but their sum is not bounded.
    if (__builtin_add_overflow(offset, AlignUp(t.size_bytes, alignment_), &offset)) {
      return absl::InvalidArgumentError(
          absl::StrCat("total tensor data overflows 64 bits at tensor '", t.name, "'"));
    }
    AppendString(&header, t.name);
    AppendPod<uint32_t>(&header, static_cast<uint32_t>(t.ne.size()));
    for (int64_t d : t.ne) AppendPod<uint64_t>(&header, static_cast<uint64_t>(d));
    AppendPod<uint32_t>(&header, static_cast<uint32_t>(t.type));
    AppendPod<uint64_t>(&header, t.offset);
  }
  data_start_ = AlignUp(header.size(), alignment_);
  header.resize(data_start_, '\0');
  BN_RETURN_IF_ERROR(out_->Write(header.data(), header.size()));
  state_ = State::kBetweenTensors;
  return absl::OkStatus();
}

absl::Status GgufWriter::PadToAlignment() {
  const uint64_t pos = out_->offset();
  return out_->WriteZeros(AlignUp(pos, alignment_) - pos);
}

absl::Status GgufWriter::BeginTensor(std::string_view name) {
  BN_RETURN_IF_ERROR(CheckUsable());
  if (state_ == State::kInTensor) {
    return Fail(absl::FailedPreconditionError(
        absl::StrCat("BeginTensor('", Av(name), "') while tensor '", tensors_[next_tensor_].name,
                     "' is not ended")));
  }
  if (next_tensor_ >= tensors_.size()) {
    return Fail(absl::FailedPreconditionError(absl::StrCat(
        "BeginTensor('", Av(name), "'): all ", tensors_.size(), " declared tensors are written")));
  }
  const TensorDecl& expected = tensors_[next_tensor_];
  if (name != expected.name) {
    if (!tensor_index_.contains(Av(name))) {
      return Fail(absl::FailedPreconditionError(
          absl::StrCat("BeginTensor('", Av(name), "'): tensor was not declared")));
    }
    return Fail(absl::FailedPreconditionError(
        absl::StrCat("BeginTensor('", Av(name), "'): tensors must be written in declaration ",
                     "order; expected '", expected.name, "' next")));
  }
  if (state_ == State::kDeclaring) {
    if (absl::Status s = WriteHeader(); !s.ok()) return Fail(s);
  }
  state_ = State::kInTensor;
  tensor_bytes_written_ = 0;
  return absl::OkStatus();
}

absl::Status GgufWriter::WriteTensorBytes(const void* data, size_t size) {
  BN_RETURN_IF_ERROR(CheckUsable());
  if (state_ != State::kInTensor) {
    return Fail(absl::FailedPreconditionError("WriteTensorBytes outside BeginTensor/EndTensor"));
  }
  const TensorDecl& t = tensors_[next_tensor_];
  if (size > t.size_bytes - tensor_bytes_written_) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "tensor '", t.name, "': writing ", size, " more bytes after ", tensor_bytes_written_,
        " exceeds its size of ", t.size_bytes, " bytes")));
  }
  if (absl::Status s = out_->Write(data, size); !s.ok()) return Fail(s);
  tensor_bytes_written_ += size;
  return absl::OkStatus();
}

absl::Status GgufWriter::EndTensor() {
  BN_RETURN_IF_ERROR(CheckUsable());
  if (state_ != State::kInTensor) {
    return Fail(absl::FailedPreconditionError("EndTensor without BeginTensor"));
  }
  const TensorDecl& t = tensors_[next_tensor_];
  if (tensor_bytes_written_ != t.size_bytes) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("tensor '", t.name, "': ", tensor_bytes_written_,
                     " bytes written, expected ", t.size_bytes)));
  }
  if (absl::Status s = PadToAlignment(); !s.ok()) return Fail(s);
  ++next_tensor_;
  state_ = State::kBetweenTensors;
  return absl::OkStatus();
}

absl::Status GgufWriter::WriteTensor(std::string_view name, const void* data, size_t size) {
  BN_RETURN_IF_ERROR(BeginTensor(name));
  BN_RETURN_IF_ERROR(WriteTensorBytes(data, size));
  return EndTensor();
}

absl::Status GgufWriter::Finish() {
  BN_RETURN_IF_ERROR(CheckUsable());
  if (state_ == State::kInTensor) {
    return Fail(absl::FailedPreconditionError(
        absl::StrCat("Finish while tensor '", tensors_[next_tensor_].name, "' is not ended")));
  }
  if (next_tensor_ != tensors_.size()) {
    return Fail(absl::FailedPreconditionError(
        absl::StrCat("Finish with only ", next_tensor_, " of ", tensors_.size(),
                     " declared tensors written; next is '", tensors_[next_tensor_].name, "'")));
  }
  if (state_ == State::kDeclaring) {
    if (absl::Status s = WriteHeader(); !s.ok()) return Fail(s);
  }
  if (absl::Status s = out_->Commit(); !s.ok()) return Fail(s);
  state_ = State::kFinished;
  return absl::OkStatus();
}

}  // namespace wf::gguf
