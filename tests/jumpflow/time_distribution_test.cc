// @brief Tests of time distributions, time weights and the Lemma 4.7
// conversion (jumpflow/time_distribution.h).
//
// Statistical tests use fixed seeds and state their level: Kolmogorov-Smirnov
// at alpha = 0.001 (critical D = 1.949 / sqrt(n), asymptotic), and z-tests
// at 4 standard errors (two-sided alpha = 6.3e-5).
#include "jumpflow/time_distribution.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <numbers>
#include <string>
#include <vector>

namespace jumpflow {
namespace {

constexpr double kKsCritical001 = 1.949;  // sqrt(-log(0.001 / 2) / 2)

std::shared_ptr<const TimeDistribution> Dist(const std::string& spec) {
  auto d = MakeTimeDistribution(spec);
  EXPECT_TRUE(d.ok()) << spec << ": " << d.status();
  return std::move(d).value();
}

std::shared_ptr<const TimeWeight> Weight(const std::string& spec) {
  auto w = MakeTimeWeight(spec);
  EXPECT_TRUE(w.ok()) << spec << ": " << w.status();
  return std::move(w).value();
}

std::vector<double> Draw(const TimeDistribution& d, int n, uint64_t seed) {
  std::vector<double> out;
  out.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    PhiloxStream rng(seed, static_cast<uint32_t>(i), kPurposeTime);
    out.push_back(d.Sample(rng));
  }
  return out;
}

// KsStatistic is sup |F_n - F| for samples x and CDF F.
double KsStatistic(std::vector<double> x, const std::function<double(double)>& cdf) {
  std::sort(x.begin(), x.end());
  const double n = static_cast<double>(x.size());
  double d = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double f = cdf(x[i]);
    d = std::max({d, (static_cast<double>(i) + 1.0) / n - f, f - static_cast<double>(i) / n});
  }
  return d;
}

double NormalCdf(double x) { return 0.5 * std::erfc(-x / std::numbers::sqrt2); }

double LogitNormalCdf(double t, double mu, double sigma) {
  if (t <= 0.0) return 0.0;
  if (t >= 1.0) return 1.0;
  return NormalCdf((std::log(t / (1.0 - t)) - mu) / sigma);
}

// Composite 5-point Gauss-Legendre on [a, b].
double Integrate(const std::function<double(double)>& f, double a, double b, int n) {
  static constexpr double kNodes[5] = {-0.9061798459386640, -0.5384693101056831, 0.0,
                                       0.5384693101056831, 0.9061798459386640};
  static constexpr double kWeights[5] = {0.2369268850561891, 0.4786286704993665, 0.5688888888888889,
                                         0.4786286704993665, 0.2369268850561891};
  double total = 0.0;
  const double w = (b - a) / n;
  for (int i = 0; i < n; ++i) {
    const double mid = a + (i + 0.5) * w;
    for (int j = 0; j < 5; ++j) total += 0.5 * w * kWeights[j] * f(mid + 0.5 * w * kNodes[j]);
  }
  return total;
}

struct Case {
  std::string spec;
  std::function<double(double)> cdf;
};

std::vector<Case> Cases() {
  return {
      {"uniform", [](double t) { return std::clamp(t, 0.0, 1.0); }},
      {"beta:2,5", [](double t) { return RegularizedIncompleteBeta(2, 5, t); }},
      {"beta:0.5,0.5", [](double t) { return RegularizedIncompleteBeta(0.5, 0.5, t); }},
      {"beta:3,0.7", [](double t) { return RegularizedIncompleteBeta(3, 0.7, t); }},
      // The closed-form inverse CDFs (b = 1, a = 1).
      {"beta:3,1", [](double t) { return RegularizedIncompleteBeta(3, 1, t); }},
      {"beta:1,2.5", [](double t) { return RegularizedIncompleteBeta(1, 2.5, t); }},
      {"logitnormal:0,1", [](double t) { return LogitNormalCdf(t, 0, 1); }},
      {"logitnormal:-1.5,0.4", [](double t) { return LogitNormalCdf(t, -1.5, 0.4); }},
      {"mix:0.3*uniform+0.7*beta:2,5",
       [](double t) {
         return 0.3 * std::clamp(t, 0.0, 1.0) + 0.7 * RegularizedIncompleteBeta(2, 5, t);
       }},
  };
}

