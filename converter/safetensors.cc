#include "converter/safetensors.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstring>
#include <exception>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "common/quant/fp16.h"
#include "common/status_macros.h"
#include "converter/internal/json_util.h"
#include "common/string_view_compat.h"
#include "nlohmann/json.hpp"

namespace wf::convert {
namespace {

// Tensor bytes are copied as stored, and safetensors stores little-endian.
static_assert(std::endian::native == std::endian::little);

using Json = nlohmann::ordered_json;
using ::wf::Av;

struct DtypeEntry {
  SafetensorsDtype dtype;
  std::string_view name;
  size_t size;
};

constexpr std::array<DtypeEntry, 15> kDtypes = {{
    {SafetensorsDtype::kBool, "BOOL", 1},
    {SafetensorsDtype::kU8, "U8", 1},
    {SafetensorsDtype::kI8, "I8", 1},
    {SafetensorsDtype::kF8E4M3, "F8_E4M3", 1},
    {SafetensorsDtype::kF8E5M2, "F8_E5M2", 1},
    {SafetensorsDtype::kU16, "U16", 2},
    {SafetensorsDtype::kI16, "I16", 2},
    {SafetensorsDtype::kF16, "F16", 2},
    {SafetensorsDtype::kBF16, "BF16", 2},
    {SafetensorsDtype::kU32, "U32", 4},
    {SafetensorsDtype::kI32, "I32", 4},
    {SafetensorsDtype::kF32, "F32", 4},
    {SafetensorsDtype::kU64, "U64", 8},
    {SafetensorsDtype::kI64, "I64", 8},
    {SafetensorsDtype::kF64, "F64", 8},
}};

// Converting in chunks keeps the raw-bytes staging buffer small next to the
// float output.
constexpr size_t kConvertChunkElements = size_t{1} << 20;
constexpr size_t kMaxIndexJsonBytes = size_t{64} << 20;

absl::Status ErrnoError(const std::string& what, int err) {
  const std::string msg = absl::StrCat(what, ": ", std::strerror(err));
  if (err == ENOENT) return absl::NotFoundError(msg);
  if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(msg);
  return absl::InternalError(msg);
}

absl::Status PReadFull(int fd, const std::string& path, uint64_t offset, void* dst, size_t n) {
  auto* p = static_cast<char*>(dst);
  while (n > 0) {
    const size_t want = std::min<size_t>(n, size_t{1} << 30);
    const ssize_t got = ::pread(fd, p, want, static_cast<off_t>(offset));
    if (got < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(
          absl::StrCat("read of ", want, " bytes at offset ", offset, " of '", path, "' failed"),
          errno);
    }
    if (got == 0) {
      return absl::DataLossError(absl::StrCat("'", path, "' ends at offset ", offset, " with ", n,
                                              " bytes still expected (file shrank?)"));
    }
    p += got;
    n -= static_cast<size_t>(got);
    offset += static_cast<uint64_t>(got);
  }
  return absl::OkStatus();
}

bool IsRegularFile(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string JoinPath(const std::string& dir, std::string_view name) {
  if (!dir.empty() && dir.back() == '/') return absl::StrCat(dir, Av(name));
  return absl::StrCat(dir, "/", Av(name));
}

absl::StatusOr<std::vector<std::string>> ListDir(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return ErrnoError(absl::StrCat("cannot list directory '", dir, "'"), errno);
  std::vector<std::string> names;
  while (const dirent* e = ::readdir(d)) {
    const std::string_view name = e->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

// Parses one header entry; `data_size` is the size of the data area.
absl::StatusOr<TensorInfo> ParseEntry(const std::string& name, const Json& entry,
                                      uint64_t data_size) {
  const std::string where = absl::StrCat("tensor '", Av(name), "'");
  if (!entry.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": header entry is a JSON ", internal::JsonTypeName(entry), ", not an object"));
  }
  TensorInfo info;
  info.name = name;

  auto dtype_it = entry.find("dtype");
  if (dtype_it == entry.end() || !dtype_it->is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": missing string \"dtype\""));
  }
  auto dtype = ParseSafetensorsDtype(dtype_it->get<std::string>());
  if (!dtype.ok())
    return absl::InvalidArgumentError(absl::StrCat(where, ": ", dtype.status().message()));
  info.dtype = *dtype;

