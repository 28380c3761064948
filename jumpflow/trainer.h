// @brief Trainer: fits the reference transformer to a discrete jump process
// (DFM with a mask or uniform source, Edit Flows, Branching Flows) with the
// fused Bregman losses and AdamW, with held-out evaluation, CSV logging and
// atomic, resumable checkpoints.
//
// One step k (1-based; everything random is keyed by (seed, k), so a run
// resumed from a checkpoint continues bit-identically):
//   1. batch: the training split is shuffled once per epoch (the permutation
//      of Dataset::Batches for (seed, epoch)) and the epochs are concatenated
//      into one stream; step k takes stream positions [(k - 1) B, k B), so
//      every batch has B sequences (a batch may straddle two epochs, and on
//      data smaller than B it holds repeats). With pairs, x_0 comes along.
//   2. times t_b ~ time distribution, PhiloxStream(DeriveSeed(seed, k), b,
//      kPurposeTime); per-sequence loss weight w(t_b) x data weight (data
//      weights normalised to mean 1 over the training split).
//   3. TrainingBatch from MakeDfmBatch / MakeEditFlowBatch /
//      MakeBranchingBatch with seed DeriveSeed(seed, k).
//   4. Transformer forward, BatchLoss (below), backward, AdamW step.
//
// Loss (BatchLoss), per process, with multipliers as in
// jumpflow/model/model_rate.h (V = vocabulary size, D = Bregman divergence,
// every sum weighted by its sequence's loss weight):
//   DFM        softmax over V, Poisson D against the one-hot x_1 targets,
//              excluded column = current token x_t^i (no rate to stay put).
//   Edit       insertion: [rate, logits] gap rows, rate x softmax, Poisson D
//              against the sparse insertion counts;
//              substitution: the [rate, logits] block inside each token row
//              (columns 1..V+1 of [del, sub_rate, V logits]) is copied to a
//              compact buffer, rate x softmax, Poisson D, excluded column =
//              current token, and its gradient is scattered back;
//              deletion: sigmoid + BCE against the 0/1 deletion targets (the
//              marginal deletion multiplier is a probability; BCE is the
//              Bregman divergence matched to a sigmoid, Example 4.19).
//              With an empty x_0 (insertion only) every deletion and
//              substitution target is 0, the marginal multipliers are exactly
//              0, and those two heads are left out of the loss.
//   Branching  split: rate link on column 0, Poisson D against the pending
//              splits W - 1; deletion: sigmoid + BCE against the del flag;
//              anchor token: softmax over V, Poisson D, excluded column =
//              current token.
// DFM from a MASK source and Branching with MASK roots leave tokens that are
// not MASK out of the token loss: they are final (OutputHeads::
// frozen_unmasked in model_rate.h).
// Edit and Branching rate multipliers (insertion, deletion, substitution,
// split) carry the survival scale 1 - kappa_k(t) of their kind by default
// (row scales of the loss; model_rate.h explains why exact samplers need it).
// Normalisation: the batch loss is the MEAN OVER SEQUENCES of each
// sequence's weighted sum over its rows and heads,
//   L = (1 / B) sum_b w_b sum_{rows of b} sum_heads D,
// so longer sequences weigh more (the loss estimates the expected per-
// sequence objective of DESIGN.md, independent of the batch size). The eval
// loss is the same quantity over the held-out split with fixed draws (eval
// batches of 64 sequences whatever --batch is, so runs with different batch
// sizes see the same draws).
//
// Defaults (TrainerOptions): scheduler "poly:3" for Edit Flows (kappa = t^3,
// the Edit Flows paper) and "linear" otherwise; t ~ U(0, 1) with constant
// weight 1. The "natural" weight w = h(t) (the ELBO / generalized KL of
// flow_matching) has E_U[h] = H(1) = infinity, so its Monte-Carlo loss is
// dominated by rare t near 1 and very noisy; Billera, Nordlinder and Murrell
// show any positive weight gives the same minimiser (the true marginal
// multipliers), so the constant weight is the low-variance default.
// For Edit Flows with kappa = t^3, "beta:3,1" is often better than uniform
// t (the demo uses it): it makes kappa(t) uniform, i.e. every share of
// revealed tokens equally likely, where uniform t spends 63% of the batch at
// kappa < 1/4 (x_t nearly empty, targets nearly pure noise). On the 10-word
// test set it raised exact-Gillespie samples in the data from 0.81 to 0.91. Other
// weights: time_weight specs of jumpflow/time_distribution.h ("hazard:SCHED",
// "inverse_hazard:SCHED"). AdamW (DefaultOptimizer): lr 2e-3 peak, linear
// warm-up over 100 steps (the CLI uses min(100, steps / 10)), cosine decay to
// 0.1 x peak at the last step, clipping at global norm 1, weight decay 0.01 on
// weight matrices.
//
// Numerical safety: a non-finite model output, loss or gradient stops
// training with an error naming the step (never a silent NaN).
//
// Checkpoints (jumpflow/model/checkpoint.h) hold the model config, the
// vocabulary, every training option as a setting (plus "step", the data
// fingerprint, the split sizes and the training length histogram) and the
// AdamW state; they are written atomically every checkpoint_every steps and
// at the end. Resume() rebuilds the trainer from one and refuses data whose
// fingerprint differs.
//
// Threads: `threads` > 0 caps oneTBB's parallelism for the trainer's
// lifetime (process-wide, tbb::global_control); results do not depend on it.
//
// Example:
//   JUMPFLOW_ASSIGN_OR_RETURN(Vocabulary vocab, Vocabulary::FromCharacters("abc...z"));
//   JUMPFLOW_ASSIGN_OR_RETURN(Dataset words, Dataset::LoadLines("words.txt", vocab));
//   TrainerOptions opt;
//   opt.process = TrainProcess::kEdit;
//   opt.steps = 2000;
//   opt.checkpoint_path = "words.ckpt";
//   JUMPFLOW_ASSIGN_OR_RETURN(Trainer trainer, Trainer::Create(opt, words));
//   JUMPFLOW_RETURN_IF_ERROR(trainer.Train([](const TrainProgress& p) {
//     std::printf("step %lld loss %.3f\n", (long long)p.step.step, p.step.loss);
//   }));
#ifndef JUMPFLOW_TRAINER_H_
#define JUMPFLOW_TRAINER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "jumpflow/model/checkpoint.h"
#include "jumpflow/model/model_rate.h"
#include "jumpflow/model/optimizer.h"
#include "jumpflow/model/transformer.h"
#include "jumpflow/processes/edit_flow.h"
#include "jumpflow/training_batch.h"
#include "kernels/backend.h"
#include "sequences/dataset.h"

