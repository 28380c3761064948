// @brief Trainer: batches, losses per process, AdamW, evaluation, logging and
// checkpoints (see trainer.h).
#include "jumpflow/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "jumpflow/losses.h"
#include "jumpflow/processes/branching.h"
#include "jumpflow/processes/dfm.h"
#include "jumpflow/processes/process_common.h"
#include "jumpflow/scheduler.h"
#include "jumpflow/status_macros.h"
#include "jumpflow/time_distribution.h"
#include "kernels/philox.h"
#include "oneapi/tbb/global_control.h"
#include "sequences/file_util.h"

namespace jumpflow {
namespace {

using absl::InvalidArgumentError;
using absl::StrCat;
using Clock = std::chrono::steady_clock;

// Random-stream purposes of the trainer (kernels/philox.h reserves
// kPurposeUser and above for users of the library).
constexpr uint32_t kPurposeTrainStep = kPurposeUser + 10;
constexpr uint32_t kPurposeEvalBatch = kPurposeUser + 11;
// Held-out sequences per eval batch (fixed, so eval draws do not depend on --batch).
constexpr int64_t kEvalBatch = 64;
// Stream words of Dataset::Split and Dataset::Batches, so SplitData and the
// trainer's epochs match those functions exactly.
constexpr uint32_t kSplitStream = 0x5EED;
constexpr uint32_t kBatchStream = 0xBA7C0000u;
// Checkpoint settings format written by this trainer.
constexpr char kTrainerFormat[] = "1";

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

std::string Exact(double v) { return absl::StrFormat("%.17g", v); }

absl::Status Annotate(const absl::Status& s, absl::string_view prefix) {
  return absl::Status(s.code(), StrCat(prefix, s.message()));
}

std::vector<int64_t> SplitIndices(int64_t n, double fraction, uint64_t seed, bool held_out) {
  const double f = std::clamp(fraction, 0.0, 1.0);
  const auto num_second = static_cast<int64_t>(std::llround(f * static_cast<double>(n)));
  const std::vector<int64_t> perm = ShuffledIndices(n, seed, kSplitStream);
  std::vector<bool> in_second(static_cast<size_t>(n), false);
  for (int64_t k = 0; k < num_second; ++k) in_second[static_cast<size_t>(perm[k])] = true;
  std::vector<int64_t> out;
  for (int64_t i = 0; i < n; ++i) {
    if (in_second[static_cast<size_t>(i)] == held_out) out.push_back(i);
  }
  return out;
}

std::string EditSourceName(EditSource s) {
  switch (s) {
    case EditSource::kEmpty:
      return "empty";
    case EditSource::kNoise:
      return "noise";
    case EditSource::kPairs:
      return "pairs";
  }
  return "empty";
}

// LossScratch holds the reusable buffers of BatchLoss.
struct LossScratch {
  std::vector<float> token_weights, gap_weights;
  std::vector<float> scale_a, scale_b, gap_scale;
  std::vector<int32_t> excluded;
  std::vector<uint8_t> mask_rows;
  std::vector<float> compact, compact_grad;
  std::vector<float> scalar_raw, scalar_target, scalar_grad;
};

// CopyColumns copies columns [first, first + width) of a [rows x stride]
// matrix into a compact [rows x width] buffer.
void CopyColumns(const std::vector<float>& src, int64_t rows, int64_t stride, int64_t first,
                 int64_t width, std::vector<float>* dst) {
  dst->resize(static_cast<size_t>(rows * width));
  for (int64_t r = 0; r < rows; ++r) {
    std::memcpy(dst->data() + r * width, src.data() + r * stride + first,
                static_cast<size_t>(width) * sizeof(float));
  }
}

// ScatterColumns adds a compact [rows x width] buffer into columns
// [first, first + width) of a [rows x stride] matrix.
void ScatterColumns(const std::vector<float>& src, int64_t rows, int64_t stride, int64_t first,
                    int64_t width, std::span<float> dst) {
  for (int64_t r = 0; r < rows; ++r) {
    float* d = dst.data() + r * stride + first;
    const float* s = src.data() + r * width;
    for (int64_t c = 0; c < width; ++c) d[c] += s[c];
  }
}

absl::StatusOr<double> BatchLossImpl(const TrainingBatch& tb, const OutputHeads& heads,
                                     const Transformer::Outputs& out, std::span<float> d_token,
                                     std::span<float> d_gap, kernels::Backend device,
                                     LossScratch* s) {
  const SequenceBatch& x = tb.x_t;
  const int64_t nb = x.num_sequences(), nt = x.num_tokens(), ng = x.num_gaps();
  if (tb.process != heads.process) {
    return InvalidArgumentError(StrCat("batch is for process ", ProcessName(tb.process),
                                       " but the heads are ", ProcessName(heads.process)));
  }
  if (out.num_tokens != nt || out.num_gaps != ng) {
    return InvalidArgumentError(StrCat("model outputs have ", out.num_tokens, " token rows and ",
                                       out.num_gaps, " gap rows; the batch has ", nt, " and ", ng));
  }
  if (d_token.size() != out.token_out.size() || d_gap.size() != out.gap_out.size()) {
    return InvalidArgumentError(StrCat("gradient buffers have ", d_token.size(), " and ",
                                       d_gap.size(), " entries; outputs have ",
                                       out.token_out.size(), " and ", out.gap_out.size()));
  }
  if (static_cast<int64_t>(tb.weights.size()) != nb) {
    return InvalidArgumentError(
        StrCat("batch has ", tb.weights.size(), " weights for ", nb, " sequences"));
  }
  std::fill(d_token.begin(), d_token.end(), 0.0f);
  std::fill(d_gap.begin(), d_gap.end(), 0.0f);
  if (nb == 0) return 0.0;

  if (!tb.gap_weights.empty() && static_cast<int64_t>(tb.gap_weights.size()) != ng) {
    return InvalidArgumentError(
        StrCat("batch has ", tb.gap_weights.size(), " gap weights for ", ng, " gaps"));
  }
  if (!tb.gap_times.empty() && static_cast<int64_t>(tb.gap_times.size()) != ng) {
    return InvalidArgumentError(
        StrCat("batch has ", tb.gap_times.size(), " gap times for ", ng, " gaps"));
  }
  // Mean over sequences: row weight = w_b / B (times the batch's gap factor).
  s->token_weights.clear();
  s->gap_weights.clear();
  for (int64_t b = 0; b < nb; ++b) {
    const float w = tb.weights[static_cast<size_t>(b)] / static_cast<float>(nb);
    s->token_weights.insert(s->token_weights.end(), static_cast<size_t>(x.length(b)), w);
    s->gap_weights.insert(s->gap_weights.end(), static_cast<size_t>(x.length(b) + 1), w);
  }
  for (size_t g = 0; g < tb.gap_weights.size(); ++g) s->gap_weights[g] *= tb.gap_weights[g];
  s->excluded.assign(x.tokens().begin(), x.tokens().end());
  s->mask_rows.clear();
  if (heads.frozen_unmasked) {
    for (Token tok : x.tokens()) s->mask_rows.push_back(tok == Vocabulary::kMask ? 1 : 0);
  }
  // Survival scales per row (empty = unscaled): scale_a / scale_b are the
  // token-row scales of the two scalar-or-softmax kinds, gap_scale insertion.
  auto row_scales = [&](const std::shared_ptr<const Scheduler>& sched, bool gaps,
                        std::vector<float>* dst) {
    dst->clear();
    if (sched == nullptr) return;
    if (gaps && !tb.gap_times.empty()) {  // per-gap times
      for (double t : tb.gap_times)
        dst->push_back(static_cast<float>(OutputHeads::Scale(sched, t)));
      return;
    }
    for (int64_t b = 0; b < nb; ++b) {
      const float c = static_cast<float>(OutputHeads::Scale(sched, x.time(b)));
      dst->insert(dst->end(), static_cast<size_t>(x.length(b) + (gaps ? 1 : 0)), c);
    }
  };

  const int64_t v = out.token_columns - (heads.process == ProcessKind::kDfm ? 0 : 2);
  const HeadLayout layout =
      MakeHeadLayout(heads.process, static_cast<int32_t>(v), heads.insert_gate);
  if (layout.token_columns != out.token_columns || layout.gap_columns != out.gap_columns) {
    return InvalidArgumentError("model outputs do not have the columns of the heads' process");
  }
  const int64_t tc = out.token_columns;
  double total = 0.0;

  // Term helpers -----------------------------------------------------------
  auto token_softmax = [&](const char* name, Parametrization p, int64_t first,
                           const std::vector<float>& scales) -> absl::Status {
    const int64_t width = kernels::RawColumns(p, v);
    CopyColumns(out.token_out, nt, tc, first, width, &s->compact);
    s->compact_grad.assign(s->compact.size(), 0.0f);
    LossInputs in;
    in.rows = nt;
    in.targets_per_row = v;
    in.raw = s->compact;
    in.sparse_targets = &tb.token_targets;
    in.row_weights = s->token_weights;
    in.row_scales = scales;
    in.excluded_cols = s->excluded;
    in.row_mask = s->mask_rows;  // empty unless heads.frozen_unmasked
    absl::StatusOr<LossResult> r = ComputeLoss(
        LossSpec{p, Divergence::kPoisson, Reduction::kSum, device}, in, s->compact_grad);
    if (!r.ok()) return Annotate(r.status(), StrCat(name, " loss: "));
    total += r->sum;
    ScatterColumns(s->compact_grad, nt, tc, first, width, d_token);
    return absl::OkStatus();
  };
  auto token_scalar = [&](const char* name, Parametrization p, Divergence d, int64_t col,
                          const std::vector<float>& targets, const std::vector<float>& scales,
                          const std::vector<uint8_t>& mask) -> absl::Status {
    s->scalar_raw.resize(static_cast<size_t>(nt));
    for (int64_t r = 0; r < nt; ++r)
      s->scalar_raw[static_cast<size_t>(r)] = out.token_out[r * tc + col];
    s->scalar_grad.assign(static_cast<size_t>(nt), 0.0f);
    LossInputs in;
    in.row_weights = s->token_weights;
    in.row_scales = scales;
    in.row_mask = mask;
    absl::StatusOr<LossResult> r = ScalarRowLoss(LossSpec{p, d, Reduction::kSum, device},
                                                 s->scalar_raw, targets, in, s->scalar_grad);
    if (!r.ok()) return Annotate(r.status(), StrCat(name, " loss: "));
    total += r->sum;
    for (int64_t r2 = 0; r2 < nt; ++r2)
      d_token[r2 * tc + col] += s->scalar_grad[static_cast<size_t>(r2)];
    return absl::OkStatus();
  };

  switch (heads.process) {
    case ProcessKind::kDfm:
      JUMPFLOW_RETURN_IF_ERROR(token_softmax("token", Parametrization::kSoftmax, 0, {}));
      break;
    case ProcessKind::kEdit: {
      row_scales(heads.insert_scale, true, &s->gap_scale);
      LossInputs in;
      in.rows = ng;
      in.targets_per_row = v;
      in.raw = out.gap_out;
      in.sparse_targets = &tb.insert_targets;
      in.row_weights = s->gap_weights;
      in.row_scales = s->gap_scale;
      const LossSpec spec{heads.RateSoftmax(), Divergence::kPoisson, Reduction::kSum, device};
      if (!heads.insert_gate) {
        absl::StatusOr<LossResult> r = ComputeLoss(spec, in, d_gap);
        if (!r.ok()) return Annotate(r.status(), "insertion loss: ");
        total += r->sum;
      } else {
        // Gated (model_rate.h): the [rate, logits] block with the row scale
        // c = S^(1 - g); the gate's gradient is the rate column's times
        // d log c / d z_gate (lambda = c exp(z_rate), so dL/d log c =
        // dL/dz_rate below the kernel's exp clamp at z_rate = 80, where both
        // are taken as 0).
        const int64_t gc = out.gap_columns, width = 1 + v;
        CopyColumns(out.gap_out, ng, gc, layout.insert_rate, width, &s->compact);
        s->compact_grad.assign(s->compact.size(), 0.0f);
        s->scale_a.resize(static_cast<size_t>(ng));
        s->scale_b.resize(static_cast<size_t>(ng));
        for (int64_t g = 0; g < ng; ++g) {
          double dlogc = 0.0;
          s->scale_a[static_cast<size_t>(g)] = static_cast<float>(
              OutputHeads::GatedScale(s->gap_scale[static_cast<size_t>(g)],
                                      out.gap_out[g * gc + layout.insert_gate], &dlogc));
          s->scale_b[static_cast<size_t>(g)] = static_cast<float>(dlogc);
        }
        in.raw = s->compact;
        in.row_scales = s->scale_a;
        absl::StatusOr<LossResult> r = ComputeLoss(spec, in, s->compact_grad);
        if (!r.ok()) return Annotate(r.status(), "insertion loss: ");
        total += r->sum;
        ScatterColumns(s->compact_grad, ng, gc, layout.insert_rate, width, d_gap);
        for (int64_t g = 0; g < ng; ++g) {
          d_gap[g * gc + layout.insert_gate] =
              s->compact_grad[static_cast<size_t>(g * width)] * s->scale_b[static_cast<size_t>(g)];
        }
      }
      if (!heads.insertion_only) {
        row_scales(heads.substitute_scale, false, &s->scale_a);
        row_scales(heads.delete_scale, false, &s->scale_b);
        JUMPFLOW_RETURN_IF_ERROR(
            token_softmax("substitution", heads.RateSoftmax(), layout.substitute_rate, s->scale_a));
        JUMPFLOW_RETURN_IF_ERROR(token_scalar("deletion", Parametrization::kSigmoid,
                                              Divergence::kBce, layout.delete_rate,
                                              tb.delete_targets, s->scale_b, {}));
      }
      break;
    }
    case ProcessKind::kBranching:
      row_scales(heads.split_scale, false, &s->scale_a);
      row_scales(heads.delete_scale, false, &s->scale_b);
      // With MASK roots a letter element is a leaf: its split multiplier is
      // 0 by construction (row left out, like its token row).
      JUMPFLOW_RETURN_IF_ERROR(token_scalar("split", heads.ScalarRate(), Divergence::kPoisson,
                                            layout.split_rate, tb.split_targets, s->scale_a,
                                            s->mask_rows));
      JUMPFLOW_RETURN_IF_ERROR(token_scalar("deletion", Parametrization::kSigmoid, Divergence::kBce,
                                            layout.delete_logit, tb.delete_targets, s->scale_b,
                                            {}));
      JUMPFLOW_RETURN_IF_ERROR(
          token_softmax("anchor token", Parametrization::kSoftmax, layout.token_logits, {}));
      break;
  }
  if (!std::isfinite(total))
    return InvalidArgumentError(StrCat("loss is not finite (", total, ")"));
  return total;
}

}  // namespace

// ---------------------------------------------------------------------------

absl::StatusOr<TrainProcess> ParseTrainProcess(absl::string_view name) {
  if (name == "dfm-mask") return TrainProcess::kDfmMask;
  if (name == "dfm-uniform") return TrainProcess::kDfmUniform;
  if (name == "edit") return TrainProcess::kEdit;
  if (name == "branching") return TrainProcess::kBranching;
  return InvalidArgumentError(
      StrCat("unknown process '", name, "' (dfm-mask, dfm-uniform, edit or branching)"));
}

std::string TrainProcessName(TrainProcess process) {
  switch (process) {
    case TrainProcess::kDfmMask:
      return "dfm-mask";
    case TrainProcess::kDfmUniform:
      return "dfm-uniform";
    case TrainProcess::kEdit:
      return "edit";
    case TrainProcess::kBranching:
      return "branching";
  }
  return "edit";
}

AdamWOptions TrainerOptions::DefaultOptimizer() {
  AdamWOptions o;
  o.learning_rate = 2e-3;
  o.warmup_steps = 100;
  o.schedule = LrSchedule::kCosine;
  o.min_learning_rate_fraction = 0.1;
  o.clip_norm = 1.0;
  o.weight_decay = 0.01;
  return o;
}

TransformerConfig TrainerOptions::DefaultModel() {
  TransformerConfig c;
  c.max_length = 0;
  return c;
}

absl::Status TrainerOptions::Validate() const {
  if (batch_size < 1)
    return InvalidArgumentError(StrCat("batch size must be >= 1, got ", batch_size));
  if (steps < 1) return InvalidArgumentError(StrCat("steps must be >= 1, got ", steps));
  if (!(eval_fraction >= 0.0 && eval_fraction <= 0.5)) {
    return InvalidArgumentError(StrCat("eval fraction must be in [0, 0.5], got ", eval_fraction));
  }
  if (eval_every < 0)
    return InvalidArgumentError(StrCat("eval_every must be >= 0, got ", eval_every));
  if (eval_sequences < 1) {
    return InvalidArgumentError(StrCat("eval_sequences must be >= 1, got ", eval_sequences));
  }
  if (checkpoint_every < 0) {
    return InvalidArgumentError(StrCat("checkpoint_every must be >= 0, got ", checkpoint_every));
  }
  if (log_every < 1) return InvalidArgumentError(StrCat("log_every must be >= 1, got ", log_every));
  if (threads < 0) return InvalidArgumentError(StrCat("threads must be >= 0, got ", threads));
  JUMPFLOW_RETURN_IF_ERROR(kernels::CheckBackendAvailable(device));
  if (!(std::isfinite(bound_factor) && bound_factor >= 1.0)) {
    return InvalidArgumentError(StrCat("bound factor must be finite and >= 1, got ", bound_factor));
  }
  if (process == TrainProcess::kEdit && edit_source == EditSource::kNoise &&
      !(noise_min_length >= 0 && noise_min_length <= noise_max_length &&
        noise_max_length <= (1 << 20))) {
    return InvalidArgumentError(StrCat("noise lengths must satisfy 0 <= min <= max, got ",
                                       noise_min_length, " and ", noise_max_length));
  }
  if (!(branching_deletion_probability >= 0.0 && branching_deletion_probability <= 1.0)) {
    return InvalidArgumentError(StrCat("branching deletion probability must be in [0, 1], got ",
                                       branching_deletion_probability));
  }
  if (!(branching_coalescence >= 0.0 && branching_coalescence <= 1.0)) {
    return InvalidArgumentError(
        StrCat("branching coalescence must be in [0, 1], got ", branching_coalescence));
  }
  AdamWOptions adam = optimizer;
  adam.total_steps = steps;
  absl::Status s = adam.Validate();
  if (!s.ok()) return Annotate(s, "optimizer: ");
  return absl::OkStatus();
}

std::pair<Dataset, Dataset> SplitData(const Dataset& data, double fraction, uint64_t seed) {
  const std::vector<int64_t> train = SplitIndices(data.size(), fraction, seed, false);
  const std::vector<int64_t> held = SplitIndices(data.size(), fraction, seed, true);
  return {data.Subset(train), data.Subset(held)};
}

uint64_t DataFingerprint(const Dataset& data, const std::vector<std::vector<Token>>& sources) {
  std::string bytes = data.vocab().Serialize();
  auto put = [&](const void* p, size_t n) { bytes.append(static_cast<const char*>(p), n); };
  for (int64_t i = 0; i < data.size(); ++i) {
    const auto seq = data.sequence(i);
    const int64_t n = static_cast<int64_t>(seq.size());
    const double w = data.weight(i);
    put(&n, sizeof(n));
    put(seq.data(), seq.size() * sizeof(Token));
    put(&w, sizeof(w));
  }
  const int64_t ns = static_cast<int64_t>(sources.size());
  put(&ns, sizeof(ns));
  for (const auto& src : sources) {
    const int64_t n = static_cast<int64_t>(src.size());
    put(&n, sizeof(n));
    put(src.data(), src.size() * sizeof(Token));
  }
  return Fnv1a64(bytes);
}

absl::StatusOr<double> BatchLoss(const TrainingBatch& batch, const OutputHeads& heads,
                                 const Transformer::Outputs& out, std::span<float> d_token,
                                 std::span<float> d_gap, kernels::Backend device) {
  LossScratch scratch;
  return BatchLossImpl(batch, heads, out, d_token, d_gap, device, &scratch);
}

// ---------------------------------------------------------------------------

struct Trainer::Impl {
  TrainerOptions options;
  Vocabulary vocab = *Vocabulary::FromSymbols({"?"}, Vocabulary::Kind::kCharacter);
  Dataset train, eval;
  std::vector<std::vector<Token>> train_sources, eval_sources;
  std::vector<double> train_weights;  // data weights normalised to mean 1
  uint64_t fingerprint = 0;
  std::vector<int64_t> length_histogram;

