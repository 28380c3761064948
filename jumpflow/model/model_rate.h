// @brief The trained reference transformer as a RateModel: raw head outputs
// become rate multipliers through the same parametrizations the training
// loss uses, and a checkpoint becomes everything a sampler needs (model,
// vocabulary, schedulers, start states).
//
// Parametrizations (OutputHeads; V = vocabulary size; z = the raw outputs of
// a row, columns as in jumpflow/model/transformer.h HeadLayout; link(z) =
// exp(min(z, 80)) for RateLink::kExp, log(1 + exp(z)) for kSoftplus):
//   DFM        token_rate 1, token_dist = softmax(z_logits) (mask source:
//              token_rate 0 on tokens that are not MASK, see
//              OutputHeads::frozen_unmasked)
//   Edit       insert_rate = link(z_ins_rate), insert_dist = softmax(z_ins_logits);
//              delete_rate = sigmoid(z_del) (the probability that the token
//              is deleted on the way to x_1; trained with BCE);
//              token_rate = link(z_sub_rate), token_dist = softmax(z_sub_logits).
//              insertion_only (x_0 empty in training): deletion and
//              substitution multipliers are exactly 0 (every conditional
//              target is 0, so the marginal is 0; the trainer does not fit
//              those heads).
//   Branching  token_rate 1, token_dist = softmax(z_logits) (anchor token;
//              token_rate 0 on non-MASK tokens with MASK roots);
//              split_rate = link(z_split); delete_rate = sigmoid(z_del).
// Survival scaling (OutputHeads::*_scale set; the trainer's default for Edit
// and Branching): the multipliers of an edit kind k are further multiplied by
// c_k(t) = max(S_k(t), kMinRateScale), S_k = 1 - kappa_k of that kind's
// scheduler, so the network predicts m / S_k. Why: the true marginal
// multiplier of an element that is already where x_1 wants it (a complete
// word, a token that stays) decays like S_k(t) as t -> 1 while the hazard
// h_k = kappa_k' / S_k diverges; their product h_k m stays finite. An
// unscaled network cannot follow log S_k -> -infinity with bounded time
// features, so a small floor m_min on its multipliers integrates against the
// divergent hazard into m_min * H_k(1) spurious late edits (exact Gillespie
// integrates H up to -log(kMinSurvival) ~ 690). Scaled, the rate is
// kappa_k'(t) exp(z): finite at t = 1. DFM heads are never scaled (the
// posterior softmax is the standard DFM parametrization).
// Causal Edit models (TransformerConfig::causal, `--insert-order
// left-to-right`) insert left to right: every gap but the last of each
// sequence gets rate 0 (jumpflow/processes/edit_flow.h, all prefixes).
// Insertion gate (Edit, TransformerConfig::insert_gate; `--insert-gate`): the
// insertion multiplier of a gap is m = exp(z_rate) S(t)^(1 - g) x softmax,
// g = sigmoid(z_gate) from one more gap column, instead of exp(z_rate) S(t).
// Why: the true multiplier E[#missing tokens in the gap | x_t] behaves near
// t = 1 like a power of S: ~S^1 where x_t may already be complete there
// (a word of the data matches), ~S^0 where something is surely missing. The
// survival scale alone fixes the power at 1, so a gap that is surely
// incomplete needs z_rate ~ -log S(t) -> infinity, which bounded time
// features cannot follow: late insertions come too slowly and samples stop
// short or put the token elsewhere. The gate lets the network choose the
// power per gap (a classification of the state, nearly independent of t).
// The loss sees it as the row scale c = S^(1 - g) of the rate x softmax
// parametrization; dL/dz_gate = dL/dz_rate x (-log S) g (1 - g).
// The softmax runs over all V ids as in the loss; afterwards the special ids
// (< Vocabulary::kNumSpecials) get multiplier 0: training targets never
// contain them, so a trained model only gives them tiny mass, and sampling
// never proposes them. The current token's entry is ignored by the samplers
// (jumpflow/rate_model.h), exactly as the loss excludes it.
//
// Bound factor (exact Gillespie with thinning, jumpflow/samplers/sampler.h):
// a trained network promises nothing about how its multipliers move between
// events. The exact marginal rates of the insertion-only Edit Flow and of the
// DFM oracles never increase in t (DESIGN.md, Samplers), and a model that
// fits them well moves little between events, so the default bound factor
// is kDefaultBoundFactor = 2: every proposal costs one model evaluation and
// about half are thinned away, while a model whose total rate more than
// doubles between events is counted in SamplerStats::bound_violations (and
// the user can raise the factor). Checkpoints record the factor the trainer
// was told to use ("bound_factor" setting).
//
// Known limitation (DFM with a uniform source): the posterior softmax head
// cannot let the jump mass of a token that is already right decay like
// 1 - kappa(t) (that needs logits diverging like -log(1 - kappa)), and no
// survival scale applies (a wrong token must keep total mass ~1), so exact
// Gillespie integrates the leftover mass against the divergent hazard and
// changes correct tokens late. Measured on the 10-word test set: Gillespie
// 0.55 of samples in the data vs 0.97 for tau-leaping (100 kappa steps);
// prefer tau-leaping for dfm-uniform models.
//
// Determinism: a sequence's multipliers depend only on that sequence and its
// time, up to float rounding in the last bits of the matrix products (the
// transformer tiles rows of a batch differently, see transformer.h); they do
// not depend on the thread count.
//
// Checkpoint settings read here (written by jumpflow/trainer.h): "process"
// (dfm-mask | dfm-uniform | edit | branching), "scheduler",
// "insert_scheduler", "delete_scheduler", "substitute_scheduler",
// "split_scheduler", "deletion_scheduler" (scheduler specs), "rate_link"
// (exp | softplus), "rate_scale" (survival | none), "edit_source" (empty |
// noise | pairs),
// "noise_min_length", "noise_max_length", "branching_root" (mask | uniform),
// "branching_coalescence", "length_histogram" ("LEN:COUNT,..." of the
// training sequences), "bound_factor".
//
// Example:
//   JUMPFLOW_ASSIGN_OR_RETURN(TrainedModel tm, LoadTrainedModel("words.ckpt"));
//   JUMPFLOW_ASSIGN_OR_RETURN(SequenceBatch start, tm.SourceBatch(/*num=*/1000, /*seed=*/1));
//   SamplerOptions opt;
//   opt.kind = SamplerKind::kGillespie;
//   opt.max_length = tm.max_length();
//   JUMPFLOW_ASSIGN_OR_RETURN(SampleResult r, Sample(*tm.model, tm.schedulers(), start, opt));
//   for (const auto& w : r.final_batch.ToVectors()) std::puts(tm.vocab.Decode(w).c_str());
#ifndef JUMPFLOW_MODEL_MODEL_RATE_H_
#define JUMPFLOW_MODEL_MODEL_RATE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "jumpflow/losses.h"
#include "jumpflow/model/checkpoint.h"
#include "jumpflow/model/transformer.h"
#include "jumpflow/rate_model.h"
#include "jumpflow/samplers/sampler.h"
#include "jumpflow/scheduler.h"
#include "sequences/sequence_batch.h"
#include "sequences/vocabulary.h"

