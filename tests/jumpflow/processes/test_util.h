// @brief Shared helpers for the process tests: a local U(0, 1) time
// distribution, random batches, and running a callable under a fixed number
// of TBB threads.
//
// Example:
//   SequenceBatch x1 = RandomBatch(/*n=*/100, /*min_len=*/1, /*max_len=*/12, kVocab, /*seed=*/1);
//   auto tb = WithThreads(1, [&] { return MakeDfmBatch(...); });
#ifndef JUMPFLOW_TESTS_JUMPFLOW_PROCESSES_TEST_UTIL_H_
#define JUMPFLOW_TESTS_JUMPFLOW_PROCESSES_TEST_UTIL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <tbb/task_arena.h>

#include "jumpflow/scheduler.h"
#include "jumpflow/time_distribution.h"
#include "jumpflow/training_batch.h"
#include "sequences/sequence_batch.h"

namespace jumpflow::testing {

// kVocab: 5 specials + 26 user tokens.
inline constexpr int32_t kVocab = Vocabulary::kNumSpecials + 26;

// TestUniformTime is U(0, 1), defined here so the tests do not depend on the
// time-distribution module.
class TestUniformTime : public TimeDistribution {
 public:
  std::string Name() const override { return "uniform"; }
  double Sample(PhiloxStream& rng) const override { return rng.Uniform(); }
  double Density(double t) const override { return t >= 0 && t <= 1 ? 1.0 : 0.0; }
};

// Sched returns MakeScheduler(spec).value() (the spec is a test constant).
std::unique_ptr<Scheduler> Sched(const std::string& spec);

// RandomSequences draws n sequences with lengths uniform in [min_len,
// max_len] and tokens uniform over the user tokens of a vocabulary of
// `vocab_size` (ids >= kNumSpecials); reproducible from `seed`.
std::vector<std::vector<Token>> RandomSequences(int64_t n, int64_t min_len, int64_t max_len,
                                                int32_t vocab_size, uint64_t seed);

// RandomBatch is RandomSequences packed into a SequenceBatch.
SequenceBatch RandomBatch(int64_t n, int64_t min_len, int64_t max_len, int32_t vocab_size,
                          uint64_t seed);

// Batch packs sequences (fails the test on bad input).
SequenceBatch Batch(const std::vector<std::vector<Token>>& seqs, int32_t vocab_size = kVocab);

// WithThreads runs fn() inside a task_arena of `threads` threads.
template <typename Fn>
auto WithThreads(int threads, Fn&& fn) {
  tbb::task_arena arena(threads);
  return arena.execute(fn);
}

// SameBatch says whether two training batches are bitwise equal.
bool SameBatch(const TrainingBatch& a, const TrainingBatch& b);

// CheckCsr checks CSR invariants of `rows` for `num_rows` rows: offsets
// nondecreasing from 0 to num_entries, columns sorted and distinct per row,
// in [0, vocab_size). Returns an empty string or a description.
std::string CheckCsr(const SparseRows& rows, int64_t num_rows, int32_t vocab_size);

}  // namespace jumpflow::testing

#endif  // JUMPFLOW_TESTS_JUMPFLOW_PROCESSES_TEST_UTIL_H_
