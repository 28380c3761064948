// @brief Kernel backends (CPU, CUDA) and the one place that chooses them.
//
// kernels/ holds the hot path behind one backend-neutral interface: the CPU
// backend (kernels/cpu/, oneTBB + vectorised loops) is always built and is
// the reference; the CUDA backend (kernels/cuda/) is built when nvcc is found
// (JUMPFLOW_CUDA=AUTO|ON) and must match the CPU results. Asking for CUDA when
// it was not built, or when no GPU is present, is an error, never a silent
// fallback. The CUDA backend's scratch memory is stream-ordered
// (cudaMallocAsync); its first call on a device raises the release
// threshold of that device's default memory pool so freed memory stays in
// the pool (a process-wide setting; see kernels/cuda/cuda_util.cuh).
//
// Example:
//   JUMPFLOW_ASSIGN_OR_RETURN(Backend b, ParseBackend(flag_value));
//   JUMPFLOW_RETURN_IF_ERROR(CheckBackendAvailable(b));
//   Backend where = PointerBackend(logits);  // kCuda for device memory
#ifndef JUMPFLOW_KERNELS_BACKEND_H_
#define JUMPFLOW_KERNELS_BACKEND_H_


#include "absl/strings/string_view.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace jumpflow::kernels {

// Backend names where a kernel runs.
enum class Backend { kCpu = 0, kCuda = 1 };

// ParseBackend accepts "cpu" or "cuda".
absl::StatusOr<Backend> ParseBackend(absl::string_view name);

// CudaCompiled says whether this build contains the CUDA backend.
bool CudaCompiled();

// CudaDeviceCount returns the number of usable CUDA devices (asked once per
// process, then cached): 0 when the backend was not built, no driver is
// loaded or no GPU is present.
int CudaDeviceCount();

// PointerBackend returns Backend::kCuda when `p` points to CUDA device (or
// managed) memory and Backend::kCpu otherwise (host memory, null, or a build
// or machine without CUDA). The dispatching kernel overloads
// (kernels/loss.h, kernels/sample_step.h, kernels/gillespie.h) use it on
// their main input.
Backend PointerBackend(const void* p);

// CheckBackendAvailable returns OK when `backend` can run here, otherwise
// FailedPrecondition saying why (not compiled in, or no device).
absl::Status CheckBackendAvailable(Backend backend);

}  // namespace jumpflow::kernels

#endif  // JUMPFLOW_KERNELS_BACKEND_H_
