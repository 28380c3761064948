// @brief RateModel: the batched interface every jump-rate model implements
// (trained networks, exact oracles, user callbacks), and the RateOutputs
// buffer it fills.
//
// Every process here has rates rate_k(x, t) = h_k(t) * m_k(x, t) (DESIGN.md
// section 1, "Jump kernels"). A RateModel returns the multipliers m only,
// never the hazard h_k: the sampler owns the schedulers.
//
// Layout of RateOutputs (V = vocab_size; row spaces as in
// sequences/sequence_batch.h: token row r = batch.tokens()[r], gap j of
// sequence b = gap row batch.offsets()[b] + b + j; dense matrices are
// row-major, entry (row, a) at [row * V + a]). Each categorical edit kind is
// "total rate times a distribution": the multiplier of target token a is
// rate[row] * dist[row * V + a]; dist need not be normalized (a model may put
// the total into rate and a softmax into dist, or rate = 1 and the
// multipliers into dist). For token rows the entry of the current token
// dist[r * V + tokens[r]] is ignored (a jump to the same token is no event).
//
//   process    field        size           meaning
//   DFM        token_rate   [tokens]       jump scale (1 for a posterior)
//              token_dist   [tokens x V]   p_{1|t}(a | x_t) or any multipliers
//   Edit       token_rate   [tokens]       substitution total lambda_sub
//              token_dist   [tokens x V]   substitution distribution Q_sub
//              insert_rate  [gaps]         insertion total lambda_ins
//              insert_dist  [gaps x V]     insertion distribution Q_ins
//              delete_rate  [tokens]       deletion multiplier lambda_del
//   Branching  token_rate   [tokens]       token move scale (1 for a posterior)
//              token_dist   [tokens x V]   anchor-token distribution
//              split_rate   [tokens]       expected pending splits (multiplier)
//              delete_rate  [tokens]       deletion probability in [0, 1]
//                                          (rate = h_D(t) * probability)
//
// Fields a process does not use stay empty. RateOutputs::Reset fills every
// used field with its neutral value (rates 1, distributions 0, deletion and
// split 0, fallback 0), so a model writes only what it predicts.
//
// Example:
//   class MyModel : public RateModel {
//    public:
//     ProcessKind process() const override { return ProcessKind::kDfm; }
//     int32_t vocab_size() const override { return 32; }
//     std::string Name() const override { return "mine"; }
//     absl::Status Evaluate(const SequenceBatch& batch, RateOutputs* out) override {
//       for (int64_t r = 0; r < batch.num_tokens(); ++r) out->token_dist[r * 32 + 7] = 1.0;
//       return absl::OkStatus();
//     }
//   };
#ifndef JUMPFLOW_RATE_MODEL_H_
#define JUMPFLOW_RATE_MODEL_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "jumpflow/training_batch.h"
#include "sequences/sequence_batch.h"

namespace jumpflow {

// RateOutputs holds one model evaluation of a batch; see the file comment for
// the layout of every field.
struct RateOutputs {
  ProcessKind process = ProcessKind::kDfm;
  int32_t vocab_size = 0;
  int64_t num_sequences = 0;
  int64_t num_tokens = 0;
  int64_t num_gaps = 0;

  std::vector<double> token_rate;
  std::vector<double> token_dist;
  std::vector<double> insert_rate;
  std::vector<double> insert_dist;
  std::vector<double> delete_rate;
  std::vector<double> split_rate;
  // fallback[b] is 1 when the model could not compute exact multipliers for
  // sequence b and used a documented fallback (oracles: no data item is
  // consistent with the state). Samplers count these.
  std::vector<uint8_t> fallback;