namespace jumpflow {

// RateLink maps a raw total-rate output z to a rate: exp(z) (log-rate, the
// canonical Poisson link; the default) or softplus(z).
enum class RateLink : uint8_t { kExp = 0, kSoftplus = 1 };

// ParseRateLink accepts "exp" and "softplus".
absl::StatusOr<RateLink> ParseRateLink(absl::string_view name);
// RateLinkName is the inverse of ParseRateLink.
std::string RateLinkName(RateLink link);

// OutputHeads says how the transformer's raw outputs become multipliers; the
// trainer's loss and TransformerRateModel share it (see the file comment).
struct OutputHeads {
  ProcessKind process = ProcessKind::kEdit;
  RateLink rate_link = RateLink::kExp;
  // Edit Flows trained from an empty x_0: no deletions or substitutions.
  bool insertion_only = false;
  // Only MASK tokens move (DFM from an all-MASK source; Branching with MASK
  // roots, whose merged anchors are MASK too): a token that is not MASK is
  // final, so its token multipliers are exactly 0 and its row is left out of
  // the token loss ("carry-over" as in masked diffusion); in Branching such
  // an element is a leaf, so its split multiplier is 0 too. Without it, a small
  // leftover jump mass on final tokens integrates against the divergent
  // hazard near t = 1 into spurious late changes (file comment).
  bool frozen_unmasked = false;
  // Survival scaling per kind (file comment); null = unscaled. Edit uses
  // insert / delete / substitute, Branching split / delete.
  std::shared_ptr<const Scheduler> insert_scale;
  std::shared_ptr<const Scheduler> delete_scale;
  std::shared_ptr<const Scheduler> substitute_scale;
  std::shared_ptr<const Scheduler> split_scale;
  // Edit: the gap rows carry an insertion gate column (file comment); the
  // model's TransformerConfig::insert_gate. Needs insert_scale.
  bool insert_gate = false;

  // kMinRateScale floors the survival scale (it must stay > 0).
  static constexpr double kMinRateScale = 1e-12;
  // Scale returns max(S(t), kMinRateScale) of `scale`, or 1 when it is null.
  static double Scale(const std::shared_ptr<const Scheduler>& scale, double t);
  // GatedScale is c^(1 - sigmoid(z_gate)) for a scale c = Scale(...) (file
  // comment, insertion gate); *dlogc_dgate (may be null) gets
  // d log(result) / d z_gate = -log(c) g (1 - g).
  static double GatedScale(double c, double z_gate, double* dlogc_dgate);

