// @brief Oracle models: exact marginal multipliers for a finite data set.
#include "jumpflow/oracle.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "kernels/philox.h"
#include "tbb/blocked_range.h"
#include "tbb/enumerable_thread_specific.h"
#include "tbb/parallel_for.h"

namespace jumpflow {
namespace {

// Scratch is the per-thread working memory of one sequence evaluation.
struct Scratch {
  std::vector<double> log_weight;            // [items]
  std::vector<double> log_count;             // [items]: log N(x_t, x_1), -inf when not embeddable
  std::vector<double> fwd, bwd;              // [(n + 1) x (m + 1)] scaled embedding counts
  std::vector<double> fwd_scale, bwd_scale;  // [n + 1] log scale of each DP row
};

// IsSubsequence says whether x embeds into y (greedy, O(|y|)).
bool IsSubsequence(std::span<const Token> x, std::span<const Token> y) {
  size_t j = 0;
  for (size_t p = 0; p < y.size() && j < x.size(); ++p) j += (y[p] == x[j]);
  return j == x.size();
}

// Counts above kRescale are rescaled (a DP row is divided by its maximum and
// the log of the factor carried in a per-row scale), so no count overflows;
// below it the scale stays 0 and no exp/log is spent.
constexpr double kRescale = 1e200;

// ForwardCounts fills f[j * (m + 1) + p] * exp(scale[j]) = number of
// embeddings of x[:j] into y[:p].
void ForwardCounts(std::span<const Token> x, std::span<const Token> y, std::vector<double>& f,
                   std::vector<double>& scale) {
  const size_t n = x.size(), m = y.size(), w = m + 1;
  f.assign((n + 1) * w, 0.0);
  scale.assign(n + 1, 0.0);
  for (size_t p = 0; p <= m; ++p) f[p] = 1.0;
  for (size_t j = 1; j <= n; ++j) {
    double* row = f.data() + j * w;
    const double* prev = row - w;
    double mx = 0.0;
    for (size_t p = 1; p <= m; ++p) {
      row[p] = row[p - 1] + (y[p - 1] == x[j - 1] ? prev[p - 1] : 0.0);
      mx = std::max(mx, row[p]);
    }
    scale[j] = scale[j - 1];
    if (mx > kRescale) {
      const double inv = 1.0 / mx;
      for (size_t p = 0; p <= m; ++p) row[p] *= inv;
      scale[j] += std::log(mx);
    }
  }
}

// BackwardCounts fills b[j * (m + 1) + p] * exp(scale[j]) = number of
// embeddings of x[j:] into y[p:], rescaled like ForwardCounts.
void BackwardCounts(std::span<const Token> x, std::span<const Token> y, std::vector<double>& b,
                    std::vector<double>& scale) {
  const size_t n = x.size(), m = y.size(), w = m + 1;
  b.assign((n + 1) * w, 0.0);
  scale.assign(n + 1, 0.0);
  for (size_t p = 0; p <= m; ++p) b[n * w + p] = 1.0;
  for (size_t jj = n; jj-- > 0;) {
    double* row = b.data() + jj * w;
    const double* next = row + w;
    double mx = 0.0;
    for (size_t p = m; p-- > 0;) {
      row[p] = row[p + 1] + (y[p] == x[jj] ? next[p + 1] : 0.0);
      mx = std::max(mx, row[p]);
    }
    scale[jj] = scale[jj + 1];
    if (mx > kRescale) {
      const double inv = 1.0 / mx;
      for (size_t p = 0; p <= m; ++p) row[p] *= inv;
      scale[jj] += std::log(mx);
    }
  }
}

// UpperGamma returns the regularized upper incomplete gamma Q(a, x)
// (Numerical Recipes 3rd ed., section 6.2: series for x < a + 1, Lentz
// continued fraction otherwise).
double UpperGamma(double a, double x) {
  if (!(x > 0.0)) return 1.0;
  if (!std::isfinite(x)) return 0.0;
  const double log_front = a * std::log(x) - x - std::lgamma(a);
  if (x < a + 1.0) {
    double ap = a, sum = 1.0 / a, del = sum;
    for (int n = 0; n < 10000; ++n) {
      ap += 1.0;
      del *= x / ap;
      sum += del;
      if (std::fabs(del) < std::fabs(sum) * 1e-16) break;
    }
    return std::clamp(1.0 - sum * std::exp(log_front), 0.0, 1.0);
  }
  constexpr double kTiny = 1e-300;
  double b = x + 1.0 - a, c = 1.0 / kTiny, d = 1.0 / b, h = d;
  for (int i = 1; i < 10000; ++i) {
    const double an = -i * (i - a);
    b += 2.0;
    d = an * d + b;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = b + an / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1.0 / d;
    const double del = d * c;
    h *= del;
    if (std::fabs(del - 1.0) < 1e-16) break;
  }
  return std::clamp(std::exp(log_front) * h, 0.0, 1.0);
}

}  // namespace

struct OracleModel::Impl {
  OracleKind kind = OracleKind::kDfmMask;
  Vocabulary vocab = *Vocabulary::FromSymbols({"?"}, Vocabulary::Kind::kCharacter);
  std::shared_ptr<const Scheduler> scheduler;
  std::vector<std::vector<Token>> support;
  std::vector<double> prob, log_prob;
  int64_t length = -1;            // DFM padded length
  std::vector<Token> flat;        // DFM: support items back to back, [items x length]
  std::vector<Token> alphabet;    // DFM uniform source alphabet
  std::vector<uint64_t> letters;  // edit: bit (token mod 64) set for each token of an item
  tbb::enumerable_thread_specific<Scratch> scratch;