namespace jumpflow {

// TrainProcess is the process a trainer fits.
enum class TrainProcess : uint8_t { kDfmMask = 0, kDfmUniform = 1, kEdit = 2, kBranching = 3 };

// ParseTrainProcess accepts "dfm-mask", "dfm-uniform", "edit", "branching".
absl::StatusOr<TrainProcess> ParseTrainProcess(absl::string_view name);
// TrainProcessName is the inverse of ParseTrainProcess.
std::string TrainProcessName(TrainProcess process);

// TrainerOptions configure a Trainer; Validate() names the first bad field.
struct TrainerOptions {
  TrainProcess process = TrainProcess::kEdit;
  // Main scheduler spec (MakeScheduler); empty = "poly:3" for Edit Flows,
  // "linear" otherwise.
  std::string scheduler;
  // Edit Flows per-kind schedulers; empty = the main one.
  std::string insert_scheduler;
  std::string delete_scheduler;
  std::string substitute_scheduler;
  // Branching split-time and deletion schedulers; empty = the main one.
  std::string split_scheduler;
  std::string deletion_scheduler;
  // Time distribution spec (MakeTimeDistribution) and weight spec
  // (MakeTimeWeight); see the file comment for the defaults' rationale.
  std::string time_distribution = "uniform";
  std::string time_weight = "constant";
  // Rate link of the total-rate outputs (model_rate.h).
  RateLink rate_link = RateLink::kExp;
  // Survival scaling of the Edit and Branching rate multipliers
  // (model_rate.h): the network predicts m / (1 - kappa_k(t)).
  bool survival_scale = true;

  // Edit Flows source when no pairs are given: kEmpty (insertion only) or
  // kNoise (lengths uniform in [noise_min_length, noise_max_length]). With
  // pairs the source is kPairs (set by Create).
  EditSource edit_source = EditSource::kEmpty;
  // kEmpty only: the order of the insertions (jumpflow/processes/edit_flow.h).
  // kLeftToRight makes every x_t a prefix of x_1; the model is then causal
  // (TransformerConfig::causal, set by the trainer) and each batch carries
  // every prefix of its words, weighted by its probability (all_prefixes).
  InsertionOrder insertion_order = InsertionOrder::kIndependent;
  // kLeftToRight only: each prefix draws its own time from the posterior of
  // the time distribution given the prefix length (edit_flow.h, "Per-gap
  // times"; same expected loss, every prefix weighted in every step); the
  // model then takes time at its heads (TransformerConfig::time_at_heads,
  // set by the trainer) and the time weight applies per gap.
  bool per_gap_times = false;
  int64_t noise_min_length = 0;
  int64_t noise_max_length = 0;
  EditAlignment alignment = EditAlignment::kMinEdit;

