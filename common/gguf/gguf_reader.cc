#include "common/gguf/gguf_reader.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <numeric>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/string_view_compat.h"
#include "common/status_macros.h"

namespace wf::gguf {

static_assert(std::endian::native == std::endian::little,
              "the GGUF reader copies little-endian data as is");

namespace {

using ::wf::Av;

// Smallest encodings, used to reject impossible counts before allocating:
// a metadata entry is at least key length (8) + value type (4) + a 1-byte
// value; a tensor info at least name length (8) + n_dims (4) + one dim (8) +
// type (4) + offset (8); a string is at least its length (8); an array
// element that is itself an array at least its type (4) + count (8).
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;
constexpr uint64_t kMinStringBytes = 8;
constexpr uint64_t kMinNestedArrayBytes = 4 + 8;

std::string U128ToString(unsigned __int128 v) {
  std::string digits;
  do {
    digits.push_back(static_cast<char>('0' + static_cast<int>(v % 10)));
    v /= 10;
  } while (v != 0);
  return std::string(digits.rbegin(), digits.rend());
}

absl::Status Annotate(const absl::Status& s, absl::string_view prefix) {
  if (s.ok()) return s;
  return absl::Status(s.code(), absl::StrCat(prefix, s.message()));
}

}  // namespace

class GgufFile::Parser {
 public:
  Parser(const uint8_t* data, size_t size, GgufFile* out) : data_(data), size_(size), out_(out) {}

  absl::Status Run() {
    BN_RETURN_IF_ERROR(ReadHeader());
    BN_RETURN_IF_ERROR(ReadMetadata());
    BN_RETURN_IF_ERROR(ReadAlignment());
    BN_RETURN_IF_ERROR(ReadTensorInfos());
    return PlaceTensors();
  }

 private:
  size_t remaining() const { return size_ - pos_; }

  absl::Status Corrupt(absl::string_view msg) const {
    std::string where = context_;
    if (!element_path_.empty()) {
      where += ": array element ";
      for (uint64_t i : element_path_) absl::StrAppend(&where, "[", i, "]");
    }
    return absl::InvalidArgumentError(absl::StrCat(where, ": ", msg));
  }

  absl::Status Need(uint64_t n, absl::string_view what) const {
    if (n <= remaining()) return absl::OkStatus();
    return Corrupt(absl::StrCat("truncated: ", what, " at offset ", pos_, " needs ", n,
                                " bytes but only ", remaining(), " remain (file size ",
                                size_, ")"));
  }