  absl::Status EvaluateMask(const SequenceBatch& batch, int64_t b, RateOutputs* out) const;
  absl::Status EvaluateUniform(const SequenceBatch& batch, int64_t b, RateOutputs* out,
                               Scratch& s) const;
  absl::Status EvaluateInsertion(const SequenceBatch& batch, int64_t b, RateOutputs* out,
                                 Scratch& s) const;
};

absl::Status OracleModel::Impl::EvaluateMask(const SequenceBatch& batch, int64_t b,
                                             RateOutputs* out) const {
  const auto x = batch.sequence(b);
  const size_t L = static_cast<size_t>(length);
  const size_t vv = static_cast<size_t>(vocab.size());
  const int64_t row0 = batch.offsets()[b];
  double* dist = out->token_dist.data() + static_cast<size_t>(row0) * vv;
  double total = 0.0;
  for (size_t i = 0; i < support.size(); ++i) {
    const Token* item = flat.data() + i * L;
    bool consistent = true;
    for (size_t j = 0; j < L && consistent; ++j) {
      consistent = x[j] == Vocabulary::kMask || x[j] == item[j];
    }
    if (!consistent) continue;
    total += prob[i];
    for (size_t j = 0; j < L; ++j) {
      if (x[j] == Vocabulary::kMask) dist[j * vv + static_cast<size_t>(item[j])] += prob[i];
    }
  }
  if (!(total > 0.0)) {
    // Fallback: the unconditional posterior (the data prior).
    out->fallback[static_cast<size_t>(b)] = 1;
    total = 0.0;
    for (size_t i = 0; i < support.size(); ++i) {
      const Token* item = flat.data() + i * L;
      total += prob[i];
      for (size_t j = 0; j < L; ++j) {
        if (x[j] == Vocabulary::kMask) dist[j * vv + static_cast<size_t>(item[j])] += prob[i];
      }
    }
  }
  const double inv = 1.0 / total;
  for (size_t j = 0; j < L; ++j) {
    double* row = dist + j * vv;
    if (x[j] != Vocabulary::kMask) {
      out->token_rate[static_cast<size_t>(row0) + j] = 0.0;
      continue;
    }
    for (size_t a = 0; a < vv; ++a) row[a] *= inv;
  }
  return absl::OkStatus();
}

absl::Status OracleModel::Impl::EvaluateUniform(const SequenceBatch& batch, int64_t b,
                                                RateOutputs* out, Scratch& s) const {
  const auto x = batch.sequence(b);
  const size_t L = static_cast<size_t>(length);
  const size_t vv = static_cast<size_t>(vocab.size());
  const int64_t row0 = batch.offsets()[b];
  const double t = batch.time(b);
  const double kappa = scheduler->Kappa(t);
  const double one_minus = std::max(scheduler->Survival(t), Scheduler::kMinSurvival);
  const double a_size = static_cast<double>(alphabet.size());
  const double log_match = std::log(kappa + one_minus / a_size);
  const double log_mismatch = std::log(one_minus) - std::log(a_size);
  s.log_weight.resize(support.size());
  double mx = -std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < support.size(); ++i) {
    const Token* item = flat.data() + i * L;
    int64_t matches = 0;
    for (size_t j = 0; j < L; ++j) matches += (x[j] == item[j]);
    const double lw = log_prob[i] + static_cast<double>(matches) * log_match +
                      static_cast<double>(static_cast<int64_t>(L) - matches) * log_mismatch;
    s.log_weight[i] = lw;
    mx = std::max(mx, lw);
  }
  double z = 0.0;
  for (size_t i = 0; i < support.size(); ++i) {
    s.log_weight[i] = std::exp(s.log_weight[i] - mx);
    z += s.log_weight[i];
  }
  const double inv = 1.0 / z;
  double* dist = out->token_dist.data() + static_cast<size_t>(row0) * vv;
  for (size_t i = 0; i < support.size(); ++i) {
    const double w = s.log_weight[i] * inv;
    if (w == 0.0) continue;
    const Token* item = flat.data() + i * L;
    for (size_t j = 0; j < L; ++j) dist[j * vv + static_cast<size_t>(item[j])] += w;
  }
  return absl::OkStatus();
}

