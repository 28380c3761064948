// @brief Scheduler implementations.
#include "jumpflow/scheduler.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numbers>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "jumpflow/detail/format.h"
#include "absl/strings/str_split.h"

namespace jumpflow {
namespace {

double Clamp01(double x) { return std::isnan(x) ? 0.0 : std::clamp(x, 0.0, 1.0); }

using detail::FormatShortest;

// Bisection for a nonincreasing f on [0, 1]: smallest t with f(t) <= u.
template <typename F>
double BisectNonincreasing(F f, double u) {
  double lo = 0.0, hi = 1.0;
  for (int i = 0; i < 200 && hi - lo > 1e-17; ++i) {
    const double mid = 0.5 * (lo + hi);
    if (f(mid) <= u) {
      hi = mid;
    } else {
      lo = mid;
    }
  }
  return hi;
}

class Linear final : public Scheduler {
 public:
  std::string Name() const override { return "linear"; }
  double Kappa(double t) const override { return Clamp01(t); }
  double KappaDerivative(double) const override { return 1.0; }
  double Survival(double t) const override { return 1.0 - Clamp01(t); }
  double InverseSurvival(double u) const override { return 1.0 - Clamp01(u); }
};

class Polynomial final : public Scheduler {
 public:
  explicit Polynomial(double n) : n_(n) {}
  std::string Name() const override { return absl::StrCat("poly:", FormatShortest(n_)); }
  double Kappa(double t) const override { return std::pow(Clamp01(t), n_); }
  double KappaDerivative(double t) const override {
    t = Clamp01(t);
    if (t == 0.0) return n_ == 1.0 ? 1.0 : (n_ > 1.0 ? 0.0 : kMaxHazard);
    return std::min(n_ * std::pow(t, n_ - 1.0), kMaxHazard);
  }
  // 1 - t^n = -expm1(n log t), exact near t = 1.
  double Survival(double t) const override {
    t = Clamp01(t);
    if (t == 0.0) return 1.0;
    return -std::expm1(n_ * std::log(t));
  }
  // t = (1 - u)^(1/n) = exp(log1p(-u) / n).
  double InverseSurvival(double u) const override {
    u = Clamp01(u);
    if (u == 1.0) return 0.0;
    return std::exp(std::log1p(-u) / n_);
  }

 private:
  double n_;
};

class Cosine final : public Scheduler {
 public:
  std::string Name() const override { return "cosine"; }
  double Kappa(double t) const override {
    const double s = std::sin(0.5 * std::numbers::pi * Clamp01(t));
    return s * s;
  }
  double KappaDerivative(double t) const override {
    // d/dt sin^2(pi t / 2) = (pi / 2) sin(pi t).
    return 0.5 * std::numbers::pi * std::sin(std::numbers::pi * Clamp01(t));
  }
  // 1 - sin^2 = cos^2(pi t / 2) = sin^2(pi (1 - t) / 2), exact near t = 1.
  double Survival(double t) const override {
    const double s = std::sin(0.5 * std::numbers::pi * (1.0 - Clamp01(t)));
    return s * s;
  }
  // Clamped: at u = 1 the rounding of (2 / pi) asin(1) gives t = -2.3e-17.
  double InverseSurvival(double u) const override {
    return Clamp01(1.0 - 2.0 / std::numbers::pi * std::asin(std::sqrt(Clamp01(u))));
  }
};

class Beta final : public Scheduler {
 public:
  Beta(double a, double b)
      : a_(a), b_(b), log_beta_(std::lgamma(a) + std::lgamma(b) - std::lgamma(a + b)) {}
  std::string Name() const override {
    return absl::StrCat("beta:", FormatShortest(a_), ",", FormatShortest(b_));
  }
  double Kappa(double t) const override { return RegularizedIncompleteBeta(a_, b_, Clamp01(t)); }
  double KappaDerivative(double t) const override {
    t = Clamp01(t);
    if (t == 0.0) return a_ == 1.0 ? std::exp(-log_beta_) : (a_ > 1.0 ? 0.0 : kMaxHazard);
    if (t == 1.0) return b_ == 1.0 ? std::exp(-log_beta_) : (b_ > 1.0 ? 0.0 : kMaxHazard);
    const double log_d = (a_ - 1.0) * std::log(t) + (b_ - 1.0) * std::log1p(-t) - log_beta_;
    return std::min(std::exp(log_d), kMaxHazard);
  }
  // 1 - I_t(a, b) = I_{1-t}(b, a), exact near t = 1.
  double Survival(double t) const override {
    return RegularizedIncompleteBeta(b_, a_, 1.0 - Clamp01(t));
  }
  double InverseSurvival(double u) const override {
    u = Clamp01(u);
    return BisectNonincreasing([this](double t) { return Survival(t); }, u);
  }