TEST(TimeDistributionTest, DensityIntegratesToTheCdf) {
  for (const Case& c : Cases()) {
    SCOPED_TRACE(c.spec);
    auto d = Dist(c.spec);
    for (auto [a, b] : {std::pair{0.05, 0.3}, {0.3, 0.7}, {0.2, 0.95}}) {
      const double integral = Integrate([&](double t) { return d->Density(t); }, a, b, 200);
      EXPECT_NEAR(integral, c.cdf(b) - c.cdf(a), 1e-10) << a << ".." << b;
    }
    EXPECT_EQ(d->Density(-0.1), 0.0);
    EXPECT_EQ(d->Density(1.1), 0.0);
  }
}

TEST(TimeDistributionTest, SamplesFollowTheCdf) {
  constexpr int kN = 20000;
  for (const Case& c : Cases()) {
    SCOPED_TRACE(c.spec);
    const std::vector<double> x = Draw(*Dist(c.spec), kN, 17);
    for (double t : x) ASSERT_TRUE(t >= 0.0 && t <= 1.0) << t;
    EXPECT_LT(KsStatistic(x, c.cdf), kKsCritical001 / std::sqrt(kN));
  }
}

TEST(TimeDistributionTest, SamplingIsAFunctionOfTheStreamKey) {
  for (const Case& c : Cases()) {
    SCOPED_TRACE(c.spec);
    auto d = Dist(c.spec);
    EXPECT_EQ(Draw(*d, 50, 3), Draw(*d, 50, 3));
    EXPECT_NE(Draw(*d, 50, 3), Draw(*d, 50, 4));
  }
}

TEST(TimeDistributionTest, NameRoundTrips) {
  for (const Case& c : Cases()) {
    auto d = Dist(c.spec);
    auto again = Dist(d->Name());
    for (double t : {0.01, 0.3, 0.77, 0.999}) EXPECT_EQ(again->Density(t), d->Density(t)) << c.spec;
    EXPECT_EQ(Draw(*again, 20, 5), Draw(*d, 20, 5)) << c.spec;
  }
  // Non-trivial numbers survive exactly.
  auto d = Dist("beta:0.123456789012,3.3");
  EXPECT_EQ(Dist(d->Name())->Density(0.4), d->Density(0.4)) << d->Name();
}

TEST(TimeDistributionTest, FactoryRejectsBadSpecs) {
  for (const char* spec : {"",
                           "foo",
                           "beta",
                           "beta:",
                           "beta:1",
                           "beta:0,1",
                           "beta:1,-2",
                           "beta:1,2,3",
                           "beta:x,1",
                           "logitnormal:0",
                           "logitnormal:0,0",
                           "logitnormal:0,-1",
                           "logitnormal:nan,1",
                           "mix:",
                           "mix:uniform",
                           "mix:0.5*uniform+",
                           "mix:-1*uniform",
                           "mix:0*uniform",
                           "mix:1*mix:1*uniform",
                           "mix:1*bogus",
                           "tilted:",
                           "tilted:constant",
                           "tilted:bogus|uniform",
                           "tilted:constant|bogus",
                           "tilted:hazard:linear|uniform"}) {
    auto d = MakeTimeDistribution(spec);
    EXPECT_FALSE(d.ok()) << spec;
    if (!d.ok()) {
      EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument) << spec;
    }
  }
  EXPECT_FALSE(BetaTime(std::nan(""), 1).ok());
  EXPECT_FALSE(LogitNormalTime(0, std::numeric_limits<double>::infinity()).ok());
  std::vector<std::unique_ptr<TimeDistribution>> one;
  one.push_back(UniformTime());
  EXPECT_FALSE(MixtureTime({1.0, 2.0}, std::move(one)).ok());
}

