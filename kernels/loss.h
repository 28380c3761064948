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
// Layout (all arrays compact, row-major, host memory for Backend::kCpu):
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
// every thread count. The float path uses its own exp/log polynomials
// (Cephes, ~1e-7 relative); float results agree with the double path to
// ~1e-5 relative (tested).
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

namespace jumpflow::kernels {

// Parametrization maps a row of raw outputs to V multipliers (file comment).
enum class Parametrization : uint8_t {
  kSoftmax = 0,
  kSoftplus = 1,
  kExp = 2,
  kSigmoid = 3,
  kLogRateSoftmax = 4,
  kSoftplusRateSoftmax = 5,
};

// Divergence is the per-component Bregman divergence D(a, b) (file comment).
enum class Divergence : uint8_t {
  kPoisson = 0,
  kBce = 1,
  kMse = 2,
  kGeneralizedKl = 3,
};

// Reduction says whether a call returns (and differentiates) the sum over
// rows or the mean over unmasked rows.
enum class Reduction : uint8_t { kSum = 0, kMean = 1 };

// kMaxExpArg bounds the argument of exp() in the kExp and kLogRateSoftmax
// parametrizations (float: 80, exp(80) ~ 5.5e34 < FLT_MAX; double: 700), so
// multipliers stay finite; above it the multiplier is constant in z.
template <typename T>
constexpr T kMaxExpArg = sizeof(T) == 4 ? T(80) : T(700);

// HasRateColumn is true for the total-rate x softmax parametrizations.
constexpr bool HasRateColumn(Parametrization p) {
  return p == Parametrization::kLogRateSoftmax || p == Parametrization::kSoftplusRateSoftmax;
}

// IsSoftmaxFamily is true when the V multipliers of a row share a softmax.
constexpr bool IsSoftmaxFamily(Parametrization p) {
  return p == Parametrization::kSoftmax || HasRateColumn(p);
}

// RawColumns returns the number of raw outputs per row for V multipliers:
// V, or V + 1 with a rate column.
constexpr int64_t RawColumns(Parametrization p, int64_t targets_per_row) {
  return targets_per_row + (HasRateColumn(p) ? 1 : 0);
}

// LossArgs names every input and output of one fused loss call. Pointers
// marked optional may be null. Sizes are in elements; V = targets_per_row,
// cols = RawColumns(parametrization, V). Exactly one of dense_targets and
// the sparse triple (sparse_row_offsets, sparse_cols, sparse_values) is set.
// The kernel trusts its inputs (shapes, target ranges, column indices):
// jumpflow/losses.h validates them and returns absl::Status errors.
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

// FusedLossCpu runs the CPU backend (oneTBB over fixed row blocks). The
// gradient written is that of `sum` (Reduction::kSum) or `mean`
// (Reduction::kMean). Never allocates per row; thread-count independent.
LossResult FusedLossCpu(const LossArgs<float>& args);
LossResult FusedLossCpu(const LossArgs<double>& args);

// FusedLoss dispatches to `backend`: kCpu always works; kCuda returns
// FailedPrecondition when the CUDA backend is not available and
// Unimplemented until the CUDA loss kernel exists (issue 7).
absl::StatusOr<LossResult> FusedLoss(Backend backend, const LossArgs<float>& args);

}  // namespace jumpflow::kernels

#endif  // JUMPFLOW_KERNELS_LOSS_H_