  template <typename T>
  absl::Status Read(T* v, absl::string_view what) {
    BN_RETURN_IF_ERROR(Need(sizeof(T), what));
    std::memcpy(v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return absl::OkStatus();
  }

  absl::Status ReadString(absl::string_view* s, absl::string_view what) {
    uint64_t len = 0;
    BN_RETURN_IF_ERROR(Read(&len, what));
    if (len > remaining()) {
      return Corrupt(absl::StrCat("truncated: ", what, " at offset ", pos_ - 8, " has length ",
                                  len, " but only ", remaining(), " bytes remain (file size ",
                                  size_, ")"));
    }
    *s = absl::string_view(reinterpret_cast<const char*>(data_ + pos_), len);
    pos_ += len;
    return absl::OkStatus();
  }

  absl::Status ReadValueType(ValueType* type, absl::string_view what) {
    uint32_t id = 0;
    BN_RETURN_IF_ERROR(Read(&id, what));
    if (!IsValidValueType(id)) {
      return Corrupt(absl::StrCat("invalid ", what, " ", id, " at offset ", pos_ - 4,
                                  " (valid: 0..", kValueTypeCount - 1, ")"));
    }
    *type = static_cast<ValueType>(id);
    return absl::OkStatus();
  }

  absl::Status ReadValue(ValueType type, int depth, Value* out) {
    if (type == ValueType::STRING) {
      absl::string_view s;
      BN_RETURN_IF_ERROR(ReadString(&s, "string value"));
      *out = Value::String(std::string(s));
      return absl::OkStatus();
    }
    if (type == ValueType::ARRAY) return ReadArray(depth + 1, out);
    const size_t n = ValueTypeSize(type);
    BN_RETURN_IF_ERROR(Need(n, absl::StrCat(ValueTypeName(type), " value")));
    uint64_t bits = 0;
    std::memcpy(&bits, data_ + pos_, n);
    pos_ += n;
    *out = Value::Scalar(type, bits);
    return absl::OkStatus();
  }

  template <typename T>
  absl::Status ReadFixedArray(uint64_t count, std::vector<T>* v) {
    if (count > remaining() / sizeof(T)) {
      return Corrupt(absl::StrCat("truncated: array of ", count, " elements of ", sizeof(T),
                                  " bytes at offset ", pos_, " but only ", remaining(),
                                  " bytes remain (file size ", size_, ")"));
    }
    v->resize(count);
    if (count > 0) std::memcpy(v->data(), data_ + pos_, count * sizeof(T));
    pos_ += count * sizeof(T);
    return absl::OkStatus();
  }

  // Element type, count, elements: the encoding of an ARRAY value and of each
  // element of an array of arrays.
  absl::Status ReadArray(int depth, Value* out) {
    if (depth > kMaxArrayDepth) {
      return Corrupt(absl::StrCat("arrays nested deeper than ", kMaxArrayDepth, " at offset ",
                                  pos_));
    }
    ValueType et;
    BN_RETURN_IF_ERROR(ReadValueType(&et, "array element type"));
    uint64_t count = 0;
    BN_RETURN_IF_ERROR(Read(&count, "array count"));
    switch (et) {
      case ValueType::UINT8: return ReadTyped<uint8_t>(count, &Value::U8Array, out);
      case ValueType::INT8: return ReadTyped<int8_t>(count, &Value::I8Array, out);
      case ValueType::UINT16: return ReadTyped<uint16_t>(count, &Value::U16Array, out);
      case ValueType::INT16: return ReadTyped<int16_t>(count, &Value::I16Array, out);
      case ValueType::UINT32: return ReadTyped<uint32_t>(count, &Value::U32Array, out);
      case ValueType::INT32: return ReadTyped<int32_t>(count, &Value::I32Array, out);
      case ValueType::FLOAT32: return ReadTyped<float>(count, &Value::F32Array, out);
      case ValueType::BOOL: return ReadTyped<uint8_t>(count, &Value::BoolArray, out);
      case ValueType::UINT64: return ReadTyped<uint64_t>(count, &Value::U64Array, out);
      case ValueType::INT64: return ReadTyped<int64_t>(count, &Value::I64Array, out);
      case ValueType::FLOAT64: return ReadTyped<double>(count, &Value::F64Array, out);
      case ValueType::STRING: {
        if (count > remaining() / kMinStringBytes) {
          return Corrupt(absl::StrCat("truncated: array of ", count, " strings at offset ", pos_,
                                      " needs at least ", kMinStringBytes, " bytes each but only ",
                                      remaining(), " bytes remain (file size ", size_, ")"));
        }
        std::vector<std::string> v;
        v.reserve(count);
        element_path_.push_back(0);
        for (uint64_t i = 0; i < count; ++i) {
          element_path_.back() = i;
          absl::string_view s;
          BN_RETURN_IF_ERROR(ReadString(&s, "string length"));
          v.emplace_back(s.data(), s.size());
        }
        element_path_.pop_back();
        *out = Value::StringArray(std::move(v));
        return absl::OkStatus();
      }
      case ValueType::ARRAY: {
        if (count > remaining() / kMinNestedArrayBytes) {
          return Corrupt(absl::StrCat("truncated: array of ", count, " arrays at offset ", pos_,
                                      " needs at least ", kMinNestedArrayBytes,
                                      " bytes each but only ", remaining(),
                                      " bytes remain (file size ", size_, ")"));
        }
        std::vector<Value> v(count);
        element_path_.push_back(0);
        for (uint64_t i = 0; i < count; ++i) {
          element_path_.back() = i;
          BN_RETURN_IF_ERROR(ReadArray(depth + 1, &v[i]));
        }
        element_path_.pop_back();
        *out = Value::ArrayOfArrays(std::move(v));
        return absl::OkStatus();
      }
    }
    return Corrupt("unreachable array element type");
  }

  template <typename T>
  absl::Status ReadTyped(uint64_t count, Value (*make)(std::vector<T>), Value* out) {
    std::vector<T> v;
    BN_RETURN_IF_ERROR(ReadFixedArray(count, &v));
    *out = make(std::move(v));
    return absl::OkStatus();
  }

  absl::Status ReadHeader() {
    context_ = "GGUF header";
    uint32_t magic = 0;
    BN_RETURN_IF_ERROR(Read(&magic, "magic"));
    if (magic != kGgufMagic) {
      return Corrupt(absl::StrFormat("bad magic 0x%08x, expected 0x%08x (\"GGUF\")", magic,
                                     kGgufMagic));
    }
    BN_RETURN_IF_ERROR(Read(&out_->version_, "version"));
    const uint32_t v = out_->version_;
    if (v != 2 && v != 3) {
      const uint32_t swapped = __builtin_bswap32(v);
      return absl::UnimplementedError(absl::StrCat(
          "unsupported GGUF version ", v,
          swapped == 2 || swapped == 3 ? " (a big-endian file, which is not supported)" : "",
          "; only versions 2 and 3 are supported"));
    }
    BN_RETURN_IF_ERROR(Read(&tensor_count_, "tensor count"));
    BN_RETURN_IF_ERROR(Read(&kv_count_, "metadata count"));
    // Cheap plausibility checks so that reserve() below never sees a huge count.
    if (kv_count_ > remaining() / kMinKvBytes ||
        tensor_count_ > remaining() / kMinTensorInfoBytes ||
        kv_count_ * kMinKvBytes + tensor_count_ * kMinTensorInfoBytes > remaining()) {
      return Corrupt(absl::StrCat("truncated or corrupt: metadata count ", kv_count_,
                                  " and tensor count ", tensor_count_, " cannot fit in the ",
                                  remaining(),
                                  " bytes after the header (file size ", size_, ")"));
    }
    return absl::OkStatus();
  }

  absl::Status ReadMetadata() {
    out_->metadata_.reserve(kv_count_);
    out_->key_index_.reserve(kv_count_);
    for (uint64_t i = 0; i < kv_count_; ++i) {
      context_ = absl::StrCat("metadata entry ", i);
      absl::string_view key;
      BN_RETURN_IF_ERROR(ReadString(&key, "key"));
      context_ = absl::StrCat("metadata key '", key, "'");
      ValueType type;
      BN_RETURN_IF_ERROR(ReadValueType(&type, "value type"));
      KeyValue kv{std::string(key), Value()};
      BN_RETURN_IF_ERROR(ReadValue(type, 0, &kv.value));
      if (!out_->key_index_.emplace(kv.key, out_->metadata_.size()).second) {
        return Corrupt(absl::StrCat("duplicate key (entries ", out_->key_index_[kv.key],
                                    " and ", i, ")"));
      }
      out_->metadata_.push_back(std::move(kv));
    }
    return absl::OkStatus();
  }

  absl::Status ReadAlignment() {
    const Value* v = out_->FindKey(kAlignmentKey);
    if (v == nullptr) return absl::OkStatus();
    context_ = absl::StrCat("metadata key '", Av(kAlignmentKey), "'");
    if (v->type() != ValueType::UINT32) {
      return Corrupt(absl::StrCat("must be u32, found ", v->TypeName()));
    }
    const uint32_t a = static_cast<uint32_t>(v->raw_bits());
    if (!std::has_single_bit(a)) {
      return Corrupt(absl::StrCat("alignment ", a, " is not a power of two"));
    }
    out_->alignment_ = a;
    return absl::OkStatus();
  }

  absl::Status ReadTensorInfos() {
    out_->tensors_.reserve(tensor_count_);
    out_->tensor_index_.reserve(tensor_count_);
    for (uint64_t i = 0; i < tensor_count_; ++i) {
      context_ = absl::StrCat("tensor info ", i);
      absl::string_view name;
      BN_RETURN_IF_ERROR(ReadString(&name, "tensor name"));
      context_ = absl::StrCat("tensor '", name, "'");
      TensorInfo t;
      t.name = std::string(name);
      BN_RETURN_IF_ERROR(Read(&t.n_dims, "n_dims"));
      if (t.n_dims < 1 || t.n_dims > static_cast<uint32_t>(kMaxDims)) {
        return Corrupt(absl::StrCat("n_dims ", t.n_dims, " out of range [1, ", kMaxDims, "]"));
      }
      for (uint32_t d = 0; d < t.n_dims; ++d) {
        uint64_t ne = 0;
        BN_RETURN_IF_ERROR(Read(&ne, "dim"));
        if (ne == 0 || ne > static_cast<uint64_t>(INT64_MAX)) {
          return Corrupt(absl::StrCat("dim ", d, " is ", static_cast<int64_t>(ne),
                                      " (as u64: ", ne, "), must be positive"));
        }
        t.ne[d] = static_cast<int64_t>(ne);
      }
      uint32_t type_id = 0;
      BN_RETURN_IF_ERROR(Read(&type_id, "tensor type"));
      if (FindTypeTraits(type_id) == nullptr) {
        return Corrupt(absl::StrCat("unknown ggml type id ", type_id));
      }
      t.type = static_cast<GgmlType>(type_id);
      BN_RETURN_IF_ERROR(Read(&t.offset, "tensor offset"));
      absl::StatusOr<uint64_t> bytes = TensorBytes(t.type, t.dims());
      if (!bytes.ok()) return Corrupt(bytes.status().message());
      t.size_bytes = *bytes;
      if (!out_->tensor_index_.emplace(t.name, out_->tensors_.size()).second) {
        return Corrupt(absl::StrCat("duplicate tensor name (tensor infos ",
                                    out_->tensor_index_[t.name], " and ", i, ")"));
      }
      out_->tensors_.push_back(std::move(t));
    }
    return absl::OkStatus();
  }

  absl::Status PlaceTensors() {
    const uint64_t a = out_->alignment_;
    const uint64_t header_end = pos_;
    out_->data_offset_ = (header_end + a - 1) / a * a;
    std::vector<TensorInfo>& tensors = out_->tensors_;
    if (tensors.empty()) return absl::OkStatus();
    const uint64_t base = out_->data_offset_;
    if (base > size_) {
      context_ = "GGUF header";
      return Corrupt(absl::StrCat("data section starts at ", base,
                                  ", past end of file (size ", size_, ")"));
    }
    for (TensorInfo& t : tensors) {
      context_ = absl::StrCat("tensor '", t.name, "'");
      if (t.offset % a != 0) {
        return Corrupt(absl::StrCat("offset ", t.offset, " is not a multiple of the alignment ",
                                    a));
      }
      // 128-bit sums: offsets come straight from the file and may be near 2^64.
      const unsigned __int128 start = static_cast<unsigned __int128>(base) + t.offset;
      const unsigned __int128 end = start + t.size_bytes;
      if (end > size_) {
        return Corrupt(absl::StrCat("data [", U128ToString(start), ", ", U128ToString(end),
                                    ") extends past end of file (size ", size_, ")"));
      }
      t.data = data_ + static_cast<size_t>(start);
    }
    std::vector<size_t> order(tensors.size());
    std::iota(order.begin(), order.end(), size_t{0});
    std::sort(order.begin(), order.end(),
              [&](size_t x, size_t y) { return tensors[x].offset < tensors[y].offset; });
    for (size_t k = 1; k < order.size(); ++k) {
      const TensorInfo& p = tensors[order[k - 1]];
      const TensorInfo& q = tensors[order[k]];
      if (p.offset + p.size_bytes > q.offset) {
        return absl::InvalidArgumentError(absl::StrCat(
            "tensors '", p.name, "' [", p.offset, ", ", p.offset + p.size_bytes, ") and '",
            q.name, "' [", q.offset, ", ", q.offset + q.size_bytes,
            ") overlap (offsets relative to the data section at ", base, ")"));
      }
    }
    return absl::OkStatus();
  }

  const uint8_t* data_;
  size_t size_;
  GgufFile* out_;
  size_t pos_ = 0;
  uint64_t tensor_count_ = 0;
  uint64_t kv_count_ = 0;
  std::string context_;            // What is being read: "tensor 'x'", "metadata key 'k'".
  std::vector<uint64_t> element_path_;  // Indices into the arrays being read.
};

absl::StatusOr<std::unique_ptr<GgufFile>> GgufFile::Parse(const uint8_t* data, size_t size) {
  auto file = std::unique_ptr<GgufFile>(new GgufFile());
  file->image_ = data;
  file->size_ = size;
  Parser parser(data, size, file.get());
  BN_RETURN_IF_ERROR(parser.Run());
  return file;
}

absl::StatusOr<std::unique_ptr<GgufFile>> GgufFile::Open(const std::string& path) {
  BN_ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> mapping, MappedFile::Open(path));
  absl::StatusOr<std::unique_ptr<GgufFile>> file = Parse(mapping->data(), mapping->size());
  if (!file.ok()) return Annotate(file.status(), absl::StrCat("'", path, "': "));
  (*file)->mapping_ = std::move(mapping);
  return file;
}

const Value* GgufFile::FindKey(std::string_view key) const {
  auto it = key_index_.find(Av(key));
  return it == key_index_.end() ? nullptr : &metadata_[it->second].value;
}

const TensorInfo* GgufFile::FindTensor(std::string_view name) const {
  auto it = tensor_index_.find(Av(name));
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {

template <typename T>
absl::StatusOr<T> GetAs(const GgufFile& file, std::string_view key,
                        absl::StatusOr<T> (Value::*convert)() const) {
  const Value* v = file.FindKey(key);
  if (v == nullptr) return absl::NotFoundError(absl::StrCat("metadata key '", Av(key), "' not found"));
  absl::StatusOr<T> r = (v->*convert)();
  if (!r.ok()) return Annotate(r.status(), absl::StrCat("metadata key '", Av(key), "': "));
  return r;
}

}  // namespace

absl::StatusOr<uint32_t> GgufFile::GetU32(std::string_view key) const {
  return GetAs(*this, key, &Value::ToU32);
}
absl::StatusOr<int32_t> GgufFile::GetI32(std::string_view key) const {
  return GetAs(*this, key, &Value::ToI32);
}
absl::StatusOr<uint64_t> GgufFile::GetU64(std::string_view key) const {
  return GetAs(*this, key, &Value::ToU64);
}
absl::StatusOr<int64_t> GgufFile::GetI64(std::string_view key) const {
  return GetAs(*this, key, &Value::ToI64);
}
absl::StatusOr<float> GgufFile::GetF32(std::string_view key) const {
  return GetAs(*this, key, &Value::ToF32);
}
absl::StatusOr<double> GgufFile::GetF64(std::string_view key) const {
  return GetAs(*this, key, &Value::ToF64);
}
absl::StatusOr<bool> GgufFile::GetBool(std::string_view key) const {
  return GetAs(*this, key, &Value::ToBool);
}
absl::StatusOr<std::string_view> GgufFile::GetString(std::string_view key) const {
  return GetAs(*this, key, &Value::ToString);
}
absl::StatusOr<absl::Span<const std::string>> GgufFile::GetStringArray(
    std::string_view key) const {
  return GetAs(*this, key, &Value::ToStringArray);
}
absl::StatusOr<absl::Span<const float>> GgufFile::GetF32Array(std::string_view key) const {
  return GetAs(*this, key, &Value::ToF32Array);
}
absl::StatusOr<absl::Span<const int32_t>> GgufFile::GetI32Array(std::string_view key) const {
  return GetAs(*this, key, &Value::ToI32Array);
}
absl::StatusOr<absl::Span<const uint32_t>> GgufFile::GetU32Array(std::string_view key) const {
  return GetAs(*this, key, &Value::ToU32Array);
}

}  // namespace wf::gguf