  auto shape_it = entry.find("shape");
  if (shape_it == entry.end() || !shape_it->is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": missing array \"shape\""));
  }
  uint64_t numel = 1;
  for (size_t i = 0; i < shape_it->size(); ++i) {
    const Json& dim = (*shape_it)[i];
    if (dim.is_number_integer() && !dim.is_number_unsigned()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": shape[", i, "] is negative (", dim.get<int64_t>(), ")"));
    }
    if (!dim.is_number_unsigned()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": shape[", i, "] is a JSON ",
                                                     internal::JsonTypeName(dim),
                                                     ", not a non-negative integer"));
    }
    const uint64_t d = dim.get<uint64_t>();
    if (d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
        __builtin_mul_overflow(numel, d, &numel)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": element count overflows at shape[", i, "] = ", d));
    }
    info.shape.push_back(static_cast<int64_t>(d));
  }
  info.numel = numel;
  uint64_t expected_bytes = 0;
  if (__builtin_mul_overflow(numel, SafetensorsDtypeSize(info.dtype), &expected_bytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": byte size overflows (", numel, " elements)"));
  }

  auto off_it = entry.find("data_offsets");
  if (off_it == entry.end() || !off_it->is_array() || off_it->size() != 2 ||
      !(*off_it)[0].is_number_unsigned() || !(*off_it)[1].is_number_unsigned()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": \"data_offsets\" must be an array of two non-negative integers"));
  }
  info.data_begin = (*off_it)[0].get<uint64_t>();
  info.data_end = (*off_it)[1].get<uint64_t>();
  if (info.data_begin > info.data_end) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": data_offsets [", info.data_begin, ", ",
                                                   info.data_end, "] end before they begin"));
  }
  if (info.data_end > data_size) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": data_offsets [", info.data_begin, ", ", info.data_end,
                     "] run past the end of the data area (", data_size, " bytes)"));
  }
  if (info.data_end - info.data_begin != expected_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": data_offsets [", info.data_begin, ", ", info.data_end, "] span ",
        info.data_end - info.data_begin, " bytes but dtype ", Av(SafetensorsDtypeName(info.dtype)),
        " with ", numel, " elements needs ", expected_bytes));
  }
  return info;
}

}  // namespace

std::string_view SafetensorsDtypeName(SafetensorsDtype dtype) {
  for (const DtypeEntry& e : kDtypes) {
    if (e.dtype == dtype) return e.name;
  }
  return "?";
}

size_t SafetensorsDtypeSize(SafetensorsDtype dtype) {
  for (const DtypeEntry& e : kDtypes) {
    if (e.dtype == dtype) return e.size;
  }
  return 0;
}

absl::StatusOr<SafetensorsDtype> ParseSafetensorsDtype(std::string_view name) {
  std::vector<absl::string_view> known;
  for (const DtypeEntry& e : kDtypes) {
    if (e.name == name) return e.dtype;
    known.push_back(Av(e.name));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown dtype \"", Av(name), "\" (supported: ", absl::StrJoin(known, ", "), ")"));
}

// ---------------------------------------------------------------------------
// SafetensorsFile

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(absl::StrCat("cannot open '", path, "'"), errno);
  // Owns fd from here on, so every early return closes it.
  auto file = std::unique_ptr<SafetensorsFile>(new SafetensorsFile(path, fd));
  struct stat st {};
  if (::fstat(fd, &st) != 0) return ErrnoError(absl::StrCat("cannot stat '", path, "'"), errno);
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat("'", path, "' is not a regular file"));
  }
  file->file_size_ = static_cast<uint64_t>(st.st_size);
  if (file->file_size_ < 8) {
    return absl::InvalidArgumentError(absl::StrCat("'", path, "' is truncated: ", file->file_size_,
                                                   " bytes, less than the 8-byte header length"));
  }
  uint8_t len_bytes[8];
  BN_RETURN_IF_ERROR(PReadFull(fd, path, 0, len_bytes, sizeof(len_bytes)));
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | len_bytes[i];
  if (header_len > file->file_size_ - 8) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", path, "': header length ", header_len, " runs past the end of the file (",
                     file->file_size_, " bytes, so at most ", file->file_size_ - 8, ")"));
  }
  if (header_len > kMaxSafetensorsHeaderBytes) {
    return absl::InvalidArgumentError(absl::StrCat("'", path, "': header length ", header_len,
                                                   " exceeds the limit of ",
                                                   kMaxSafetensorsHeaderBytes, " bytes"));
  }
  std::string header(header_len, '\0');
  BN_RETURN_IF_ERROR(PReadFull(fd, path, 8, header.data(), header.size()));
  file->data_offset_ = 8 + header_len;
  absl::Status s = file->ParseHeader(header, file->file_size_ - file->data_offset_);
  if (!s.ok()) {
    return absl::Status(s.code(), absl::StrCat("'", path, "': ", s.message()));
  }
  return file;
}