absl::Status OracleModel::Impl::EvaluateInsertion(const SequenceBatch& batch, int64_t b,
                                                  RateOutputs* out, Scratch& s) const {
  const auto x = batch.sequence(b);
  const size_t n = x.size();
  const size_t vv = static_cast<size_t>(vocab.size());
  const int64_t row0 = batch.offsets()[b];
  const int64_t gap0 = row0 + b;
  const double t = batch.time(b);
  const double log_one_minus = std::log(std::max(scheduler->Survival(t), Scheduler::kMinSurvival));
  for (size_t r = 0; r < n; ++r) out->token_rate[static_cast<size_t>(row0) + r] = 0.0;

  // Pass 1: posterior log weights log w + log N + (m - n) log(1 - kappa).
  uint64_t x_letters = 0;
  for (Token tok : x) x_letters |= uint64_t{1} << (tok & 63);
  const double kNegInf = -std::numeric_limits<double>::infinity();
  s.log_weight.resize(support.size());
  s.log_count.resize(support.size());
  double mx = kNegInf;
  for (size_t i = 0; i < support.size(); ++i) {
    const auto& y = support[i];
    s.log_weight[i] = kNegInf;
    s.log_count[i] = kNegInf;
    if (y.size() < n || (letters[i] & x_letters) != x_letters || !IsSubsequence(x, y)) continue;
    ForwardCounts(x, y, s.fwd, s.fwd_scale);
    const double count = s.fwd[n * (y.size() + 1) + y.size()];
    if (!(count > 0.0)) continue;
    s.log_count[i] = std::log(count) + s.fwd_scale[n];
    s.log_weight[i] =
        log_prob[i] + s.log_count[i] + static_cast<double>(y.size() - n) * log_one_minus;
    mx = std::max(mx, s.log_weight[i]);
  }
  double* rate = out->insert_rate.data() + gap0;
  double* dist = out->insert_dist.data() + static_cast<size_t>(gap0) * vv;
  if (mx == kNegInf) {
    // Fallback: no item contains x_t; nothing can lead into the support.
    out->fallback[static_cast<size_t>(b)] = 1;
    for (size_t j = 0; j <= n; ++j) rate[j] = 0.0;
    return absl::OkStatus();
  }
  double z = 0.0;
  for (size_t i = 0; i < support.size(); ++i) {
    if (s.log_weight[i] > kNegInf) z += std::exp(s.log_weight[i] - mx);
  }
  const double log_z = mx + std::log(z);

  // Pass 2: expected insertions sum_p [y_p = a] F(j, p) B(j, p + 1) / N.
  for (size_t i = 0; i < support.size(); ++i) {
    if (s.log_weight[i] == kNegInf) continue;
    const double log_post = s.log_weight[i] - log_z;
    if (log_post < -745.0) continue;  // exp underflows to 0
    const auto& y = support[i];
    const size_t m = y.size(), w = m + 1;
    if (m == n) continue;  // nothing pending
    ForwardCounts(x, y, s.fwd, s.fwd_scale);
    BackwardCounts(x, y, s.bwd, s.bwd_scale);
    // Scales accumulate along the DP, so both ends at 0 mean no row was
    // rescaled (N <= 1e200) and one exp serves every gap.
    const bool unscaled = s.fwd_scale[n] == 0.0 && s.bwd_scale[0] == 0.0;
    const double post_over_count = std::exp(log_post - s.log_count[i]);
    for (size_t j = 0; j <= n; ++j) {
      const double c = unscaled
                           ? post_over_count
                           : std::exp(log_post + s.fwd_scale[j] + s.bwd_scale[j] - s.log_count[i]);
      if (c == 0.0) continue;
      const double* f = s.fwd.data() + j * w;
      const double* bb = s.bwd.data() + j * w;
      double* row = dist + j * vv;
      for (size_t p = j; p + (n - j) < m; ++p) {
        const double v = f[p] * bb[p + 1];
        if (v > 0.0) row[static_cast<size_t>(y[p])] += c * v;
      }
    }
  }
  for (size_t j = 0; j <= n; ++j) {
    double* row = dist + j * vv;
    double sum = 0.0;
    for (size_t a = 0; a < vv; ++a) sum += row[a];
    rate[j] = sum;
    if (sum > 0.0) {
      const double inv = 1.0 / sum;
      for (size_t a = 0; a < vv; ++a) row[a] *= inv;
    }
  }
  return absl::OkStatus();
}

