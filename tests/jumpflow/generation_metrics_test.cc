// @brief Tests of the generation metrics and the bigram baseline.
#include "jumpflow/generation_metrics.h"

#include <cmath>

#include "gtest/gtest.h"

namespace jumpflow {
namespace {

Dataset Words(const std::vector<std::string>& words) {
  auto vocab = *Vocabulary::FromCharacters("abcdefghijklmnopqrstuvwxyz");
  std::vector<std::vector<Token>> seqs;
  for (const auto& w : words) seqs.push_back(*vocab.Encode(w));
  return *Dataset::FromSequences(vocab, seqs);
}

TEST(GenerationMetricsTest, FractionsAndLengthTv) {
  const Dataset reference = Words({"cat", "dog", "bird", "fish"});
  const Dataset train = Words({"cat", "dog"});
  const Dataset samples = Words({"cat", "bird", "zzzz", "cat"});
  const GenerationReport r = EvaluateGeneration(samples.sequences(), reference, train);
  EXPECT_EQ(r.num_samples, 4);
  EXPECT_DOUBLE_EQ(r.in_reference_fraction, 0.75);  // cat, bird, cat
  EXPECT_DOUBLE_EQ(r.novel_fraction, 0.5);          // bird, zzzz
  EXPECT_DOUBLE_EQ(r.novel_valid_fraction, 0.25);   // bird
  EXPECT_DOUBLE_EQ(r.unique_fraction, 0.75);
  // Lengths: samples {3: 1/2, 4: 1/2}; train {3: 1}. TV = 1/2.
  EXPECT_DOUBLE_EQ(r.length_tv, 0.5);
}

TEST(GenerationMetricsTest, BigramReproducesTransitionFrequencies) {
  // "ab" 3 times, "b" once: from BOS: a w.p. (3+1)/(4+27), b (1+1)/31 ...
  const Dataset train = Words({"ab", "ab", "ab", "b"});
  const CharBigramModel m = CharBigramModel::Fit(train);
  const int64_t n = 40000;
  const auto samples = m.Sample(n, 5);
  int64_t start_a = 0, exact_ab = 0;
  for (const auto& s : samples) {
    start_a += !s.empty() && s[0] == Vocabulary::kNumSpecials;
    exact_ab += s == train.sequences()[0];
  }
  // BOS row: 26 letters + end, add-one: a = 4/31.
  const double p_a = 4.0 / 31.0;
  EXPECT_NEAR(static_cast<double>(start_a) / n, p_a, 4 * std::sqrt(p_a * (1 - p_a) / n));
  // P(ab) = P(a|BOS) P(b|a) P(end|b) = (4/31) (4/31) (5/31).
  const double p_ab = 4.0 / 31 * 4.0 / 31 * 5.0 / 31;
  EXPECT_NEAR(static_cast<double>(exact_ab) / n, p_ab, 4 * std::sqrt(p_ab * (1 - p_ab) / n));
  EXPECT_EQ(m.Sample(10, 5), m.Sample(10, 5));
  for (const auto& s : m.Sample(100, 1, 3)) EXPECT_LE(s.size(), 3u);
}

}  // namespace
}  // namespace jumpflow