  std::shared_ptr<const Scheduler> scheduler, insert_sched, delete_sched, substitute_sched,
      split_sched, deletion_sched;
  std::unique_ptr<TimeDistribution> time_distribution;
  std::unique_ptr<TimeWeight> time_weight;
  OutputHeads heads;

  std::optional<Transformer> model;
  std::optional<AdamW> adam;
  Transformer::Workspace workspace;
  Transformer::Outputs outputs;
  std::vector<float> grad, d_token, d_gap;
  LossScratch scratch;

  int64_t step = 0;
  double seconds = 0.0;  // training wall time of all completed steps
  int64_t cached_epoch = -1;
  std::vector<int64_t> epoch_order;

  std::vector<std::string> log_rows;  // CSV rows without the header
  std::unique_ptr<tbb::global_control> threads;

  absl::Status Init(std::vector<std::vector<Token>> sources, const Dataset& data);
  absl::StatusOr<TrainingBatch> MakeBatch(const std::vector<int64_t>& indices, const Dataset& d,
                                          const std::vector<std::vector<Token>>& srcs,
                                          const std::vector<double>* data_weights, uint64_t seed);
  std::map<std::string, std::string> Settings() const;
  absl::Status WriteLog() const;
};

namespace {
constexpr char kLogHeader[] = "step,train_loss,eval_loss,lr,tokens_per_s,seconds\n";
}  // namespace

absl::Status Trainer::Impl::Init(std::vector<std::vector<Token>> sources, const Dataset& data) {
  TrainerOptions& o = options;
  vocab = data.vocab();
  if (data.size() == 0) return InvalidArgumentError("training data is empty");
  if (!sources.empty()) {
    if (o.process != TrainProcess::kEdit) {
      return InvalidArgumentError(
          StrCat("(x0, x1) pairs need --process edit, got ", TrainProcessName(o.process)));
    }
    if (static_cast<int64_t>(sources.size()) != data.size()) {
      return InvalidArgumentError(
          StrCat("got ", sources.size(), " sources for ", data.size(), " target sequences"));
    }
    o.edit_source = EditSource::kPairs;
  } else if (o.edit_source == EditSource::kPairs) {
    return InvalidArgumentError("edit source 'pairs' needs (x0, x1) pairs");
  }
  if (o.process != TrainProcess::kEdit) o.edit_source = EditSource::kEmpty;
  if (o.insertion_order == InsertionOrder::kLeftToRight &&
      (o.process != TrainProcess::kEdit || o.edit_source != EditSource::kEmpty)) {
    return InvalidArgumentError(
        "left-to-right insertions need the edit process with an empty x_0 (no pairs or noise)");
  }
  if (o.per_gap_times && o.insertion_order != InsertionOrder::kLeftToRight) {
    return InvalidArgumentError("per-gap times need left-to-right insertions");
  }
  // Left to right, the model is causal and trained on all prefixes at once;
  // with per-gap times it takes time at its heads.
  o.model.causal = o.insertion_order == InsertionOrder::kLeftToRight;
  o.model.time_at_heads = o.per_gap_times;
  if (o.scheduler.empty()) o.scheduler = o.process == TrainProcess::kEdit ? "poly:3" : "linear";
  for (std::string* spec : {&o.insert_scheduler, &o.delete_scheduler, &o.substitute_scheduler,
                            &o.split_scheduler, &o.deletion_scheduler}) {
    if (spec->empty()) *spec = o.scheduler;
  }
  JUMPFLOW_RETURN_IF_ERROR(o.Validate());
  if (o.threads > 0) {
    threads = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism,
                                                    static_cast<size_t>(o.threads));
  }