OracleModel::OracleModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
OracleModel::~OracleModel() = default;

absl::StatusOr<std::unique_ptr<OracleModel>> OracleModel::Create(
    OracleKind kind, const Dataset& data, std::shared_ptr<const Scheduler> scheduler) {
  if (scheduler == nullptr) return absl::InvalidArgumentError("oracle: the scheduler is null");
  if (data.size() == 0) return absl::InvalidArgumentError("oracle: the data set is empty");
  auto impl = std::make_unique<Impl>();
  impl->kind = kind;
  impl->vocab = data.vocab();
  impl->scheduler = std::move(scheduler);
  const bool dfm = kind != OracleKind::kEditInsertion;
  int64_t max_len = 0;
  for (int64_t i = 0; i < data.size(); ++i) {
    const auto seq = data.sequence(i);
    for (Token tok : seq) {
      if (tok < Vocabulary::kNumSpecials || tok >= impl->vocab.size()) {
        return absl::InvalidArgumentError(
            absl::StrCat("oracle: data sequence ", i, " holds token id ", tok,
                         ", which is a special or outside the vocabulary (user ids start at ",
                         Vocabulary::kNumSpecials, ")"));
      }
    }
    max_len = std::max<int64_t>(max_len, static_cast<int64_t>(seq.size()));
  }
  if (dfm && max_len == 0) {
    return absl::InvalidArgumentError("oracle: every DFM data sequence is empty");
  }
  // Distinct items (padded for DFM), sorted, with summed weights.
  std::map<std::vector<Token>, double> items;
  bool padded = false;
  for (int64_t i = 0; i < data.size(); ++i) {
    const auto seq = data.sequence(i);
    std::vector<Token> item(seq.begin(), seq.end());
    if (dfm && static_cast<int64_t>(item.size()) < max_len) {
      item.resize(static_cast<size_t>(max_len), Vocabulary::kPad);
      padded = true;
    }
    items[std::move(item)] += data.weight(i);
  }
  double total = 0.0;
  for (const auto& [item, w] : items) total += w;
  for (auto& [item, w] : items) {
    impl->support.push_back(item);
    impl->prob.push_back(w / total);
    impl->log_prob.push_back(std::log(w / total));
  }
  for (const auto& item : impl->support) {
    uint64_t bits = 0;
    for (Token tok : item) bits |= uint64_t{1} << (tok & 63);
    impl->letters.push_back(bits);
  }
  if (dfm) {
    impl->length = max_len;
    for (const auto& item : impl->support)
      impl->flat.insert(impl->flat.end(), item.begin(), item.end());
    for (Token a = Vocabulary::kNumSpecials; a < impl->vocab.size(); ++a)
      impl->alphabet.push_back(a);
    if (padded) impl->alphabet.push_back(Vocabulary::kPad);
  }
  return std::unique_ptr<OracleModel>(new OracleModel(std::move(impl)));
}

