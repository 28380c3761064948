// Tests of jumpflow/samplers/sampler.h against exact oracles and analytic
// laws. Statistical tests use fixed seeds and state their level: a
// goodness-of-fit test "passes" when it does not reject at p = 0.001.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "jumpflow/oracle.h"
#include "jumpflow/samplers/detail/random.h"
#include "jumpflow/samplers/sampler.h"
#include "kernels/backend.h"
#include "sequences/edits.h"
#include "tests/jumpflow/sampler_test_util.h"

namespace jumpflow {
namespace {

using testing::KsPValue;
using testing::Sched;
using testing::SyntheticWords;
using testing::WordsDataset;

constexpr double kAlpha = 0.001;

// The data set of the goodness-of-fit tests: 300 distinct words of length
// 1..6 over 8 letters, weights in [0.5, 2).
const Dataset& Words300() {
  static const Dataset* data = new Dataset(SyntheticWords(300, 6, "abcdefgh", 11));
  return *data;
}

SampleResult RunOracle(OracleModel& oracle, const Scheduler& sched, SamplerOptions opt,
                       int64_t num) {
  auto r = Sample(oracle, KindSchedulers::All(&sched), oracle.SourceBatch(num, opt.seed), opt);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *std::move(r) : SampleResult{};
}

void Report(const char* what, const SampleQuality& q, const SamplerStats& s) {
  std::printf(
      "[%s] n=%lld in-support=%.4f TV=%.4f chi2=%.1f dof=%lld p=%.3g events=%lld "
      "steps=%lld evals=%lld calls=%lld rejections=%lld violations=%lld %.2fs\n",
      what, static_cast<long long>(q.num_samples), q.in_support_fraction, q.tv, q.chi_square,
      static_cast<long long>(q.dof), q.p_value, static_cast<long long>(s.events),
      static_cast<long long>(s.steps), static_cast<long long>(s.sequence_evaluations),
      static_cast<long long>(s.model_calls), static_cast<long long>(s.rejections),
      static_cast<long long>(s.bound_violations), s.seconds);
}

// --- Exactness with the oracles ------------------------------------------------

struct GofCase {
  OracleKind kind;
  const char* scheduler;
};

class GillespieGofTest : public ::testing::TestWithParam<GofCase> {};

TEST_P(GillespieGofTest, ReproducesTheDataDistribution) {
  auto sched = Sched(GetParam().scheduler);
  auto oracle = *OracleModel::Create(GetParam().kind, Words300(), sched);
  SamplerOptions opt;
  opt.kind = SamplerKind::kGillespie;
  opt.seed = 2024;
  SampleResult r = RunOracle(*oracle, *sched, opt, 20000);
  const SampleQuality q = oracle->Compare(r.final_batch);
  Report(OracleKindName(GetParam().kind).c_str(), q, r.stats);
  EXPECT_EQ(q.in_support, 20000);  // every sample is a data item
  EXPECT_GT(q.p_value, kAlpha);
  EXPECT_EQ(r.stats.fallbacks, 0);
  EXPECT_EQ(r.stats.bound_violations, 0);
  EXPECT_EQ(r.stats.truncated, 0);
}

INSTANTIATE_TEST_SUITE_P(Oracles, GillespieGofTest,
                         ::testing::Values(GofCase{OracleKind::kEditInsertion, "poly:3"},
                                           GofCase{OracleKind::kDfmMask, "linear"},
                                           GofCase{OracleKind::kDfmUniform, "cosine"}),
                         [](const auto& info) {
                           std::string name = OracleKindName(info.param.kind);
                           for (char& c : name) {
                             if (c == '-') c = '_';
                           }
                           return name;
                         });

TEST(EulerTest, DfmMaskAtThousandStepsIsWithinTheCollisionBound) {
  // With kappa = t on the uniform grid, each masked position unmasks in a
  // uniformly chosen step, exactly as in the continuous process; Euler
  // differs from the exact process only when two positions unmask in the
  // same step (probability <= C(L, 2) / N by a union bound). So
  // TV(Euler, data) <= C(L, 2) / N, and the out-of-support mass too.
  // Tolerances at level 0.001 add the sampling noise: E[TV(empirical, law)]
  // <= 0.5 sqrt(cells / n) (Cauchy-Schwarz), plus sqrt(log(1000) / (2 n))
  // (McDiarmid; Hoeffding for the out-of-support fraction).
  auto sched = Sched("linear");
  auto oracle = *OracleModel::Create(OracleKind::kDfmMask, Words300(), sched);
  SamplerOptions opt;
  opt.kind = SamplerKind::kEuler;
  opt.steps = 1000;
  opt.seed = 77;
  const int64_t n = 20000;
  SampleResult r = RunOracle(*oracle, *sched, opt, n);
  const SampleQuality q = oracle->Compare(r.final_batch);
  Report("euler dfm-mask 1000", q, r.stats);
  const double L = static_cast<double>(oracle->sequence_length());
  const double collision = L * (L - 1) / 2 / 1000.0;
  const double dev = std::sqrt(std::log(1 / kAlpha) / (2.0 * n));
  const double cells = static_cast<double>(oracle->support().size()) + 1;
  EXPECT_LE(1.0 - q.in_support_fraction, collision + dev);
  EXPECT_LE(q.tv, collision + 0.5 * std::sqrt(cells / n) + dev);
  // The in-support samples also pass the Gillespie test's chi-square at
  // 0.001: the distortion is below what 20,000 samples resolve.
  EXPECT_GT(q.p_value, kAlpha);
  // Every position is resolved by t = 1; the model is time-independent, so
  // it is re-evaluated only when a sequence changed (<= L + 1 times each).
  EXPECT_LE(r.stats.sequence_evaluations, n * (oracle->sequence_length() + 1));
  for (Token t : r.final_batch.tokens()) EXPECT_NE(t, Vocabulary::kMask);
}

TEST(TauLeapTest, ErrorFallsAsStepsGrow) {
  // Edit Flows oracle (insertion-only, kappa = t^3) on 40 words: Poisson
  // leaps insert several tokens per gap; errors shrink with the step.
  Dataset data = SyntheticWords(40, 5, "abcd", 12);
  auto sched = Sched("poly:3");
  auto oracle = *OracleModel::Create(OracleKind::kEditInsertion, data, sched);
  const int64_t n = 4000;
  std::vector<double> oos, tv;
  for (int64_t steps : {2, 8, 32, 128}) {
    SamplerOptions opt;
    opt.kind = SamplerKind::kTauLeap;
    opt.steps = steps;
    opt.grid = TimeGrid::kKappa;
    opt.seed = 5;
    SampleResult r = RunOracle(*oracle, *sched, opt, n);
    const SampleQuality q = oracle->Compare(r.final_batch);
    Report(("tau-leap " + std::to_string(steps)).c_str(), q, r.stats);
    oos.push_back(1.0 - q.in_support_fraction);
    tv.push_back(q.tv);
  }
  // Out-of-support fractions: each drop exceeds 3.3 binomial standard errors
  // of the difference (one-sided level 0.001 is 3.09).
  for (size_t i = 0; i + 1 < oos.size(); ++i) {
    const double se = std::sqrt((oos[i] * (1 - oos[i]) + oos[i + 1] * (1 - oos[i + 1])) / n);
    EXPECT_GT(oos[i] - oos[i + 1], 3.3 * se) << "steps index " << i;
    EXPECT_LT(tv[i + 1], tv[i]) << "steps index " << i;
  }
}

TEST(AdaptiveTest, TighterToleranceCostsMoreAndErrsLess) {
  Dataset data = SyntheticWords(40, 5, "abcd", 12);
  auto sched = Sched("poly:3");
  auto oracle = *OracleModel::Create(OracleKind::kEditInsertion, data, sched);
  const int64_t n = 4000;
  std::vector<double> oos;
  std::vector<int64_t> evals;
  for (double tol : {0.5, 0.1, 0.02}) {
    SamplerOptions opt;
    opt.kind = SamplerKind::kAdaptive;
    opt.tolerance = tol;
    opt.seed = 6;
    SampleResult r = RunOracle(*oracle, *sched, opt, n);
    const SampleQuality q = oracle->Compare(r.final_batch);
    Report(("adaptive " + std::to_string(tol)).c_str(), q, r.stats);
    oos.push_back(1.0 - q.in_support_fraction);
    evals.push_back(r.stats.sequence_evaluations);
  }
  for (size_t i = 0; i + 1 < oos.size(); ++i) {
    const double se = std::sqrt((oos[i] * (1 - oos[i]) + oos[i + 1] * (1 - oos[i + 1])) / n);
    EXPECT_GT(oos[i] - oos[i + 1], 3.3 * se);
    EXPECT_GT(evals[i + 1], evals[i]);
  }
}

TEST(ThinningTest, PassesWhereFrozenMultipliersFail) {
  // DESIGN.md: on a 6-word variable-length toy with kappa = t^3, freezing the
  // (time-dependent) multipliers between events over-samples long words.
  Dataset data = WordsDataset({"a", "to", "cat", "tree", "house", "garden"}, "acdeghnorstu");
  auto sched = Sched("poly:3");
  auto oracle = *OracleModel::Create(OracleKind::kEditInsertion, data, sched);
  SamplerOptions opt;
  opt.seed = 31;
  opt.kind = SamplerKind::kGillespie;
  SampleResult exact = RunOracle(*oracle, *sched, opt, 4000);
  const SampleQuality qe = oracle->Compare(exact.final_batch);
  Report("thinning", qe, exact.stats);
  opt.kind = SamplerKind::kGillespieFrozen;
  SampleResult frozen = RunOracle(*oracle, *sched, opt, 4000);
  const SampleQuality qf = oracle->Compare(frozen.final_batch);
  Report("frozen", qf, frozen.stats);
  EXPECT_EQ(qe.in_support, 4000);
  EXPECT_GT(qe.p_value, kAlpha);
  EXPECT_GT(exact.stats.rejections, 0);
  EXPECT_LT(qf.p_value, 1e-12);
  // Long words are over-sampled by the frozen sampler.
  int64_t long_exact = 0, long_frozen = 0;
  for (int64_t b = 0; b < 4000; ++b) {
    long_exact += exact.final_batch.length(b) >= 5;
    long_frozen += frozen.final_batch.length(b) >= 5;
  }
  EXPECT_GT(long_frozen, long_exact);
}

TEST(PerSequenceTimeTest, EachSequenceEndsInItsOwnPosterior) {
  // One batch mixes start states x_t at different times t. Started at
  // (x_t, t), the exact sampler must end in p(x_1 | x_t) prop. to
  // w(x_1) N(x_t, x_1) (1 - kappa(t))^(|x_1| - |x_t|); N is counted here by
  // enumerating position subsets.
  Dataset data = SyntheticWords(60, 5, "abc", 21);
  auto sched = Sched("poly:3");
  auto oracle = *OracleModel::Create(OracleKind::kEditInsertion, data, sched);
  const Token a = 5, b = 6;
  const std::vector<std::vector<Token>> states = {{}, {a}, {b, a}};
  const std::vector<double> times = {0.0, 0.5, 0.8};
  const int64_t per_group = 4000;
  std::vector<std::vector<Token>> start;
  std::vector<double> start_times;
  for (int64_t i = 0; i < 3 * per_group; ++i) {
    start.push_back(states[i % 3]);
    start_times.push_back(times[i % 3]);
  }
  SamplerOptions opt;
  opt.kind = SamplerKind::kGillespie;
  opt.seed = 17;
  opt.max_batch = 500;  // sequences also join the batch mid-run
  auto r = Sample(*oracle, KindSchedulers::All(sched.get()),
                  *SequenceBatch::FromVectors(start, oracle->vocab_size(), start_times), opt);
  ASSERT_TRUE(r.ok()) << r.status();
  const auto& support = oracle->support();
  for (int g = 0; g < 3; ++g) {
    const auto& x = states[g];
    const double surv = sched->Survival(times[g]);
    std::vector<double> post(support.size(), 0.0);
    double z = 0.0;
    for (size_t i = 0; i < support.size(); ++i) {
      const auto& y = support[i];
      int64_t embeddings = 0;
      for (uint32_t mask = 0; mask < (1u << y.size()); ++mask) {
        std::vector<Token> sub;
        for (size_t p = 0; p < y.size(); ++p) {
          if (mask >> p & 1u) sub.push_back(y[p]);
        }
        embeddings += sub == x;
      }
      post[i] = oracle->probabilities()[i] * embeddings * std::pow(surv, y.size() - x.size());
      z += post[i];
    }
    for (double& p : post) p /= z;
    std::vector<int64_t> counts(support.size(), 0);
    for (int64_t s = g; s < 3 * per_group; s += 3) {
      const auto seq = r->final_batch.sequence(s);
      const auto it = std::lower_bound(support.begin(), support.end(),
                                       std::vector<Token>(seq.begin(), seq.end()));
      ASSERT_TRUE(it != support.end() &&
                  std::equal(seq.begin(), seq.end(), it->begin(), it->end()));
      ++counts[it - support.begin()];
    }
    double chi2 = 0.0, rest_obs = 0.0, rest_exp = 0.0;
    int cells = 0;
    for (size_t i = 0; i < support.size(); ++i) {
      const double e = per_group * post[i], o = static_cast<double>(counts[i]);
      if (e < 5.0) {
        rest_obs += o;
        rest_exp += e;
        continue;
      }
      chi2 += (o - e) * (o - e) / e;
      ++cells;
    }
    if (rest_exp > 0.0) {
      chi2 += (rest_obs - rest_exp) * (rest_obs - rest_exp) / rest_exp;
      ++cells;
    }
    const double p = ChiSquareSurvival(chi2, cells - 1);
    std::printf("[posterior from |x_t|=%zu at t=%.1f] chi2=%.1f dof=%d p=%.3g\n", x.size(),
                times[g], chi2, cells - 1, p);
    EXPECT_GT(p, kAlpha);
  }
}

TEST(RootFindTest, SeparateEqualSchedulersMatchTheClosedForm) {
  // Distinct scheduler objects force the bracketed root-finds (Gillespie
  // proposals, adaptive step ends); with equal kappas they must reproduce
  // the closed-form samplers up to rounding of the event times.
  Dataset data = SyntheticWords(50, 5, "abcd", 15);
  auto a = Sched("cosine"), b = Sched("cosine"), c = Sched("cosine");
  auto oracle = *OracleModel::Create(OracleKind::kEditInsertion, data, a);
  for (SamplerKind kind : {SamplerKind::kGillespie, SamplerKind::kAdaptive}) {
    SamplerOptions opt;
    opt.kind = kind;
    opt.tolerance = 0.05;
    opt.seed = 3;
    SequenceBatch start = oracle->SourceBatch(1000, 3);
    auto closed = Sample(*oracle, KindSchedulers::All(a.get()), start, opt);
    auto rooted = Sample(*oracle, KindSchedulers{b.get(), a.get(), c.get(), nullptr}, start, opt);
    ASSERT_TRUE(closed.ok() && rooted.ok());
    int64_t same = 0;
    for (int64_t s = 0; s < 1000; ++s) {
      const auto x = closed->final_batch.sequence(s), y = rooted->final_batch.sequence(s);
      same += std::equal(x.begin(), x.end(), y.begin(), y.end());
    }
    EXPECT_GE(same, 990) << SamplerKindName(kind);
    EXPECT_NEAR(static_cast<double>(rooted->stats.steps), static_cast<double>(closed->stats.steps),
                0.01 * static_cast<double>(closed->stats.steps));
  }
}

// --- Next-event times against analytic laws --------------------------------------

// A callback model with constant multipliers: Edit insertion c_ins per gap
// (token 5), substitution c_sub per token (to token 6), deletion c_del.
std::unique_ptr<RateModel> ConstantEditModel(double c_ins, double c_sub, double c_del) {
  CallbackRateModelOptions o;
  o.process = ProcessKind::kEdit;
  o.vocab_size = 8;
  o.time_dependent = false;
  return *MakeCallbackRateModel(o, [=](const SequenceBatch& batch, RateOutputs* out) {
    for (int64_t g = 0; g < batch.num_gaps(); ++g) {
      out->insert_rate[g] = c_ins;
      out->insert_dist[g * 8 + 5] = 1.0;
    }
    for (int64_t r = 0; r < batch.num_tokens(); ++r) {
      out->token_rate[r] = c_sub;
      out->token_dist[r * 8 + 6] = 1.0;
      out->delete_rate[r] = c_del;
    }
    return absl::OkStatus();
  });
}

// First event time of each sequence (2 when it had none).
std::vector<double> FirstEventTimes(const SampleResult& r, int64_t n) {
  std::vector<double> first(static_cast<size_t>(n), 2.0);
  for (const TrajectoryEvent& e : r.trajectory) {
    first[e.sequence] = std::min(first[e.sequence], e.time);
  }
  return first;
}

class NextEventKsTest : public ::testing::TestWithParam<const char*> {};

TEST_P(NextEventKsTest, ConstantMultiplierMatchesAnalyticCdf) {
  // Constant multiplier c from the empty sequence (one gap): P(T > t) =
  // S(t)^c, so the CDF is 1 - S(t)^c. With one scheduler the proposal is
  // drawn in survival space (u' = exp(-E / c)) and mapped back through
  // InverseSurvival, so with one seed every scheduler yields the same
  // quantiles and the same KS statistic (KS is invariant under the monotone
  // map t -> S(t)): the test checks that mapping for each scheduler.
  auto sched = Sched(GetParam());
  const double c = 1.7;
  auto model = ConstantEditModel(c, 0.0, 0.0);
  const int64_t n = 3000;
  SamplerOptions opt;
  opt.kind = SamplerKind::kGillespie;
  opt.seed = 8;
  opt.record_trajectory = true;
  opt.max_length = 4;  // only the first event matters
  SequenceBatch start = *SequenceBatch::FromVectors(std::vector<std::vector<Token>>(n), 8);
  auto r = Sample(*model, KindSchedulers::All(sched.get()), start, opt);
  ASSERT_TRUE(r.ok()) << r.status();
  const auto first = FirstEventTimes(*r, n);
  const double p = KsPValue(first, [&](double t) { return 1 - std::pow(sched->Survival(t), c); });
  // Power check: the same test rejects a 25% error in the multiplier.
  const double p_wrong =
      KsPValue(first, [&](double t) { return 1 - std::pow(sched->Survival(t), 1.25 * c); });
  std::printf("[KS %s] p=%.3g, p(wrong multiplier)=%.3g\n", GetParam(), p, p_wrong);
  EXPECT_GT(p, kAlpha);
  EXPECT_LT(p_wrong, kAlpha);
}

INSTANTIATE_TEST_SUITE_P(Schedulers, NextEventKsTest,
                         ::testing::Values("linear", "poly:3", "cosine", "beta:2,3"),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& ch : name) {
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           }
                           return name;
                         });

