// @brief Internal host entry points of the CUDA backend, callable from
// plain C++ (no CUDA or abseil headers). The public dispatchers
// (kernels/loss.cc, kernels/events.cc) validate arguments, check that the
// backend is available and turn the returned messages into absl::Status.
// Builds without CUDA link kernels/cpu/no_cuda.cc, whose versions return
// "not compiled".
//
// Each function returns an empty string on success or a message naming the
// failing CUDA call. `host_pointers` says whether the argument pointers are
// host memory (copied to the device, results copied back) or device memory
// (used in place). Every call synchronises its stream before returning.
//
// Example:
//   std::string err = cuda_internal::SampleStepCuda(args, /*host_pointers=*/false, &res);
//   if (!err.empty()) return absl::InternalError(err);
#ifndef JUMPFLOW_KERNELS_CUDA_CUDA_API_H_
#define JUMPFLOW_KERNELS_CUDA_CUDA_API_H_

#include <string>

#include "kernels/event_args.h"
#include "kernels/loss_args.h"

namespace jumpflow::kernels::cuda_internal {

// IsDevicePointer is true when p is CUDA device or managed memory; false for
// null, host memory (pageable or pinned) and when no CUDA runtime/device is
// usable.
bool IsDevicePointer(const void* p);

// SampleStepCuda runs kernels/sample_step.h on the GPU.
std::string SampleStepCuda(const SampleStepArgs& args, bool host_pointers,
                           SampleStepResult* result);

// GillespieCuda runs kernels/gillespie.h on the GPU.
std::string GillespieCuda(const GillespieArgs& args, bool host_pointers, GillespieResult* result);

// FusedLossCuda runs kernels/loss.h (float) on the GPU.
std::string FusedLossCuda(const LossArgs<float>& args, bool host_pointers, LossResult* result);

}  // namespace jumpflow::kernels::cuda_internal

#endif  // JUMPFLOW_KERNELS_CUDA_CUDA_API_H_