SafetensorsFile::~SafetensorsFile() {
  if (fd_ >= 0) ::close(fd_);
}

absl::Status SafetensorsFile::ParseHeader(std::string_view header, uint64_t data_size) {
  BN_ASSIGN_OR_RETURN(Json root, internal::ParseJson(header, "header", kMaxSafetensorsJsonDepth));
  if (!root.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("header is a JSON ", internal::JsonTypeName(root), ", not an object"));
  }
  for (auto it = root.begin(); it != root.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it.value().is_object()) {
        return absl::InvalidArgumentError("\"__metadata__\" is not an object");
      }
      for (auto m = it.value().begin(); m != it.value().end(); ++m) {
        if (!m.value().is_string()) {
          return absl::InvalidArgumentError(
              absl::StrCat("\"__metadata__\" value of \"", m.key(), "\" is a JSON ",
                           internal::JsonTypeName(m.value()), ", not a string"));
        }
        metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    if (it.key().empty())
      return absl::InvalidArgumentError("header has a tensor with an empty name");
    BN_ASSIGN_OR_RETURN(TensorInfo info, ParseEntry(it.key(), it.value(), data_size));
    index_.emplace(info.name, tensors_.size());
    tensors_.push_back(std::move(info));
  }

  std::vector<const TensorInfo*> by_offset;
  for (const TensorInfo& t : tensors_) {
    if (t.nbytes() > 0) by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->data_begin < b->data_begin; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const TensorInfo& prev = *by_offset[i - 1];
    const TensorInfo& cur = *by_offset[i];
    if (cur.data_begin < prev.data_end) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensors '", prev.name, "' [", prev.data_begin, ", ", prev.data_end, ") and '", cur.name,
          "' [", cur.data_begin, ", ", cur.data_end, ") overlap"));
    }
  }
  return absl::OkStatus();
}

const TensorInfo* SafetensorsFile::Find(std::string_view name) const {
  auto it = index_.find(Av(name));
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

absl::StatusOr<const TensorInfo*> SafetensorsFile::Get(std::string_view name) const {
  const TensorInfo* info = Find(name);
  if (info == nullptr) {
    return absl::NotFoundError(absl::StrCat("no tensor '", Av(name), "' in '", path_, "'"));
  }
  return info;
}

absl::Status SafetensorsFile::ReadTensor(std::string_view name, void* dst, size_t dst_size) const {
  BN_ASSIGN_OR_RETURN(const TensorInfo* info, Get(name));
  if (dst_size != info->nbytes()) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", Av(name), "' has ", info->nbytes(),
                                                   " bytes, destination has ", dst_size));
  }
  return PReadFull(fd_, path_, data_offset_ + info->data_begin, dst, dst_size);
}

absl::Status SafetensorsFile::ReadTensorRange(std::string_view name, uint64_t byte_offset,
                                              void* dst, size_t n) const {
  BN_ASSIGN_OR_RETURN(const TensorInfo* info, Get(name));
  if (byte_offset > info->nbytes() || n > info->nbytes() - byte_offset) {
    return absl::InvalidArgumentError(absl::StrCat("range [", byte_offset, ", +", n,
                                                   ") is outside tensor '", Av(name), "' (",
                                                   info->nbytes(), " bytes)"));
  }
  return PReadFull(fd_, path_, data_offset_ + info->data_begin + byte_offset, dst, n);
}

