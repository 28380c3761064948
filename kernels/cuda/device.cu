// @brief CUDA device discovery for the CUDA backend.
#include <cuda_runtime.h>

#include "kernels/backend.h"

namespace jumpflow::kernels {

bool CudaCompiled() { return true; }

int CudaDeviceCount() {
  int count = 0;
  // No driver or no device both mean "no usable GPU"; clear the sticky error.
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return count;
}

}  // namespace jumpflow::kernels
