// @brief Helpers shared by the oracle and sampler tests: a synthetic word
// data set, scheduler construction, and the Kolmogorov-Smirnov test.
//
// Example:
//   Dataset words = SyntheticWords(300, 6, "abcdefgh", /*seed=*/11);
//   double p = KsPValue(samples, [](double t) { return t; });
#ifndef JUMPFLOW_TESTS_JUMPFLOW_SAMPLER_TEST_UTIL_H_
#define JUMPFLOW_TESTS_JUMPFLOW_SAMPLER_TEST_UTIL_H_

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "jumpflow/scheduler.h"
#include "kernels/philox.h"
#include "sequences/dataset.h"

namespace jumpflow::testing {

// SyntheticWords returns `num` distinct words of length 1..max_len over
// `letters` (uniform letters, uniform length), with weights in [0.5, 2),
// all drawn from `seed`.
inline Dataset SyntheticWords(int num, int max_len, const std::string& letters, uint64_t seed) {
  Vocabulary vocab = *Vocabulary::FromCharacters(letters);
  PhiloxStream rng(seed, 0, kPurposeUser);
  std::set<std::vector<Token>> seen;
  std::vector<std::vector<Token>> words;
  std::vector<double> weights;
  const uint32_t nl = static_cast<uint32_t>(letters.size());
  while (static_cast<int>(words.size()) < num) {
    const int len = 1 + static_cast<int>(rng.UniformInt(static_cast<uint32_t>(max_len)));
    std::vector<Token> w;
    for (int i = 0; i < len; ++i) {
      w.push_back(Vocabulary::kNumSpecials + static_cast<Token>(rng.UniformInt(nl)));
    }
    if (!seen.insert(w).second) continue;
    words.push_back(w);
    weights.push_back(0.5 + 1.5 * rng.Uniform());
  }
  return *Dataset::FromSequences(vocab, words, weights);
}

// WordsDataset encodes the given words (weight 1 each).
inline Dataset WordsDataset(const std::vector<std::string>& words, const std::string& letters) {
  Vocabulary vocab = *Vocabulary::FromCharacters(letters);
  std::vector<std::vector<Token>> seqs;
  for (const auto& w : words) seqs.push_back(*vocab.Encode(w));
  return *Dataset::FromSequences(vocab, seqs);
}

// Sched builds a scheduler from its spec (test input, always valid).
inline std::shared_ptr<const Scheduler> Sched(const std::string& spec) {
  return std::shared_ptr<const Scheduler>(*MakeScheduler(spec));
}

// KolmogorovSurvival returns P(K > lambda) for the Kolmogorov distribution,
// 2 sum_{j>=1} (-1)^(j-1) exp(-2 j^2 lambda^2) (Numerical Recipes 3rd ed.,
// eq. 14.3.7).
inline double KolmogorovSurvival(double lambda) {
  if (lambda < 0.2) return 1.0;
  double sum = 0.0, sign = 1.0;
  for (int j = 1; j <= 200; ++j) {
    const double term = sign * std::exp(-2.0 * j * j * lambda * lambda);
    sum += term;
    if (std::fabs(term) < 1e-16) break;
    sign = -sign;
  }
  return std::clamp(2.0 * sum, 0.0, 1.0);
}

// KsStatistic returns sup_x |F_n(x) - cdf(x)| for the sample `xs` (values
// above 1 stand for "no event before t = 1" and only enter through n).
inline double KsStatistic(std::vector<double> xs, const std::function<double(double)>& cdf) {
  std::sort(xs.begin(), xs.end());
  const double n = static_cast<double>(xs.size());
  double d = 0.0;
  size_t k = 0;
  for (; k < xs.size() && xs[k] <= 1.0; ++k) {
    const double f = cdf(xs[k]);
    d = std::max({d, std::fabs(static_cast<double>(k + 1) / n - f),
                  std::fabs(f - static_cast<double>(k) / n)});
  }
  // Just before t = 1 the empirical CDF is k / n.
  return std::max(d, std::fabs(cdf(1.0) - static_cast<double>(k) / n));
}

// KsPValue is the asymptotic p-value of the one-sample KS test with the
// small-sample correction of Stephens (NR eq. 14.3.9).
inline double KsPValue(const std::vector<double>& xs, const std::function<double(double)>& cdf) {
  const double sn = std::sqrt(static_cast<double>(xs.size()));
  return KolmogorovSurvival((sn + 0.12 + 0.11 / sn) * KsStatistic(xs, cdf));
}

}  // namespace jumpflow::testing

#endif  // JUMPFLOW_TESTS_JUMPFLOW_SAMPLER_TEST_UTIL_H_