ProcessKind OracleModel::process() const {
  return impl_->kind == OracleKind::kEditInsertion ? ProcessKind::kEdit : ProcessKind::kDfm;
}
int32_t OracleModel::vocab_size() const { return impl_->vocab.size(); }
std::string OracleModel::Name() const {
  return absl::StrCat("oracle:", OracleKindName(impl_->kind));
}
bool OracleModel::TimeDependent() const { return impl_->kind != OracleKind::kDfmMask; }
OracleKind OracleModel::kind() const { return impl_->kind; }
const Vocabulary& OracleModel::vocab() const { return impl_->vocab; }
int64_t OracleModel::sequence_length() const { return impl_->length; }
const std::vector<std::vector<Token>>& OracleModel::support() const { return impl_->support; }
const std::vector<double>& OracleModel::probabilities() const { return impl_->prob; }

absl::Status OracleModel::Evaluate(const SequenceBatch& batch, RateOutputs* out) {
  const Impl& im = *impl_;
  if (out->num_sequences != batch.num_sequences() || out->num_tokens != batch.num_tokens() ||
      out->process != process() || out->vocab_size != im.vocab.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(Name(), ": RateOutputs were not Reset() for this batch and process"));
  }
  if (im.kind != OracleKind::kEditInsertion) {
    for (int64_t b = 0; b < batch.num_sequences(); ++b) {
      if (batch.length(b) != im.length) {
        return absl::InvalidArgumentError(absl::StrCat(Name(), ": sequence ", b, " has length ",
                                                       batch.length(b), ", expected ", im.length));
      }
    }
  }
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, batch.num_sequences(), 4),
                    [&](const tbb::blocked_range<int64_t>& range) {
                      Scratch& s = impl_->scratch.local();
                      for (int64_t b = range.begin(); b < range.end(); ++b) {
                        switch (im.kind) {
                          case OracleKind::kDfmMask:
                            (void)im.EvaluateMask(batch, b, out);
                            break;
                          case OracleKind::kDfmUniform:
                            (void)im.EvaluateUniform(batch, b, out, s);
                            break;
                          case OracleKind::kEditInsertion:
                            (void)im.EvaluateInsertion(batch, b, out, s);
                            break;
                        }
                      }
                    });
  return absl::OkStatus();
}

SequenceBatch OracleModel::SourceBatch(int64_t num, uint64_t seed, uint32_t first_id) const {
  const Impl& im = *impl_;
  num = std::max<int64_t>(num, 0);
  const int64_t len = im.kind == OracleKind::kEditInsertion ? 0 : im.length;
  std::vector<Token> tokens(static_cast<size_t>(num * len), Vocabulary::kMask);
  std::vector<int64_t> offsets(static_cast<size_t>(num + 1));
  for (int64_t b = 0; b <= num; ++b) offsets[static_cast<size_t>(b)] = b * len;
  if (im.kind == OracleKind::kDfmUniform) {
    const uint32_t a_size = static_cast<uint32_t>(im.alphabet.size());
    for (int64_t b = 0; b < num; ++b) {
      PhiloxStream rng(seed, first_id + static_cast<uint32_t>(b), kPurposeSource);
      for (int64_t j = 0; j < len; ++j) {
        tokens[static_cast<size_t>(b * len + j)] = im.alphabet[rng.UniformInt(a_size)];
      }
    }
  }
  std::vector<double> times(static_cast<size_t>(num), 0.0);
  return *SequenceBatch::FromParts(std::move(tokens), std::move(offsets), std::move(times),
                                   im.vocab.size());
}