absl::StatusOr<std::vector<float>> SafetensorsFile::ReadTensorAsF32(std::string_view name) const {
  BN_ASSIGN_OR_RETURN(const TensorInfo* info, Get(name));
  const SafetensorsDtype dtype = info->dtype;
  if (dtype != SafetensorsDtype::kF32 && dtype != SafetensorsDtype::kF16 &&
      dtype != SafetensorsDtype::kBF16) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", Av(name), "' has dtype ",
                                                   Av(SafetensorsDtypeName(dtype)),
                                                   "; only F32, F16 and BF16 convert to F32"));
  }
  if (info->numel > std::numeric_limits<size_t>::max() / sizeof(float)) {
    return absl::ResourceExhaustedError(absl::StrCat("tensor '", Av(name), "' is too large"));
  }
  std::vector<float> out;
  try {
    out.resize(info->numel);
  } catch (const std::exception&) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot allocate ", info->numel, " floats for tensor '", Av(name), "'"));
  }
  if (dtype == SafetensorsDtype::kF32) {
    BN_RETURN_IF_ERROR(ReadTensor(name, out.data(), info->nbytes()));
    return out;
  }
  std::vector<uint16_t> raw(std::min<uint64_t>(info->numel, kConvertChunkElements));
  for (uint64_t done = 0; done < info->numel;) {
    const size_t n = std::min<uint64_t>(raw.size(), info->numel - done);
    BN_RETURN_IF_ERROR(ReadTensorRange(name, done * 2, raw.data(), n * 2));
    float* dst = out.data() + done;
    if (dtype == SafetensorsDtype::kF16) {
      for (size_t i = 0; i < n; ++i) dst[i] = quant::F16ToF32(raw[i]);
    } else {
      for (size_t i = 0; i < n; ++i) dst[i] = quant::BF16ToF32(raw[i]);
    }
    done += n;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Checkpoint

absl::StatusOr<std::unique_ptr<Checkpoint>> Checkpoint::Open(const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    return ErrnoError(absl::StrCat("cannot open checkpoint '", dir, "'"), errno);
  }
  auto ckpt = std::unique_ptr<Checkpoint>(new Checkpoint(dir));
  if (S_ISREG(st.st_mode)) {
    // A single .safetensors file given directly.
    BN_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(dir));
    BN_RETURN_IF_ERROR(ckpt->AddFile(std::move(file)));
    return ckpt;
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint '", dir, "' is neither a directory nor a file"));
  }
  const std::string single = JoinPath(dir, kSingleFileName);
  const std::string index = JoinPath(dir, kIndexFileName);
  // Same precedence as transformers: the single file wins over an index.
  if (IsRegularFile(single)) {
    BN_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(single));
    BN_RETURN_IF_ERROR(ckpt->AddFile(std::move(file)));
    return ckpt;
  }
  if (IsRegularFile(index)) {
    BN_RETURN_IF_ERROR(ckpt->OpenIndexed(index));
    return ckpt;
  }
  BN_ASSIGN_OR_RETURN(std::vector<std::string> names, ListDir(dir));
  std::string detail;
  std::vector<std::string> shards;
  bool has_bin = false;
  for (const std::string& n : names) {
    if (n.size() > 12 && n.substr(n.size() - 12) == ".safetensors") shards.push_back(n);
    if (n.size() > 4 && n.substr(n.size() - 4) == ".bin") has_bin = true;
  }
  if (names.empty()) {
    detail = "; the directory is empty";
  } else if (!shards.empty()) {
    detail = absl::StrCat("; it has ", absl::StrJoin(shards, ", "),
                          " but no index saying which is the model");
  } else if (has_bin) {
    detail = "; PyTorch .bin checkpoints are not supported, only safetensors";
  } else {
    detail = "; it has no .safetensors files";
  }
  return absl::NotFoundError(absl::StrCat("checkpoint directory '", dir, "' has neither ",
                                          Av(kSingleFileName), " nor ", Av(kIndexFileName),
                                          detail));
}