  // Reset sizes every field for `batch` under `process` and fills it with the
  // neutral values listed in the file comment. Reuses capacity: no allocation
  // once the buffers have grown to the largest batch.
  void Reset(const SequenceBatch& batch, ProcessKind process, int32_t vocab_size);
};

// SoftmaxLogits is the raw form of a DFM model's token multipliers, or of an
// insertion-only Edit model's insertion multipliers, for the samplers' fused
// event kernels (kernels/sample_step.h, kernels/gillespie.h). DFM: the
// multiplier of token a in token row r is
//   row_scales[r] * softmax(logits[r * V .. r * V + V))_a
// for a != the row's current token and a >= first_token; ids below
// first_token (e.g. the special ids of a Vocabulary) have multiplier 0. The
// softmax runs over all V ids. Evaluate of the same model gives the same
// multipliers in RateOutputs (token_rate = row scale, token_dist = the
// softmax with the ids below first_token set to 0). Edit: the rows are the
// gap rows (row spaces in the file comment) and the same formula, with no
// current token, gives the multiplier of inserting a at that gap
// (insert_rate = row scale, insert_dist = the softmax with the ids below
// first_token set to 0); the model's substitution and deletion multipliers
// are 0.
struct SoftmaxLogits {
  std::vector<float> logits;      // [rows x V]: token rows (DFM) or gap rows (Edit)
  std::vector<float> row_scales;  // [rows], >= 0
  int32_t first_token = 0;
};

// RateModel is the batched multiplier model a sampler queries. Implementations
// must be deterministic functions of (tokens, time) per sequence: the
// multipliers of one sequence never depend on the other sequences of the
// batch (samplers rely on this for results that do not depend on batching or
// thread count).
//
// Evaluate is called from one thread at a time; an implementation may use
// oneTBB internally.
class RateModel {
 public:
  virtual ~RateModel() = default;

  // process returns the jump process whose multipliers this model predicts.
  virtual ProcessKind process() const = 0;
  // vocab_size returns V, the column count of the dense distributions.
  virtual int32_t vocab_size() const = 0;
  // Name returns a short description for reports.
  virtual std::string Name() const = 0;

  // BoundFactor returns c >= 1 such that, between two events, the total
  // multiplier of every edit kind satisfies m_k(x, s) <= c * m_k(x, t) for
  // s >= t. Exact (thinning) Gillespie proposes with the bound c * m(x, t);
  // if the model breaks its promise the sampler counts a bound violation.
  // 1 means "multipliers never increase in time" (the oracles).
  virtual double BoundFactor() const { return 1.0; }

  // TimeDependent returns false when the multipliers do not depend on t at
  // all (e.g. the DFM mask oracle); samplers then reuse an evaluation until
  // the state changes.
  virtual bool TimeDependent() const { return true; }

  // Evaluate writes the multipliers of every row of `batch` (each sequence at
  // its own time batch.time(b)) into `out`, which the caller has Reset() for
  // this batch. Errors (e.g. a sequence of the wrong length for a fixed-length
  // model) are returned as a Status naming the sequence.
  virtual absl::Status Evaluate(const SequenceBatch& batch, RateOutputs* out) = 0;

  // ProvidesSoftmaxLogits is true when EvaluateSoftmaxLogits works: DFM
  // models whose token multipliers are a scaled softmax (the Euler,
  // tau-leaping and Gillespie samplers then draw their events with the
  // fused event kernels, samplers/sampler.h HasFusedEvents), or
  // insertion-only Edit models whose insertion multipliers are a scaled
  // softmax per gap (Euler and Gillespie).
  virtual bool ProvidesSoftmaxLogits() const { return false; }
  // EvaluateSoftmaxLogits writes the raw logits and row scales of every
  // token row (DFM) or gap row (Edit) of `batch` (see SoftmaxLogits; the
  // vectors are resized here).
  virtual absl::Status EvaluateSoftmaxLogits(const SequenceBatch& batch, SoftmaxLogits* out);
};

// RateCallback is a user function with the contract of RateModel::Evaluate.
using RateCallback = std::function<absl::Status(const SequenceBatch&, RateOutputs*)>;

// CallbackRateModelOptions describe a callback model; see RateModel.
struct CallbackRateModelOptions {
  ProcessKind process = ProcessKind::kDfm;
  int32_t vocab_size = 0;
  double bound_factor = 1.0;
  bool time_dependent = true;
  std::string name = "callback";
};

// MakeCallbackRateModel wraps `callback` as a RateModel. Fails when
// vocab_size < 1, bound_factor < 1 (or not finite) or the callback is empty.
absl::StatusOr<std::unique_ptr<RateModel>> MakeCallbackRateModel(
    const CallbackRateModelOptions& options, RateCallback callback);

}  // namespace jumpflow

#endif  // JUMPFLOW_RATE_MODEL_H_