SampleQuality OracleModel::Compare(const SequenceBatch& samples) const {
  return CompareToDistribution(impl_->support, impl_->prob, samples);
}

std::string OracleModel::Decode(std::span<const Token> sample) const {
  size_t end = sample.size();
  if (impl_->kind != OracleKind::kEditInsertion) {
    while (end > 0 && sample[end - 1] == Vocabulary::kPad) --end;
  }
  return impl_->vocab.Decode(sample.subspan(0, end));
}

absl::StatusOr<OracleKind> ParseOracleKind(absl::string_view name) {
  if (name == "dfm-mask") return OracleKind::kDfmMask;
  if (name == "dfm-uniform") return OracleKind::kDfmUniform;
  if (name == "edit") return OracleKind::kEditInsertion;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown oracle process '", name, "' (expected dfm-mask, dfm-uniform or edit)"));
}

std::string OracleKindName(OracleKind kind) {
  switch (kind) {
    case OracleKind::kDfmMask:
      return "dfm-mask";
    case OracleKind::kDfmUniform:
      return "dfm-uniform";
    case OracleKind::kEditInsertion:
      return "edit";
  }
  return "unknown";
}

SampleQuality CompareToDistribution(const std::vector<std::vector<Token>>& support,
                                    std::span<const double> probabilities,
                                    const SequenceBatch& samples) {
  SampleQuality q;
  q.num_samples = samples.num_sequences();
  std::vector<int64_t> counts(support.size(), 0);
  std::vector<Token> key;
  for (int64_t b = 0; b < samples.num_sequences(); ++b) {
    const auto s = samples.sequence(b);
    key.assign(s.begin(), s.end());
    auto it = std::lower_bound(support.begin(), support.end(), key);
    if (it != support.end() && *it == key) {
      ++counts[static_cast<size_t>(it - support.begin())];
      ++q.in_support;
    }
  }
  if (q.num_samples == 0) return q;
  const double n = static_cast<double>(q.num_samples);
  q.in_support_fraction = static_cast<double>(q.in_support) / n;
  double l1 = static_cast<double>(q.num_samples - q.in_support) / n;
  for (size_t i = 0; i < support.size(); ++i) {
    l1 += std::fabs(static_cast<double>(counts[i]) / n - probabilities[i]);
  }
  q.tv = 0.5 * l1;
  if (q.in_support == 0) return q;
  const double n_in = static_cast<double>(q.in_support);
  double pooled_obs = 0.0, pooled_exp = 0.0;
  int64_t cells = 0;
  for (size_t i = 0; i < support.size(); ++i) {
    const double e = n_in * probabilities[i];
    const double o = static_cast<double>(counts[i]);
    if (e < 5.0) {
      pooled_obs += o;
      pooled_exp += e;
      continue;
    }
    q.chi_square += (o - e) * (o - e) / e;
    ++cells;
  }
  if (pooled_exp > 0.0) {
    q.chi_square += (pooled_obs - pooled_exp) * (pooled_obs - pooled_exp) / pooled_exp;
    ++cells;
  }
  if (cells < 2) {
    // Too few samples per item for the test.
    q.chi_square = 0.0;
    q.p_value = 1.0;
    return q;
  }
  q.dof = cells - 1;
  q.p_value = ChiSquareSurvival(q.chi_square, static_cast<double>(q.dof));
  return q;
}

double ChiSquareSurvival(double statistic, double dof) {
  if (!(dof > 0.0)) return 1.0;
  return UpperGamma(0.5 * dof, 0.5 * statistic);
}

}  // namespace jumpflow