TEST(TimeWeightTest, ValuesAndCaps) {
  for (double t : {0.0, 0.2, 0.5, 0.9}) {
    EXPECT_EQ(Weight("constant")->Weight(t), 1.0);
    EXPECT_EQ(Weight("constant:2.5")->Weight(t), 2.5);
    EXPECT_NEAR(Weight("hazard:poly:3")->Weight(t), 3 * t * t / (1 - t * t * t), 1e-12);
    EXPECT_NEAR(Weight("inverse_hazard:linear")->Weight(t), 1 - t, 1e-15);
  }
  // 1 / h at a zero hazard is capped, and h near t = 1 is capped.
  EXPECT_EQ(Weight("inverse_hazard:poly:3")->Weight(0.0), kMaxTimeWeight);
  EXPECT_EQ(Weight("hazard:linear")->Weight(1.0), Scheduler::kMaxHazard);
  auto user = UserTimeWeight([](double t) { return t < 0.5 ? -1.0 : 1.0 / (1.0 - t); }, "mine");
  EXPECT_EQ(user->Name(), "mine");
  EXPECT_EQ(user->Weight(0.2), 0.0);             // negative reads as 0
  EXPECT_EQ(user->Weight(1.0), kMaxTimeWeight);  // +inf reads as the cap
  EXPECT_NEAR(user->Weight(0.75), 4.0, 1e-15);
  for (const char* spec : {"constant", "constant:2.5", "hazard:poly:3", "inverse_hazard:cosine"}) {
    EXPECT_EQ(Weight(spec)->Name(), spec);
  }
  for (const char* spec : {"", "constant:0", "constant:-1", "constant:x", "hazard:", "hazard:foo",
                           "inverse_hazard:beta:1", "blah"}) {
    EXPECT_FALSE(MakeTimeWeight(spec).ok()) << spec;
  }
}

// Lemma 4.7 in closed form: P = Beta(1, 2) (density 2(1 - t)) and w = h of
// the linear scheduler (1 / (1 - t)) give w p = 2: Z = 2 and P_w = U(0, 1).
TEST(ImportanceTimeTest, ClosedFormBetaTimesLinearHazardIsUniform) {
  auto pw = ImportanceWeightedTime(Dist("beta:1,2"), Weight("hazard:linear"));
  ASSERT_TRUE(pw.ok()) << pw.status();
  EXPECT_NEAR(pw->z, 2.0, 1e-9);
  for (double t : {0.01, 0.3, 0.6, 0.99}) EXPECT_NEAR(pw->distribution->Density(t), 1.0, 1e-9);
  constexpr int kN = 20000;
  EXPECT_LT(KsStatistic(Draw(*pw->distribution, kN, 21), [](double t) { return t; }),
            kKsCritical001 / std::sqrt(kN));
}

// P = Beta(2, 2) tilted by w(t) = t: Z = E[t] = 1/2 and
// P_w = 12 t^2 (1 - t) = Beta(3, 2).
TEST(ImportanceTimeTest, ClosedFormUserWeightGivesBeta32) {
  auto pw = ImportanceWeightedTime(Dist("beta:2,2"), UserTimeWeight([](double t) { return t; }));
  ASSERT_TRUE(pw.ok()) << pw.status();
  EXPECT_NEAR(pw->z, 0.5, 1e-10);
  constexpr int kN = 20000;
  EXPECT_LT(KsStatistic(Draw(*pw->distribution, kN, 22),
                        [](double t) { return RegularizedIncompleteBeta(3, 2, t); }),
            kKsCritical001 / std::sqrt(kN));
}

// Endpoint singularities t^-1/2 (1 - t)^-1/2 (the arcsine law) are handled by
// the graded mesh.
TEST(ImportanceTimeTest, SingularDensityWithConstantWeight) {
  auto pw = ImportanceWeightedTime(Dist("beta:0.5,0.5"), Weight("constant:3"));
  ASSERT_TRUE(pw.ok()) << pw.status();
  EXPECT_NEAR(pw->z, 3.0, 3e-6);
  constexpr int kN = 20000;
  EXPECT_LT(KsStatistic(Draw(*pw->distribution, kN, 23),
                        [](double t) { return RegularizedIncompleteBeta(0.5, 0.5, t); }),
            kKsCritical001 / std::sqrt(kN));
}