TEST(NextEventKsTest, SeveralSchedulersUseTheRootFind) {
  // Length-1 start: 2 gaps (insertion, linear), one substitution row
  // (poly:3), one deletion row (cosine). P(T > t) = S_ins^(2 c_i)
  // S_sub^(c_s) S_del^(c_d).
  auto lin = Sched("linear"), poly = Sched("poly:3"), cosine = Sched("cosine");
  const double ci = 0.6, cs = 1.3, cd = 0.8;
  auto model = ConstantEditModel(ci, cs, cd);
  KindSchedulers ks{poly.get(), lin.get(), cosine.get(), nullptr};
  const int64_t n = 3000;
  SamplerOptions opt;
  opt.kind = SamplerKind::kGillespie;
  opt.seed = 9;
  opt.record_trajectory = true;
  SequenceBatch start =
      *SequenceBatch::FromVectors(std::vector<std::vector<Token>>(n, std::vector<Token>{7}), 8);
  auto r = Sample(*model, ks, start, opt);
  ASSERT_TRUE(r.ok()) << r.status();
  auto cdf = [&](double t) {
    return 1 - std::pow(lin->Survival(t), 2 * ci) * std::pow(poly->Survival(t), cs) *
                   std::pow(cosine->Survival(t), cd);
  };
  const double p = KsPValue(FirstEventTimes(*r, n), cdf);
  std::printf("[KS root-find] p=%.3g\n", p);
  EXPECT_GT(p, kAlpha);
  // The first event's kind: at time t, P(insertion) = 2 c_i h_lin / total.
  // Averaged over the first-event law this is checked by counting below.
  int64_t inserts = 0;
  std::vector<bool> seen(n, false);
  double expected_inserts = 0.0;
  for (const TrajectoryEvent& e : r->trajectory) {
    if (seen[e.sequence]) continue;
    seen[e.sequence] = true;
    inserts += e.kind == JumpKind::kInsert;
    const double hi = 2 * ci * lin->Hazard(e.time);
    expected_inserts += hi / (hi + cs * poly->Hazard(e.time) + cd * cosine->Hazard(e.time));
  }
  // Sum of independent Bernoullis given the times: 4 standard deviations.
  EXPECT_NEAR(inserts, expected_inserts, 4 * std::sqrt(n * 0.25));
}

