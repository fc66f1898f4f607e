// Per-ISA kernel tables, for dispatch.cc only. Each is defined in the file of
// its ISA, which is compiled with that ISA's flags: calling into a table the
// CPU cannot run is undefined (dispatch checks CpuSupports first).
//
// Nothing but declarations and constants may live here: an inline function
// defined in a header shared by files with different -m flags could be
// emitted with AVX-512 instructions and picked by the linker for the generic
// file.
#ifndef WF_WORKER_KERNELS_INTERNAL_ISA_TABLES_H_
#define WF_WORKER_KERNELS_INTERNAL_ISA_TABLES_H_

#include <cstdint>

#include "worker/kernels/kernels.h"

namespace wf::kernels::internal {

const KernelTable& GenericKernelTable();
const KernelTable& Avx2KernelTable();
const KernelTable& Avx512KernelTable();

// The I2_S products block their rows so the weights of one row block stay in
// L2 while every token tile of the call streams over them (Zen 3 has 512 KiB
// of L2 per core, Zen 4 1 MiB; half of the smaller leaves room for the
// activations).
inline constexpr int64_t kI2SRowBlockBytes = 192 * 1024;
inline constexpr int64_t kI2SMaxRowsPerBlock = 512;

}  // namespace wf::kernels::internal

#endif  // WF_WORKER_KERNELS_INTERNAL_ISA_TABLES_H_
