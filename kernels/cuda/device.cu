// @brief CUDA device discovery for the CUDA backend.
#include <cuda_runtime.h>

#include "kernels/backend.h"

namespace jumpflow::kernels {

bool CudaCompiled() { return true; }

int CudaDeviceCount() {
  // Asked once per process (the dispatchers ask on every call).
  static const int count = [] {
    int n = 0;
    // No driver or no device both mean "no usable GPU"; clear the error.
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      cudaGetLastError();
      return 0;
    }
    return n;
  }();
  return count;
}

}  // namespace jumpflow::kernels
