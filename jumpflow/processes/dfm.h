// @brief Discrete Flow Matching (mixture path) training batches.
//
// DESIGN.md section 1 "DFM": x_t^i = x_1^i with probability kappa(t), else
// x_0^i, independently per position. The source x_0 is all Vocabulary::kMask,
// uniform noise over the user tokens (ids >= Vocabulary::kNumSpecials), or a
// user coupling (x_0, x_1) of equal lengths. The conditional multiplier of
// position i is the one-hot delta(y, x_1^i) for y != x_t^i, so token_targets
// holds exactly one entry (x_1^i, 1.0) on the rows where x_t^i != x_1^i and
// nothing elsewhere; the rate is h(t) * m (never multiplied in here).
//
// Random draws of sequence b: PhiloxStream(seed, b, kPurposePath) for the
// keep-x_1 coins (one 32-bit draw per position, in order) and
// PhiloxStream(seed, b, kPurposeSource) for uniform-source tokens; the time
// as in process_common.h. Same inputs and seed -> same batch, any thread count.
//
// Example:
//   JUMPFLOW_ASSIGN_OR_RETURN(auto sched, MakeScheduler("linear"));
//   DfmOptions opt;
//   opt.vocab_size = vocab.size();
//   opt.source = DfmSource::kUniform;
//   std::unique_ptr<TimeDistribution> uniform = UniformTime();
//   JUMPFLOW_ASSIGN_OR_RETURN(TrainingBatch tb,
//       MakeDfmBatch(x1, BatchTimes::Sampled(*uniform), *sched, opt, /*seed=*/step));
#ifndef JUMPFLOW_PROCESSES_DFM_H_
#define JUMPFLOW_PROCESSES_DFM_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "jumpflow/processes/process_common.h"
#include "jumpflow/scheduler.h"
#include "jumpflow/training_batch.h"
#include "sequences/sequence_batch.h"

namespace jumpflow {

// DfmSource picks the source x_0.
enum class DfmSource : uint8_t {
  kMask = 0,      // x_0 = all Vocabulary::kMask
  kUniform = 1,   // x_0^i uniform over [kNumSpecials, vocab_size)
  kCoupling = 2,  // x_0 given by DfmOptions::x0, same lengths as x_1
};

// DfmOptions configure MakeDfmBatch.
struct DfmOptions {
  // Vocabulary size (specials included); every token must lie in
  // [0, vocab_size). Required.
  int32_t vocab_size = 0;
  DfmSource source = DfmSource::kMask;
  // The coupled sources for kCoupling (same number of sequences and lengths
  // as x_1); must outlive the call. Ignored otherwise.
  const SequenceBatch* x0 = nullptr;
};

// MakeDfmBatch samples x_t for every sequence of `x1` at its time and returns
// a TrainingBatch with process kDfm, x_t (times set), weights and
// token_targets. x1's own times are ignored. Errors (InvalidArgument, naming
// the sequence / position / value): vocab_size <= 0 (or <= kNumSpecials for
// kUniform), an x_1 token outside the vocabulary or equal to kMask or kEps, a
// missing x0 or an x0 whose sequence count or length differs from x_1, an x0
// token outside the vocabulary or equal to kEps, bad times or weights.
absl::StatusOr<TrainingBatch> MakeDfmBatch(const SequenceBatch& x1, const BatchTimes& times,
                                           const Scheduler& scheduler, const DfmOptions& options,
                                           uint64_t seed,
                                           const BatchWeights& weights = BatchWeights::Ones());

}  // namespace jumpflow

#endif  // JUMPFLOW_PROCESSES_DFM_H_
