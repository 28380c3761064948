// @brief Inputs shared by the three conditional-path processes (DFM, Edit
// Flows, Branching Flows): where each sequence's time comes from, its loss
// weight, and the key of every random draw.
//
// Reproducibility contract (all processes): every random draw of sequence b
// comes from a PhiloxStream keyed by (seed, b, purpose) with a purpose from
// kernels/philox.h (kPurposeTime for t, kPurposeSource for x0 noise,
// kPurposeAlignment for the alignment seed, kPurposeSplit for the Branching
// forest, kPurposePath for the path draws at time t). The resulting
// TrainingBatch is therefore a pure function of (inputs, seed), identical for
// any thread count. b is the index of the sequence in the batch: use a fresh
// seed per training step, or the same sequence at the same index draws the
// same noise.
//
// Example:
//   std::unique_ptr<TimeDistribution> uniform = UniformTime();
//   BatchTimes times = BatchTimes::Sampled(*uniform);    // t_b ~ U(0, 1)
//   BatchWeights weights = BatchWeights::OfTime([](double t) { return 1.0 + t; });
//   JUMPFLOW_ASSIGN_OR_RETURN(TrainingBatch tb,
//                             MakeDfmBatch(x1, times, *scheduler, DfmOptions{.vocab_size = 32},
//                                          /*seed=*/step, weights));
#ifndef JUMPFLOW_PROCESSES_PROCESS_COMMON_H_
#define JUMPFLOW_PROCESSES_PROCESS_COMMON_H_

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "jumpflow/time_distribution.h"

namespace jumpflow {

// BatchTimes says where the time t of each sequence comes from: explicit
// values (one per sequence, each in [0, 1]), one constant, or draws from a
// TimeDistribution with PhiloxStream(seed, b, kPurposeTime). The referenced
// span / distribution must outlive the process call.
class BatchTimes {
 public:
  // Explicit uses times[b] for sequence b.
  static BatchTimes Explicit(std::span<const double> times);
  // Constant uses t for every sequence.
  static BatchTimes Constant(double t);
  // Sampled draws t_b from `distribution`.
  static BatchTimes Sampled(const TimeDistribution& distribution);

  // Resolve returns one time per sequence. Errors: explicit count differs
  // from num_sequences, or any time (explicit, constant or drawn) is not a
  // finite number in [0, 1] (the message names the sequence and value).
  absl::StatusOr<std::vector<double>> Resolve(int64_t num_sequences, uint64_t seed) const;

 private:
  enum class Kind : uint8_t { kExplicit, kConstant, kSampled };
  Kind kind_ = Kind::kConstant;
  std::span<const double> explicit_;
  double constant_ = 0.0;
  const TimeDistribution* distribution_ = nullptr;
};

// BatchWeights gives the per-sequence loss weight: all ones (default),
// explicit values (one per sequence), or a function of the sequence's time
// w(t) (called serially, once per sequence, so it need not be thread-safe).
class BatchWeights {
 public:
  // Ones gives weight 1 to every sequence.
  static BatchWeights Ones();
  // Explicit uses weights[b] for sequence b (the span must outlive the call).
  static BatchWeights Explicit(std::span<const double> weights);
  // OfTime uses w(t_b).
  static BatchWeights OfTime(std::function<double(double)> w);

  // Resolve returns one weight per sequence. Errors: explicit count differs
  // from times.size(), or a weight is not finite and >= 0 (the message names
  // the sequence, its time and the value).
  absl::StatusOr<std::vector<float>> Resolve(std::span<const double> times) const;

 private:
  enum class Kind : uint8_t { kOnes, kExplicit, kOfTime };
  Kind kind_ = Kind::kOnes;
  std::span<const double> explicit_;
  std::function<double(double)> function_;
};

// DeriveSeed returns a 64-bit seed for a sub-computation (e.g. an alignment)
// of sequence `b`: 64 bits of Philox(seed; b, purpose, ~0, ~0), so sub-seeds
// of different sequences or purposes are unrelated.
uint64_t DeriveSeed(uint64_t seed, int64_t b, uint32_t purpose);

}  // namespace jumpflow

#endif  // JUMPFLOW_PROCESSES_PROCESS_COMMON_H_