  JUMPFLOW_ASSIGN_OR_RETURN(scheduler, MakeScheduler(o.scheduler));
  JUMPFLOW_ASSIGN_OR_RETURN(insert_sched, MakeScheduler(o.insert_scheduler));
  JUMPFLOW_ASSIGN_OR_RETURN(delete_sched, MakeScheduler(o.delete_scheduler));
  JUMPFLOW_ASSIGN_OR_RETURN(substitute_sched, MakeScheduler(o.substitute_scheduler));
  JUMPFLOW_ASSIGN_OR_RETURN(split_sched, MakeScheduler(o.split_scheduler));
  JUMPFLOW_ASSIGN_OR_RETURN(deletion_sched, MakeScheduler(o.deletion_scheduler));
  JUMPFLOW_ASSIGN_OR_RETURN(time_distribution, MakeTimeDistribution(o.time_distribution));
  JUMPFLOW_ASSIGN_OR_RETURN(time_weight, MakeTimeWeight(o.time_weight));

  HeadOptions ho;
  ho.process = TrainProcessName(o.process);
  ho.insertion_only = o.edit_source == EditSource::kEmpty;
  ho.mask_roots = !o.branching_uniform_root;
  ho.rate_link = o.rate_link;
  ho.survival_scale = o.survival_scale;
  ho.insert_gate = o.model.insert_gate;
  ho.insert = insert_sched;
  ho.del = o.process == TrainProcess::kBranching ? deletion_sched : delete_sched;
  ho.substitute = substitute_sched;
  ho.split = split_sched;
  JUMPFLOW_ASSIGN_OR_RETURN(heads, MakeOutputHeads(ho));

