// @brief Validated Bregman losses on multiplier parametrizations: the public
// front of the fused kernels in kernels/loss.h.
//
// A loss call names a parametrization (raw outputs -> multipliers mhat), a
// divergence D(a, mhat) and a reduction, and gets views of the raw outputs,
// the targets (dense [rows x V] or a SparseRows CSR matrix) and optional
// per-row weights, scales c (mhat = c * param(z)), masks, excluded columns
// and times. ComputeLoss() validates everything a user can get wrong, then
// runs the fused kernel of the chosen backend, which returns the loss and
// writes dL/draw. See kernels/loss.h for the formulas, the layout and the
// numerical contract; every pointer here is host memory.
//
// Errors (InvalidArgument, naming the offending value): shape mismatches,
// NaN/inf in raw outputs, targets, weights, scales or times, Poisson/KL
// target < 0, BCE target outside [0, 1], weight < 0, scale <= 0, time
// outside [0, 1], unsorted or out-of-range sparse columns, excluded column
// outside [-1, V); a loss that overflows (e.g. MSE on exp(z) with huge z)
// is reported instead of returned.
//
// Names (ParseParametrization / ParseDivergence): "softmax", "softplus",
// "exp", "sigmoid", "lograte_softmax", "softplusrate_softmax"; "poisson",
// "bce", "mse", "kl".
//
// Example (DFM: h(t) x Poisson-Bregman over y != x_t, softmax over V):
//   std::vector<double> times = RowTimes(tb.x_t, RowSpace::kTokens);
//   LossInputs in;
//   in.rows = tb.x_t.num_tokens();  in.targets_per_row = V;
//   in.raw = logits;  in.sparse_targets = &tb.token_targets;
//   in.excluded_cols = tb.x_t.tokens();
//   in.row_times = times;  in.time_weight = hazard_weight.get();
//   std::vector<float> grad(logits.size());
//   JUMPFLOW_ASSIGN_OR_RETURN(LossResult res, ComputeLoss(LossSpec{}, in, grad));
#ifndef JUMPFLOW_LOSSES_H_
#define JUMPFLOW_LOSSES_H_

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "jumpflow/time_distribution.h"
#include "jumpflow/training_batch.h"
#include "kernels/loss.h"
#include "sequences/sequence_batch.h"

namespace jumpflow {

using kernels::Divergence;
using kernels::LossResult;
using kernels::Parametrization;
using kernels::Reduction;

// ParseParametrization accepts the names in the file comment.
absl::StatusOr<Parametrization> ParseParametrization(absl::string_view name);
// ParametrizationName is the inverse of ParseParametrization.
std::string ParametrizationName(Parametrization p);
// ParseDivergence accepts "poisson", "bce", "mse", "kl".
absl::StatusOr<Divergence> ParseDivergence(absl::string_view name);
// DivergenceName is the inverse of ParseDivergence.
std::string DivergenceName(Divergence d);

// LossSpec chooses what a loss call computes and where.
struct LossSpec {
  Parametrization parametrization = Parametrization::kSoftmax;
  Divergence divergence = Divergence::kPoisson;
  Reduction reduction = Reduction::kSum;
  kernels::Backend backend = kernels::Backend::kCpu;
};

// LossInputs are views of one loss call's inputs (see kernels/loss.h for the
// layout). Empty optional spans mean "default" (weight 1, scale 1, no mask,
// no excluded column).
struct LossInputs {
  int64_t rows = 0;
  // V: multipliers per row; raw has RawColumns(parametrization, V) columns.
  int64_t targets_per_row = 0;
  std::span<const float> raw;
  // Exactly one of dense_targets ([rows x V]) and sparse_targets (rows rows).
  std::span<const float> dense_targets;
  const SparseRows* sparse_targets = nullptr;
  std::span<const float> row_weights;      // [rows], >= 0
  std::span<const float> row_scales;       // [rows], > 0
  std::span<const uint8_t> row_mask;       // [rows], 0 = skip the row
  std::span<const int32_t> excluded_cols;  // [rows], in [-1, V)
  // Optional per-row times in [0, 1]; required by time_weight / time_scale.
  std::span<const double> row_times;
  // Optional w(t): each row's weight is multiplied by w(t_r).
  const TimeWeight* time_weight = nullptr;
  // Optional c(t) > 0: each row's scale is multiplied by c(t_r).
  std::function<double(double)> time_scale;
};

// ComputeLoss validates `in`, runs the fused kernel and returns the loss.
// `grad` is empty (loss only) or has raw.size() entries and receives the
// gradient of the returned reduction (sum, or mean over unmasked rows);
// `row_loss` is empty or has `rows` entries (weighted row losses).
absl::StatusOr<LossResult> ComputeLoss(const LossSpec& spec, const LossInputs& in,
                                       std::span<float> grad, std::span<float> row_loss = {});

// ScalarRowLoss is the one-multiplier-per-row case (deletion rates with BCE
// or Poisson, split counts with Poisson): raw, targets and grad have one
// entry per row; the parametrization must be elementwise (softplus, exp,
// sigmoid). Other fields of `in` (weights, scales, mask, times) apply as in
// ComputeLoss; in.raw, in.rows and the targets are taken from the arguments.
absl::StatusOr<LossResult> ScalarRowLoss(const LossSpec& spec, std::span<const float> raw,
                                         std::span<const float> targets, LossInputs in,
                                         std::span<float> grad);

// LossTerm is one summand of a separable loss: its own spec, inputs and
// gradient buffer.
struct LossTerm {
  LossSpec spec;
  LossInputs inputs;
  std::span<float> grad;
};

// SeparableLoss returns the sum over terms of each term's reduced loss
// (Edit Flows: insertion + deletion + substitution heads; Branching: split +
// deletion + token heads) and writes every term's gradient. `per_term`
// (optional) receives each term's LossResult. Fails on the first bad term,
// naming its index.
absl::StatusOr<double> SeparableLoss(std::span<const LossTerm> terms,
                                     std::vector<LossResult>* per_term = nullptr);

// RowSpace names the rows of a per-row array: token rows or gap rows of a
// SequenceBatch (sequences/sequence_batch.h).
enum class RowSpace { kTokens, kGaps };

// ExpandPerSequence repeats one value per sequence onto every row of that
// sequence (e.g. TrainingBatch::weights onto token rows). `per_sequence`
// must have num_sequences() entries.
absl::StatusOr<std::vector<float>> ExpandPerSequence(const SequenceBatch& batch,
                                                     std::span<const float> per_sequence,
                                                     RowSpace space);

// RowTimes returns each row's sequence time (for LossInputs::row_times).
std::vector<double> RowTimes(const SequenceBatch& batch, RowSpace space);

}  // namespace jumpflow

#endif  // JUMPFLOW_LOSSES_H_