// A callback Edit model whose insertion multiplier is f(t) per gap.
std::unique_ptr<RateModel> TimeEditModel(std::function<double(double)> f, double bound) {
  CallbackRateModelOptions o;
  o.process = ProcessKind::kEdit;
  o.vocab_size = 8;
  o.bound_factor = bound;
  return *MakeCallbackRateModel(o, [f](const SequenceBatch& batch, RateOutputs* out) {
    for (int64_t b = 0; b < batch.num_sequences(); ++b) {
      for (int64_t j = 0; j <= batch.length(b); ++j) {
        const int64_t g = batch.offsets()[b] + b + j;
        out->insert_rate[g] = f(batch.time(b));
        out->insert_dist[g * 8 + 5] = 1.0;
      }
    }
    return absl::OkStatus();
  });
}

std::vector<double> FirstTimes(RateModel& model, SamplerKind kind, uint64_t seed, int64_t n,
                               SamplerStats* stats) {
  auto lin = Sched("linear");
  SamplerOptions opt;
  opt.kind = kind;
  opt.seed = seed;
  opt.record_trajectory = true;
  opt.max_length = 1;
  SequenceBatch start = *SequenceBatch::FromVectors(std::vector<std::vector<Token>>(n), 8);
  auto r = Sample(model, KindSchedulers::All(lin.get()), start, opt);
  EXPECT_TRUE(r.ok()) << r.status();
  if (!r.ok()) return {};
  *stats = r->stats;
  return FirstEventTimes(*r, n);
}

TEST(ThinningTest, TimeDependentMultiplierFirstEventIsExact) {
  // m(t) = c (1 - t) with kappa = t: rate h m = c, so T ~ Exp(c) censored at 1.
  const double c = 2.0;
  auto model = TimeEditModel([c](double t) { return c * (1 - t); }, 1.0);
  auto cdf = [c](double t) { return 1 - std::exp(-c * t); };
  SamplerStats stats;
  const double p = KsPValue(FirstTimes(*model, SamplerKind::kGillespie, 3, 3000, &stats), cdf);
  EXPECT_GT(p, kAlpha);
  EXPECT_GT(stats.rejections, 0);
  EXPECT_EQ(stats.bound_violations, 0);
  // Frozen multipliers: rate c / (1 - t), CDF 1 - (1 - t)^c: rejected.
  const double p_frozen =
      KsPValue(FirstTimes(*model, SamplerKind::kGillespieFrozen, 3, 3000, &stats), cdf);
  std::printf("[KS decreasing m] thinning p=%.3g frozen p=%.3g\n", p, p_frozen);
  EXPECT_LT(p_frozen, 1e-12);
}

