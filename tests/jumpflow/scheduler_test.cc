// @brief Tests of the schedulers (jumpflow/scheduler.h): closed forms,
// kappa' and h against numerical differentiation, H against numerical
// integration of h, inverses, accuracy near t = 1, and no NaN/inf anywhere
// near (or outside) the ends of [0, 1].
#include "jumpflow/scheduler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <numbers>
#include <string>
#include <vector>

namespace jumpflow {
namespace {

struct Named {
  std::string label;
  std::shared_ptr<const Scheduler> scheduler;
};

// Every built-in kind (with both a < 1 and a > 1 shapes) and a custom one:
// the smoothstep kappa = 3t^2 - 2t^3, kappa' = 6t(1 - t).
std::vector<Named> AllSchedulers() {
  std::vector<Named> out;
  for (const char* spec : {"linear", "poly:3", "poly:0.5", "poly:1", "cosine", "beta:2,2",
                           "beta:0.5,3", "beta:3,0.7"}) {
    out.push_back({spec, MakeScheduler(spec).value()});
  }
  out.push_back({"custom smoothstep",
                 CustomScheduler([](double t) { return t * t * (3.0 - 2.0 * t); },
                                 [](double t) { return 6.0 * t * (1.0 - t); }, "smoothstep")});
  return out;
}

// Interior grid, away from the ends where the finite-difference steps fit.
std::vector<double> InteriorGrid() {
  std::vector<double> ts;
  for (double t = 0.02; t < 0.985; t += 0.0237) ts.push_back(t);
  return ts;
}

// Central difference with a step proportional to the distance to the ends:
// truncation error O(h^2 f''') ~ 1e-8 relative, rounding ~ eps f / h ~ 1e-10.
template <typename F>
double Derivative(F f, double t) {
  const double h = 1e-4 * std::min(t, 1.0 - t);
  return (f(t + h) - f(t - h)) / (2.0 * h);
}

// Composite 5-point Gauss-Legendre on [a, b] with n cells.
template <typename F>
double Integrate(F f, double a, double b, int n) {
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

TEST(SchedulerTest, EndpointsAndSurvivalIdentity) {
  for (const Named& s : AllSchedulers()) {
    SCOPED_TRACE(s.label);
    EXPECT_EQ(s.scheduler->Kappa(0.0), 0.0);
    EXPECT_EQ(s.scheduler->Kappa(1.0), 1.0);
    EXPECT_EQ(s.scheduler->Survival(0.0), 1.0);
    EXPECT_EQ(s.scheduler->Survival(1.0), 0.0);
    EXPECT_EQ(s.scheduler->CumulativeHazard(0.0), 0.0);
    double previous = 0.0;
    for (double t : InteriorGrid()) {
      const double k = s.scheduler->Kappa(t);
      EXPECT_NEAR(s.scheduler->Survival(t), 1.0 - k, 1e-14) << "t " << t;
      EXPECT_GE(k, previous) << "kappa must be nondecreasing, t " << t;
      previous = k;
    }
  }
}

TEST(SchedulerTest, ClosedForms) {
  auto sched = [](const char* spec) { return MakeScheduler(spec).value(); };
  for (double t : InteriorGrid()) {
    SCOPED_TRACE(t);
    EXPECT_DOUBLE_EQ(sched("linear")->Kappa(t), t);
    EXPECT_NEAR(sched("poly:3")->Kappa(t), t * t * t, 1e-15);
    EXPECT_NEAR(sched("poly:3")->KappaDerivative(t), 3.0 * t * t, 1e-14);
    const double s = std::sin(0.5 * std::numbers::pi * t);
    EXPECT_NEAR(sched("cosine")->Kappa(t), s * s, 1e-15);
    // Regularized incomplete beta special cases: I_t(2,2) = 3t^2 - 2t^3,
    // I_t(a,1) = t^a, I_t(1,b) = 1 - (1-t)^b, I_t(1,1) = t.
    EXPECT_NEAR(sched("beta:2,2")->Kappa(t), t * t * (3.0 - 2.0 * t), 1e-14);
    EXPECT_NEAR(sched("beta:2,2")->KappaDerivative(t), 6.0 * t * (1.0 - t), 1e-13);
    EXPECT_NEAR(RegularizedIncompleteBeta(2.5, 1.0, t), std::pow(t, 2.5), 1e-14);
    EXPECT_NEAR(RegularizedIncompleteBeta(1.0, 0.7, t), 1.0 - std::pow(1.0 - t, 0.7), 1e-14);
    EXPECT_NEAR(RegularizedIncompleteBeta(1.0, 1.0, t), t, 1e-15);
    // Symmetry I_t(a, b) = 1 - I_{1-t}(b, a).
    EXPECT_NEAR(RegularizedIncompleteBeta(0.5, 3.0, t),
                1.0 - RegularizedIncompleteBeta(3.0, 0.5, 1.0 - t), 1e-14);
  }
  // I_{1/2}(a, a) = 1/2 for every a.
  for (double a : {0.3, 1.0, 5.0, 50.0}) {
    EXPECT_NEAR(RegularizedIncompleteBeta(a, a, 0.5), 0.5, 1e-13) << a;
  }
}

TEST(SchedulerTest, KappaDerivativeMatchesNumericalDerivative) {
  for (const Named& s : AllSchedulers()) {
    SCOPED_TRACE(s.label);
    for (double t : InteriorGrid()) {
      const double fd = Derivative([&](double x) { return s.scheduler->Kappa(x); }, t);
      EXPECT_NEAR(s.scheduler->KappaDerivative(t), fd, 1e-6 * std::fabs(fd) + 1e-10) << "t " << t;
    }
  }
}

TEST(SchedulerTest, HazardMatchesDefinitionAndDerivativeOfCumulativeHazard) {
  for (const Named& s : AllSchedulers()) {
    SCOPED_TRACE(s.label);
    for (double t : InteriorGrid()) {
      const Scheduler& sc = *s.scheduler;
      const double h = sc.Hazard(t), su = sc.Survival(t);
      EXPECT_NEAR(h, sc.KappaDerivative(t) / su, 1e-14 * h) << "t " << t;
      EXPECT_NEAR(sc.CumulativeHazard(t), -std::log(su), 1e-14) << "t " << t;
      // The same with 1 - kappa, whose cancellation costs ~ eps / S.
      const double cancel = 4e-16 / su;
      EXPECT_NEAR(h, sc.KappaDerivative(t) / (1.0 - sc.Kappa(t)), cancel * h) << "t " << t;
      EXPECT_NEAR(sc.CumulativeHazard(t), -std::log(1.0 - sc.Kappa(t)), cancel) << "t " << t;
      const double fd = Derivative([&](double x) { return sc.CumulativeHazard(x); }, t);
      EXPECT_NEAR(h, fd, 1e-6 * h + 1e-10) << "t " << t;
    }
  }
}

TEST(SchedulerTest, CumulativeHazardIsTheIntegralOfTheHazard) {
  for (const Named& s : AllSchedulers()) {
    SCOPED_TRACE(s.label);
    const Scheduler& sc = *s.scheduler;
    const double a = 0.01;
    for (double b : {0.1, 0.37, 0.6, 0.9, 0.99}) {
      const double integral = Integrate([&](double x) { return sc.Hazard(x); }, a, b, 400);
      const double diff = sc.CumulativeHazard(b) - sc.CumulativeHazard(a);
      EXPECT_NEAR(integral, diff, 1e-9 * (1.0 + std::fabs(diff))) << "b " << b;
    }
  }
}

TEST(SchedulerTest, InversesRoundTrip) {
  for (const Named& s : AllSchedulers()) {
    SCOPED_TRACE(s.label);
    const Scheduler& sc = *s.scheduler;
    for (double t : InteriorGrid()) {
      EXPECT_NEAR(sc.InverseSurvival(sc.Survival(t)), t, 1e-10) << "t " << t;
      EXPECT_NEAR(sc.InverseKappa(sc.Kappa(t)), t, 1e-10) << "t " << t;
      EXPECT_NEAR(sc.InverseCumulativeHazard(sc.CumulativeHazard(t)), t, 1e-10) << "t " << t;
    }
  }
}

// Survival and hazard keep their relative accuracy close to t = 1, where
// 1 - kappa would cancel (closed forms written out here).
TEST(SchedulerTest, AccurateNearOne) {
  const double e = 1e-10;
  const double t = 1.0 - e;
  const double et = 1.0 - t;  // the representable distance to 1
  EXPECT_NEAR(MakeScheduler("poly:3").value()->Survival(t), 3 * et - 3 * et * et, 1e-6 * 3 * et);
  const double c = std::sin(0.5 * std::numbers::pi * et);
  EXPECT_NEAR(MakeScheduler("cosine").value()->Survival(t), c * c, 1e-6 * c * c);
  EXPECT_NEAR(MakeScheduler("beta:2,2").value()->Survival(t), et * et * (3.0 - 2.0 * et),
              1e-6 * 3 * et * et);
  EXPECT_NEAR(MakeScheduler("linear").value()->Hazard(t), 1.0 / et, 1e-6 / et);
  // h = 3t^2 / (1 - t^3) -> 1 / e as t -> 1.
  EXPECT_NEAR(MakeScheduler("poly:3").value()->Hazard(t), 3 * t * t / (3 * et - 3 * et * et),
              1e-5 / et);
  // H(t) = -log S(t): for poly:3, -log(3e) to first order.
  EXPECT_NEAR(MakeScheduler("poly:3").value()->CumulativeHazard(t), -std::log(3 * et), 1e-6);
  // The survival inverse resolves u down to ~1e-300.
  EXPECT_NEAR(MakeScheduler("poly:3").value()->InverseSurvival(3e-12), 1.0 - 1e-12, 1e-15);
}

TEST(SchedulerTest, NoNanOrInfNearOrOutsideTheEnds) {
  const double kNan = std::numeric_limits<double>::quiet_NaN();
  const double kInf = std::numeric_limits<double>::infinity();
  const std::vector<double> ts = {
      0.0, 1e-300, 1e-100, 1e-12, 1e-6, 1.0 - 1e-6, 1.0 - 1e-12, 1.0 - std::ldexp(1.0, -53),
      1.0, -1.0,   2.0,    kNan,  kInf, -kInf};
  const double h_cap = -std::log(Scheduler::kMinSurvival);
  for (const Named& s : AllSchedulers()) {
    SCOPED_TRACE(s.label);
    const Scheduler& sc = *s.scheduler;
    for (double t : ts) {
      SCOPED_TRACE(t);
      const double k = sc.Kappa(t), d = sc.KappaDerivative(t), su = sc.Survival(t);
      const double h = sc.Hazard(t), big_h = sc.CumulativeHazard(t);
      EXPECT_TRUE(k >= 0.0 && k <= 1.0) << k;
      EXPECT_TRUE(su >= 0.0 && su <= 1.0) << su;
      EXPECT_TRUE(std::isfinite(d) && d >= 0.0) << d;
      EXPECT_TRUE(h >= 0.0 && h <= Scheduler::kMaxHazard) << h;
      EXPECT_TRUE(big_h >= 0.0 && big_h <= h_cap) << big_h;
      for (double x : {sc.InverseSurvival(t), sc.InverseKappa(t)}) {
        EXPECT_TRUE(x >= 0.0 && x <= 1.0) << x;
      }
    }
    for (double big_h : {0.0, 1e-300, 1.0, 700.0, 1e308, kInf, kNan, -1.0}) {
      const double x = sc.InverseCumulativeHazard(big_h);
      EXPECT_TRUE(x >= 0.0 && x <= 1.0) << "H " << big_h << " -> " << x;
    }
  }
}

TEST(SchedulerTest, FactoryParsesAndRejects) {
  for (const char* spec : {"linear", "cosine", "poly:3", "poly:0.3333333333333333", "beta:2,5",
                           "beta:0.123456789,7"}) {
    auto s = MakeScheduler(spec);
    ASSERT_TRUE(s.ok()) << spec << ": " << s.status();
    // Name() round-trips exactly.
    auto again = MakeScheduler((*s)->Name());
    ASSERT_TRUE(again.ok()) << (*s)->Name();
    for (double t : {0.1, 0.37, 0.9}) EXPECT_EQ((*again)->Kappa(t), (*s)->Kappa(t)) << spec;
  }
  for (const char* spec :
       {"", "foo", "poly", "poly:", "poly:-1", "poly:0", "poly:abc", "poly:inf", "beta:1",
        "beta:0,1", "beta:1,-2", "beta:1,2,3", "beta:nan,1", "custom"}) {
    auto s = MakeScheduler(spec);
    EXPECT_FALSE(s.ok()) << spec;
    if (!s.ok()) {
      EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << spec;
      EXPECT_NE(s.status().message().find(spec), std::string::npos)
          << "message should name the spec: " << s.status().message();
    }
  }
}

}  // namespace
}  // namespace jumpflow
