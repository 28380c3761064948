// @brief Fused multiplier parametrizations + separable Bregman losses with
// exact gradients w.r.t. the model's raw outputs (the training hot loop).
//
// A model emits raw outputs z (logits / pre-activations); a parametrization
// turns each row of z into V nonnegative rate multipliers mhat_j (DESIGN.md
// "Multiplier parametrizations"), a divergence D compares them with the
// conditional targets a_j, and the row loss is
//
//     L_r = weight_r * sum_{j != excluded_r} D(a_j, mhat_j)
//
// One call computes sum_r L_r (or its mean over unmasked rows) and writes
// dL/dz for every raw output, with no [rows x V] intermediate other than the
// gradient buffer itself.
//
// Layout (all arrays compact, row-major; host memory for Backend::kCpu, all
// device or all host memory for Backend::kCuda):
//   raw      [rows x RawColumns(p, V)]  component j of row r is raw[r * cols + j]
//   grad     [rows x RawColumns(p, V)]  same layout as raw
//   dense    [rows x V]                 target a_j of row r is dense[r * V + j]
//   sparse   CSR: row r holds (cols[k], values[k]) for k in
//            [row_offsets[r], row_offsets[r + 1]); columns in [0, V), strictly
//            increasing within a row; absent columns have target 0
//            (jumpflow::SparseRows is this layout)
// Rows are token rows or gap rows of a ragged batch (sequences/sequence_batch.h).
//
// Parametrizations (c = row scale, default 1; c > 0):
//   kSoftmax              cols = V      mhat_j = c softmax(z)_j
//   kSoftplus             cols = V      mhat_j = c log(1 + exp(z_j))
//   kExp                  cols = V      mhat_j = c exp(z_j)        (z_j clamped at kMaxExpArg)
//   kSigmoid              cols = V      mhat_j = c / (1 + exp(-z_j))
//   kLogRateSoftmax       cols = V + 1  mhat_j = c exp(z_0) softmax(z_1..z_V)_j  (z_0 clamped)
//   kSoftplusRateSoftmax  cols = V + 1  mhat_j = c softplus(z_0) softmax(z_1..z_V)_j
// The last two are "total rate x distribution" (Edit Flows insertion and
// substitution heads): column 0 is the total rate, columns 1..V the logits.
//
// Divergences (target a, prediction b; 0 log 0 = 0):
//   kPoisson        D = a log(a / b) - a + b                          a >= 0
//   kBce            D = a log(a / b) + (1 - a) log((1 - a) / (1 - b))  a in [0, 1]
//   kMse            D = (a - b)^2
//   kGeneralizedKl  D = a log(a / b): the generalized KL on the simplex
//                   (DESIGN.md). When both rows sum to the same total (a
//                   distribution target against a plain softmax) the row sum
//                   equals the I-divergence sum a log(a/b) - a + b; off the
//                   simplex use kPoisson.
//
// Excluded column: when excluded_cols[r] = x >= 0, component x of row r is
// not part of the loss (DFM and substitutions: no rate to stay at the current
// token x_t^i); a softmax still normalises over all V columns, so the
// gradient of column x is generally nonzero. Sparse target entries on the
// excluded column are skipped.
//
// Numerical contract: losses are computed in log space (log b never
// underflows for softmax, exp, softplus, sigmoid), and the gradient of a term
// a log b is formed as a * dlog b / dz, so a target on an underflowed
// prediction still gives a finite gradient. BCE needs b < 1: sigmoid is exact
// for every z, and softmax with c <= 1 keeps b <= 1; for the unbounded
// parametrizations (and c > 1) 1 - b is floored at machine epsilon (float
// 1.2e-7, double 2.2e-16): there the (1 - a) log(1 - b) term is evaluated at
// the floor and contributes no gradient. Multipliers are finite, but MSE of
// exp(z) near kMaxExpArg can overflow float (jumpflow/losses.h reports a
// non-finite loss). A row whose raw outputs contain NaN or inf is not
// computed (its gradient and loss are 0) and reported in
// LossResult::first_nonfinite_row.
//
// Determinism: rows are processed in fixed blocks whose size depends only on
// the shape, and block sums are combined in a fixed tree
// (tbb::parallel_deterministic_reduce), so results are bitwise identical for
// every thread count (CPU backend; the CUDA backend is deterministic run to
// run on one device, but reduces in its own order: FusedLoss below). The
// float path uses its own exp/log polynomials (detail::ExpEvF and Cephes
// logf, ~1.5e-7 relative); float results agree with the double path to
// ~1e-5 relative (tested). Large float gradients (>= 16 MiB, rows <= 32 KiB)
// are written with non-temporal stores, so they are not in cache afterwards.
//
// Example (DFM: softmax over V tokens, one-hot sparse targets, no rate to
// stay at the current token):
//   kernels::LossArgs<float> args;
//   args.parametrization = kernels::Parametrization::kSoftmax;
//   args.divergence = kernels::Divergence::kPoisson;
//   args.rows = num_tokens;  args.targets_per_row = V;
//   args.raw = logits;  args.grad = grad;
//   args.sparse_row_offsets = t.row_offsets.data();
//   args.sparse_cols = t.cols.data();  args.sparse_values = t.values.data();
//   args.excluded_cols = x_t_tokens;  args.row_weights = hazard_times_w;
//   JUMPFLOW_ASSIGN_OR_RETURN(kernels::LossResult res,
//                             kernels::FusedLoss(kernels::Backend::kCpu, args));
#ifndef JUMPFLOW_KERNELS_LOSS_H_
#define JUMPFLOW_KERNELS_LOSS_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "kernels/backend.h"
#include "kernels/loss_args.h"
#include "kernels/parametrization.h"

namespace jumpflow::kernels {

// FusedLossCpu runs the CPU backend (oneTBB over fixed row blocks). The
// gradient written is that of `sum` (Reduction::kSum) or `mean`
// (Reduction::kMean). Never allocates per row; thread-count independent.
LossResult FusedLossCpu(const LossArgs<float>& args);
LossResult FusedLossCpu(const LossArgs<double>& args);

// FusedLoss runs `backend`. kCpu needs host pointers. kCuda takes
// all-device pointers (used in place, on args.cuda_stream) or all-host
// pointers (copied to the device and back); FailedPrecondition when CUDA is
// not compiled in or no GPU is present, InvalidArgument for mixed memory.
// The CUDA kernel computes the same formulas in float with its own
// reduction order: results agree with FusedLossCpu to ~1e-5 relative
// (loss, row losses, gradients relative to their row's scale), not bitwise.
absl::StatusOr<LossResult> FusedLoss(Backend backend, const LossArgs<float>& args);

// FusedLoss without a backend dispatches on where args.raw lives: CUDA for
// device (or managed) memory, CPU for host memory.
absl::StatusOr<LossResult> FusedLoss(const LossArgs<float>& args);

}  // namespace jumpflow::kernels

#endif  // JUMPFLOW_KERNELS_LOSS_H_