TEST(ThinningTest, IncreasingMultiplierNeedsItsBoundFactor) {
  // m(t) = c (1 + t) <= 2 m(s) for s <= t: bound factor 2 is exact.
  // Lambda(t) = c int_0^t (1 + s) / (1 - s) ds = c (-t - 2 log(1 - t)).
  const double c = 0.7;
  auto f = [c](double t) { return c * (1 + t); };
  auto cdf = [c](double t) { return 1 - std::exp(-c * (-t - 2 * std::log1p(-t))); };
  auto good = TimeEditModel(f, 2.0);
  SamplerStats stats;
  const double p = KsPValue(FirstTimes(*good, SamplerKind::kGillespie, 4, 3000, &stats), cdf);
  EXPECT_GT(p, kAlpha);
  EXPECT_EQ(stats.bound_violations, 0);
  // Declaring 1 breaks the promise: the sampler notices and counts it.
  auto bad = TimeEditModel(f, 1.0);
  FirstTimes(*bad, SamplerKind::kGillespie, 4, 3000, &stats);
  std::printf("[bound factor] p=%.3g, violations with factor 1: %lld\n", p,
              static_cast<long long>(stats.bound_violations));
  EXPECT_GT(stats.bound_violations, 0);
}

// --- Branching Flows ----------------------------------------------------------------

// Split multiplier c S(t) (so each element splits at rate c kappa'(t)), no
// moves, deletion probability `pdel`.
std::unique_ptr<RateModel> YuleModel(const Scheduler* sched, double c, double pdel) {
  CallbackRateModelOptions o;
  o.process = ProcessKind::kBranching;
  o.vocab_size = 8;
  return *MakeCallbackRateModel(o, [=](const SequenceBatch& batch, RateOutputs* out) {
    for (int64_t b = 0; b < batch.num_sequences(); ++b) {
      for (int64_t r = batch.offsets()[b]; r < batch.offsets()[b + 1]; ++r) {
        out->split_rate[r] = c * sched->Survival(batch.time(b));
        out->delete_rate[r] = pdel;
      }
    }
    return absl::OkStatus();
  });
}

TEST(BranchingTest, GillespieYuleProcessIsGeometric) {
  // A Yule process run on the clock c kappa(t) ends (t = 1) with a
  // Geometric(exp(-c)) number of elements: P(N = k) = e^-c (1 - e^-c)^(k-1).
  auto sched = Sched("cosine");
  const double c = 1.0;
  auto model = YuleModel(sched.get(), c, 0.0);
  const int64_t n = 5000;
  SamplerOptions opt;
  opt.kind = SamplerKind::kGillespie;
  opt.seed = 10;
  SequenceBatch start =
      *SequenceBatch::FromVectors(std::vector<std::vector<Token>>(n, std::vector<Token>{5}), 8);
  auto r = Sample(*model, KindSchedulers::All(sched.get()), start, opt);
  ASSERT_TRUE(r.ok()) << r.status();
  std::map<int64_t, int64_t> counts;
  for (int64_t b = 0; b < n; ++b) ++counts[r->final_batch.length(b)];
  // Chi-square over k = 1..K-1 and the tail k >= K (expected counts >= 20).
  const double p0 = std::exp(-c);
  const int K = 9;
  double chi2 = 0.0, tail_exp = n, tail_obs = n;
  for (int k = 1; k < K; ++k) {
    const double e = n * p0 * std::pow(1 - p0, k - 1);
    const double o = static_cast<double>(counts[k]);
    chi2 += (o - e) * (o - e) / e;
    tail_exp -= e;
    tail_obs -= o;
  }
  chi2 += (tail_obs - tail_exp) * (tail_obs - tail_exp) / tail_exp;
  const double p = ChiSquareSurvival(chi2, K - 1);
  std::printf("[branching yule] chi2=%.2f dof=%d p=%.3g\n", chi2, K - 1, p);
  EXPECT_GT(p, kAlpha);
}

TEST(BranchingTest, TauLeapMeanMatchesItsOwnRecursion) {
  // Tau-leaping over [t, t'] gives each element Poisson(c S(t) q) = Poisson(
  // c (kappa(t') - kappa(t))) copies, so E[N] = prod_i (1 + c dkappa_i); on the
  // kappa grid that is (1 + c / N)^N (2.44 at N = 4, -> e for large N).
  auto sched = Sched("poly:2");
  const double c = 1.0;
  auto model = YuleModel(sched.get(), c, 0.0);
  const int64_t n = 6000;
  for (int64_t steps : {4, 64}) {
    SamplerOptions opt;
    opt.kind = SamplerKind::kTauLeap;
    opt.steps = steps;
    opt.grid = TimeGrid::kKappa;
    opt.seed = 12;
    SequenceBatch start =
        *SequenceBatch::FromVectors(std::vector<std::vector<Token>>(n, std::vector<Token>{5}), 8);
    auto r = Sample(*model, KindSchedulers::All(sched.get()), start, opt);
    ASSERT_TRUE(r.ok()) << r.status();
    double sum = 0.0, sum2 = 0.0;
    for (int64_t b = 0; b < n; ++b) {
      const double len = static_cast<double>(r->final_batch.length(b));
      sum += len;
      sum2 += len * len;
    }
    const double mean = sum / n, var = sum2 / n - mean * mean;
    const double want = std::pow(1 + c / steps, static_cast<double>(steps));
    std::printf("[branching tau-leap %lld] mean=%.4f want=%.4f\n", static_cast<long long>(steps),
                mean, want);
    // z-test at level 0.001 (two-sided 3.29).
    EXPECT_LT(std::fabs(mean - want) / std::sqrt(var / n), 3.29);
  }
}

TEST(BranchingTest, LengthNeverDropsBelowOne) {
  auto sched = Sched("linear");
  auto model = YuleModel(sched.get(), 0.0, 1.0);  // everything wants to go
  for (SamplerKind kind : {SamplerKind::kGillespie, SamplerKind::kEuler, SamplerKind::kTauLeap,
                           SamplerKind::kAdaptive}) {
    SamplerOptions opt;
    opt.kind = kind;
    opt.steps = 5;
    SequenceBatch start = *SequenceBatch::FromVectors(
        std::vector<std::vector<Token>>(200, std::vector<Token>{5, 6, 7, 5, 6}), 8);
    auto r = Sample(*model, KindSchedulers::All(sched.get()), start, opt);
    ASSERT_TRUE(r.ok()) << r.status();
    for (int64_t b = 0; b < 200; ++b) {
      EXPECT_EQ(r->final_batch.length(b), 1) << SamplerKindName(kind);
    }
  }
}

// --- Reproducibility, trajectories and errors --------------------------------------

// ExpectReproducible runs `run` (SamplerOptions -> SampleResult) on `a`
// with one thread and max_batch 1024 and with two threads and max_batch 7:
// the same samples and costs; the next seed gives other samples. Returns
// the first run's result.
template <class Run>
SampleResult ExpectReproducible(SamplerOptions a, Run run) {
  a.num_threads = 1;
  a.max_batch = 1024;
  SamplerOptions b = a;
  b.num_threads = 2;
  b.max_batch = 7;
  SampleResult ra = run(a);
  const SampleResult rb = run(b);
  EXPECT_EQ(ra.final_batch, rb.final_batch);
  EXPECT_EQ(ra.stats.events, rb.stats.events);
  EXPECT_EQ(ra.stats.steps, rb.stats.steps);
  EXPECT_EQ(ra.stats.rejections, rb.stats.rejections);
  EXPECT_EQ(ra.stats.sequence_evaluations, rb.stats.sequence_evaluations);
  SamplerOptions c = a;
  c.seed = a.seed + 1;
  EXPECT_NE(ra.final_batch, run(c).final_batch);
  return ra;
}