  // Splits.
  fingerprint = DataFingerprint(data, sources);
  const std::vector<int64_t> train_idx = SplitIndices(data.size(), o.eval_fraction, o.seed, false);
  const std::vector<int64_t> eval_idx = SplitIndices(data.size(), o.eval_fraction, o.seed, true);
  train = data.Subset(train_idx);
  eval = data.Subset(eval_idx);
  if (train.size() == 0) return InvalidArgumentError("no training data left after the split");
  if (!sources.empty()) {
    for (int64_t i : train_idx) train_sources.push_back(sources[static_cast<size_t>(i)]);
    for (int64_t i : eval_idx) eval_sources.push_back(sources[static_cast<size_t>(i)]);
  }
  double wsum = 0.0;
  for (double w : train.weights()) wsum += w;
  const double mean_w = wsum / static_cast<double>(train.size());
  for (double w : train.weights()) train_weights.push_back(w / mean_w);

  // Lengths: the histogram of training x_1 and the longest state possible.
  int64_t longest = 0;
  for (int64_t i = 0; i < data.size(); ++i) {
    int64_t n = static_cast<int64_t>(data.sequence(i).size());
    if (o.process == TrainProcess::kEdit) {
      if (o.edit_source == EditSource::kPairs)
        n += static_cast<int64_t>(sources[static_cast<size_t>(i)].size());
      if (o.edit_source == EditSource::kNoise) n += o.noise_max_length;
    }
    if (o.process == TrainProcess::kBranching && o.branching_deletion_probability > 0.0) n *= 2;
    longest = std::max(longest, n);
  }
  for (const auto& seq : train.sequences()) {
    const size_t n = seq.size();
    if (length_histogram.size() <= n) length_histogram.resize(n + 1, 0);
    ++length_histogram[n];
  }

  TransformerConfig& c = o.model;
  if (c.vocab_size != 0 && c.vocab_size != vocab.size()) {
    return InvalidArgumentError(StrCat("model vocab_size ", c.vocab_size,
                                       " differs from the data's vocabulary size ", vocab.size()));
  }
  c.vocab_size = vocab.size();
  c.process = heads.process;
  if (c.max_length == 0) {
    c.max_length = static_cast<int32_t>(std::max<int64_t>(1, longest));
  } else if (c.max_length < longest) {
    return InvalidArgumentError(StrCat("model max_length ", c.max_length,
                                       " is below the longest training state ", longest,
                                       " (0 picks it automatically)"));
  }
  JUMPFLOW_RETURN_IF_ERROR(c.Validate());
  return absl::OkStatus();
}