  // Branching Flows: probability of a to-be-deleted duplicate per element,
  // coalescence factor, root tokens (kMask or kUniform).
  double branching_deletion_probability = 0.0;
  double branching_coalescence = 1.0;
  bool branching_uniform_root = false;

  // Architecture; vocab_size and process are taken from the data and the
  // process; max_length 0 (the default) means the longest state training can
  // produce: the longest x_1 (DFM, Edit from empty), |x_0| + |x_1| (pairs),
  // |x_1| + noise_max_length (noise), 2 |x_1| (Branching with deletions).
  TransformerConfig model = DefaultModel();
  // Sequences per step (>= 1) and number of steps (>= 1).
  int64_t batch_size = 64;
  int64_t steps = 1000;
  // AdamW; total_steps is set to `steps`.
  AdamWOptions optimizer = DefaultOptimizer();

  // Held-out split: this fraction of the data (in [0, 0.5]) is kept out of
  // training (seeded by `seed`). Eval loss every eval_every steps (0 = only
  // at the end) on at most eval_sequences held-out sequences.
  double eval_fraction = 0.05;
  int64_t eval_every = 200;
  int64_t eval_sequences = 512;
  // Checkpoint every checkpoint_every steps (0 = only at the end) to
  // checkpoint_path (empty = no checkpoints).
  int64_t checkpoint_every = 0;
  std::string checkpoint_path;
  // CSV log (empty = none): one row every log_every steps with the mean
  // training loss since the previous row; rewritten atomically at every
  // evaluation, checkpoint and at the end.
  std::string log_path;
  int64_t log_every = 10;

  // Seed of everything random (initialisation, split, batches, times, paths).
  uint64_t seed = 1;
  // oneTBB parallelism cap (0 = default); does not change results.
  int threads = 0;
  // Where the fused loss + gradient kernels run (kernels/loss.h). kCuda
  // copies each step's model outputs to the GPU and the gradients back (the
  // model itself stays on the CPU), so it pays only for very wide heads;
  // losses agree with the CPU backend to ~1e-5 relative, not bit for bit.
  // A runtime choice: not saved in checkpoints (ResumeOverrides::device).
  kernels::Backend device = kernels::Backend::kCpu;
  // Thinning bound factor recorded for samplers (model_rate.h).
  double bound_factor = TransformerRateModel::kDefaultBoundFactor;

  // DefaultOptimizer returns the AdamW defaults of the file comment.
  static AdamWOptions DefaultOptimizer();
  // DefaultModel is TransformerConfig's defaults (dim 64, 2 layers, 4 heads,
  // MLP ratio 4, 32 time features) with max_length 0 (automatic).
  static TransformerConfig DefaultModel();
  absl::Status Validate() const;
};

// StepStats describe one training step.
struct StepStats {
  // Completed steps after this one (1-based step number).
  int64_t step = 0;
  // Batch loss (mean over sequences, see the file comment).
  double loss = 0.0;
  double learning_rate = 0.0;
  // Global gradient norm before clipping.
  double grad_norm = 0.0;
  int64_t sequences = 0;
  // x_1 tokens of the batch (the data throughput; tokens/s counts these).
  int64_t tokens = 0;
  // x_t tokens the model processed.
  int64_t model_tokens = 0;
  // Wall time of the step (batch construction to optimizer update).
  double seconds = 0.0;
};

// TrainProgress is what Train() reports after every step.
struct TrainProgress {
  StepStats step;
  int64_t total_steps = 0;
  // Seconds since Train() started and x_1 tokens per second over that time.
  double elapsed_seconds = 0.0;
  double tokens_per_second = 0.0;
  // Mean training loss over the last log_every steps (or fewer).
  double recent_loss = 0.0;
  // The latest eval loss (NaN before the first evaluation or without a
  // held-out split) and whether it was computed at this step.
  double eval_loss = 0.0;
  bool evaluated = false;
  // Whether a checkpoint was written at this step.
  bool checkpointed = false;
};

// ResumeOverrides are the options that may change when resuming; every
// other option comes from the checkpoint. Negative / empty = keep.
struct ResumeOverrides {
  int64_t steps = -1;
  int64_t eval_every = -1;
  int64_t checkpoint_every = -1;
  int64_t log_every = -1;
  int threads = -1;
  // Loss kernels' backend (TrainerOptions::device); the CPU unless given.
  kernels::Backend device = kernels::Backend::kCpu;
  std::string checkpoint_path;
  std::string log_path;
};

// Trainer owns the model, the optimizer and the data splits. Movable.
class Trainer {
 public:
  // Create validates `options`, splits `data` and initialises the model from
  // `options.seed`. `sources` is empty (no pairs) or holds one x_0 per
  // sequence of `data` (Edit Flows only; the source becomes kPairs).
  // Errors: invalid options, empty data, too little data for the split,
  // sources of the wrong count or process, a sequence longer than an
  // explicit model.max_length.
  static absl::StatusOr<Trainer> Create(TrainerOptions options, Dataset data,
                                        std::vector<std::vector<Token>> sources = {});