TEST(ReproducibilityTest, ThreadsAndBatchSizeDoNotChangeResults) {
  Dataset data = SyntheticWords(50, 5, "abcd", 13);
  auto sched = Sched("poly:3");
  for (OracleKind ok : {OracleKind::kEditInsertion, OracleKind::kDfmUniform}) {
    auto oracle = *OracleModel::Create(ok, data, sched);
    for (SamplerKind kind : {SamplerKind::kEuler, SamplerKind::kTauLeap, SamplerKind::kAdaptive,
                             SamplerKind::kGillespie, SamplerKind::kGillespieFrozen}) {
      SCOPED_TRACE(SamplerKindName(kind));
      SamplerOptions a;
      a.kind = kind;
      a.steps = 20;
      a.seed = 99;
      ExpectReproducible(
          a, [&](const SamplerOptions& o) { return RunOracle(*oracle, *sched, o, 300); });
    }
  }
}

// SoftmaxInto writes softmax(logit(0 .. kV)) in double to dist[0..v), the
// ids below `first` set to 0: the multipliers the two test models below
// give Evaluate for their raw logits.
template <typename Logit>
void SoftmaxInto(int v, int first, Logit logit, double* dist) {
  double sum = 0.0;
  for (int a = 0; a < v; ++a) sum += dist[a] = std::exp(static_cast<double>(logit(a)));
  for (int a = 0; a < v; ++a) dist[a] = a < first ? 0.0 : dist[a] / sum;
}

// LogitModel is a DFM model given both ways (jumpflow/rate_model.h): as raw
// softmax logits (EvaluateSoftmaxLogits, the fused event kernels' input)
// and as multipliers (Evaluate). Logits depend on the position, the current
// token and t; MASK rows move (scale 1), other rows are frozen (scale 0);
// ids below kFirst have multiplier 0. Between two events a row's total
// multiplier grows by at most 1.71x over t in [0, 1] (positions 0-3, with
// or without the special ids' mass), so thinning with bound factor 2 is
// exact.
class LogitModel : public RateModel {
 public:
  static constexpr int32_t kV = 8, kFirst = 2;
  static constexpr Token kMaskId = 1;
  ProcessKind process() const override { return ProcessKind::kDfm; }
  int32_t vocab_size() const override { return kV; }
  std::string Name() const override { return "logits"; }
  bool ProvidesSoftmaxLogits() const override { return true; }
  double BoundFactor() const override { return 2.0; }
  static float Logit(int64_t pos, Token x, double t, int a) {
    return static_cast<float>(
        2.0 * std::sin(1.3 * a + 0.7 * static_cast<double>(pos) + 0.5 * x + 2.0 * t));
  }
  template <typename Row>
  static void ForRows(const SequenceBatch& batch, Row row) {
    const auto offs = batch.offsets();
    for (int64_t b = 0; b < batch.num_sequences(); ++b) {
      for (int64_t r = offs[static_cast<size_t>(b)]; r < offs[static_cast<size_t>(b) + 1]; ++r) {
        row(r, r - offs[static_cast<size_t>(b)], batch.tokens()[static_cast<size_t>(r)],
            batch.time(b));
      }
    }
  }
  absl::Status EvaluateSoftmaxLogits(const SequenceBatch& batch, SoftmaxLogits* out) override {
    out->logits.resize(static_cast<size_t>(batch.num_tokens() * kV));
    out->row_scales.resize(static_cast<size_t>(batch.num_tokens()));
    out->first_token = kFirst;
    ForRows(batch, [&](int64_t r, int64_t pos, Token x, double t) {
      for (int a = 0; a < kV; ++a)
        out->logits[static_cast<size_t>(r * kV + a)] = Logit(pos, x, t, a);
      out->row_scales[static_cast<size_t>(r)] = x == kMaskId ? 1.0f : 0.0f;
    });
    return absl::OkStatus();
  }
  absl::Status Evaluate(const SequenceBatch& batch, RateOutputs* out) override {
    ForRows(batch, [&](int64_t r, int64_t pos, Token x, double t) {
      SoftmaxInto(
          kV, kFirst, [&](int a) { return Logit(pos, x, t, a); }, out->token_dist.data() + r * kV);
      out->token_rate[static_cast<size_t>(r)] = x == kMaskId ? 1.0 : 0.0;
    });
    return absl::OkStatus();
  }
};

// InsertLogitModel is an insertion-only Edit model given both ways: raw
// softmax logits over the gap rows and multipliers (insert_rate,
// insert_dist). Gap g of a sequence of length n at time t inserts at total
// rate 2 (1 - t) (1 + 0.3 sin(g + n)) (the survival-scaled rates of an
// Edit Flow: with the linear scheduler's hazard 1 / (1 - t) the expected
// length stays finite), token a with softmax(sin(1.3 a + 0.7 g + 0.3 n +
// t))_a; ids below kFirst have multiplier 0. The kernel's total (rates
// alone) only falls in t; the model's (without the special ids' share)
// rises at most (1 - 0.06) / (1 - 0.79) < 4.5-fold, so bound factor 5 is
// exact.
class InsertLogitModel : public RateModel {
 public:
  static constexpr int32_t kV = 5, kFirst = 2;
  ProcessKind process() const override { return ProcessKind::kEdit; }
  int32_t vocab_size() const override { return kV; }
  std::string Name() const override { return "insert-logits"; }
  bool ProvidesSoftmaxLogits() const override { return true; }
  double BoundFactor() const override { return 5.0; }
  static float Logit(int64_t g, int64_t n, double t, int a) {
    return static_cast<float>(std::sin(1.3 * a + 0.7 * static_cast<double>(g) + 0.3 * n + t));
  }
  static float Rate(int64_t g, int64_t n, double t) {
    return static_cast<float>(2.0 * (1.0 - t) * (1.0 + 0.3 * std::sin(static_cast<double>(g + n))));
  }
  // ForGaps calls gap(row, g, n, t) for every gap row of `batch`.
  template <typename Gap>
  static void ForGaps(const SequenceBatch& batch, Gap gap) {
    const auto offs = batch.offsets();
    for (int64_t b = 0; b < batch.num_sequences(); ++b) {
      const int64_t n = batch.length(b), first = offs[static_cast<size_t>(b)] + b;
      for (int64_t g = 0; g <= n; ++g) gap(first + g, g, n, batch.time(b));
    }
  }
  absl::Status EvaluateSoftmaxLogits(const SequenceBatch& batch, SoftmaxLogits* out) override {
    const int64_t rows = batch.num_tokens() + batch.num_sequences();
    out->logits.resize(static_cast<size_t>(rows * kV));
    out->row_scales.resize(static_cast<size_t>(rows));
    out->first_token = kFirst;
    ForGaps(batch, [&](int64_t r, int64_t g, int64_t n, double t) {
      for (int a = 0; a < kV; ++a) out->logits[static_cast<size_t>(r * kV + a)] = Logit(g, n, t, a);
      out->row_scales[static_cast<size_t>(r)] = Rate(g, n, t);
    });
    return absl::OkStatus();
  }
  absl::Status Evaluate(const SequenceBatch& batch, RateOutputs* out) override {
    ForGaps(batch, [&](int64_t r, int64_t g, int64_t n, double t) {
      SoftmaxInto(
          kV, kFirst, [&](int a) { return Logit(g, n, t, a); }, out->insert_dist.data() + r * kV);
      out->insert_rate[static_cast<size_t>(r)] = Rate(g, n, t);
    });
    std::fill(out->token_rate.begin(), out->token_rate.end(), 0.0);
    std::fill(out->delete_rate.begin(), out->delete_rate.end(), 0.0);
    return absl::OkStatus();
  }
};

