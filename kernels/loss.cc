// @brief Backend dispatch of the fused loss (kernels/loss.h).
#include "kernels/loss.h"

namespace jumpflow::kernels {

absl::StatusOr<LossResult> FusedLoss(Backend backend, const LossArgs<float>& args) {
  switch (backend) {
    case Backend::kCpu:
      return FusedLossCpu(args);
    case Backend::kCuda: {
      const absl::Status available = CheckBackendAvailable(backend);
      if (!available.ok()) return available;
      return absl::UnimplementedError(
          "the CUDA fused loss kernel is not implemented yet (use --device=cpu)");
    }
  }
  return absl::InvalidArgumentError("unknown backend");
}

}  // namespace jumpflow::kernels