 private:
  double a_, b_, log_beta_;
};

class Custom final : public Scheduler {
 public:
  Custom(std::function<double(double)> kappa, std::function<double(double)> dkappa,
         std::string name)
      : kappa_(std::move(kappa)), dkappa_(std::move(dkappa)), name_(std::move(name)) {}
  std::string Name() const override { return name_; }
  double Kappa(double t) const override { return Clamp01(kappa_(Clamp01(t))); }
  double KappaDerivative(double t) const override {
    const double d = dkappa_(Clamp01(t));
    return std::isfinite(d) ? std::clamp(d, 0.0, kMaxHazard) : kMaxHazard;
  }
  double Survival(double t) const override { return 1.0 - Kappa(t); }
  double InverseSurvival(double u) const override {
    return BisectNonincreasing([this](double t) { return Survival(t); }, Clamp01(u));
  }

 private:
  std::function<double(double)> kappa_, dkappa_;
  std::string name_;
};

absl::StatusOr<double> ParsePositive(absl::string_view spec, absl::string_view text) {
  double v = 0;
  if (!absl::SimpleAtod(text, &v) || !std::isfinite(v) || v <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("scheduler '", spec, "': '", text, "' is not a positive number"));
  }
  return v;
}

}  // namespace

double Scheduler::InverseKappa(double k) const { return InverseSurvival(1.0 - Clamp01(k)); }

double Scheduler::Hazard(double t) const {
  const double s = Survival(t);
  const double d = KappaDerivative(t);
  if (d <= 0.0) return 0.0;
  if (s <= d / kMaxHazard) return kMaxHazard;
  return d / s;
}

double Scheduler::CumulativeHazard(double t) const {
  return -std::log(std::max(Survival(t), kMinSurvival));
}

double Scheduler::InverseCumulativeHazard(double big_h) const {
  if (!(big_h > 0.0)) return 0.0;
  return InverseSurvival(std::exp(-big_h));
}

std::unique_ptr<Scheduler> LinearScheduler() { return std::make_unique<Linear>(); }
std::unique_ptr<Scheduler> PolynomialScheduler(double n) { return std::make_unique<Polynomial>(n); }
std::unique_ptr<Scheduler> CosineScheduler() { return std::make_unique<Cosine>(); }
std::unique_ptr<Scheduler> BetaScheduler(double a, double b) {
  return std::make_unique<Beta>(a, b);
}
std::unique_ptr<Scheduler> CustomScheduler(std::function<double(double)> kappa,
                                           std::function<double(double)> kappa_derivative,
                                           std::string name) {
  return std::make_unique<Custom>(std::move(kappa), std::move(kappa_derivative),
                                  std::move(name));
}

absl::StatusOr<std::unique_ptr<Scheduler>> MakeScheduler(absl::string_view spec) {
  if (spec == "linear") return LinearScheduler();
  if (spec == "cosine") return CosineScheduler();
  std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(spec, absl::MaxSplits(':', 1));
  if (kv.first == "poly") {
    auto n = ParsePositive(spec, kv.second);
    if (!n.ok()) return n.status();
    return PolynomialScheduler(*n);
  }
  if (kv.first == "beta") {
    // Exactly two numbers: a std::pair split would silently drop a third.
    std::vector<absl::string_view> ab = absl::StrSplit(kv.second, ',');
    if (ab.size() != 2) {
      return absl::InvalidArgumentError(
          absl::StrCat("scheduler '", spec, "': expected beta:A,B with two numbers"));
    }
    auto a = ParsePositive(spec, ab[0]);
    if (!a.ok()) return a.status();
    auto b = ParsePositive(spec, ab[1]);
    if (!b.ok()) return b.status();
    return BetaScheduler(*a, *b);
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown scheduler '", spec, "' (expected linear, poly:N, cosine or beta:A,B)"));
}

double RegularizedIncompleteBeta(double a, double b, double x) {
  if (x <= 0.0) return 0.0;
  if (x >= 1.0) return 1.0;
  // Use the continued fraction where it converges fast, symmetry otherwise
  // (Numerical Recipes 3rd ed., eq. 6.4.5 and routine betacf).
  if (x > (a + 1.0) / (a + b + 2.0)) return 1.0 - RegularizedIncompleteBeta(b, a, 1.0 - x);
  const double log_front = a * std::log(x) + b * std::log1p(-x) -
                           (std::lgamma(a) + std::lgamma(b) - std::lgamma(a + b)) - std::log(a);
  constexpr double kTiny = 1e-300, kEps = 1e-16;
  double c = 1.0, d = 1.0 - (a + b) * x / (a + 1.0);
  if (std::fabs(d) < kTiny) d = kTiny;
  d = 1.0 / d;
  double f = d;
  for (int m = 1; m <= 1000; ++m) {
    const double m2 = 2.0 * m;
    double num = m * (b - m) * x / ((a + m2 - 1.0) * (a + m2));
    d = 1.0 + num * d;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = 1.0 + num / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1.0 / d;
    f *= d * c;
    num = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0));
    d = 1.0 + num * d;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = 1.0 + num / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1.0 / d;
    const double delta = d * c;
    f *= delta;
    if (std::fabs(delta - 1.0) < kEps) break;
  }
  return std::clamp(std::exp(log_front) * f, 0.0, 1.0);
}

}  // namespace jumpflow