absl::StatusOr<TrainingBatch> Trainer::Impl::MakeBatch(const std::vector<int64_t>& indices,
                                                       const Dataset& d,
                                                       const std::vector<std::vector<Token>>& srcs,
                                                       const std::vector<double>* data_weights,
                                                       uint64_t seed) {
  std::vector<std::vector<Token>> x1, x0;
  x1.reserve(indices.size());
  for (int64_t i : indices) {
    const auto seq = d.sequence(i);
    x1.emplace_back(seq.begin(), seq.end());
    if (!srcs.empty()) x0.push_back(srcs[static_cast<size_t>(i)]);
  }
  JUMPFLOW_ASSIGN_OR_RETURN(SequenceBatch x1_batch, SequenceBatch::FromVectors(x1, vocab.size()));
  const int64_t nb = x1_batch.num_sequences();
  JUMPFLOW_ASSIGN_OR_RETURN(std::vector<double> times,
                            BatchTimes::Sampled(*time_distribution).Resolve(nb, seed));
  std::vector<double> weights(static_cast<size_t>(nb));
  for (int64_t b = 0; b < nb; ++b) {
    const double dw = data_weights ? (*data_weights)[static_cast<size_t>(indices[b])] : 1.0;
    // With per-gap times the time weight goes to the gaps (MakeEditFlowBatch).
    weights[static_cast<size_t>(b)] =
        options.per_gap_times ? dw : time_weight->Weight(times[static_cast<size_t>(b)]) * dw;
  }
  const BatchTimes bt = BatchTimes::Explicit(times);
  const BatchWeights bw = BatchWeights::Explicit(weights);
  switch (options.process) {
    case TrainProcess::kDfmMask:
    case TrainProcess::kDfmUniform: {
      DfmOptions opt;
      opt.vocab_size = vocab.size();
      opt.source =
          options.process == TrainProcess::kDfmMask ? DfmSource::kMask : DfmSource::kUniform;
      return MakeDfmBatch(x1_batch, bt, *scheduler, opt, seed, bw);
    }
    case TrainProcess::kEdit: {
      EditFlowOptions opt;
      opt.vocab_size = vocab.size();
      opt.source = options.edit_source;
      opt.insertion_order = options.insertion_order;
      // Left to right, the model is causal: every prefix of a word at once.
      opt.all_prefixes = options.insertion_order == InsertionOrder::kLeftToRight;
      if (options.per_gap_times) {
        opt.gap_time_distribution = time_distribution.get();
        opt.gap_time_weight = time_weight.get();
      }
      opt.noise_min_length = options.noise_min_length;
      opt.noise_max_length = options.noise_max_length;
      opt.alignment = options.alignment;
      opt.insert_scheduler = insert_sched.get();
      opt.delete_scheduler = delete_sched.get();
      opt.substitute_scheduler = substitute_sched.get();
      SequenceBatch x0_batch;
      if (options.edit_source == EditSource::kPairs) {
        JUMPFLOW_ASSIGN_OR_RETURN(x0_batch, SequenceBatch::FromVectors(x0, vocab.size()));
        opt.x0 = &x0_batch;
      }
      return MakeEditFlowBatch(x1_batch, bt, *scheduler, opt, seed, bw);
    }
    case TrainProcess::kBranching: {
      BranchingOptions opt;
      opt.vocab_size = vocab.size();
      opt.deletion_probability = options.branching_deletion_probability;
      opt.coalescence_factor = options.branching_coalescence;
      opt.root = options.branching_uniform_root ? BranchingRoot::kUniform : BranchingRoot::kMask;
      opt.split_scheduler = split_sched.get();
      opt.deletion_scheduler = deletion_sched.get();
      return MakeBranchingBatch(x1_batch, bt, *scheduler, opt, seed, bw);
    }
  }
  return absl::InternalError("unknown process");
}

std::map<std::string, std::string> Trainer::Impl::Settings() const {
  const TrainerOptions& o = options;
  const AdamWOptions& a = o.optimizer;
  std::map<std::string, std::string> s;
  s["trainer_format"] = std::string(kTrainerFormat);
  s["process"] = TrainProcessName(o.process);
  s["scheduler"] = o.scheduler;
  s["insert_scheduler"] = o.insert_scheduler;
  s["delete_scheduler"] = o.delete_scheduler;
  s["substitute_scheduler"] = o.substitute_scheduler;
  s["split_scheduler"] = o.split_scheduler;
  s["deletion_scheduler"] = o.deletion_scheduler;
  s["time_distribution"] = o.time_distribution;
  s["time_weight"] = o.time_weight;
  s["rate_link"] = RateLinkName(o.rate_link);
  s["rate_scale"] = std::string(o.survival_scale ? "survival" : "none");
  s["edit_source"] = EditSourceName(o.edit_source);
  s["insertion_order"] = std::string(
      o.insertion_order == InsertionOrder::kLeftToRight ? "left-to-right" : "independent");
  s["per_gap_times"] = std::string(o.per_gap_times ? "1" : "0");
  s["noise_min_length"] = StrCat(o.noise_min_length);
  s["noise_max_length"] = StrCat(o.noise_max_length);
  s["alignment"] = std::string(o.alignment == EditAlignment::kRandom ? "random" : "min-edit");
  s["branching_deletion_probability"] = Exact(o.branching_deletion_probability);
  s["branching_coalescence"] = Exact(o.branching_coalescence);
  s["branching_root"] = std::string(o.branching_uniform_root ? "uniform" : "mask");
  s["batch_size"] = StrCat(o.batch_size);
  s["steps"] = StrCat(o.steps);
  s["learning_rate"] = Exact(a.learning_rate);
  s["beta1"] = Exact(a.beta1);
  s["beta2"] = Exact(a.beta2);
  s["epsilon"] = Exact(a.epsilon);
  s["weight_decay"] = Exact(a.weight_decay);
  s["warmup_steps"] = StrCat(a.warmup_steps);
  s["lr_schedule"] = std::string(a.schedule == LrSchedule::kCosine ? "cosine" : "constant");
  s["min_lr_fraction"] = Exact(a.min_learning_rate_fraction);
  s["clip_norm"] = Exact(a.clip_norm);
  s["eval_fraction"] = Exact(o.eval_fraction);
  s["eval_every"] = StrCat(o.eval_every);
  s["eval_sequences"] = StrCat(o.eval_sequences);
  s["checkpoint_every"] = StrCat(o.checkpoint_every);
  s["log_every"] = StrCat(o.log_every);
  s["seed"] = StrCat(o.seed);
  s["bound_factor"] = Exact(o.bound_factor);
  s["step"] = StrCat(step);
  s["seconds"] = Exact(seconds);
  s["data_fingerprint"] = StrCat(fingerprint);
  s["train_size"] = StrCat(train.size());
  s["eval_size"] = StrCat(eval.size());
  s["length_histogram"] = FormatLengthHistogram(length_histogram);
  return s;
}

absl::Status Trainer::Impl::WriteLog() const {
  if (options.log_path.empty()) return absl::OkStatus();
  std::string text = kLogHeader;
  for (const std::string& row : log_rows) absl::StrAppend(&text, row, "\n");
  return WriteFileAtomically(options.log_path, text);
}

// ---------------------------------------------------------------------------

