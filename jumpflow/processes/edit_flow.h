// @brief Edit Flows training batches: insertions, deletions, substitutions.
//
// DESIGN.md section 1 "Edit Flows" (Havasi et al. 2025, arXiv 2506.09018).
// Each pair (x_0, x_1) is aligned into (z_0, z_1) over V u {eps} (minimum-edit
// by default; random or user alignments selectable). Column k is an insertion
// (z_0 = eps), a deletion (z_1 = eps), a substitution (both tokens, differ)
// or a match. Independently per non-match column, z_t^k = z_1^k with
// probability kappa_kind(t), else z_0^k, where kind picks the scheduler
// (insert / delete / substitute; each defaults to the main scheduler);
// x_t = z_t without eps. Conditional multipliers on x_t, with gap j of
// x_t = the slot before x_t position j (gap n after the last token):
//   insert_targets[gap j][a] = number of columns in gap j still eps with z_1 = a
//   delete_targets[i]        = 1 if z_1 = eps at x_t position i, else 0
//   token_targets[i]         = one entry (a, 1) if z_1 = a != eps and a != z_t
// The row spaces are those of jumpflow/training_batch.h. Our gap layout has a
// gap before the first token, so no BOS token is prepended (the paper
// prepends BOS so the front can receive insertions; here gap 0 does that).
//
// Insertion order (x_0 empty only): kIndependent is the above (each token of
// x_1 appears at its own time T_k ~ kappa_ins, i.i.d.). kLeftToRight sorts
// those times and gives them to the positions in order, so x_t is the prefix
// x_1[0, K) with K ~ Binomial(n, kappa_ins(t)), n = |x_1|: the length has
// the same law as with independent times, but x_t is always a prefix. Its conditional rate is one
// insertion into the last gap, of token x_1[K], at rate (n - K) h(t) (each of
// the n - K outstanding times fires at hazard h; whichever fires, the sorted
// assignment makes it position K), so
//   insert_targets[gap K][x_1[K]] = n - K, every other gap 0.
// (Kolmogorov check: d/dt Bin(k; n, kappa) = (n - k + 1) h Bin(k - 1) -
// (n - k) h Bin(k), with h = kappa' / (1 - kappa).) The learned model is then
// a next-token model with a learned stopping rate, which a small network
// fits far better than the order-free joint over all insertion orders.
// ApplyEditTargets does not reconstruct x_1 from such a batch (its targets
// are rates, not one pending token per column).
//
// All prefixes at once (kLeftToRight with EditFlowOptions::all_prefixes, for
// a causal model: jumpflow/model/transformer.h): the expected loss over K is
// taken exactly instead of sampling K. The batch's x_t is x_1 itself; gap K
// (K = 0..n) carries the targets of the state x_1[0, K), i.e. x_1[K] with
// count n - K (none for K = n), and the factor
//   gap_weights[gap K] = P(K) = C(n, K) kappa^K (1 - kappa)^(n - K).
// A causal model's gap K output depends on x_1[0, K) only, so the weighted
// sum over the gaps equals E_K[loss of the last gap of x_1[0, K)]; the other
// gaps of a prefix state have no targets, and a causal model's sampler gives
// them rate 0 (jumpflow/model/model_rate.h). Token rows have no targets.
//
// Per-gap times (all_prefixes with EditFlowOptions::gap_time_distribution p
// and optional gap_time_weight w, for a model with time at the heads:
// jumpflow/model/transformer.h): the expectation over t is also split per
// prefix. With q(u) = p(t) / kappa'(t) at t = kappa^-1(u) (the density of
// u = kappa(T), T ~ p) and the identity
//   C(n, K) u^K (1 - u)^(n - K) = Beta(u; K + 1, n - K + 1) / (n + 1),
// the objective E_{t~p}[w(t) sum_K P(K | t) L_K(t)] equals
//   sum_K 1/(n + 1) E_{u ~ Beta(K + 1, n - K + 1)}[q(u) w(t(u)) L_K(t(u))],
// so gap K draws its own time: 1 - u ~ Beta(n - K + 1, K + 1) (the
// (n - K + 1)-th smallest of n + 1 uniforms of PhiloxStream(seed, b,
// kPurposeGapTime)), t_K = kappa^-1(u) (through InverseSurvival, exact near
// t = 1), and gap_weights[gap K] = q(u) w(t_K) / (n + 1), gap_times[gap K] =
// t_K. Every prefix then carries weight in every step (with one shared t
// only prefixes with K near n kappa(t) do), the same expected loss with less
// variance. When p makes kappa(T) uniform (e.g. kappa = t^3 with
// t ~ Beta(3, 1)), q = 1 and every gap weighs 1 / (n + 1). An unbounded q
// gives heavy-tailed weights: with t ~ U(0, 1) and kappa = t^3,
// q(u) = u^(-2/3) / 3, and gap 0 (u ~ Beta(1, n + 1)) has weights of
// infinite variance (still unbiased; on the demo's words per-gap times beat
// a shared time there too, dictionary share 0.089 vs 0.059 after 12,000
// steps). Drawing u from the exact posterior q(u) Beta(u; K + 1, n - K + 1)
// where it is a Beta law (kappa(T) ~ Beta) would make the weights constant;
// not done. The sequence weights (`weights`) still multiply the rows; they
// should not depend on the sequence time, which the gap rows no longer use.
//
// x_0 sources: empty (insertion-only generation), noise (length uniform in
// [noise_min_length, noise_max_length], tokens i.i.d. uniform over the user
// tokens [kNumSpecials, vocab_size), drawn from PhiloxStream(seed, b,
// kPurposeSource): length first, then tokens in order), or user pairs.
// Alignment seeds are DeriveSeed(seed, b, kPurposeAlignment); the column
// coins are 32-bit draws of PhiloxStream(seed, b, kPurposePath) in column
// order (match columns draw nothing). Same inputs + seed -> same batch for
// any thread count.
//
// Example:
//   JUMPFLOW_ASSIGN_OR_RETURN(auto cubic, MakeScheduler("poly:3"));
//   EditFlowOptions opt;
//   opt.vocab_size = vocab.size();
//   opt.source = EditSource::kPairs;
//   opt.x0 = &misspelled;
//   JUMPFLOW_ASSIGN_OR_RETURN(TrainingBatch tb,
//       MakeEditFlowBatch(correct, BatchTimes::Sampled(*uniform), *cubic, opt, /*seed=*/step));
#ifndef JUMPFLOW_PROCESSES_EDIT_FLOW_H_
#define JUMPFLOW_PROCESSES_EDIT_FLOW_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "jumpflow/processes/process_common.h"
#include "jumpflow/scheduler.h"
#include "jumpflow/time_distribution.h"
#include "jumpflow/training_batch.h"
#include "sequences/alignment.h"
#include "sequences/sequence_batch.h"