// ExpectSameDistribution samples 20,000 sequences from `start_x` (DFM:
// three MASK tokens, Edit: empty) with `kind` both ways, fused kernels and
// per-sequence path, and compares the final sequences: two-sample
// chi-square (categories with fewer than 10 samples pooled), level 1e-4.
// Returns the fused run's result.
SampleResult ExpectSameDistribution(RateModel& model, const std::vector<Token>& start_x,
                                    SamplerKind kind, const KindSchedulers& schedulers) {
  const int64_t n = 20000;
  const SequenceBatch start =
      *SequenceBatch::FromVectors(std::vector<std::vector<Token>>(n, start_x), model.vocab_size());
  std::map<std::vector<Token>, std::array<int64_t, 2>> counts;
  std::vector<SampleResult> finals;
  for (int fused = 0; fused < 2; ++fused) {
    SamplerOptions opt;
    opt.kind = kind;
    opt.steps = 5;
    opt.seed = 21;
    opt.fused_events = fused == 1;
    opt.max_batch = n;  // one model call per round
    opt.max_length = 10;
    auto r = Sample(model, schedulers, start, opt);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return {};
    if (kind == SamplerKind::kGillespie) {
      EXPECT_GT(r->stats.rejections, 0);  // thinning
    } else {
      EXPECT_EQ(r->stats.model_calls, 5);
    }
    EXPECT_EQ(r->stats.bound_violations, 0);
    EXPECT_LT(r->stats.truncated, n / 50);
    for (const std::vector<Token>& x : r->final_batch.ToVectors()) {
      for (Token tok : x) {  // a start token or a real one (both models: first_token 2)
        EXPECT_TRUE(tok >= 2 || std::count(start_x.begin(), start_x.end(), tok) > 0) << tok;
      }
      ++counts[x][fused];
    }
    finals.push_back(*std::move(r));
  }
  // Different random draws (the kernel's keyed ones): not the same samples.
  EXPECT_NE(finals[0].final_batch, finals[1].final_batch);
  double chi2 = 0.0;
  int categories = 0;
  std::array<int64_t, 2> pooled{0, 0};
  for (const auto& [x, c] : counts) {
    if (c[0] + c[1] < 10) {
      pooled[0] += c[0];
      pooled[1] += c[1];
      continue;
    }
    chi2 += static_cast<double>((c[0] - c[1]) * (c[0] - c[1])) / static_cast<double>(c[0] + c[1]);
    ++categories;
  }
  if (pooled[0] + pooled[1] > 0) {
    chi2 += static_cast<double>((pooled[0] - pooled[1]) * (pooled[0] - pooled[1])) /
            static_cast<double>(pooled[0] + pooled[1]);
    ++categories;
  }
  EXPECT_GT(categories, 50);
  // Wilson-Hilferty upper critical value, z = 3.719 (level 1e-4).
  const double dof = categories - 1, k = 2.0 / (9.0 * dof);
  EXPECT_LT(chi2, dof * std::pow(1.0 - k + 3.719 * std::sqrt(k), 3.0)) << categories;
  return std::move(finals[1]);
}

// The fused event kernels (SamplerOptions::fused_events) draw from the same
// distribution as the per-sequence path: tau-leaping in 5 steps (one
// kernels::SampleStep call per step) and exact Gillespie (one
// kernels::Gillespie call per round, its events thinned).
TEST(FusedEventsTest, TauLeapSameDistributionAsThePerSequencePath) {
  LogitModel model;
  auto sched = Sched("linear");
  ExpectSameDistribution(model, std::vector<Token>(3, LogitModel::kMaskId), SamplerKind::kTauLeap,
                         KindSchedulers::All(sched.get()));
}

TEST(FusedEventsTest, GillespieSameDistributionAsThePerSequencePath) {
  LogitModel model;
  auto sched = Sched("linear");
  ExpectSameDistribution(model, std::vector<Token>(3, LogitModel::kMaskId), SamplerKind::kGillespie,
                         KindSchedulers::All(sched.get()));
}

// Insertion-only Edit Flows: Gillespie with one kernels::Gillespie call a
// round over the gap rows, from empty sequences (lengths spread over 0-10),
// and Euler in 5 steps (one kernels::SampleStep call a step: at most one
// insertion per gap; q lambda <= 0.52 here, so a drawn special id as "no
// insertion" is exact). The insertion scheduler differs from the
// substitution and deletion ones (whose multipliers are 0), so a fused round
// using the wrong hazard fails.
TEST(FusedEventsTest, InsertionEulerSameDistributionAsThePerSequencePath) {
  InsertLogitModel model;
  auto linear = Sched("linear"), cubic = Sched("poly:3");
  KindSchedulers schedulers = KindSchedulers::All(cubic.get());
  schedulers.insert = linear.get();
  ExpectSameDistribution(model, {}, SamplerKind::kEuler, schedulers);
}

TEST(FusedEventsTest, InsertionGillespieSameDistributionAsThePerSequencePath) {
  InsertLogitModel model;
  auto linear = Sched("linear"), cubic = Sched("poly:3");
  KindSchedulers schedulers = KindSchedulers::All(cubic.get());
  schedulers.insert = linear.get();
  const SampleResult fused = ExpectSameDistribution(model, {}, SamplerKind::kGillespie, schedulers);
  std::array<int64_t, 9> lengths{};
  for (int64_t b = 0; b < fused.final_batch.num_sequences(); ++b) {
    ++lengths[static_cast<size_t>(std::min<int64_t>(fused.final_batch.length(b), 8))];
  }
  for (int64_t len = 0; len <= 4; ++len) EXPECT_GT(lengths[static_cast<size_t>(len)], 500) << len;
}

TEST(FusedEventsTest, ThreadsAndBatchSizeDoNotChangeResults) {
  LogitModel model;
  auto sched = Sched("linear");
  const SequenceBatch start = *SequenceBatch::FromVectors(
      std::vector<std::vector<Token>>(300, std::vector<Token>(4, LogitModel::kMaskId)),
      LogitModel::kV);
  for (SamplerKind kind : {SamplerKind::kEuler, SamplerKind::kGillespie}) {
    SCOPED_TRACE(SamplerKindName(kind));
    SamplerOptions a;
    a.kind = kind;
    a.steps = 6;
    a.seed = 5;
    const SampleResult r = ExpectReproducible(a, [&](const SamplerOptions& o) {
      absl::StatusOr<SampleResult> result =
          Sample(model, KindSchedulers::All(sched.get()), start, o);
      EXPECT_TRUE(result.ok()) << result.status();
      return result.ok() ? *std::move(result) : SampleResult{};
    });
    EXPECT_GT(r.stats.events, 300);
  }
}

// The fused rounds record their moves: replaying each sequence's token
// events in time order on the start gives the final sequence.
TEST(FusedEventsTest, TrajectoriesReplayToTheFinalStates) {
  LogitModel model;
  auto sched = Sched("linear");
  const int64_t n = 200;
  const std::vector<std::vector<Token>> start_tokens(n, std::vector<Token>(4, LogitModel::kMaskId));
  const SequenceBatch start = *SequenceBatch::FromVectors(start_tokens, LogitModel::kV);
  for (SamplerKind kind : {SamplerKind::kTauLeap, SamplerKind::kGillespie}) {
    SCOPED_TRACE(SamplerKindName(kind));
    SamplerOptions opt;
    opt.kind = kind;
    opt.steps = 6;
    opt.record_trajectory = true;
    auto r = Sample(model, KindSchedulers::All(sched.get()), start, opt);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(static_cast<int64_t>(r->trajectory.size()), r->stats.events);
    std::vector<std::vector<Token>> x = start_tokens;
    std::vector<double> last_time(n, 0.0);
    for (const TrajectoryEvent& e : r->trajectory) {
      ASSERT_EQ(e.kind, JumpKind::kToken);
      ASSERT_GE(e.sequence, 0);
      ASSERT_LT(e.sequence, n);
      EXPECT_GE(e.time, last_time[static_cast<size_t>(e.sequence)]);
      EXPECT_LE(e.time, 1.0);
      last_time[static_cast<size_t>(e.sequence)] = e.time;
      std::vector<Token>& seq = x[static_cast<size_t>(e.sequence)];
      ASSERT_EQ(seq[static_cast<size_t>(e.index)], LogitModel::kMaskId);  // MASK rows move
      seq[static_cast<size_t>(e.index)] = e.token;
    }
    EXPECT_EQ(x, r->final_batch.ToVectors());
  }
}

