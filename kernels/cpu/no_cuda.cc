// @brief Backend discovery for builds without the CUDA backend.
#include "kernels/backend.h"

namespace jumpflow::kernels {

bool CudaCompiled() { return false; }
int CudaDeviceCount() { return 0; }

}  // namespace jumpflow::kernels
