// @brief Jump samplers for DFM, Edit Flows and Branching Flows states:
// Euler and tau-leaping on a time grid, adaptive tau-leaping, and exact
// Gillespie (SSA) with time-inhomogeneous hazards and thinning.
//
// Rates are rate_k(x, t) = h_k(t) * m_k(x, t): the RateModel gives the
// multipliers m (layout in jumpflow/rate_model.h), KindSchedulers give one
// scheduler per edit kind (h_k = kappa_k' / (1 - kappa_k)). Every sequence of
// the batch carries its own time; each round the sampler evaluates the model
// once for all active sequences that need it, at their own times, and moves
// each of them; sequences reaching t = 1 leave the batch and waiting ones
// take their place (at most `max_batch` active at once).
//
// Samplers (SamplerKind):
// - kEuler / kTauLeap: a fixed grid (uniform in t, or uniform in kappa).
//   Over a step [t, t'] each pending edit of kind k fires with probability
//   q_k = 1 - S_k(t') / S_k(t) (S = 1 - kappa, the exact integrated hazard;
//   DESIGN.md writes the first-order form 1 - exp(-h(t) dt), which agrees to
//   O(dt^2) and which this replaces so that a step ending at t = 1 resolves
//   every pending edit instead of leaving masks behind). A token row with
//   total multiplier M jumps with probability min(1, M q); its target is
//   drawn prop. to the multipliers. Gap rows (insertions) and splits: Euler
//   makes at most one per row and step (probability min(1, M q)); tau-leaping
//   draws Poisson(M q) of them (each target i.i.d.). For DFM the two are the
//   same sampler. Simultaneous edits are applied as in sequences/edits.h.
// - kAdaptive: tau-leaping whose step [t, t'] is the largest with
//   sum_k M_k q_k(t, t') <= tolerance * max(1, sum_k M_k): the expected number
//   of events is at most a `tolerance` fraction of the pending edits (the
//   relative rate change, as in Cao, Gillespie, Petzold, J. Chem. Phys. 124,
//   044109 (2006)), and at most `tolerance` events when fewer than one edit is
//   pending. tolerance -> 0 approaches one event per step.
// - kGillespie: exact. With bound multipliers B_k = c * M_k(x, t) (c =
//   RateModel::BoundFactor()), the next proposal solves
//   sum_k B_k (H_k(t') - H_k(t)) = E, E ~ Exp(1): closed form in survival
//   space when one scheduler serves every kind (u' = u exp(-E / B),
//   t' = S^-1(u')), a bracketed monotone root-find otherwise. The model is
//   re-evaluated at t' and the proposal accepted with probability
//   lambda(t') / lambda_bar(t') (Lewis and Shedler, Naval Res. Logist. Q. 26,
//   403 (1979)); a rejection refreshes the bound at t'. Exact whenever
//   m(x, s) <= c * m(x, t) between events; a model exceeding its bound is
//   counted in SamplerStats::bound_violations. Proposals whose cumulative
//   hazard lies beyond H(1) = -log(Scheduler::kMinSurvival) end the sequence.
// - kGillespieFrozen: APPROXIMATE. Freezes m(x, t) until the next event (no
//   thinning): measurably biased when the multipliers move with t
//   (DESIGN.md). Kept as a test double and for comparisons only.
//
// Branching Flows step (DESIGN.md "Sampling step dt", BranchingFlows.jl
// Flowfusion.step): each element first moves its token as in DFM, then is
// deleted with probability delete_rate * q_D, then (unless deleted or its
// token changed in this step, as in the Julia reference) splits Poisson(
// split_rate * q_S) times (Euler: at most once); copies carry the element's
// new token and are inserted right after it. If every element would be
// deleted, one of them (uniformly chosen) survives: length never drops below
// 1. In Gillespie, the deletion rate of a length-1 sequence is zero.
//
// Fused event kernels (SamplerOptions::fused_events, the default): Euler and
// tau-leaping on a DFM model that provides raw softmax logits (the trained
// DFM transformer) draw each round's token moves with one
// kernels::SampleStep call over all active sequences, and Gillespie takes
// each sequence's total multiplier and candidate event from one
// kernels::Gillespie call a round (then thins as above), on the CPU or the
// GPU (SamplerOptions::device), instead of converting every row to double
// multipliers first: the same distribution, other random draws. Euler and
// Gillespie on an insertion-only Edit Flow model with softmax logits (the
// trained insertion-only transformer) do the same over the gap rows: the
// events are insertions (tau-leaping's Poisson counts per gap have no fused
// path).
//
// Reproducibility: every draw for sequence b at its n-th step (grid step,
// adaptive leap, or Gillespie proposal) comes from PhiloxStream(seed,
// first_sequence_id + b, kPurposeSampler, n << 32), or with the fused kernels
// from their keyed draws (seed, first_sequence_id + b, kPurposeSampleStep, n,
// position) for grid steps and (seed, first_sequence_id + b,
// kPurposeGillespie, n, 0) for the event of Gillespie proposal n. Results do
// not depend on the thread count, max_batch or (fused kernels) the device,
// provided the model is per-sequence (see RateModel).
//
// Example:
//   JUMPFLOW_ASSIGN_OR_RETURN(auto oracle, OracleModel::Create(OracleKind::kEditInsertion,
//                                                              data, scheduler));
//   SamplerOptions opt;
//   opt.kind = SamplerKind::kGillespie;
//   opt.seed = 7;
//   JUMPFLOW_ASSIGN_OR_RETURN(SampleResult r,
//                             Sample(*oracle, KindSchedulers::All(scheduler.get()),
//                                    oracle->SourceBatch(1000, 7), opt));
//   // r.final_batch holds 1000 samples; r.stats the costs.
#ifndef JUMPFLOW_SAMPLERS_SAMPLER_H_
#define JUMPFLOW_SAMPLERS_SAMPLER_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "jumpflow/rate_model.h"
#include "jumpflow/scheduler.h"
#include "kernels/backend.h"
#include "sequences/sequence_batch.h"