Trainer::Trainer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Trainer::Trainer(Trainer&&) noexcept = default;
Trainer& Trainer::operator=(Trainer&&) noexcept = default;
Trainer::~Trainer() = default;

absl::StatusOr<Trainer> Trainer::Create(TrainerOptions options, Dataset data,
                                        std::vector<std::vector<Token>> sources) {
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  JUMPFLOW_RETURN_IF_ERROR(impl->Init(std::move(sources), data));
  JUMPFLOW_ASSIGN_OR_RETURN(Transformer model,
                            Transformer::Create(impl->options.model, impl->options.seed));
  AdamWOptions adam = impl->options.optimizer;
  adam.total_steps = impl->options.steps;
  JUMPFLOW_ASSIGN_OR_RETURN(AdamW opt,
                            AdamW::Create(adam, model.NumParameters(), model.ParameterGroups()));
  impl->model.emplace(std::move(model));
  impl->adam.emplace(std::move(opt));
  return Trainer(std::move(impl));
}

namespace {

// OptionsFromSettings is the inverse of Impl::Settings for the options.
absl::StatusOr<TrainerOptions> OptionsFromSettings(const std::map<std::string, std::string>& s) {
  auto get = [&](const std::string& key) -> absl::StatusOr<std::string> {
    auto it = s.find(key);
    if (it == s.end()) {
      return absl::DataLossError(StrCat("checkpoint setting '", key, "' is missing"));
    }
    return it->second;
  };
  auto get_int = [&](const std::string& key) -> absl::StatusOr<int64_t> {
    JUMPFLOW_ASSIGN_OR_RETURN(std::string v, get(key));
    int64_t x = 0;
    if (!absl::SimpleAtoi(v, &x)) {
      return absl::DataLossError(
          StrCat("checkpoint setting '", key, "' = '", v, "' is not an integer"));
    }
    return x;
  };
  auto get_double = [&](const std::string& key) -> absl::StatusOr<double> {
    JUMPFLOW_ASSIGN_OR_RETURN(std::string v, get(key));
    double x = 0;
    if (!absl::SimpleAtod(v, &x)) {
      return absl::DataLossError(
          StrCat("checkpoint setting '", key, "' = '", v, "' is not a number"));
    }
    return x;
  };
  JUMPFLOW_ASSIGN_OR_RETURN(std::string format, get("trainer_format"));
  if (format != kTrainerFormat) {
    return InvalidArgumentError(StrCat("checkpoint trainer format '", format,
                                       "' is not supported (this build reads ", kTrainerFormat,
                                       ")"));
  }
  TrainerOptions o;
  JUMPFLOW_ASSIGN_OR_RETURN(std::string process, get("process"));
  JUMPFLOW_ASSIGN_OR_RETURN(o.process, ParseTrainProcess(process));
  JUMPFLOW_ASSIGN_OR_RETURN(o.scheduler, get("scheduler"));
  JUMPFLOW_ASSIGN_OR_RETURN(o.insert_scheduler, get("insert_scheduler"));
  JUMPFLOW_ASSIGN_OR_RETURN(o.delete_scheduler, get("delete_scheduler"));
  JUMPFLOW_ASSIGN_OR_RETURN(o.substitute_scheduler, get("substitute_scheduler"));
  JUMPFLOW_ASSIGN_OR_RETURN(o.split_scheduler, get("split_scheduler"));
  JUMPFLOW_ASSIGN_OR_RETURN(o.deletion_scheduler, get("deletion_scheduler"));
  JUMPFLOW_ASSIGN_OR_RETURN(o.time_distribution, get("time_distribution"));
  JUMPFLOW_ASSIGN_OR_RETURN(o.time_weight, get("time_weight"));
  JUMPFLOW_ASSIGN_OR_RETURN(std::string link, get("rate_link"));
  JUMPFLOW_ASSIGN_OR_RETURN(o.rate_link, ParseRateLink(link));
  JUMPFLOW_ASSIGN_OR_RETURN(std::string rate_scale, get("rate_scale"));
  if (rate_scale != "survival" && rate_scale != "none") {
    return absl::DataLossError(StrCat("checkpoint setting 'rate_scale' = '", rate_scale, "'"));
  }
  o.survival_scale = rate_scale == "survival";
  JUMPFLOW_ASSIGN_OR_RETURN(std::string source, get("edit_source"));
  if (source == "empty") {
    o.edit_source = EditSource::kEmpty;
  } else if (source == "noise") {
    o.edit_source = EditSource::kNoise;
  } else if (source == "pairs") {
    o.edit_source = EditSource::kPairs;
  } else {
    return absl::DataLossError(StrCat("checkpoint setting 'edit_source' = '", source, "'"));
  }
  // per_gap_times: absent from checkpoints written before it existed.
  if (auto it = s.find("per_gap_times"); it != s.end()) {
    if (it->second != "0" && it->second != "1") {
      return absl::DataLossError(StrCat("checkpoint setting 'per_gap_times' = '", it->second, "'"));
    }
    o.per_gap_times = it->second == "1";
  }
  // insertion_order: absent from checkpoints written before it existed.
  if (auto it = s.find("insertion_order"); it != s.end()) {
    if (it->second == "left-to-right") {
      o.insertion_order = InsertionOrder::kLeftToRight;
    } else if (it->second != "independent") {
      return absl::DataLossError(
          StrCat("checkpoint setting 'insertion_order' = '", it->second, "'"));
    }
  }
  JUMPFLOW_ASSIGN_OR_RETURN(o.noise_min_length, get_int("noise_min_length"));
  JUMPFLOW_ASSIGN_OR_RETURN(o.noise_max_length, get_int("noise_max_length"));
  JUMPFLOW_ASSIGN_OR_RETURN(std::string alignment, get("alignment"));
  o.alignment = alignment == "random" ? EditAlignment::kRandom : EditAlignment::kMinEdit;
  JUMPFLOW_ASSIGN_OR_RETURN(o.branching_deletion_probability,
                            get_double("branching_deletion_probability"));
  JUMPFLOW_ASSIGN_OR_RETURN(o.branching_coalescence, get_double("branching_coalescence"));
  JUMPFLOW_ASSIGN_OR_RETURN(std::string root, get("branching_root"));
  o.branching_uniform_root = root == "uniform";
  JUMPFLOW_ASSIGN_OR_RETURN(o.batch_size, get_int("batch_size"));
  JUMPFLOW_ASSIGN_OR_RETURN(o.steps, get_int("steps"));
  AdamWOptions& a = o.optimizer;
  JUMPFLOW_ASSIGN_OR_RETURN(a.learning_rate, get_double("learning_rate"));
  JUMPFLOW_ASSIGN_OR_RETURN(a.beta1, get_double("beta1"));
  JUMPFLOW_ASSIGN_OR_RETURN(a.beta2, get_double("beta2"));
  JUMPFLOW_ASSIGN_OR_RETURN(a.epsilon, get_double("epsilon"));
  JUMPFLOW_ASSIGN_OR_RETURN(a.weight_decay, get_double("weight_decay"));
  JUMPFLOW_ASSIGN_OR_RETURN(a.warmup_steps, get_int("warmup_steps"));
  JUMPFLOW_ASSIGN_OR_RETURN(std::string schedule, get("lr_schedule"));
  JUMPFLOW_ASSIGN_OR_RETURN(a.schedule, ParseLrSchedule(schedule));
  JUMPFLOW_ASSIGN_OR_RETURN(a.min_learning_rate_fraction, get_double("min_lr_fraction"));
  JUMPFLOW_ASSIGN_OR_RETURN(a.clip_norm, get_double("clip_norm"));
  JUMPFLOW_ASSIGN_OR_RETURN(o.eval_fraction, get_double("eval_fraction"));
  JUMPFLOW_ASSIGN_OR_RETURN(o.eval_every, get_int("eval_every"));
  JUMPFLOW_ASSIGN_OR_RETURN(o.eval_sequences, get_int("eval_sequences"));
  JUMPFLOW_ASSIGN_OR_RETURN(o.checkpoint_every, get_int("checkpoint_every"));
  JUMPFLOW_ASSIGN_OR_RETURN(o.log_every, get_int("log_every"));
  JUMPFLOW_ASSIGN_OR_RETURN(std::string seed, get("seed"));
  if (!absl::SimpleAtoi(seed, &o.seed)) {
    return absl::DataLossError(StrCat("checkpoint setting 'seed' = '", seed, "' is not a seed"));
  }
  JUMPFLOW_ASSIGN_OR_RETURN(o.bound_factor, get_double("bound_factor"));
  return o;
}

}  // namespace

