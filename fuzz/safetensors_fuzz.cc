// Fuzz target: the safetensors reader on arbitrary bytes. The input becomes a
// file (a memfd) opened with SafetensorsFile::Open, exactly as the converter
// opens a checkpoint file; every tensor is then read whole, in a sub-range and,
// for the float dtypes, converted to F32.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "converter/safetensors.h"
#include "fuzz/fuzz_util.h"

namespace {

using ::wf::convert::SafetensorsDtype;
using ::wf::convert::SafetensorsFile;
using ::wf::fuzz::Fail;

// Tensors are read into buffers of their declared size; the header cannot
// declare more than the file holds, but cap it anyway to stay fast.
constexpr uint64_t kMaxReadBytes = uint64_t{1} << 20;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static wf::fuzz::MemFile* const file = new wf::fuzz::MemFile("model.safetensors");
  file->Assign(data, size);
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> opened = SafetensorsFile::Open(file->path());
  if (!opened.ok()) return 0;
  const SafetensorsFile& st = **opened;
  if (st.data_offset() > st.file_size()) Fail("data area starts past the end of the file");
  const uint64_t data_size = st.file_size() - st.data_offset();
  for (const wf::convert::TensorInfo& t : st.tensors()) {
    if (st.Find(t.name) != &t) Fail("Find does not find a listed tensor");
    if (t.data_begin > t.data_end || t.data_end > data_size) Fail("tensor outside the data area");
    if (t.nbytes() != t.numel * wf::convert::SafetensorsDtypeSize(t.dtype)) {
      Fail("tensor byte size does not match dtype x shape");
    }
    if (t.nbytes() > kMaxReadBytes) continue;
    std::vector<uint8_t> buf(static_cast<size_t>(t.nbytes()));
    if (!st.ReadTensor(t.name, buf.data(), buf.size()).ok()) Fail("ReadTensor of a valid tensor failed");
    // A range that starts inside and one that runs past the end.
    const uint64_t half = t.nbytes() / 2;
    if (!st.ReadTensorRange(t.name, half, buf.data(), buf.size() - half).ok()) {
      Fail("ReadTensorRange inside a valid tensor failed");
    }
    if (st.ReadTensorRange(t.name, half, buf.data(), buf.size() - half + 1).ok()) {
      Fail("ReadTensorRange past the end of a tensor succeeded");
    }
    if (t.dtype == SafetensorsDtype::kF32 || t.dtype == SafetensorsDtype::kF16 ||
        t.dtype == SafetensorsDtype::kBF16) {
      absl::StatusOr<std::vector<float>> f = st.ReadTensorAsF32(t.name);
      if (!f.ok() || f->size() != t.numel) Fail("ReadTensorAsF32 of a float tensor failed");
    }
  }
  if (st.Find("__metadata__") != nullptr) Fail("__metadata__ listed as a tensor");
  return 0;
}