namespace jumpflow {

// EditSource picks x_0.
enum class EditSource : uint8_t {
  kEmpty = 0,  // x_0 empty: insertion-only generation
  kNoise = 1,  // random tokens, random length (see the file comment)
  kPairs = 2,  // x_0 given by EditFlowOptions::x0
};

// InsertionOrder picks the order in which an empty x_0 receives x_1's tokens
// (see the file comment).
enum class InsertionOrder : uint8_t {
  kIndependent = 0,  // i.i.d. insertion times per token (DESIGN.md)
  kLeftToRight = 1,  // sorted times: x_t is a prefix of x_1
};

// EditAlignment picks how (x_0, x_1) are aligned.
enum class EditAlignment : uint8_t {
  kMinEdit = 0,  // MinEditAlignment with EditFlowOptions::costs (ties seeded)
  kRandom = 1,   // RandomAlignment
  kUser = 2,     // EditFlowOptions::alignments (kPairs only)
};

// EditFlowOptions configure MakeEditFlowBatch.
struct EditFlowOptions {
  // Vocabulary size (specials included). Required.
  int32_t vocab_size = 0;
  EditSource source = EditSource::kEmpty;
  // kEmpty only: kLeftToRight makes x_t a prefix of x_1.
  InsertionOrder insertion_order = InsertionOrder::kIndependent;
  // kLeftToRight only: every prefix at once, weighted (see the file comment).
  bool all_prefixes = false;
  // all_prefixes only: each gap draws its own time from this distribution's
  // posterior given its prefix length (file comment, "Per-gap times"), and
  // gap_time_weight (null: 1) weighs it. Both must outlive the call.
  const TimeDistribution* gap_time_distribution = nullptr;
  const TimeWeight* gap_time_weight = nullptr;
  // kPairs: the sources, one per x_1 sequence; must outlive the call.
  const SequenceBatch* x0 = nullptr;
  // kNoise: length range of x_0 (inclusive), 0 <= min <= max <= 2^20.
  int64_t noise_min_length = 0;
  int64_t noise_max_length = 0;
  EditAlignment alignment = EditAlignment::kMinEdit;
  AlignmentCosts costs = {};
  // kUser: one alignment per sequence, valid for (x0[b], x1[b]).
  const std::vector<Alignment>* alignments = nullptr;
  // Per-kind schedulers; nullptr means the main scheduler.
  const Scheduler* insert_scheduler = nullptr;
  const Scheduler* delete_scheduler = nullptr;
  const Scheduler* substitute_scheduler = nullptr;
};

// EditFlowTrace records the conditional path of every sequence (for tests and
// debugging): the alignment (z_0, z_1) and z_t (with eps), both indexed by
// sequence.
struct EditFlowTrace {
  std::vector<Alignment> alignments;
  std::vector<std::vector<Token>> z_t;
};

// MakeEditFlowBatch samples x_t for every sequence of `x1` at its time and
// returns a TrainingBatch with process kEdit, x_t (times set), weights,
// token_targets, delete_targets and insert_targets. x1's own times are
// ignored. When `trace` is not null it receives the per-sequence path.
// Errors (InvalidArgument naming the sequence / value): vocab_size too small
// (kNoise needs user tokens), x_1 tokens outside the vocabulary or equal to
// kMask / kEps, an empty x_1 with kEmpty (nothing to generate), a missing or
// mismatched x0 (sequence count), x0 tokens outside the vocabulary or kEps,
// bad noise lengths, kUser without kPairs or with an invalid alignment, bad
// alignment costs, bad times or weights, sequences too long to align,
// InsertionOrder::kLeftToRight with a source other than kEmpty, all_prefixes
// without kLeftToRight, gap times without all_prefixes, a gap weight that is
// not finite (a time distribution with mass where kappa is flat, or an
// infinite density or weight).
absl::StatusOr<TrainingBatch> MakeEditFlowBatch(const SequenceBatch& x1, const BatchTimes& times,
                                                const Scheduler& scheduler,
                                                const EditFlowOptions& options, uint64_t seed,
                                                const BatchWeights& weights = BatchWeights::Ones(),
                                                EditFlowTrace* trace = nullptr);

// ApplyEditTargets applies every conditional target edit of an Edit Flows
// batch to its x_t, simultaneously (sequences/edits.h semantics): insertion
// of each token into each gap as many times as its count, deletion of every
// row with delete target 1, substitution of every row with a token target.
// Within one gap the insertions go in the order of the pending z_1 columns
// when `trace` is given (after checking that their multiset equals the
// counts), else in increasing token id. With the trace the result is x_1.
// Errors: a batch whose targets are inconsistent (wrong row counts,
// fractional counts, a row both deleted and substituted, a trace that
// disagrees with the counts).
absl::StatusOr<std::vector<std::vector<Token>>> ApplyEditTargets(
    const TrainingBatch& batch, const EditFlowTrace* trace = nullptr);

}  // namespace jumpflow

#endif  // JUMPFLOW_PROCESSES_EDIT_FLOW_H_