  // Resume rebuilds a trainer from the checkpoint at `path` (written by a
  // Trainer) and the same data it was trained on; it continues at the
  // checkpoint's step. Errors: unreadable / corrupt checkpoint, settings
  // that do not parse, a data fingerprint or vocabulary that differs.
  static absl::StatusOr<Trainer> Resume(const std::string& path, Dataset data,
                                        std::vector<std::vector<Token>> sources = {},
                                        const ResumeOverrides& overrides = {});

  Trainer(Trainer&&) noexcept;
  Trainer& operator=(Trainer&&) noexcept;
  ~Trainer();

  // Step runs one training step. Errors name the step (non-finite loss or
  // gradient, process or model errors).
  absl::StatusOr<StepStats> Step();

  // EvalLoss returns the loss on the held-out split (fixed draws, so values
  // from different steps compare); NaN when there is no held-out split.
  absl::StatusOr<double> EvalLoss();

  // Train runs Step() until options().steps, evaluating, logging and
  // checkpointing as configured (a final eval, log and checkpoint at the
  // end), and calls `progress` after every step.
  absl::Status Train(const std::function<void(const TrainProgress&)>& progress = {});

  // MakeCheckpoint returns the full state (model, vocabulary, settings,
  // optimizer state).
  absl::StatusOr<Checkpoint> MakeCheckpoint() const;
  // SaveCheckpoint writes MakeCheckpoint() to `path` atomically.
  absl::Status SaveCheckpoint(const std::string& path) const;

  // step is the number of completed steps.
  int64_t step() const;
  // options are the resolved options (schedulers filled in, model config
  // with the data's vocabulary size and the automatic max_length).
  const TrainerOptions& options() const;
  // model is the transformer being trained.
  const Transformer& model() const;
  // optimizer is its AdamW state.
  const AdamW& optimizer() const;
  // heads are the parametrizations of the loss (and of model_rate.h).
  const OutputHeads& heads() const;
  // vocab is the data's vocabulary.
  const Vocabulary& vocab() const;
  // train_data / eval_data are the two splits (x_1 sequences).
  const Dataset& train_data() const;
  const Dataset& eval_data() const;

 private:
  struct Impl;
  explicit Trainer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// BatchLoss computes the training loss of `batch` from the raw model outputs
// `out` (see the file comment) and writes its gradient w.r.t. the raw
// outputs into `d_token` (out.token_out.size()) and `d_gap`
// (out.gap_out.size()); both are overwritten. Errors: shape mismatches,
// non-finite outputs or targets (InvalidArgument naming the term and row).
// `device` is where the loss kernels run (TrainerOptions::device).
absl::StatusOr<double> BatchLoss(const TrainingBatch& batch, const OutputHeads& heads,
                                 const Transformer::Outputs& out, std::span<float> d_token,
                                 std::span<float> d_gap,
                                 kernels::Backend device = kernels::Backend::kCpu);

// SplitData returns (train, held_out) exactly as a Trainer with this
// fraction and seed splits `data` (for evaluating novelty against the
// training split after training). `held_out` has round(fraction * size)
// sequences.
std::pair<Dataset, Dataset> SplitData(const Dataset& data, double fraction, uint64_t seed);

// DataFingerprint is a 64-bit hash of the sequences, weights and vocabulary
// of `data` and of `sources` (what Resume compares).
uint64_t DataFingerprint(const Dataset& data, const std::vector<std::vector<Token>>& sources);

}  // namespace jumpflow

#endif  // JUMPFLOW_TRAINER_H_