namespace jumpflow {

// SamplerKind selects the sampler; see the file comment.
enum class SamplerKind : uint8_t {
  kEuler = 0,
  kTauLeap = 1,
  kAdaptive = 2,
  kGillespie = 3,
  kGillespieFrozen = 4,
};

// ParseSamplerKind accepts "euler", "tau-leap", "adaptive", "gillespie" and
// "gillespie-frozen" (approximate); anything else is InvalidArgument.
absl::StatusOr<SamplerKind> ParseSamplerKind(absl::string_view name);
// SamplerKindName is the inverse of ParseSamplerKind.
std::string SamplerKindName(SamplerKind kind);

// TimeGrid selects the grid of the Euler and tau-leaping samplers: kUniform
// t_i = i / steps; kKappa t_i = kappa^-1(i / steps) of the token scheduler
// (or the first one set), so each step resolves the same share of pending
// edits.
enum class TimeGrid : uint8_t { kUniform = 0, kKappa = 1 };

// KindSchedulers names the scheduler of each edit kind (not owned; they must
// outlive the call). Only the kinds of the model's process are needed:
// DFM: token; Edit: token (substitution), insert, del; Branching: token,
// split, del (the deletion hazard h_D).
struct KindSchedulers {
  const Scheduler* token = nullptr;
  const Scheduler* insert = nullptr;
  const Scheduler* del = nullptr;
  const Scheduler* split = nullptr;