absl::Status Checkpoint::OpenIndexed(const std::string& index_path) {
  BN_ASSIGN_OR_RETURN(std::string text, ReadFileToString(index_path, kMaxIndexJsonBytes));
  BN_ASSIGN_OR_RETURN(Json root, internal::ParseJson(text, index_path));
  if (!root.is_object() || !root.contains("weight_map") || !root["weight_map"].is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", index_path, "' has no \"weight_map\" object"));
  }
  const Json& weight_map = root["weight_map"];
  if (weight_map.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("'", index_path, "': \"weight_map\" is empty"));
  }
  // shard file -> tensors mapped to it; tensor -> shard.
  std::map<std::string, std::vector<std::string>> shards;
  absl::flat_hash_map<std::string, std::string> tensor_to_shard;
  for (auto it = weight_map.begin(); it != weight_map.end(); ++it) {
    if (!it.value().is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", index_path, "': weight_map entry of '", it.key(), "' is not a string"));
    }
    const std::string shard = it.value().get<std::string>();
    if (shard.empty() || shard == "." || shard == ".." || shard.find('/') != std::string::npos ||
        shard.find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("'", index_path, "': tensor '", it.key(),
                                                     "' maps to invalid shard name '", shard, "'"));
    }
    shards[shard].push_back(it.key());
    tensor_to_shard.emplace(it.key(), shard);
  }
  for (const auto& [shard, mapped] : shards) {
    const std::string shard_path = JoinPath(dir_, shard);
    if (!IsRegularFile(shard_path)) {
      return absl::NotFoundError(absl::StrCat("shard '", shard, "' (holding tensor '", mapped[0],
                                              "' per ", Av(kIndexFileName), ") does not exist in '",
                                              dir_, "'"));
    }
    BN_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(shard_path));
    for (const std::string& name : mapped) {
      if (file->Find(name) == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat(Av(kIndexFileName), " maps tensor '",
                                                       Av(name), "' to shard '", shard,
                                                       "', which does not contain it"));
      }
    }
    const SafetensorsFile* raw = file.get();
    BN_RETURN_IF_ERROR(AddFile(std::move(file)));
    for (const TensorInfo& t : raw->tensors()) {
      auto mapped_to = tensor_to_shard.find(t.name);
      if (mapped_to == tensor_to_shard.end()) {
        return absl::InvalidArgumentError(absl::StrCat("tensor '", t.name, "' of shard '", shard,
                                                       "' is not listed in ", Av(kIndexFileName)));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status Checkpoint::AddFile(std::unique_ptr<SafetensorsFile> file) {
  for (const TensorInfo& t : file->tensors()) {
    auto [it, inserted] = index_.emplace(t.name, tensors_.size());
    if (!inserted) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", t.name, "' appears in both '",
                                                     tensors_[it->second].file->path(), "' and '",
                                                     file->path(), "'"));
    }
    tensors_.push_back(TensorRef{&t, file.get()});
  }
  files_.push_back(std::move(file));
  return absl::OkStatus();
}

const TensorRef* Checkpoint::Find(std::string_view name) const {
  auto it = index_.find(Av(name));
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

absl::StatusOr<const TensorRef*> Checkpoint::Get(std::string_view name) const {
  const TensorRef* ref = Find(name);
  if (ref == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("no tensor '", Av(name), "' in checkpoint '", dir_, "'"));
  }
  return ref;
}

absl::Status Checkpoint::ReadTensor(std::string_view name, void* dst, size_t dst_size) const {
  BN_ASSIGN_OR_RETURN(const TensorRef* ref, Get(name));
  return ref->file->ReadTensor(name, dst, dst_size);
}

absl::Status Checkpoint::ReadTensorRange(std::string_view name, uint64_t byte_offset, void* dst,
                                         size_t n) const {
  BN_ASSIGN_OR_RETURN(const TensorRef* ref, Get(name));
  return ref->file->ReadTensorRange(name, byte_offset, dst, n);
}

absl::StatusOr<std::vector<float>> Checkpoint::ReadTensorAsF32(std::string_view name) const {
  BN_ASSIGN_OR_RETURN(const TensorRef* ref, Get(name));
  return ref->file->ReadTensorAsF32(name);
}

// ---------------------------------------------------------------------------
// SafetensorsWriter

SafetensorsWriter::SafetensorsWriter(std::unique_ptr<AtomicFileWriter> out)
    : out_(std::move(out)) {}

SafetensorsWriter::~SafetensorsWriter() = default;

absl::StatusOr<std::unique_ptr<SafetensorsWriter>> SafetensorsWriter::Create(
    const std::string& path) {
  BN_ASSIGN_OR_RETURN(auto out, AtomicFileWriter::Create(path));
  return std::unique_ptr<SafetensorsWriter>(new SafetensorsWriter(std::move(out)));
}

absl::Status SafetensorsWriter::SetMetadata(std::string key, std::string value) {
  if (header_written_) {
    return absl::FailedPreconditionError("SetMetadata after tensor data was written");
  }
  for (auto& [k, v] : metadata_) {
    if (k == key) {
      v = std::move(value);
      return absl::OkStatus();
    }
  }
  metadata_.emplace_back(std::move(key), std::move(value));
  return absl::OkStatus();
}