  // RateSoftmax is the loss parametrization of a [rate, logits] block:
  // kLogRateSoftmax (exp link) or kSoftplusRateSoftmax.
  Parametrization RateSoftmax() const;
  // ScalarRate is the loss parametrization of a lone rate column (Branching
  // split): kExp or kSoftplus.
  Parametrization ScalarRate() const;
};

// HeadOptions are the training choices that fix the OutputHeads.
struct HeadOptions {
  // "dfm-mask", "dfm-uniform", "edit" or "branching".
  std::string process = "edit";
  // Edit Flows: trained from an empty x_0.
  bool insertion_only = false;
  // Branching: MASK roots (else uniform roots).
  bool mask_roots = true;
  RateLink rate_link = RateLink::kExp;
  // Survival scaling of the Edit / Branching rates.
  bool survival_scale = true;
  // Edit: the insertion gate (file comment); needs survival_scale and the
  // exp rate link (then dL/d log c = dL/dz_rate).
  bool insert_gate = false;
  // Per-kind schedulers (Edit: insert, del, substitute; Branching: split,
  // del = the deletion scheduler).
  std::shared_ptr<const Scheduler> insert, del, substitute, split;
};

// MakeOutputHeads is the one place where training choices become heads
// (the trainer and the checkpoint loader both call it): frozen_unmasked for
// dfm-mask and MASK-root Branching; survival scales on Edit insertion,
// deletion and substitution and on Branching deletion, and on Branching
// splits only with uniform roots (with MASK roots a letter element is a leaf
// whose split multiplier is exactly 0, while a MASK element's pending splits
// do not decay, so scaling would hurt). Errors: an unknown process name, an
// insertion gate outside Edit, without survival scaling or with softplus.
absl::StatusOr<OutputHeads> MakeOutputHeads(const HeadOptions& options);

// TransformerRateModel wraps a Transformer as a RateModel (file comment).
// Evaluate keeps the forward workspace between calls (no allocation once the
// buffers have grown); like every RateModel it is used from one thread at a
// time.
class TransformerRateModel final : public RateModel {
 public:
  // kDefaultBoundFactor is the thinning bound factor (file comment).
  static constexpr double kDefaultBoundFactor = 2.0;

  // Create wraps `model`. Errors: heads.process differs from the model's
  // process, or bound_factor is not finite and >= 1.
  static absl::StatusOr<std::unique_ptr<TransformerRateModel>> Create(
      Transformer model, OutputHeads heads, double bound_factor = kDefaultBoundFactor);
  ~TransformerRateModel() override;

  ProcessKind process() const override { return heads_.process; }
  int32_t vocab_size() const override { return model_.config().vocab_size; }
  std::string Name() const override;
  double BoundFactor() const override { return bound_factor_; }
  bool TimeDependent() const override { return true; }

  // Evaluate runs the transformer on `batch` and fills `out` (Reset for this
  // batch by the caller). Errors: a sequence longer than max_length() or a
  // token outside the vocabulary (named by sequence), a non-finite model
  // output (named by row).
  absl::Status Evaluate(const SequenceBatch& batch, RateOutputs* out) override;

  // DFM and insertion-only Edit heads provide their raw logits
  // (RateModel::EvaluateSoftmaxLogits), first_token =
  // Vocabulary::kNumSpecials. DFM: row scale 1, or 0 for a frozen (non-MASK)
  // token of a mask-source model. Edit: the gap rows' insertion logits, row
  // scale = the insertion total Evaluate gives (as a float; 0 at the gaps a
  // causal model does not insert at). Same errors as Evaluate.
  bool ProvidesSoftmaxLogits() const override {
    return heads_.process == ProcessKind::kDfm ||
           (heads_.process == ProcessKind::kEdit && heads_.insertion_only);
  }
  absl::Status EvaluateSoftmaxLogits(const SequenceBatch& batch, SoftmaxLogits* out) override;

  // transformer is the wrapped model.
  const Transformer& transformer() const { return model_; }
  // heads are the parametrizations in use.
  const OutputHeads& heads() const { return heads_; }
  // max_length is the longest sequence the model accepts: set
  // SamplerOptions::max_length to it so that a sample that would outgrow the
  // model is truncated (and counted) instead of failing.
  int64_t max_length() const { return model_.config().max_length; }

 private:
  TransformerRateModel(Transformer model, OutputHeads heads, double bound_factor);

