// Runtime ISA detection and kernel table selection.
#include <cpuid.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "worker/kernels/internal/isa_tables.h"
#include "worker/kernels/kernels.h"

namespace wf::kernels {
namespace {

struct CpuFeatures {
  bool avx2 = false;    // AVX2 + FMA + F16C, YMM state enabled by the OS
  bool avx512 = false;  // + AVX-512 F/BW/VL/DQ/VNNI, ZMM and mask state enabled
};

uint64_t ReadXcr0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

// A CPU can report AVX while the OS does not save the YMM/ZMM registers on a
// context switch; the instructions then fault, so XCR0 is checked as well.
CpuFeatures DetectCpuFeatures() {
  CpuFeatures f;
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return f;
  const bool osxsave = (ecx >> 27) & 1;
  const bool avx = (ecx >> 28) & 1;
  const bool fma = (ecx >> 12) & 1;
  const bool f16c = (ecx >> 29) & 1;
  if (!osxsave || !avx) return f;
  const uint64_t xcr0 = ReadXcr0();
  const bool os_ymm = (xcr0 & 0x6) == 0x6;    // SSE + AVX state
  const bool os_zmm = (xcr0 & 0xe6) == 0xe6;  // + opmask, ZMM_Hi256, Hi16_ZMM
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(7, 0, eax, ebx, ecx, edx);
  const bool avx2 = (ebx >> 5) & 1;
  const bool avx512f = (ebx >> 16) & 1;
  const bool avx512dq = (ebx >> 17) & 1;
  const bool avx512bw = (ebx >> 30) & 1;
  const bool avx512vl = (ebx >> 31) & 1;
  const bool avx512vnni = (ecx >> 11) & 1;
  f.avx2 = os_ymm && avx2 && fma && f16c;
  f.avx512 = f.avx2 && os_zmm && avx512f && avx512dq && avx512bw && avx512vl && avx512vnni;
  return f;
}

// Debian's Abseil has its own string_view type, distinct from std::string_view.
absl::string_view AbslView(std::string_view s) { return {s.data(), s.size()}; }

const CpuFeatures& Features() {
  static const CpuFeatures features = DetectCpuFeatures();
  return features;
}

}  // namespace

std::string_view IsaName(Isa isa) {
  switch (isa) {
    case Isa::kGeneric:
      return "generic";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kAvx512:
      return "avx512";
  }
  return "unknown";
}

absl::StatusOr<Isa> ParseIsa(std::string_view name) {
  std::string lower(name);
  for (char& c : lower) c = absl::ascii_tolower(static_cast<unsigned char>(c));
  for (Isa isa : {Isa::kGeneric, Isa::kAvx2, Isa::kAvx512}) {
    if (lower == IsaName(isa)) return isa;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown ISA name '", AbslView(name), "' (expected generic, avx2 or avx512)"));
}

bool CpuSupports(Isa isa) {
  switch (isa) {
    case Isa::kGeneric:
      return true;
    case Isa::kAvx2:
      return Features().avx2;
    case Isa::kAvx512:
      return Features().avx512;
  }
  return false;
}

Isa BestSupportedIsa() {
  if (CpuSupports(Isa::kAvx512)) return Isa::kAvx512;
  if (CpuSupports(Isa::kAvx2)) return Isa::kAvx2;
  return Isa::kGeneric;
}

const KernelTable* KernelsFor(Isa isa) {
  if (!CpuSupports(isa)) return nullptr;
  switch (isa) {
    case Isa::kGeneric:
      return &internal::GenericKernelTable();
    case Isa::kAvx2:
      return &internal::Avx2KernelTable();
    case Isa::kAvx512:
      return &internal::Avx512KernelTable();
  }
  return nullptr;
}

absl::StatusOr<const KernelTable*> SelectKernelsForOverride(std::string_view force_isa) {
  if (force_isa.empty()) return KernelsFor(BestSupportedIsa());
  absl::StatusOr<Isa> forced = ParseIsa(force_isa);
  if (!forced.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("BITNET_FORCE_ISA: ", forced.status().message()));
  }
  if (!CpuSupports(*forced)) {
    return absl::FailedPreconditionError(
        absl::StrCat("BITNET_FORCE_ISA=", AbslView(force_isa),
                     " but this CPU (or its OS) does not support ", AbslView(IsaName(*forced)),
                     "; the best supported ISA is ", AbslView(IsaName(BestSupportedIsa()))));
  }
  return KernelsFor(*forced);
}

absl::StatusOr<const KernelTable*> SelectKernels() {
  static const auto* const selected = [] {
    const char* env = std::getenv("BITNET_FORCE_ISA");
    return new absl::StatusOr<const KernelTable*>(
        SelectKernelsForOverride(env == nullptr ? "" : env));
  }();
  return *selected;
}

}  // namespace wf::kernels
