// @brief Backend discovery and CUDA entry points for builds without the
// CUDA backend: no device exists, and every CUDA entry point says so.
#include "kernels/backend.h"
#include "kernels/cuda/cuda_api.h"

namespace jumpflow::kernels {

bool CudaCompiled() { return false; }
int CudaDeviceCount() { return 0; }

namespace cuda_internal {
namespace {
constexpr const char* kNotCompiled = "the CUDA backend was not compiled into this build";
}  // namespace

bool IsDevicePointer(const void*) { return false; }
std::string SampleStepCuda(const SampleStepArgs&, bool, SampleStepResult*) { return kNotCompiled; }
std::string GillespieCuda(const GillespieArgs&, bool, GillespieResult*) { return kNotCompiled; }
std::string FusedLossCuda(const LossArgs<float>&, bool, LossResult*) { return kNotCompiled; }

}  // namespace cuda_internal
}  // namespace jumpflow::kernels