  // ForwardChecked runs the transformer on `batch` into outputs_ and names
  // the first token or gap row with a non-finite output (a broken model).
  absl::Status ForwardChecked(const SequenceBatch& batch);
  // Frozen is true for a token row that never moves: a non-MASK token of a
  // mask-source model (OutputHeads::frozen_unmasked).
  bool Frozen(Token x) const { return heads_.frozen_unmasked && x != Vocabulary::kMask; }

  Transformer model_;
  OutputHeads heads_;
  double bound_factor_;
  Transformer::Workspace workspace_;
  Transformer::Outputs outputs_;
};

// TrainedModel is everything a sampler needs from a trainer checkpoint.
// Movable; the KindSchedulers it hands out point into it and stay valid while
// it lives (moves included).
struct TrainedModel {
  // model is the rate model samplers query.
  std::unique_ptr<TransformerRateModel> model;
  // vocab decodes its token ids (Vocabulary::Decode) and encodes start texts.
  Vocabulary vocab = *Vocabulary::FromSymbols({"?"}, Vocabulary::Kind::kCharacter);
  // The training process name: "dfm-mask", "dfm-uniform", "edit" or
  // "branching".
  std::string process_name;
  // Schedulers per edit kind (never null; the main one where none was set).
  std::shared_ptr<const Scheduler> scheduler;
  std::shared_ptr<const Scheduler> insert_scheduler;
  std::shared_ptr<const Scheduler> delete_scheduler;
  std::shared_ptr<const Scheduler> substitute_scheduler;
  std::shared_ptr<const Scheduler> split_scheduler;
  // The checkpoint's training settings (file comment lists those used here).
  std::map<std::string, std::string> settings;

  // schedulers returns the per-kind schedulers in the sampler's form: DFM
  // token = main; Edit token = substitution, insert, del; Branching token =
  // main, split, del = deletion scheduler.
  KindSchedulers schedulers() const;
  // max_length is TransformerRateModel::max_length().
  int64_t max_length() const { return model->max_length(); }
  // needs_start_sequences is true for Edit Flows trained on pairs: the model
  // edits given sequences (StartFromText), it has no source of its own.
  bool needs_start_sequences() const;

  // SourceBatch returns `num` start states at t = 0 drawn like the training
  // sources, sequence b from PhiloxStream(seed, b, kPurposeSource):
  // dfm-mask: all MASK with a length drawn from the training length
  // histogram; dfm-uniform: that length, tokens uniform over the user tokens;
  // edit (empty source): empty; edit (noise): length uniform in [noise_min,
  // noise_max], uniform user tokens; branching: roots (MASK or uniform user
  // tokens), one per sequence when the coalescence factor is 1, else 1 +
  // Binomial(L - 1, 1 - factor) for a length L drawn from the histogram (an
  // approximation: it ignores to-be-deleted duplicates). Errors: the model
  // was trained on pairs (use StartFromText), num < 0.
  absl::StatusOr<SequenceBatch> SourceBatch(int64_t num, uint64_t seed) const;

  // StartFromText encodes each text with the vocabulary as a start state at
  // t = 0 (for editing given sequences). Errors: an unknown symbol (naming
  // the text and symbol), a text longer than max_length().
  absl::StatusOr<SequenceBatch> StartFromText(const std::vector<std::string>& texts) const;
};

// TrainedModelFromCheckpoint builds a TrainedModel from a decoded trainer
// checkpoint. `bound_factor` overrides the checkpoint's factor when > 0.
// Errors: settings missing or malformed (naming the key and value), a model
// process that disagrees with the "process" setting.
absl::StatusOr<TrainedModel> TrainedModelFromCheckpoint(const Checkpoint& checkpoint,
                                                        double bound_factor = 0.0);

// LoadTrainedModel reads the checkpoint at `path` (jumpflow/model/
// checkpoint.h: corrupt or truncated files are errors naming the path) and
// calls TrainedModelFromCheckpoint.
absl::StatusOr<TrainedModel> LoadTrainedModel(const std::string& path, double bound_factor = 0.0);

// LoadModelFromCheckpoint returns just the RateModel of LoadTrainedModel.
absl::StatusOr<std::unique_ptr<RateModel>> LoadModelFromCheckpoint(const std::string& path);

// ParseLengthHistogram parses "LEN:COUNT,..." (the "length_histogram"
// setting) into counts indexed by length. Errors name the bad entry.
absl::StatusOr<std::vector<int64_t>> ParseLengthHistogram(absl::string_view text);
// FormatLengthHistogram is the inverse of ParseLengthHistogram (zero counts
// are omitted).
std::string FormatLengthHistogram(const std::vector<int64_t>& counts);

}  // namespace jumpflow

#endif  // JUMPFLOW_MODEL_MODEL_RATE_H_