absl::Status SafetensorsWriter::Declare(std::string name, SafetensorsDtype dtype,
                                        std::vector<int64_t> shape) {
  if (header_written_) {
    return absl::FailedPreconditionError(
        absl::StrCat("Declare('", Av(name), "') after tensor data was written"));
  }
  if (name.empty() || name == "__metadata__") {
    return absl::InvalidArgumentError(absl::StrCat("invalid tensor name '", Av(name), "'"));
  }
  if (index_.contains(name)) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", Av(name), "' declared twice"));
  }
  uint64_t numel = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor '", Av(name), "': shape[", i, "] is negative (", shape[i], ")"));
    }
    if (__builtin_mul_overflow(numel, static_cast<uint64_t>(shape[i]), &numel)) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor '", Av(name), "': element count overflows"));
    }
  }
  uint64_t nbytes = 0;
  uint64_t end = 0;
  if (__builtin_mul_overflow(numel, SafetensorsDtypeSize(dtype), &nbytes) ||
      __builtin_add_overflow(data_size_, nbytes, &end)) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", Av(name), "': byte size overflows"));
  }
  TensorInfo info;
  info.name = std::move(name);
  info.dtype = dtype;
  info.shape = std::move(shape);
  info.numel = numel;
  info.data_begin = data_size_;
  info.data_end = end;
  data_size_ = end;
  index_.emplace(info.name, tensors_.size());
  tensors_.push_back(std::move(info));
  return absl::OkStatus();
}

absl::StatusOr<std::string> SafetensorsWriter::HeaderJson() const {
  Json root = Json::object();
  if (!metadata_.empty()) {
    Json meta = Json::object();
    for (const auto& [k, v] : metadata_) meta[k] = v;
    root["__metadata__"] = std::move(meta);
  }
  for (const TensorInfo& t : tensors_) {
    Json entry = Json::object();
    entry["dtype"] = std::string(SafetensorsDtypeName(t.dtype));
    entry["shape"] = t.shape;
    entry["data_offsets"] = Json::array({t.data_begin, t.data_end});
    root[t.name] = std::move(entry);
  }
  std::string text;
  try {
    text = root.dump();
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("cannot encode safetensors header: ", e.what()));
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

absl::Status SafetensorsWriter::EnsureHeaderWritten() {
  if (committed_) return absl::FailedPreconditionError("writer already committed");
  if (header_written_) return absl::OkStatus();
  BN_ASSIGN_OR_RETURN(std::string header, HeaderJson());
  uint8_t len[8];
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) {
    len[i] = static_cast<uint8_t>(n & 0xff);
    n >>= 8;
  }
  BN_RETURN_IF_ERROR(out_->Write(len, sizeof(len)));
  BN_RETURN_IF_ERROR(out_->Write(header.data(), header.size()));
  header_written_ = true;
  return absl::OkStatus();
}

absl::Status SafetensorsWriter::Write(const void* data, size_t size) {
  BN_RETURN_IF_ERROR(EnsureHeaderWritten());
  if (size > data_size_ - data_written_) {
    return absl::InvalidArgumentError(absl::StrCat("write of ", size, " bytes exceeds the ",
                                                   data_size_ - data_written_,
                                                   " bytes left of the declared tensors"));
  }
  BN_RETURN_IF_ERROR(out_->Write(data, size));
  data_written_ += size;
  return absl::OkStatus();
}

absl::Status SafetensorsWriter::WriteTensor(std::string_view name, const void* data, size_t size) {
  auto it = index_.find(Av(name));
  if (it == index_.end()) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", Av(name), "' was not declared"));
  }
  const TensorInfo& t = tensors_[it->second];
  if (t.data_begin != data_written_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "tensor '", Av(name), "' starts at data byte ", t.data_begin, " but ", data_written_,
        " bytes have been written; write tensors in declaration order"));
  }
  if (size != t.nbytes()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor '", Av(name), "' has ", t.nbytes(), " bytes, got ", size));
  }
  return Write(data, size);
}

absl::Status SafetensorsWriter::Commit() {
  BN_RETURN_IF_ERROR(EnsureHeaderWritten());
  if (data_written_ != data_size_) {
    std::string first_incomplete;
    for (const TensorInfo& t : tensors_) {
      if (t.data_end > data_written_) {
        first_incomplete = t.name;
        break;
      }
    }
    return absl::FailedPreconditionError(absl::StrCat("only ", data_written_, " of ", data_size_,
                                                      " data bytes written; tensor '",
                                                      first_incomplete, "' is incomplete"));
  }
  BN_RETURN_IF_ERROR(out_->Commit());
  committed_ = true;
  return absl::OkStatus();
}

}  // namespace wf::convert
