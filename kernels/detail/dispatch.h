// @brief Backend resolution shared by the kernel dispatchers: where the
// argument pointers live (host or CUDA device memory) and whether the
// requested backend can use them.
//
// Example:
//   bool host_pointers = true;
//   JUMPFLOW_RETURN_IF_ERROR(detail::ResolveMemory(
//       Backend::kCuda, {{"raw", args.raw}, {"grad", args.grad}}, &host_pointers));
#ifndef JUMPFLOW_KERNELS_DETAIL_DISPATCH_H_
#define JUMPFLOW_KERNELS_DETAIL_DISPATCH_H_

#include <initializer_list>

#include "absl/status/status.h"
#include "kernels/backend.h"

namespace jumpflow::kernels::detail {

// NamedPointer is one argument pointer and its field name (for messages).
struct NamedPointer {
  const char* name;
  const void* pointer;
};

// ResolveMemory checks that `backend` can run on `pointers` (null entries
// are ignored): kCpu needs host memory everywhere; kCuda needs the backend to
// be available (FailedPrecondition otherwise) and all pointers in one memory
// space, reported in *host_pointers (true: host memory, copied by the CUDA
// backend). Mixed spaces or device memory for kCpu are InvalidArgument,
// naming the field.
absl::Status ResolveMemory(Backend backend, std::initializer_list<NamedPointer> pointers,
                           bool* host_pointers);

}  // namespace jumpflow::kernels::detail

#endif  // JUMPFLOW_KERNELS_DETAIL_DISPATCH_H_
