// @brief Backend dispatch of the fused loss (kernels/loss.h).
#include "kernels/loss.h"

#include <string>

#include "kernels/cuda/cuda_api.h"
#include "kernels/detail/dispatch.h"

namespace jumpflow::kernels {

absl::StatusOr<LossResult> FusedLoss(Backend backend, const LossArgs<float>& args) {
  bool host = true;
  const absl::Status s = detail::ResolveMemory(backend,
                                               {{"raw", args.raw},
                                                {"dense_targets", args.dense_targets},
                                                {"sparse_row_offsets", args.sparse_row_offsets},
                                                {"sparse_cols", args.sparse_cols},
                                                {"sparse_values", args.sparse_values},
                                                {"row_weights", args.row_weights},
                                                {"row_scales", args.row_scales},
                                                {"row_mask", args.row_mask},
                                                {"excluded_cols", args.excluded_cols},
                                                {"grad", args.grad},
                                                {"row_loss", args.row_loss}},
                                               &host);
  if (!s.ok()) return s;
  if (args.rows < 0 || args.targets_per_row < 0) {
    return absl::InvalidArgumentError("FusedLoss: rows and targets_per_row must be >= 0");
  }
  if (args.rows > 0 && (args.raw == nullptr ||
                        (args.dense_targets == nullptr) == (args.sparse_row_offsets == nullptr))) {
    return absl::InvalidArgumentError(
        "FusedLoss: raw and exactly one of dense_targets and the sparse targets are required");
  }
  switch (backend) {
    case Backend::kCpu:
      return FusedLossCpu(args);
    case Backend::kCuda: {
      LossResult result;
      const std::string err = cuda_internal::FusedLossCuda(args, host, &result);
      if (!err.empty()) return absl::InternalError(err);
      return result;
    }
  }
  return absl::InvalidArgumentError("unknown backend");
}

absl::StatusOr<LossResult> FusedLoss(const LossArgs<float>& args) {
  return FusedLoss(PointerBackend(args.raw), args);
}

}  // namespace jumpflow::kernels