  // All uses one scheduler for every kind.
  static KindSchedulers All(const Scheduler* s) { return {s, s, s, s}; }
};

// JumpKind names one applied edit in a trajectory.
enum class JumpKind : uint8_t { kToken = 0, kInsert = 1, kDelete = 2, kSplit = 3 };

// TrajectoryEvent is one applied edit. `index` refers to the state before the
// step that applied it (a gap for kInsert, a position otherwise; the edits of
// one leap are simultaneous, as in sequences/edits.h); `token` is the new
// token (kToken, kInsert, kSplit) or the removed one (kDelete).
struct TrajectoryEvent {
  int64_t sequence = 0;
  double time = 0.0;
  JumpKind kind = JumpKind::kToken;
  int32_t index = 0;
  Token token = 0;
};

// SamplerOptions configure Sample(); see the file comment for the meaning.
struct SamplerOptions {
  SamplerKind kind = SamplerKind::kGillespie;
  // Grid steps of kEuler / kTauLeap (>= 1).
  int64_t steps = 100;
  TimeGrid grid = TimeGrid::kUniform;
  // Tolerance of kAdaptive, in (0, 1].
  double tolerance = 0.05;
  uint64_t seed = 1;
  // Sequence b of the start batch uses random stream first_sequence_id + b.
  uint32_t first_sequence_id = 0;
  // Most sequences evaluated in one model call (>= 1).
  int64_t max_batch = 1024;
  // Worker threads (0 = oneTBB's default).
  int num_threads = 0;
  // A sequence growing beyond max_length, or taking more than
  // max_steps_per_sequence steps, stops where it is and is counted in
  // SamplerStats::truncated.
  int64_t max_length = 1 << 16;
  int64_t max_steps_per_sequence = 1 << 22;
  // Record every applied edit in SampleResult::trajectory.
  bool record_trajectory = false;
  // Called on the calling thread after every round with (finished, total).
  std::function<void(int64_t, int64_t)> progress;
  // Fused event kernels: with kEuler / kTauLeap and a DFM model that
  // ProvidesSoftmaxLogits() (jumpflow/rate_model.h; the trained DFM
  // transformer), each round draws the token moves of every active
  // sequence with one kernels::SampleStep call on the model's raw logits
  // (kernels/sample_step.h) instead of per-sequence double multipliers. The
  // same distribution (a drawn id below SoftmaxLogits::first_token, which
  // has multiplier 0, counts as no move: for DFM's posterior multipliers,
  // M q <= 1, that is exact), other random draws: the kernel's keyed Philox
  // draws (seed, first_sequence_id + b, kPurposeSampleStep, step, position).
  // With kGillespie, one kernels::Gillespie call a round gives each
  // sequence's total M' (which counts the special ids too, so M' >= M) and
  // an event drawn in proportion to the rates; thinning bounds M' (bound
  // factor x M' at the proposal) and accepts with h M' / bound, and an
  // accepted event on a special id is a null event (a rejection): each real
  // event is accepted with h m / bound, exactly as on the per-sequence path.
  // The same holds for kEuler and kGillespie on an insertion-only Edit model
  // that ProvidesSoftmaxLogits(): the kernels' rows are the gaps (nothing
  // excluded), their events insertions (Euler: at most one per gap and
  // step, exact while q lambda_g <= 1 per gap, as the per-sequence path's
  // clamp), the hazard the insertion scheduler's.
  // false: always the per-sequence path.
  bool fused_events = true;
  // Where the fused kernels run: kCpu, or kCuda (the logits are copied to
  // the GPU and the moves back). kCuda is an error when the fused path does
  // not apply or no GPU is usable.
  kernels::Backend device = kernels::Backend::kCpu;
};

// SamplerStats are the costs and diagnostics of one Sample() call.
struct SamplerStats {
  int64_t rounds = 0;                // batched rounds (one model call each, at most)
  int64_t steps = 0;                 // per-sequence steps: leaps or Gillespie proposals
  int64_t events = 0;                // applied edits
  int64_t model_calls = 0;           // batched RateModel::Evaluate calls
  int64_t sequence_evaluations = 0;  // sequences evaluated, summed over calls
  int64_t rejections = 0;            // thinning proposals rejected
  int64_t bound_violations = 0;      // lambda(t') > lambda_bar(t') seen by thinning
  int64_t fallbacks = 0;             // sequence evaluations with RateOutputs::fallback set
  int64_t truncated = 0;             // sequences stopped by max_length / max_steps
  double seconds = 0.0;              // wall time
};

// SampleResult is the output of Sample(): sequence b of final_batch is the
// sample grown from sequence b of the start batch (time = where it stopped,
// 1 unless truncated).
struct SampleResult {
  SequenceBatch final_batch;
  SamplerStats stats;
  std::vector<TrajectoryEvent> trajectory;  // by sequence, then in time order
};

// Sample runs the sampler of `options.kind` on every sequence of `start`
// (each from its own time start.time(b)) up to t = 1. Errors: a scheduler
// the process needs is missing, invalid options, the model's process or
// vocabulary differs from the batch's needs, a model error, or a multiplier
// that is negative or not finite (named by sequence and row).
absl::StatusOr<SampleResult> Sample(RateModel& model, const KindSchedulers& schedulers,
                                    const SequenceBatch& start, const SamplerOptions& options);

// HasFusedEvents is true when SamplerOptions::fused_events applies to
// sampler `kind` on `model`, a model that ProvidesSoftmaxLogits(): a DFM
// model with kEuler, kTauLeap or kGillespie, an (insertion-only) Edit model
// with kEuler or kGillespie. The fused kernels are also the only path that
// runs on a GPU (SamplerOptions::device).
bool HasFusedEvents(const RateModel& model, SamplerKind kind);

// MakeTimeGrid returns the steps + 1 grid points of `grid` (0 = t_0 < ... <
// t_steps = 1; duplicate points of a flat kappa are removed).
std::vector<double> MakeTimeGrid(TimeGrid grid, int64_t steps, const Scheduler& scheduler);

}  // namespace jumpflow

#endif  // JUMPFLOW_SAMPLERS_SAMPLER_H_
