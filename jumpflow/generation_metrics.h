// @brief Quality of generated sequences against a reference set, and the
// character-bigram baseline sampler that the demo compares with.
//
// Example:
//   CharBigramModel bigram = CharBigramModel::Fit(train);
//   std::vector<std::vector<Token>> words = bigram.Sample(1000, /*seed=*/1);
//   GenerationReport r = EvaluateGeneration(words, dictionary, train);
//   // r.in_reference_fraction: share of samples that are dictionary words
#ifndef JUMPFLOW_GENERATION_METRICS_H_
#define JUMPFLOW_GENERATION_METRICS_H_

#include <cstdint>
#include <vector>

#include "sequences/dataset.h"

namespace jumpflow {

// GenerationReport summarises a set of samples.
struct GenerationReport {
  int64_t num_samples = 0;
  // Share of samples found in the reference set (e.g. the whole dictionary).
  double in_reference_fraction = 0.0;
  // Share of samples not in the training set.
  double novel_fraction = 0.0;
  // Share of samples that are in the reference set but not in training:
  // new valid words.
  double novel_valid_fraction = 0.0;
  // Total variation between the length distributions of the samples and
  // of the training set.
  double length_tv = 0.0;
  // Share of distinct samples.
  double unique_fraction = 0.0;
};

// EvaluateGeneration compares `samples` with `reference` (validity) and
// `train` (novelty, length distribution).
GenerationReport EvaluateGeneration(const std::vector<std::vector<Token>>& samples,
                                    const Dataset& reference, const Dataset& train);

// CharBigramModel is a first-order Markov chain over tokens with start and
// end states, fitted by counting (add-one smoothing over the user tokens).
class CharBigramModel {
 public:
  // Fit counts the transitions of every sequence of `data`, weighted.
  static CharBigramModel Fit(const Dataset& data);

  // Sample draws `num` sequences (each at most `max_length` tokens; a chain
  // that reaches it is cut there). Reproducible from `seed`.
  std::vector<std::vector<Token>> Sample(int64_t num, uint64_t seed,
                                         int64_t max_length = 64) const;

 private:
  int32_t vocab_size_ = 0;
  // transitions_[from * (V + 1) + to]: cumulative weights; row `kBos` is the
  // start state, column V is the end state.
  std::vector<double> cumulative_;
};

}  // namespace jumpflow

#endif  // JUMPFLOW_GENERATION_METRICS_H_