// The insertion rounds, fused (Euler and Gillespie) and per sequence (also
// tau-leaping), do not depend on threads or max_batch, record their
// insertions (applying each (sequence, time) group of them to the start
// gives the final sequences; a start with tokens checks the gap indexing),
// and stop a sequence that would grow past max_length where it was,
// recording nothing of that step.
TEST(FusedEventsTest, InsertionRoundsAreReproducibleAndReplay) {
  InsertLogitModel model;
  auto sched = Sched("linear");
  const int64_t n = 300;
  std::vector<std::vector<Token>> start_tokens(n);
  for (int64_t b = 0; b < n; ++b) start_tokens[static_cast<size_t>(b)].assign(b % 3, 2 + b % 3);
  const SequenceBatch start = *SequenceBatch::FromVectors(start_tokens, InsertLogitModel::kV);
  for (const auto& [kind, fused] :
       {std::pair{SamplerKind::kEuler, true}, std::pair{SamplerKind::kGillespie, true},
        std::pair{SamplerKind::kEuler, false}, std::pair{SamplerKind::kTauLeap, false},
        std::pair{SamplerKind::kGillespie, false}}) {
    SCOPED_TRACE(SamplerKindName(kind) + (fused ? " fused" : " per-sequence"));
    SamplerOptions a;
    a.kind = kind;
    a.steps = 6;
    a.seed = 8;
    a.record_trajectory = true;
    a.max_length = 6;
    a.fused_events = fused;
    const SampleResult r = ExpectReproducible(a, [&](const SamplerOptions& o) {
      absl::StatusOr<SampleResult> result =
          Sample(model, KindSchedulers::All(sched.get()), start, o);
      EXPECT_TRUE(result.ok()) << result.status();
      return result.ok() ? *std::move(result) : SampleResult{};
    });
    EXPECT_GT(r.stats.events, n);
    EXPECT_GT(r.stats.truncated, 0);
    EXPECT_EQ(static_cast<int64_t>(r.trajectory.size()), r.stats.events);
    std::vector<std::vector<Token>> x = start_tokens;
    for (size_t i = 0, j = 0; i < r.trajectory.size(); i = j) {
      std::vector<Edit> edits;
      for (j = i; j < r.trajectory.size() && r.trajectory[j].sequence == r.trajectory[i].sequence &&
                  r.trajectory[j].time == r.trajectory[i].time;
           ++j) {
        ASSERT_EQ(r.trajectory[j].kind, JumpKind::kInsert);
        ASSERT_GE(r.trajectory[j].token, InsertLogitModel::kFirst);
        edits.push_back(Edit::Insert(r.trajectory[j].index, r.trajectory[j].token));
      }
      std::vector<Token>& seq = x[static_cast<size_t>(r.trajectory[i].sequence)];
      absl::StatusOr<std::vector<Token>> applied = ApplyEdits(seq, edits);
      ASSERT_TRUE(applied.ok()) << applied.status();
      seq = *std::move(applied);
    }
    const std::vector<std::vector<Token>> final_x = r.final_batch.ToVectors();
    EXPECT_EQ(x, final_x);
    for (const std::vector<Token>& f : final_x) {
      EXPECT_LE(f.size(), kind == SamplerKind::kGillespie ? 7u : 6u);  // grid steps stop before
    }
  }
}

// Empty sequences and sequences without a MASK (every row frozen, total 0)
// finish at t = 1 unchanged on the fused paths, next to moving ones.
TEST(FusedEventsTest, EmptyAndFrozenSequencesFinishUnchanged) {
  LogitModel model;
  auto sched = Sched("linear");
  const SequenceBatch start = *SequenceBatch::FromVectors(
      {{}, {3, 4}, {LogitModel::kMaskId, LogitModel::kMaskId}}, LogitModel::kV);
  for (SamplerKind kind : {SamplerKind::kEuler, SamplerKind::kGillespie}) {
    SCOPED_TRACE(SamplerKindName(kind));
    SamplerOptions opt;
    opt.kind = kind;
    opt.steps = 8;
    auto r = Sample(model, KindSchedulers::All(sched.get()), start, opt);
    ASSERT_TRUE(r.ok()) << r.status();
    const std::vector<std::vector<Token>> x = r->final_batch.ToVectors();
    EXPECT_TRUE(x[0].empty());
    EXPECT_EQ(x[1], (std::vector<Token>{3, 4}));
    ASSERT_EQ(x[2].size(), 2u);
    for (int64_t b = 0; b < 3; ++b) EXPECT_EQ(r->final_batch.time(b), 1.0);
    EXPECT_EQ(r->stats.truncated, 0);
  }
}

// A model's bad softmax logits are errors naming the model (and the
// sequence), never samples.
TEST(FusedEventsTest, BadLogitsAreErrors) {
  struct Broken : public LogitModel {
    int mode = 0;
    absl::Status EvaluateSoftmaxLogits(const SequenceBatch& batch, SoftmaxLogits* out) override {
      if (absl::Status s = LogitModel::EvaluateSoftmaxLogits(batch, out); !s.ok()) return s;
      if (mode == 0) out->logits[kV + 3] = std::nanf("");
      if (mode == 1) out->row_scales.pop_back();
      if (mode == 2) out->row_scales[0] = -1.0f;
      return absl::OkStatus();
    }
  };
  auto sched = Sched("linear");
  const SequenceBatch start = *SequenceBatch::FromVectors({{1}, {1, 1}}, LogitModel::kV);
  SamplerOptions opt;
  opt.kind = SamplerKind::kEuler;
  const std::vector<std::string> needles = {"non-finite logit for sequence 1 row 0",
                                            "softmax logits of the wrong shape",
                                            "row_scales[0] = -1"};
  for (SamplerKind kind : {SamplerKind::kEuler, SamplerKind::kGillespie}) {
    opt.kind = kind;
    for (int mode = 0; mode < 3; ++mode) {
      Broken model;
      model.mode = mode;
      auto r = Sample(model, KindSchedulers::All(sched.get()), start, opt);
      ASSERT_FALSE(r.ok()) << mode;
      EXPECT_NE(r.status().message().find("model 'logits'"), std::string::npos) << r.status();
      EXPECT_NE(r.status().message().find(needles[static_cast<size_t>(mode)]), std::string::npos)
          << r.status();
    }
  }
}

