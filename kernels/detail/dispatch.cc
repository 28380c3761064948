// @brief Backend resolution for the kernel dispatchers.
#include "kernels/detail/dispatch.h"

#include "absl/strings/str_cat.h"
#include "kernels/cuda/cuda_api.h"

namespace jumpflow::kernels::detail {

absl::Status ResolveMemory(Backend backend, std::initializer_list<NamedPointer> pointers,
                           bool* host_pointers) {
  *host_pointers = true;
  if (backend == Backend::kCpu) {
    // Without a GPU no pointer can be device memory: no CUDA calls at all.
    if (CudaDeviceCount() == 0) return absl::OkStatus();
    for (const NamedPointer& p : pointers) {
      if (p.pointer != nullptr && cuda_internal::IsDevicePointer(p.pointer)) {
        return absl::InvalidArgumentError(
            absl::StrCat("'", p.name,
                         "' is CUDA device memory but the CPU backend was requested (use "
                         "Backend::kCuda, or the overload that dispatches on the pointers)"));
      }
    }
    return absl::OkStatus();
  }
  const absl::Status available = CheckBackendAvailable(backend);
  if (!available.ok()) return available;
  const char* first_name = nullptr;
  bool first_device = false;
  for (const NamedPointer& p : pointers) {
    if (p.pointer == nullptr) continue;
    const bool device = cuda_internal::IsDevicePointer(p.pointer);
    if (first_name == nullptr) {
      first_name = p.name;
      first_device = device;
    } else if (device != first_device) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", p.name, "' is ", device ? "device" : "host", " memory but '", first_name, "' is ",
          first_device ? "device" : "host", " memory: pass all-device or all-host pointers"));
    }
  }
  *host_pointers = !first_device;
  return absl::OkStatus();
}

}  // namespace jumpflow::kernels::detail
