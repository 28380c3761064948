// @brief LossArgs / LossResult: the inputs and outputs of one fused loss
// call (formulas, layout and numerical contract in kernels/loss.h). Plain
// structs, usable from CUDA translation units (no abseil, no CUDA headers).
//
// Example:
//   kernels::LossArgs<float> args;
//   args.rows = n;  args.targets_per_row = V;  args.raw = logits;  args.grad = grad;
#ifndef JUMPFLOW_KERNELS_LOSS_ARGS_H_
#define JUMPFLOW_KERNELS_LOSS_ARGS_H_

#include <cstdint>

#include "kernels/parametrization.h"

namespace jumpflow::kernels {

// LossArgs names every input and output of one fused loss call. Pointers
// marked optional may be null. Sizes are in elements; V = targets_per_row,
// cols = RawColumns(parametrization, V). Exactly one of dense_targets and
// the sparse triple (sparse_row_offsets, sparse_cols, sparse_values) is set.
// The kernel trusts its inputs (shapes, target ranges, column indices):
// jumpflow/losses.h validates them and returns absl::Status errors.
// Memory: host memory for Backend::kCpu; for Backend::kCuda either all
// device memory (used in place) or all host memory (copied to the device and
// back; kernels/loss.h FusedLoss).
template <typename T>
struct LossArgs {
  Parametrization parametrization = Parametrization::kSoftmax;
  Divergence divergence = Divergence::kPoisson;
  Reduction reduction = Reduction::kSum;
  int64_t rows = 0;
  int64_t targets_per_row = 0;
  // raw outputs, [rows x cols].
  const T* raw = nullptr;
  // dense targets, [rows x V].
  const T* dense_targets = nullptr;
  // sparse targets: offsets [rows + 1], cols and values [offsets[rows]].
  const int64_t* sparse_row_offsets = nullptr;
  const int32_t* sparse_cols = nullptr;
  const T* sparse_values = nullptr;
  // optional per-row loss weight >= 0, [rows] (default 1).
  const T* row_weights = nullptr;
  // optional per-row multiplier scale c > 0, [rows] (default 1).
  const T* row_scales = nullptr;
  // optional per-row mask, [rows]; rows with mask 0 contribute nothing and
  // get a zero gradient (default: all rows).
  const uint8_t* row_mask = nullptr;
  // optional per-row excluded column in [0, V) or -1 for none, [rows].
  const int32_t* excluded_cols = nullptr;
  // optional output: dL/draw, [rows x cols] (null: loss only).
  T* grad = nullptr;
  // optional output: weight_r * sum_j D for each row (before the mean's
  // 1 / active_rows), [rows].
  T* row_loss = nullptr;
  // CUDA backend only: the cudaStream_t to run on (null = the legacy default
  // stream). The call returns after the stream has finished its work.
  void* cuda_stream = nullptr;
};

// LossResult is the reduced loss of one call.
struct LossResult {
  // sum over unmasked rows of weight_r * sum_j D(a_j, mhat_j).
  double sum = 0.0;
  // sum / active_rows (0 when no row is active).
  double mean = 0.0;
  // number of unmasked rows.
  int64_t active_rows = 0;
  // smallest row whose raw outputs contain NaN or inf, or -1. When >= 0 the
  // loss and gradient are not meaningful (that row was skipped).
  int64_t first_nonfinite_row = -1;
};

}  // namespace jumpflow::kernels

#endif  // JUMPFLOW_KERNELS_LOSS_ARGS_H_