TEST(FusedEventsTest, CudaNeedsTheFusedPathAndAGpu) {
  LogitModel model;
  auto sched = Sched("linear");
  const SequenceBatch start = *SequenceBatch::FromVectors({{1, 1}, {1}}, LogitModel::kV);
  SamplerOptions opt;
  opt.kind = SamplerKind::kAdaptive;  // no fused path
  opt.device = kernels::Backend::kCuda;
  auto r = Sample(model, KindSchedulers::All(sched.get()), start, opt);
  ASSERT_FALSE(r.ok());
  InsertLogitModel insert_model;
  const SequenceBatch empty =
      *SequenceBatch::FromVectors(std::vector<std::vector<Token>>(50), InsertLogitModel::kV);
  if (kernels::CheckBackendAvailable(kernels::Backend::kCuda).ok()) {
    EXPECT_NE(r.status().message().find("fused event kernels only"), std::string::npos)
        << r.status();
    // The GPU draws the CPU's events bit for bit: the same samples.
    auto same_on_both = [&](RateModel& m, const SequenceBatch& s, SamplerKind kind) {
      SamplerOptions o;
      o.kind = kind;
      o.steps = 10;
      auto cpu = Sample(m, KindSchedulers::All(sched.get()), s, o);
      o.device = kernels::Backend::kCuda;
      auto gpu = Sample(m, KindSchedulers::All(sched.get()), s, o);
      ASSERT_TRUE(cpu.ok()) << cpu.status();
      ASSERT_TRUE(gpu.ok()) << gpu.status();
      EXPECT_EQ(cpu->final_batch, gpu->final_batch) << SamplerKindName(kind);
      EXPECT_EQ(cpu->stats.events, gpu->stats.events) << SamplerKindName(kind);
    };
    for (SamplerKind kind : {SamplerKind::kEuler, SamplerKind::kGillespie}) {
      same_on_both(model, start, kind);
    }
    for (SamplerKind kind : {SamplerKind::kEuler, SamplerKind::kGillespie}) {
      same_on_both(insert_model, empty, kind);
    }
  } else {
    EXPECT_NE(r.status().message().find("CUDA"), std::string::npos) << r.status();
    opt.kind = SamplerKind::kGillespie;
    auto ri = Sample(insert_model, KindSchedulers::All(sched.get()), empty, opt);
    ASSERT_FALSE(ri.ok());
    EXPECT_NE(ri.status().message().find("CUDA"), std::string::npos) << ri.status();
  }
}

TEST(TrajectoryTest, ReplayingTheEditsGivesTheFinalStates) {
  Dataset data = SyntheticWords(50, 5, "abcd", 14);
  auto sched = Sched("poly:3");
  auto oracle = *OracleModel::Create(OracleKind::kEditInsertion, data, sched);
  for (SamplerKind kind : {SamplerKind::kGillespie, SamplerKind::kTauLeap}) {
    SamplerOptions opt;
    opt.kind = kind;
    opt.steps = 6;
    opt.record_trajectory = true;
    SampleResult r = RunOracle(*oracle, *sched, opt, 100);
    std::vector<std::vector<Token>> x(100);
    // Events of one (sequence, time) are simultaneous: apply them together.
    size_t i = 0;
    while (i < r.trajectory.size()) {
      size_t j = i;
      std::vector<Edit> edits;
      while (j < r.trajectory.size() && r.trajectory[j].sequence == r.trajectory[i].sequence &&
             r.trajectory[j].time == r.trajectory[i].time) {
        ASSERT_EQ(r.trajectory[j].kind, JumpKind::kInsert);
        edits.push_back(Edit::Insert(r.trajectory[j].index, r.trajectory[j].token));
        ++j;
      }
      auto& seq = x[r.trajectory[i].sequence];
      seq = *ApplyEdits(seq, edits);
      i = j;
    }
    for (int64_t b = 0; b < 100; ++b) {
      const auto fin = r.final_batch.sequence(b);
      EXPECT_EQ(x[b], std::vector<Token>(fin.begin(), fin.end())) << SamplerKindName(kind);
    }
  }
}

TEST(SamplerErrorsTest, BadModelsAndOptionsAreStatuses) {
  auto sched = Sched("linear");
  SequenceBatch start = *SequenceBatch::FromVectors({{5, 6}, {6}}, 8);
  auto make = [](double value, ProcessKind process) {
    CallbackRateModelOptions o;
    o.process = process;
    o.vocab_size = 8;
    o.name = "bad";
    return *MakeCallbackRateModel(o, [=](const SequenceBatch& batch, RateOutputs* out) {
      if (batch.num_tokens() > 0) out->delete_rate[0] = value;
      return absl::OkStatus();
    });
  };
  for (double bad : {-1.0, std::nan(""), std::numeric_limits<double>::infinity()}) {
    auto model = make(bad, ProcessKind::kEdit);
    auto r = Sample(*model, KindSchedulers::All(sched.get()), start, {});
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("sequence 0"), std::string::npos) << r.status();
  }
  auto branching = make(1.5, ProcessKind::kBranching);
  EXPECT_FALSE(Sample(*branching, KindSchedulers::All(sched.get()), start, {}).ok());

  auto ok_model = make(0.5, ProcessKind::kEdit);
  SamplerOptions opt;
  opt.kind = SamplerKind::kEuler;
  opt.steps = 0;
  EXPECT_FALSE(Sample(*ok_model, KindSchedulers::All(sched.get()), start, opt).ok());
  opt.kind = SamplerKind::kAdaptive;
  opt.tolerance = 0.0;
  EXPECT_FALSE(Sample(*ok_model, KindSchedulers::All(sched.get()), start, opt).ok());
  KindSchedulers missing = KindSchedulers::All(sched.get());
  missing.insert = nullptr;
  auto r = Sample(*ok_model, missing, start, {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("insert"), std::string::npos);
  // A model error is passed on with the model's name.
  CallbackRateModelOptions o;
  o.vocab_size = 8;
  o.name = "failing";
  auto failing = *MakeCallbackRateModel(
      o, [](const SequenceBatch&, RateOutputs*) { return absl::InternalError("boom"); });
  r = Sample(*failing, KindSchedulers::All(sched.get()), start, {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("failing"), std::string::npos);
  EXPECT_FALSE(ParseSamplerKind("rk4").ok());
  EXPECT_EQ(*ParseSamplerKind("tau-leap"), SamplerKind::kTauLeap);
  // An empty batch is fine.
  auto empty = Sample(*ok_model, KindSchedulers::All(sched.get()), SequenceBatch(), {});
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->final_batch.num_sequences(), 0);
}

TEST(RandomTest, PoissonMatchesItsPmf) {
  // Inversion below mean 10, PTRS above: chi-square against the pmf.
  for (double mean : {0.3, 4.0, 25.0, 400.0}) {
    PhiloxStream rng(5, 0, kPurposeUser);
    const int n = 40000;
    std::map<int64_t, int64_t> counts;
    for (int i = 0; i < n; ++i) ++counts[detail::SamplePoisson(mean, rng)];
    // Cells: every k with expected count >= 20, the rest pooled.
    double chi2 = 0.0, rest_obs = n, rest_exp = n;
    int cells = 0;
    for (int64_t k = 0; k < 2000; ++k) {
      const double e = n * std::exp(-mean + k * std::log(mean) - detail::LogFactorial(k));
      if (e < 20) continue;
      const double o = static_cast<double>(counts[k]);
      chi2 += (o - e) * (o - e) / e;
      rest_obs -= o;
      rest_exp -= e;
      ++cells;
    }
    if (rest_exp > 1e-9) {
      chi2 += (rest_obs - rest_exp) * (rest_obs - rest_exp) / rest_exp;
      ++cells;
    }
    const double p = ChiSquareSurvival(chi2, cells - 1);
    EXPECT_GT(p, kAlpha) << "mean " << mean << " chi2 " << chi2 << " cells " << cells;
  }
  // log k! against lgamma (exact-sum and Stirling branches).
  for (int64_t k : {0, 1, 5, 63, 64, 65, 1000}) {
    EXPECT_NEAR(detail::LogFactorial(k), std::lgamma(k + 1.0), 1e-10 * (1 + std::lgamma(k + 1.0)));
  }
}

TEST(TimeGridTest, UniformAndKappaGrids) {
  auto poly = Sched("poly:3");
  const auto u = MakeTimeGrid(TimeGrid::kUniform, 4, *poly);
  EXPECT_EQ(u, (std::vector<double>{0, 0.25, 0.5, 0.75, 1}));
  const auto k = MakeTimeGrid(TimeGrid::kKappa, 4, *poly);
  ASSERT_EQ(k.size(), 5u);
  for (int i = 0; i <= 4; ++i) EXPECT_NEAR(poly->Kappa(k[i]), i / 4.0, 1e-12);
}

}  // namespace
}  // namespace jumpflow