// The Lemma 4.7 identity by Monte Carlo: for a loss-like f (vanishing at
// t = 1 like a DFM loss, which is proportional to 1 - kappa),
// E_P[w f] = Z E_{P_w}[f]. P = logit-normal(0, 1), w = h of poly:3.
TEST(ImportanceTimeTest, MonteCarloExpectedLossesAgree) {
  auto p = Dist("logitnormal:0,1");
  auto w = Weight("hazard:poly:3");
  auto pw = ImportanceWeightedTime(p, w);
  ASSERT_TRUE(pw.ok()) << pw.status();
  auto f = [](double t) { return (1.0 - t * t * t) * (1.0 + std::sin(3.0 * t)); };

  constexpr int kN = 200000;
  double sum_a = 0, sum_a2 = 0, sum_b = 0, sum_b2 = 0;
  for (int i = 0; i < kN; ++i) {
    PhiloxStream ra(31, static_cast<uint32_t>(i), kPurposeTime);
    const double t = p->Sample(ra);
    const double a = w->Weight(t) * f(t);
    sum_a += a;
    sum_a2 += a * a;
    PhiloxStream rb(32, static_cast<uint32_t>(i), kPurposeTime);
    const double b = pw->z * f(pw->distribution->Sample(rb));
    sum_b += b;
    sum_b2 += b * b;
  }
  const double mean_a = sum_a / kN, mean_b = sum_b / kN;
  const double se_a = std::sqrt((sum_a2 / kN - mean_a * mean_a) / kN);
  const double se_b = std::sqrt((sum_b2 / kN - mean_b * mean_b) / kN);
  EXPECT_LT(std::fabs(mean_a - mean_b), 4.0 * std::hypot(se_a, se_b))
      << "E_P[w f] = " << mean_a << " +- " << se_a << ", Z E_Pw[f] = " << mean_b << " +- " << se_b;
  // Both agree with the integral of w f p, computed here in logit space
  // (t = sigmoid(x), dt = t (1 - t) dx) on [-12, 12].
  const double truth = Integrate(
      [&](double x) {
        const double t = 1.0 / (1.0 + std::exp(-x));
        return w->Weight(t) * f(t) * p->Density(t) * t * (1.0 - t);
      },
      -12.0, 12.0, 2000);
  EXPECT_LT(std::fabs(mean_a - truth), 4.0 * se_a) << truth;
  EXPECT_LT(std::fabs(mean_b - truth), 4.0 * se_b) << truth;
  // The importance-sampled estimator is the better one here: Var[Z f] <
  // Var[w f], since w is large exactly where f is small.
  EXPECT_LT(se_b, se_a);
  // Z itself: E_P[w] by the same independent quadrature.
  const double z_truth = Integrate(
      [&](double x) {
        const double t = 1.0 / (1.0 + std::exp(-x));
        return w->Weight(t) * p->Density(t) * t * (1.0 - t);
      },
      -12.0, 12.0, 2000);
  EXPECT_NEAR(pw->z, z_truth, 1e-6 * z_truth);
}

TEST(ImportanceTimeTest, NonIntegrableWeightIsAnError) {
  // E_U[h_linear] = H(1) = infinity.
  auto bad = ImportanceWeightedTime(Dist("uniform"), Weight("hazard:linear"));
  EXPECT_FALSE(bad.ok());
  // 1/h of poly:3 ~ 1 / (3 t^2) near 0: not integrable either.
  EXPECT_FALSE(ImportanceWeightedTime(Dist("uniform"), Weight("inverse_hazard:poly:3")).ok());
  EXPECT_FALSE(ImportanceWeightedTime(nullptr, Weight("constant")).ok());
  // A weight that is 0 everywhere has Z = 0.
  EXPECT_FALSE(
      ImportanceWeightedTime(Dist("uniform"), UserTimeWeight([](double) { return 0.0; })).ok());
}

TEST(ImportanceTimeTest, TiltedSpecRoundTrips) {
  auto d = Dist("tilted:hazard:poly:3|logitnormal:0,1");
  EXPECT_EQ(d->Name(), "tilted:hazard:poly:3|logitnormal:0,1");
  auto pw = ImportanceWeightedTime(Dist("logitnormal:0,1"), Weight("hazard:poly:3"));
  ASSERT_TRUE(pw.ok());
  EXPECT_EQ(Draw(*d, 30, 9), Draw(*pw->distribution, 30, 9));
  EXPECT_EQ(d->Density(0.4), pw->distribution->Density(0.4));
}

}  // namespace
}  // namespace jumpflow