absl::StatusOr<Trainer> Trainer::Resume(const std::string& path, Dataset data,
                                        std::vector<std::vector<Token>> sources,
                                        const ResumeOverrides& overrides) {
  JUMPFLOW_ASSIGN_OR_RETURN(Checkpoint ckpt, LoadCheckpoint(path));
  absl::StatusOr<TrainerOptions> parsed = OptionsFromSettings(ckpt.settings);
  if (!parsed.ok()) return Annotate(parsed.status(), StrCat(path, ": "));
  if (!ckpt.has_optimizer_state) {
    return InvalidArgumentError(StrCat(path, ": checkpoint has no optimizer state to resume"));
  }
  if (!(data.vocab() == ckpt.vocab)) {
    return InvalidArgumentError(
        StrCat(path,
               ": the data's vocabulary differs from the checkpoint's (load the data with "
               "the checkpoint's vocabulary)"));
  }
  const uint64_t fp = DataFingerprint(data, sources);
  if (StrCat(fp) != ckpt.settings["data_fingerprint"]) {
    return InvalidArgumentError(StrCat(path,
                                       ": the data differs from the data the checkpoint was "
                                       "trained on (fingerprint ",
                                       fp, " vs ", ckpt.settings["data_fingerprint"], ")"));
  }
  TrainerOptions o = *std::move(parsed);
  o.model = ckpt.model_config;
  o.checkpoint_path = path;
  if (overrides.steps >= 0) o.steps = overrides.steps;
  if (overrides.eval_every >= 0) o.eval_every = overrides.eval_every;
  if (overrides.checkpoint_every >= 0) o.checkpoint_every = overrides.checkpoint_every;
  if (overrides.log_every >= 0) o.log_every = overrides.log_every;
  if (overrides.threads >= 0) o.threads = overrides.threads;
  o.device = overrides.device;
  if (!overrides.checkpoint_path.empty()) o.checkpoint_path = overrides.checkpoint_path;
  o.log_path = overrides.log_path;

  auto impl = std::make_unique<Impl>();
  impl->options = std::move(o);
  JUMPFLOW_RETURN_IF_ERROR(impl->Init(std::move(sources), data));
  JUMPFLOW_ASSIGN_OR_RETURN(Transformer model,
                            Transformer::FromParameters(ckpt.model_config, ckpt.parameters));
  AdamWOptions adam = impl->options.optimizer;
  adam.total_steps = impl->options.steps;
  JUMPFLOW_ASSIGN_OR_RETURN(AdamW opt,
                            AdamW::Create(adam, model.NumParameters(), model.ParameterGroups()));
  JUMPFLOW_RETURN_IF_ERROR(opt.RestoreState(ckpt.optimizer_step, std::move(ckpt.first_moment),
                                            std::move(ckpt.second_moment)));
  int64_t step = 0;
  double seconds = 0.0;
  if (!absl::SimpleAtoi(ckpt.settings["step"], &step) || step != ckpt.optimizer_step) {
    return absl::DataLossError(StrCat(path, ": step '", ckpt.settings["step"],
                                      "' disagrees with the optimizer step ", ckpt.optimizer_step));
  }
  (void)absl::SimpleAtod(ckpt.settings["seconds"], &seconds);
  impl->model.emplace(std::move(model));
  impl->adam.emplace(std::move(opt));
  impl->step = step;
  impl->seconds = seconds;
  // Keep the rows of an existing log up to the resumed step.
  if (!impl->options.log_path.empty()) {
    absl::StatusOr<std::string> old = ReadFile(impl->options.log_path);
    if (old.ok()) {
      bool header = true;
      for (absl::string_view line : absl::StrSplit(*old, '\n', absl::SkipEmpty())) {
        if (header) {
          header = false;
          continue;
        }
        int64_t row_step = 0;
        const size_t comma = line.find(',');
        if (absl::SimpleAtoi(line.substr(0, comma), &row_step) && row_step <= step) {
          impl->log_rows.emplace_back(line);
        }
      }
    }
  }
  return Trainer(std::move(impl));
}

absl::StatusOr<StepStats> Trainer::Step() {
  Impl& m = *impl_;
  const auto start = Clock::now();
  const int64_t k = m.step + 1;
  const std::string where = StrCat("step ", k, ": ");
  const int64_t n = m.train.size();
  const int64_t bs = m.options.batch_size;
  std::vector<int64_t> indices(static_cast<size_t>(bs));
  for (int64_t i = 0; i < bs; ++i) {
    const int64_t p = (k - 1) * bs + i;  // position in the stream of epochs
    const int64_t epoch = p / n;
    if (epoch != m.cached_epoch) {
      m.epoch_order =
          ShuffledIndices(n, m.options.seed, static_cast<uint32_t>(epoch) ^ kBatchStream);
      m.cached_epoch = epoch;
    }
    indices[static_cast<size_t>(i)] = m.epoch_order[static_cast<size_t>(p % n)];
  }
  const uint64_t seed = DeriveSeed(m.options.seed, k, kPurposeTrainStep);
  absl::StatusOr<TrainingBatch> tb =
      m.MakeBatch(indices, m.train, m.train_sources, &m.train_weights, seed);
  if (!tb.ok()) return Annotate(tb.status(), where);

  absl::Status s = m.model->Forward(tb->x_t, &m.workspace, &m.outputs, tb->gap_times);
  if (!s.ok()) return Annotate(s, where);
  m.d_token.resize(m.outputs.token_out.size());
  m.d_gap.resize(m.outputs.gap_out.size());
  absl::StatusOr<double> loss =
      BatchLossImpl(*tb, m.heads, m.outputs, m.d_token, m.d_gap, m.options.device, &m.scratch);
  if (!loss.ok()) {
    // Parameters that blew up show first as non-finite model outputs.
    const bool diverged = absl::StrContains(loss.status().message(), "not finite");
    return Annotate(loss.status(),
                    StrCat(where, diverged ? "training diverged (try a lower learning rate or "
                                             "gradient clipping): "
                                           : ""));
  }
  m.grad.assign(static_cast<size_t>(m.model->NumParameters()), 0.0f);
  s = m.model->Backward(m.d_token, m.d_gap, &m.workspace, m.grad);
  if (!s.ok()) return Annotate(s, where);
  absl::StatusOr<AdamWStepStats> adam = m.adam->Step(m.model->mutable_parameters(), m.grad);
  if (!adam.ok()) return Annotate(adam.status(), where);

  StepStats stats;
  stats.step = k;
  stats.loss = *loss;
  stats.learning_rate = adam->learning_rate;
  stats.grad_norm = adam->grad_norm;
  stats.sequences = static_cast<int64_t>(indices.size());
  for (int64_t i : indices) stats.tokens += static_cast<int64_t>(m.train.sequence(i).size());
  stats.model_tokens = tb->x_t.num_tokens();
  stats.seconds = Seconds(start, Clock::now());
  m.step = k;
  m.seconds += stats.seconds;
  return stats;
}

