// @brief Exact (oracle) rate models for a finite weighted data set, and tools
// to compare samples with the data distribution.
//
// For a finite data set the marginal multipliers of DESIGN.md section 1 are
// exact and cheap, so samplers can be checked against ground truth with no
// training. Data items are the distinct sequences of the Dataset, with
// probability proportional to their summed weights. kappa is the scheduler
// given at construction (the process' kappa).
//
// - kDfmMask: DFM from an all-MASK source. States have the padded length L
//   (the longest item; shorter items are padded at the end with PAD, which
//   is an ordinary token here). Posterior over items prop. to
//   w(x_1) [x_1 agrees with x_t off-mask]; the multiplier of token a at a
//   masked position is the posterior probability that x_1 has a there
//   (token_rate 1, token_dist = posterior marginal). Independent of t.
// - kDfmUniform: DFM from a uniform source over the alphabet A (the user
//   tokens, plus PAD when items are padded). Posterior prop. to w(x_1)
//   prod_i (kappa [x_t^i = x_1^i] + (1 - kappa) / |A|), computed in logs; the
//   multiplier of a != x_t^i is the posterior marginal of a at i.
// - kEditInsertion: Edit Flows with an empty source (insertions only).
//   p(x_1 | x_t) prop. to w(x_1) N(x_t, x_1) (1 - kappa)^(|x_1| - |x_t|) with
//   N the number of embeddings of x_t as a subsequence of x_1; the expected
//   insertions of a into gap j given x_1 are sum_p [x_1[p] = a] F(j, p)
//   B(j, p + 1) / N (forward / backward embedding counts in doubles; a DP
//   row exceeding 1e200 is rescaled and its log scale carried, so they never
//   overflow). Items that lack a token of x_t or are not supersequences of it
//   are skipped before any DP. insert_rate is the
//   gap total, insert_dist the normalized token distribution; no deletions
//   or substitutions. Cost O(items x |x_t| x |x_1|) per sequence.
//
// (1 - kappa) is floored at Scheduler::kMinSurvival inside the logs, so at
// t = 1 the posterior concentrates on the items closest to x_t instead of
// dividing by zero.
//
// Fallback (a state that approximate samplers can reach): when no data item
// is consistent with x_t, kDfmMask uses the unconditional posterior (the
// data prior: each masked position gets the data marginal at that
// position); kEditInsertion returns zero multipliers (an insertion-only
// state that embeds in no item can never reach the data, so the sequence
// stops where it is, out of the support). kDfmUniform never needs a fallback
// (every item has positive likelihood). Either way RateOutputs::fallback[b]
// is set and the samplers count it.
//
// All oracles have BoundFactor() 1: their total multipliers never increase
// between events (DESIGN.md, Samplers: the posterior given x_t is an
// exponential family in log(1 - kappa) whose sufficient statistic is the
// number of pending edits).
//
// Example:
//   JUMPFLOW_ASSIGN_OR_RETURN(std::shared_ptr<const Scheduler> sched, MakeScheduler("poly:3"));
//   JUMPFLOW_ASSIGN_OR_RETURN(auto oracle,
//                             OracleModel::Create(OracleKind::kEditInsertion, data, sched));
//   SequenceBatch start = oracle->SourceBatch(/*num=*/1000, /*seed=*/1);
//   ... Sample(*oracle, KindSchedulers::All(sched.get()), start, options) ...
//   SampleQuality q = oracle->Compare(result.final_batch);  // q.tv, q.p_value
#ifndef JUMPFLOW_ORACLE_H_
#define JUMPFLOW_ORACLE_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "jumpflow/rate_model.h"
#include "jumpflow/scheduler.h"
#include "sequences/dataset.h"
#include "sequences/sequence_batch.h"

namespace jumpflow {

// OracleKind selects the exact model; see the file comment.
enum class OracleKind : uint8_t { kDfmMask = 0, kDfmUniform = 1, kEditInsertion = 2 };

// ParseOracleKind accepts "dfm-mask", "dfm-uniform" and "edit".
absl::StatusOr<OracleKind> ParseOracleKind(absl::string_view name);
// OracleKindName is the inverse of ParseOracleKind.
std::string OracleKindName(OracleKind kind);

// SampleQuality compares samples with a target distribution.
struct SampleQuality {
  int64_t num_samples = 0;
  int64_t in_support = 0;
  double in_support_fraction = 0.0;
  // Total variation between the empirical distribution of all samples and
  // the target (out-of-support mass included).
  double tv = 0.0;
  // Pearson chi-square of the in-support samples against n_in * p, cells
  // with expected count < 5 pooled into one; dof = cells - 1. p_value is its
  // upper tail (0 when no sample is in the support). dof = 0 (and p_value 1)
  // means too few samples per item for the test.
  double chi_square = 0.0;
  int64_t dof = 0;
  double p_value = 0.0;
};

// CompareToDistribution evaluates `samples` against the distribution that
// gives `probabilities[i]` to `support[i]`. `support` must be sorted
// lexicographically and distinct (as OracleModel::support() is).
SampleQuality CompareToDistribution(const std::vector<std::vector<Token>>& support,
                                    std::span<const double> probabilities,
                                    const SequenceBatch& samples);

// ChiSquareSurvival returns P(X >= statistic) for X ~ chi-square(dof): the
// regularized upper incomplete gamma Q(dof / 2, statistic / 2) (series or
// continued fraction, Numerical Recipes 3rd ed. section 6.2).
double ChiSquareSurvival(double statistic, double dof);

// OracleModel is an exact RateModel for a finite data set.
class OracleModel : public RateModel {
 public:
  // Create builds the oracle of `kind` for `data` under `scheduler`'s kappa.
  // Fails on an empty data set or data tokens that are special ids.
  static absl::StatusOr<std::unique_ptr<OracleModel>> Create(
      OracleKind kind, const Dataset& data, std::shared_ptr<const Scheduler> scheduler);
  ~OracleModel() override;

  ProcessKind process() const override;
  int32_t vocab_size() const override;
  std::string Name() const override;
  bool TimeDependent() const override;
  absl::Status Evaluate(const SequenceBatch& batch, RateOutputs* out) override;

  OracleKind kind() const;
  const Vocabulary& vocab() const;
  // sequence_length is the padded length L of the DFM oracles (-1 for edit).
  int64_t sequence_length() const;

  // SourceBatch returns `num` start states x_0 at time 0: DFM mask all MASK
  // of length L; DFM uniform i.i.d. uniform tokens of the alphabet, sequence
  // b drawn from PhiloxStream(seed, first_id + b, kPurposeSource); edit empty.
  SequenceBatch SourceBatch(int64_t num, uint64_t seed, uint32_t first_id = 0) const;

  // support holds the distinct data items in the sampler's representation
  // (DFM: padded to L), sorted; probabilities the matching target law.
  const std::vector<std::vector<Token>>& support() const;
  const std::vector<double>& probabilities() const;

  // Compare is CompareToDistribution against this oracle's data law.
  SampleQuality Compare(const SequenceBatch& samples) const;

  // Decode renders a sample as text (DFM: trailing PAD removed).
  std::string Decode(std::span<const Token> sample) const;

 private:
  struct Impl;
  explicit OracleModel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace jumpflow

#endif  // JUMPFLOW_ORACLE_H_
