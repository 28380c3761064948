// @brief Backend selection.
#include "kernels/backend.h"

#include "absl/strings/str_cat.h"
#include "kernels/cuda/cuda_api.h"

namespace jumpflow::kernels {

absl::StatusOr<Backend> ParseBackend(absl::string_view name) {
  if (name == "cpu") return Backend::kCpu;
  if (name == "cuda") return Backend::kCuda;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown device '", name, "' (expected cpu or cuda)"));
}

Backend PointerBackend(const void* p) {
  return p != nullptr && cuda_internal::IsDevicePointer(p) ? Backend::kCuda : Backend::kCpu;
}

absl::Status CheckBackendAvailable(Backend backend) {
  if (backend == Backend::kCpu) return absl::OkStatus();
  if (!CudaCompiled()) {
    return absl::FailedPreconditionError(
        "the CUDA backend was not compiled into this build (configure with JUMPFLOW_CUDA=ON "
        "on a machine with nvcc)");
  }
  if (CudaDeviceCount() == 0) {
    return absl::FailedPreconditionError("the CUDA backend is built but no GPU is present");
  }
  return absl::OkStatus();
}

}  // namespace jumpflow::kernels
