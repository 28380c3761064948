// @brief AdamW with linear warm-up, cosine or constant learning rate, and
// global-norm gradient clipping, over a flat float parameter vector.
//
// One Step (Loshchilov & Hutter, "Decoupled Weight Decay Regularization",
// ICLR 2019, Algorithm 2; Kingma & Ba 2015 for the moments), with step
// number k = 1, 2, ... and lr_k from the schedule:
//   g     <- g * min(1, clip_norm / ||g||_2)        (global norm over all parameters)
//   m     <- beta1 m + (1 - beta1) g
//   v     <- beta2 v + (1 - beta2) g^2
//   theta <- theta - lr_k (m / (1 - beta1^k)) / (sqrt(v / (1 - beta2^k)) + epsilon)
//   theta <- theta - lr_k * weight_decay * theta    (decayed parameters only, decoupled
//                                                    from g; the PyTorch convention, where
//                                                    the paper's eta_t * lambda is lr_k * wd)
// (the decay uses theta before the Adam update). Schedule for 0-based
// update index i: lr = peak * (i + 1) / warmup_steps while i < warmup_steps;
// afterwards constant `peak`, or cosine from peak down to
// peak * min_learning_rate_fraction over the remaining total_steps -
// warmup_steps updates (Loshchilov & Hutter, "SGDR", ICLR 2017), then flat.
//
// Determinism: the gradient norm is summed over fixed blocks in a fixed order
// (double precision), the update is elementwise; results do not depend on the
// thread count.
//
// Example:
//   AdamWOptions opt;
//   opt.learning_rate = 3e-3;
//   opt.warmup_steps = 100;
//   opt.schedule = LrSchedule::kCosine;
//   opt.total_steps = 5000;
//   JUMPFLOW_ASSIGN_OR_RETURN(AdamW adam,
//                             AdamW::Create(opt, model.NumParameters(), model.ParameterGroups()));
//   JUMPFLOW_ASSIGN_OR_RETURN(AdamWStepStats stats, adam.Step(model.mutable_parameters(), grad));
#ifndef JUMPFLOW_MODEL_OPTIMIZER_H_
#define JUMPFLOW_MODEL_OPTIMIZER_H_

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "jumpflow/model/transformer.h"

namespace jumpflow {

// LrSchedule is the shape of the learning rate after warm-up.
enum class LrSchedule : uint8_t { kConstant = 0, kCosine = 1 };

// ParseLrSchedule accepts "constant" or "cosine".
absl::StatusOr<LrSchedule> ParseLrSchedule(absl::string_view name);

// AdamWOptions configures AdamW; Validate() names the first bad field.
struct AdamWOptions {
  // Peak learning rate (> 0).
  double learning_rate = 1e-3;
  // Moment decay rates, each in [0, 1).
  double beta1 = 0.9;
  double beta2 = 0.999;
  // Added to sqrt(v) (> 0).
  double epsilon = 1e-8;
  // Decoupled weight decay (>= 0), applied to groups with decay == true.
  double weight_decay = 0.01;
  // Linear warm-up length in updates (>= 0).
  int64_t warmup_steps = 0;
  // Shape after warm-up.
  LrSchedule schedule = LrSchedule::kConstant;
  // Cosine only: the update count at which the rate reaches its minimum
  // (must exceed warmup_steps).
  int64_t total_steps = 0;
  // Cosine only: the final rate as a fraction of the peak, in [0, 1].
  double min_learning_rate_fraction = 0.1;
  // Global gradient-norm bound; <= 0 disables clipping.
  double clip_norm = 1.0;

  absl::Status Validate() const;
};

// AdamWStepStats reports one Step.
struct AdamWStepStats {
  // The learning rate used.
  double learning_rate = 0.0;
  // ||g||_2 before clipping.
  double grad_norm = 0.0;
  // The factor g was multiplied by (1 when not clipped).
  double clip_scale = 1.0;
};

// AdamW holds the optimizer state (moments and step count) for one flat
// parameter vector.
class AdamW {
 public:
  // Create validates `options` and sizes the state for `num_parameters`.
  // `groups` (e.g. Transformer::ParameterGroups()) says which slices decay;
  // empty means every parameter decays. Groups must lie inside
  // [0, num_parameters).
  static absl::StatusOr<AdamW> Create(const AdamWOptions& options, int64_t num_parameters,
                                      std::span<const ParameterGroup> groups = {});

  // LearningRate returns the rate of the update with 0-based index `step`.
  double LearningRate(int64_t step) const;

  // Step clips `gradients` (not modified; clipping is applied on the fly),
  // updates the moments and `parameters` in place, and advances step().
  // Errors: size mismatch, or a non-finite gradient norm (InvalidArgument;
  // then nothing changes, so the caller may skip the batch).
  absl::StatusOr<AdamWStepStats> Step(std::span<float> parameters,
                                      std::span<const float> gradients);

  // step is the number of updates applied so far.
  int64_t step() const { return step_; }
  // options are the settings the optimizer was created with.
  const AdamWOptions& options() const { return options_; }
  // num_parameters is the length of the parameter vector it updates.
  int64_t num_parameters() const { return static_cast<int64_t>(m_.size()); }
  // first_moment / second_moment expose the state (for checkpoints).
  std::span<const float> first_moment() const { return m_; }
  std::span<const float> second_moment() const { return v_; }

  // RestoreState replaces the state (for --resume). Errors: sizes differ
  // from num_parameters(), negative step, or non-finite / negative entries.
  absl::Status RestoreState(int64_t step, std::vector<float> first_moment,
                            std::vector<float> second_moment);

 private:
  AdamW() = default;

  AdamWOptions options_;
  int64_t step_ = 0;
  std::vector<float> m_;
  std::vector<float> v_;
  // Per parameter: 1 when weight decay applies.
  std::vector<uint8_t> decay_;
};

}  // namespace jumpflow

#endif  // JUMPFLOW_MODEL_OPTIMIZER_H_