absl::StatusOr<double> Trainer::EvalLoss() {
  Impl& m = *impl_;
  const int64_t n = std::min(m.eval.size(), m.options.eval_sequences);
  if (n == 0) return std::numeric_limits<double>::quiet_NaN();
  double total = 0.0;
  // Fixed-size eval batches: the draws (times, paths) of a held-out sequence
  // depend only on its index, not on --batch, so eval losses of runs with
  // different batch sizes compare (same draws, common random numbers).
  const int64_t bs = kEvalBatch;
  for (int64_t lo = 0, i = 0; lo < n; lo += bs, ++i) {
    std::vector<int64_t> indices;
    for (int64_t r = lo; r < std::min(n, lo + bs); ++r) indices.push_back(r);
    const uint64_t seed = DeriveSeed(m.options.seed, i, kPurposeEvalBatch);
    JUMPFLOW_ASSIGN_OR_RETURN(TrainingBatch tb,
                              m.MakeBatch(indices, m.eval, m.eval_sources, nullptr, seed));
    JUMPFLOW_RETURN_IF_ERROR(m.model->Forward(tb.x_t, &m.workspace, &m.outputs, tb.gap_times));
    m.d_token.resize(m.outputs.token_out.size());
    m.d_gap.resize(m.outputs.gap_out.size());
    absl::StatusOr<double> loss =
        BatchLossImpl(tb, m.heads, m.outputs, m.d_token, m.d_gap, m.options.device, &m.scratch);
    if (!loss.ok()) return Annotate(loss.status(), StrCat("eval at step ", m.step, ": "));
    total += *loss * static_cast<double>(indices.size());
  }
  return total / static_cast<double>(n);
}

absl::Status Trainer::Train(const std::function<void(const TrainProgress&)>& progress) {
  Impl& m = *impl_;
  const TrainerOptions& o = m.options;
  const auto start = Clock::now();
  int64_t tokens_total = 0;
  double recent_sum = 0.0;
  int64_t recent_count = 0;
  int64_t interval_tokens = 0;
  double interval_seconds = 0.0;
  double eval_loss = std::numeric_limits<double>::quiet_NaN();
  // A wrong output path fails now rather than when the first checkpoint or
  // log is written (possibly hours later).
  if (!o.checkpoint_path.empty()) JUMPFLOW_RETURN_IF_ERROR(CheckWritable(o.checkpoint_path));
  if (!o.log_path.empty()) JUMPFLOW_RETURN_IF_ERROR(CheckWritable(o.log_path));
  while (m.step < o.steps) {
    JUMPFLOW_ASSIGN_OR_RETURN(StepStats st, Step());
    tokens_total += st.tokens;
    interval_tokens += st.tokens;
    interval_seconds += st.seconds;
    recent_sum += st.loss;
    ++recent_count;
    const bool last = st.step == o.steps;
    TrainProgress p;
    p.step = st;
    p.total_steps = o.steps;
    p.elapsed_seconds = Seconds(start, Clock::now());
    p.tokens_per_second =
        p.elapsed_seconds > 0 ? static_cast<double>(tokens_total) / p.elapsed_seconds : 0.0;
    p.recent_loss = recent_sum / static_cast<double>(recent_count);
    p.evaluated = last || (o.eval_every > 0 && st.step % o.eval_every == 0);
    if (p.evaluated) {
      JUMPFLOW_ASSIGN_OR_RETURN(eval_loss, EvalLoss());
    }
    p.eval_loss = eval_loss;
    if (last || st.step % o.log_every == 0 || p.evaluated) {
      m.log_rows.push_back(absl::StrFormat(
          "%d,%.6g,%s,%.6g,%.6g,%.3f", st.step, p.recent_loss,
          p.evaluated && std::isfinite(eval_loss) ? absl::StrFormat("%.6g", eval_loss) : "",
          st.learning_rate,
          interval_seconds > 0 ? static_cast<double>(interval_tokens) / interval_seconds : 0.0,
          m.seconds));
      recent_sum = 0.0;
      recent_count = 0;
      interval_tokens = 0;
      interval_seconds = 0.0;
    }
    p.checkpointed = !o.checkpoint_path.empty() &&
                     (last || (o.checkpoint_every > 0 && st.step % o.checkpoint_every == 0));
    if (p.checkpointed) JUMPFLOW_RETURN_IF_ERROR(SaveCheckpoint(o.checkpoint_path));
    if (last || p.evaluated || p.checkpointed) JUMPFLOW_RETURN_IF_ERROR(m.WriteLog());
    if (progress) progress(p);
  }
  return absl::OkStatus();
}

absl::StatusOr<Checkpoint> Trainer::MakeCheckpoint() const {
  const Impl& m = *impl_;
  Checkpoint c;
  c.model_config = m.model->config();
  c.vocab = m.vocab;
  c.settings = m.Settings();
  c.parameters.assign(m.model->parameters().begin(), m.model->parameters().end());
  c.has_optimizer_state = true;
  c.optimizer_step = m.adam->step();
  c.first_moment.assign(m.adam->first_moment().begin(), m.adam->first_moment().end());
  c.second_moment.assign(m.adam->second_moment().begin(), m.adam->second_moment().end());
  return c;
}

absl::Status Trainer::SaveCheckpoint(const std::string& path) const {
  JUMPFLOW_ASSIGN_OR_RETURN(Checkpoint c, MakeCheckpoint());
  return jumpflow::SaveCheckpoint(path, c);
}

int64_t Trainer::step() const { return impl_->step; }
const TrainerOptions& Trainer::options() const { return impl_->options; }
const Transformer& Trainer::model() const { return *impl_->model; }
const AdamW& Trainer::optimizer() const { return *impl_->adam; }
const OutputHeads& Trainer::heads() const { return impl_->heads; }
const Vocabulary& Trainer::vocab() const { return impl_->vocab; }
const Dataset& Trainer::train_data() const { return impl_->train; }
const Dataset& Trainer::eval_data() const { return impl_->eval; }

}  // namespace jumpflow
