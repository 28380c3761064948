// @brief Generation metrics and the character-bigram baseline.
#include "jumpflow/generation_metrics.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "absl/container/flat_hash_set.h"
#include "kernels/philox.h"

namespace jumpflow {

GenerationReport EvaluateGeneration(const std::vector<std::vector<Token>>& samples,
                                    const Dataset& reference, const Dataset& train) {
  GenerationReport r;
  r.num_samples = static_cast<int64_t>(samples.size());
  if (samples.empty()) return r;
  const absl::flat_hash_set<std::vector<Token>> ref(reference.sequences().begin(),
                                                    reference.sequences().end());
  const absl::flat_hash_set<std::vector<Token>> seen(train.sequences().begin(),
                                                     train.sequences().end());
  absl::flat_hash_set<std::vector<Token>> distinct;
  int64_t in_ref = 0, novel = 0, novel_valid = 0;
  std::map<size_t, double> sample_len, train_len;
  for (const auto& s : samples) {
    const bool valid = ref.contains(s), is_new = !seen.contains(s);
    in_ref += valid;
    novel += is_new;
    novel_valid += valid && is_new;
    distinct.insert(s);
    sample_len[s.size()] += 1.0 / static_cast<double>(samples.size());
  }
  for (const auto& s : train.sequences()) {
    train_len[s.size()] += 1.0 / static_cast<double>(train.size());
  }
  double tv = 0;
  for (const auto& [len, p] : sample_len) {
    auto it = train_len.find(len);
    tv += std::fabs(p - (it == train_len.end() ? 0.0 : it->second));
  }
  for (const auto& [len, q] : train_len) {
    if (!sample_len.contains(len)) tv += q;
  }
  const auto n = static_cast<double>(samples.size());
  r.in_reference_fraction = static_cast<double>(in_ref) / n;
  r.novel_fraction = static_cast<double>(novel) / n;
  r.novel_valid_fraction = static_cast<double>(novel_valid) / n;
  r.length_tv = 0.5 * tv;
  r.unique_fraction = static_cast<double>(distinct.size()) / n;
  return r;
}

CharBigramModel CharBigramModel::Fit(const Dataset& data) {
  CharBigramModel m;
  const int32_t v = data.vocab().size();
  m.vocab_size_ = v;
  const size_t cols = static_cast<size_t>(v) + 1;
  std::vector<double> counts(static_cast<size_t>(v) * cols, 0.0);
  // Add-one smoothing over user tokens and the end state.
  for (int32_t from = 0; from < v; ++from) {
    for (int32_t to = Vocabulary::kNumSpecials; to <= v; ++to) {
      counts[static_cast<size_t>(from) * cols + static_cast<size_t>(to)] = 1.0;
    }
  }
  for (int64_t i = 0; i < data.size(); ++i) {
    Token prev = Vocabulary::kBos;
    for (Token t : data.sequence(i)) {
      counts[static_cast<size_t>(prev) * cols + static_cast<size_t>(t)] += data.weight(i);
      prev = t;
    }
    counts[static_cast<size_t>(prev) * cols + static_cast<size_t>(v)] += data.weight(i);
  }
  for (size_t row = 0; row < static_cast<size_t>(v); ++row) {
    for (size_t c = 1; c < cols; ++c) counts[row * cols + c] += counts[row * cols + c - 1];
  }
  m.cumulative_ = std::move(counts);
  return m;
}

std::vector<std::vector<Token>> CharBigramModel::Sample(int64_t num, uint64_t seed,
                                                        int64_t max_length) const {
  std::vector<std::vector<Token>> out(static_cast<size_t>(std::max<int64_t>(num, 0)));
  const size_t cols = static_cast<size_t>(vocab_size_) + 1;
  for (int64_t i = 0; i < num; ++i) {
    PhiloxStream rng(seed, static_cast<uint32_t>(i), kPurposeSampler);
    Token state = Vocabulary::kBos;
    auto& s = out[static_cast<size_t>(i)];
    while (static_cast<int64_t>(s.size()) < max_length) {
      const double* row = cumulative_.data() + static_cast<size_t>(state) * cols;
      const double u = rng.Uniform() * row[cols - 1];
      const auto next = static_cast<Token>(std::upper_bound(row, row + cols, u) - row);
      if (next >= vocab_size_) break;  // end state
      s.push_back(next);
      state = next;
    }
  }
  return out;
}

}  // namespace jumpflow
