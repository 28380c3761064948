// @brief Time distributions, time weights and the Lemma 4.7 conversion.
#include "jumpflow/time_distribution.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numbers>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "jumpflow/detail/format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace jumpflow {
namespace {

using detail::FormatShortest;

absl::StatusOr<double> ParseNumber(absl::string_view spec, absl::string_view text) {
  double v = 0;
  if (!absl::SimpleAtod(text, &v) || !std::isfinite(v)) {
    return absl::InvalidArgumentError(
        absl::StrCat("time spec '", spec, "': '", text, "' is not a finite number"));
  }
  return v;
}

// ParsePair parses "X,Y" (exactly two numbers).
absl::StatusOr<std::pair<double, double>> ParsePair(absl::string_view spec,
                                                    absl::string_view text) {
  std::vector<absl::string_view> parts = absl::StrSplit(text, ',');
  if (parts.size() != 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "time spec '", spec, "': expected two comma-separated numbers, got '", text, "'"));
  }
  auto x = ParseNumber(spec, parts[0]);
  if (!x.ok()) return x.status();
  auto y = ParseNumber(spec, parts[1]);
  if (!y.ok()) return y.status();
  return std::make_pair(*x, *y);
}

double LogBetaFunction(double a, double b) {
  return std::lgamma(a) + std::lgamma(b) - std::lgamma(a + b);
}

class Uniform final : public TimeDistribution {
 public:
  std::string Name() const override { return "uniform"; }
  double Sample(PhiloxStream& rng) const override { return rng.Uniform(); }
  double Density(double t) const override { return t >= 0.0 && t <= 1.0 ? 1.0 : 0.0; }
};

// BetaInverseCdf solves I_x(a, b) = u for x by Newton's method safeguarded
// with bisection. For u > 1/2 it solves the mirrored problem
// I_{1-x}(b, a) = 1 - u (1 - u is exact there), so both tails keep full
// relative precision.
// Beta(a, 1) and Beta(1, b) (e.g. the trainer's beta:3,1) have closed
// forms, I_x(a, 1) = x^a and I_x(1, b) = 1 - (1 - x)^b, taken directly.
double BetaInverseCdf(double a, double b, double u, double log_beta) {
  if (b == 1.0) return std::pow(u, 1.0 / a);
  if (a == 1.0) return -std::expm1(std::log1p(-u) / b);
  if (u > 0.5) return 1.0 - BetaInverseCdf(b, a, 1.0 - u, log_beta);
  double lo = 0.0, hi = 1.0;
  double x = a / (a + b);
  for (int iter = 0; iter < 200; ++iter) {
    const double f = RegularizedIncompleteBeta(a, b, x) - u;
    if (f == 0.0) return x;
    if (f < 0.0) {
      lo = x;
    } else {
      hi = x;
    }
    const double log_density = (a - 1.0) * std::log(x) + (b - 1.0) * std::log1p(-x) - log_beta;
    double next = x - f / std::exp(log_density);
    if (!(next > lo && next < hi)) next = 0.5 * (lo + hi);
    if (std::fabs(next - x) <= 4e-16 * x || hi - lo <= 4e-16 * hi) return next;
    x = next;
  }
  return x;
}

class BetaDist final : public TimeDistribution {
 public:
  BetaDist(double a, double b) : a_(a), b_(b), log_beta_(LogBetaFunction(a, b)) {}
  std::string Name() const override {
    return absl::StrCat("beta:", FormatShortest(a_), ",", FormatShortest(b_));
  }
  double Sample(PhiloxStream& rng) const override {
    return std::clamp(BetaInverseCdf(a_, b_, rng.Uniform(), log_beta_), 0.0, 1.0);
  }
  double Density(double t) const override {
    if (!(t >= 0.0 && t <= 1.0)) return 0.0;
    if (t == 0.0) return a_ == 1.0 ? std::exp(-log_beta_) : (a_ > 1.0 ? 0.0 : HUGE_VAL);
    if (t == 1.0) return b_ == 1.0 ? std::exp(-log_beta_) : (b_ > 1.0 ? 0.0 : HUGE_VAL);
    return std::exp((a_ - 1.0) * std::log(t) + (b_ - 1.0) * std::log1p(-t) - log_beta_);
  }

 private:
  double a_, b_, log_beta_;
};

class LogitNormal final : public TimeDistribution {
 public:
  LogitNormal(double mu, double sigma) : mu_(mu), sigma_(sigma) {}
  std::string Name() const override {
    return absl::StrCat("logitnormal:", FormatShortest(mu_), ",", FormatShortest(sigma_));
  }
  double Sample(PhiloxStream& rng) const override {
    const double z = mu_ + sigma_ * rng.Normal();
    return 1.0 / (1.0 + std::exp(-z));
  }
  // p(t) = exp(-(logit t - mu)^2 / (2 sigma^2)) / (sigma sqrt(2 pi) t (1 - t)).
  double Density(double t) const override {
    if (!(t > 0.0 && t < 1.0)) return 0.0;
    const double d = (std::log(t) - std::log1p(-t) - mu_) / sigma_;
    return std::exp(-0.5 * d * d) / (sigma_ * std::sqrt(2.0 * std::numbers::pi) * t * (1.0 - t));
  }

 private:
  double mu_, sigma_;
};

class Mixture final : public TimeDistribution {
 public:
  Mixture(std::vector<double> weights, std::vector<std::unique_ptr<TimeDistribution>> components)
      : weights_(std::move(weights)), components_(std::move(components)) {
    double total = 0.0;
    for (double w : weights_) total += w;
    double acc = 0.0;
    for (double& w : weights_) {
      w /= total;
      acc += w;
      cumulative_.push_back(acc);
    }
  }
  std::string Name() const override {
    std::string s = "mix:";
    for (size_t i = 0; i < components_.size(); ++i) {
      absl::StrAppend(&s, i == 0 ? "" : "+", FormatShortest(weights_[i]), "*",
                      components_[i]->Name());
    }
    return s;
  }
  double Sample(PhiloxStream& rng) const override {
    const double u = rng.Uniform();
    size_t i = 0;
    while (i + 1 < components_.size() && u >= cumulative_[i]) ++i;
    return components_[i]->Sample(rng);
  }
  double Density(double t) const override {
    double d = 0.0;
    for (size_t i = 0; i < components_.size(); ++i) d += weights_[i] * components_[i]->Density(t);
    return d;
  }

 private:
  std::vector<double> weights_, cumulative_;
  std::vector<std::unique_ptr<TimeDistribution>> components_;
};

// --- weights -------------------------------------------------------------

double CapWeight(double w) {
  if (!(w >= 0.0)) return 0.0;  // NaN or negative
  return std::min(w, kMaxTimeWeight);
}

class ConstantWeight final : public TimeWeight {
 public:
  explicit ConstantWeight(double c) : c_(c) {}
  std::string Name() const override {
    return c_ == 1.0 ? "constant" : absl::StrCat("constant:", FormatShortest(c_));
  }
  double Weight(double) const override { return c_; }

 private:
  double c_;
};

class HazardWeight final : public TimeWeight {
 public:
  HazardWeight(std::shared_ptr<const Scheduler> s, bool inverse)
      : scheduler_(std::move(s)), inverse_(inverse) {}
  std::string Name() const override {
    return absl::StrCat(inverse_ ? "inverse_hazard:" : "hazard:", scheduler_->Name());
  }
  double Weight(double t) const override {
    const double h = scheduler_->Hazard(t);
    if (!inverse_) return h;
    return h > 1.0 / kMaxTimeWeight ? 1.0 / h : kMaxTimeWeight;
  }

 private:
  std::shared_ptr<const Scheduler> scheduler_;
  bool inverse_;
};

class UserWeight final : public TimeWeight {
 public:
  UserWeight(std::function<double(double)> w, std::string name)
      : w_(std::move(w)), name_(std::move(name)) {}
  std::string Name() const override { return name_; }
  double Weight(double t) const override {
    return CapWeight(w_(std::isnan(t) ? 0.0 : std::clamp(t, 0.0, 1.0)));
  }

 private:
  std::function<double(double)> w_;
  std::string name_;
};

// --- Lemma 4.7: tilted distribution ----------------------------------------

// Gauss-Legendre nodes and weights on [-1, 1] (Abramowitz & Stegun, Table
// 25.4).
constexpr double kGl5Nodes[5] = {-0.9061798459386640, -0.5384693101056831, 0.0, 0.5384693101056831,
                                 0.9061798459386640};
constexpr double kGl5Weights[5] = {0.2369268850561891, 0.4786286704993665, 0.5688888888888889,
                                   0.4786286704993665, 0.2369268850561891};
constexpr double kGl3Nodes[3] = {-0.7745966692414834, 0.0, 0.7745966692414834};
constexpr double kGl3Weights[3] = {5.0 / 9.0, 8.0 / 9.0, 5.0 / 9.0};

constexpr int kMiddleCells = 1024;  // on [1/4, 3/4]
constexpr int kCellsPerOctave = 32;
constexpr int kOctavesAtZero = 60;  // down to 2^-62
constexpr int kOctavesAtOne = 44;   // up to 1 - 2^-46
constexpr double kMaxZ = 1e12;
constexpr double kRuleTolerance = 1e-6;
constexpr double kInnermostTolerance = 1e-6;

// MeshEdges returns the increasing cell edges described in the header.
std::vector<double> MeshEdges() {
  std::vector<double> edges;
  edges.push_back(0.0);
  // Octaves [2^-(k+1), 2^-k] for k = 61 .. 2, each split uniformly.
  for (int k = kOctavesAtZero + 1; k >= 2; --k) {
    const double lo = std::ldexp(1.0, -(k + 1)), hi = std::ldexp(1.0, -k);
    for (int j = 0; j < kCellsPerOctave; ++j) {
      edges.push_back(lo + (hi - lo) * j / kCellsPerOctave);
    }
  }
  for (int j = 0; j < kMiddleCells; ++j) edges.push_back(0.25 + 0.5 * j / kMiddleCells);
  // Octaves [1 - 2^-k, 1 - 2^-(k+1)] for k = 2 .. 45.
  for (int k = 2; k <= kOctavesAtOne + 1; ++k) {
    const double lo = 1.0 - std::ldexp(1.0, -k), hi = 1.0 - std::ldexp(1.0, -(k + 1));
    for (int j = 0; j < kCellsPerOctave; ++j) {
      edges.push_back(lo + (hi - lo) * j / kCellsPerOctave);
    }
  }
  edges.push_back(1.0 - std::ldexp(1.0, -(kOctavesAtOne + 2)));
  edges.push_back(1.0);
  return edges;
}

class Tilted final : public TimeDistribution {
 public:
  Tilted(std::shared_ptr<const TimeDistribution> p, std::shared_ptr<const TimeWeight> w)
      : p_(std::move(p)), w_(std::move(w)) {}

  // Build tabulates the CDF; see ImportanceWeightedTime for the errors.
  absl::Status Build() {
    edges_ = MeshEdges();
    const size_t cells = edges_.size() - 1;
    cumulative_.assign(cells + 1, 0.0);
    double z3 = 0.0;
    for (size_t i = 0; i < cells; ++i) {
      const double a = edges_[i], b = edges_[i + 1];
      double m5 = 0.0, m3 = 0.0;
      const double half = 0.5 * (b - a), mid = 0.5 * (a + b);
      for (int j = 0; j < 5; ++j) {
        const double t = mid + half * kGl5Nodes[j];
        const double g = Integrand(t);
        if (!std::isfinite(g) || g < 0.0) {
          return absl::InvalidArgumentError(absl::StrCat("tilted time '", Name(),
                                                         "': w(t) p(t) = ", g, " at t = ", t,
                                                         " is not finite and >= 0"));
        }
        m5 += kGl5Weights[j] * g;
      }
      for (int j = 0; j < 3; ++j) m3 += kGl3Weights[j] * Integrand(mid + half * kGl3Nodes[j]);
      cumulative_[i + 1] = cumulative_[i] + half * m5;
      z3 += half * m3;
    }
    z_ = cumulative_[cells];
    if (!(z_ > 0.0 && z_ <= kMaxZ)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tilted time '", Name(), "': Z = E_P[w] = ", z_, " is not in (0, ", kMaxZ, "]"));
    }
    if (std::fabs(z3 - z_) > kRuleTolerance * z_) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tilted time '", Name(), "': quadrature did not converge (Z = ", z_, " with 5-point and ",
          z3, " with 3-point Gauss-Legendre): w p is too rough"));
    }
    const double first = cumulative_[1], last = z_ - cumulative_[cells - 1];
    if (first > kInnermostTolerance * z_ || last > kInnermostTolerance * z_) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tilted time '", Name(),
          "': w p is not integrable near t = ", first > kInnermostTolerance * z_ ? "0" : "1",
          " (the innermost cell holds ", std::max(first, last) / z_, " of Z = ", z_, ")"));
    }
    return absl::OkStatus();
  }

  double z() const { return z_; }

  std::string Name() const override { return absl::StrCat("tilted:", w_->Name(), "|", p_->Name()); }

  double Sample(PhiloxStream& rng) const override {
    const double target = rng.Uniform() * z_;
    // Cell i with cumulative_[i] <= target < cumulative_[i + 1] (mass > 0).
    size_t i = static_cast<size_t>(
        std::upper_bound(cumulative_.begin(), cumulative_.end(), target) - cumulative_.begin());
    i = std::clamp<size_t>(i, 1, edges_.size() - 1) - 1;
    const double a = edges_[i], b = edges_[i + 1];
    const double mass = cumulative_[i + 1] - cumulative_[i];
    const double local = std::clamp(target - cumulative_[i], 0.0, mass);
    // Safeguarded Newton on F(t) = int_a^t g - local over [a, b].
    double lo = a, hi = b;
    double t = mass > 0.0 ? a + (b - a) * (local / mass) : 0.5 * (a + b);
    for (int iter = 0; iter < 60; ++iter) {
      const double f = PartialIntegral(a, t) - local;
      if (f == 0.0) break;
      if (f < 0.0) {
        lo = t;
      } else {
        hi = t;
      }
      const double g = Integrand(t);
      double next = g > 0.0 ? t - f / g : 0.5 * (lo + hi);
      if (!(next > lo && next < hi)) next = 0.5 * (lo + hi);
      const bool done = std::fabs(next - t) <= 1e-14 * (b - a) || hi - lo <= 1e-14 * (b - a);
      t = next;
      if (done) break;
    }
    return std::clamp(t, 0.0, 1.0);
  }

  double Density(double t) const override {
    if (!(t >= 0.0 && t <= 1.0)) return 0.0;
    return Integrand(t) / z_;
  }

 private:
  double Integrand(double t) const { return w_->Weight(t) * p_->Density(t); }

  double PartialIntegral(double a, double t) const {
    const double half = 0.5 * (t - a), mid = 0.5 * (a + t);
    double m = 0.0;
    for (int j = 0; j < 5; ++j) m += kGl5Weights[j] * Integrand(mid + half * kGl5Nodes[j]);
    return half * m;
  }

  std::shared_ptr<const TimeDistribution> p_;
  std::shared_ptr<const TimeWeight> w_;
  std::vector<double> edges_, cumulative_;
  double z_ = 0.0;
};

}  // namespace

std::unique_ptr<TimeDistribution> UniformTime() { return std::make_unique<Uniform>(); }

absl::StatusOr<std::unique_ptr<TimeDistribution>> BetaTime(double a, double b) {
  if (!(std::isfinite(a) && a > 0.0 && std::isfinite(b) && b > 0.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("Beta time distribution needs a, b > 0 finite, got a = ", a, ", b = ", b));
  }
  return std::make_unique<BetaDist>(a, b);
}

absl::StatusOr<std::unique_ptr<TimeDistribution>> LogitNormalTime(double mu, double sigma) {
  if (!(std::isfinite(mu) && std::isfinite(sigma) && sigma > 0.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("logit-normal time distribution needs finite mu and sigma > 0, got mu = ", mu,
                     ", sigma = ", sigma));
  }
  return std::make_unique<LogitNormal>(mu, sigma);
}

absl::StatusOr<std::unique_ptr<TimeDistribution>> MixtureTime(
    std::vector<double> weights, std::vector<std::unique_ptr<TimeDistribution>> components) {
  if (components.empty() || weights.size() != components.size()) {
    return absl::InvalidArgumentError(absl::StrCat("mixture needs one weight per component, got ",
                                                   weights.size(), " weights and ",
                                                   components.size(), " components"));
  }
  for (size_t i = 0; i < weights.size(); ++i) {
    if (!(std::isfinite(weights[i]) && weights[i] > 0.0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("mixture weight ", i, " is ", weights[i], " (must be > 0 and finite)"));
    }
    if (components[i] == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("mixture component ", i, " is null"));
    }
  }
  return std::make_unique<Mixture>(std::move(weights), std::move(components));
}

absl::StatusOr<std::unique_ptr<TimeDistribution>> MakeTimeDistribution(absl::string_view spec) {
  if (spec == "uniform") return UniformTime();
  std::pair<absl::string_view, absl::string_view> kv =
      absl::StrSplit(spec, absl::MaxSplits(':', 1));
  if (kv.first == "beta") {
    auto ab = ParsePair(spec, kv.second);
    if (!ab.ok()) return ab.status();
    return BetaTime(ab->first, ab->second);
  }
  if (kv.first == "logitnormal") {
    auto ms = ParsePair(spec, kv.second);
    if (!ms.ok()) return ms.status();
    return LogitNormalTime(ms->first, ms->second);
  }
  if (kv.first == "mix") {
    std::vector<double> weights;
    std::vector<std::unique_ptr<TimeDistribution>> components;
    for (absl::string_view term : absl::StrSplit(kv.second, '+')) {
      std::pair<absl::string_view, absl::string_view> wc =
          absl::StrSplit(term, absl::MaxSplits('*', 1));
      if (wc.second.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("time spec '", spec, "': mixture term '", term, "' is not WEIGHT*SPEC"));
      }
      if (absl::StartsWith(wc.second, "mix:") || absl::StartsWith(wc.second, "tilted:")) {
        return absl::InvalidArgumentError(absl::StrCat(
            "time spec '", spec, "': mixture component '", wc.second, "' may not be nested"));
      }
      auto w = ParseNumber(spec, wc.first);
      if (!w.ok()) return w.status();
      auto c = MakeTimeDistribution(wc.second);
      if (!c.ok()) return c.status();
      weights.push_back(*w);
      components.push_back(std::move(c).value());
    }
    return MixtureTime(std::move(weights), std::move(components));
  }
  if (kv.first == "tilted") {
    std::pair<absl::string_view, absl::string_view> wp =
        absl::StrSplit(kv.second, absl::MaxSplits('|', 1));
    if (wp.second.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("time spec '", spec, "': expected tilted:WEIGHT|DISTRIBUTION"));
    }
    auto w = MakeTimeWeight(wp.first);
    if (!w.ok()) return w.status();
    auto p = MakeTimeDistribution(wp.second);
    if (!p.ok()) return p.status();
    auto tilted = ImportanceWeightedTime(std::move(p).value(), std::move(w).value());
    if (!tilted.ok()) return tilted.status();
    return std::move(tilted->distribution);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown time distribution '", spec,
                   "' (expected uniform, beta:A,B, logitnormal:MU,SIGMA, mix:W*SPEC+... or "
                   "tilted:WEIGHT|SPEC)"));
}

absl::StatusOr<std::unique_ptr<TimeWeight>> ConstantTimeWeight(double c) {
  if (!(std::isfinite(c) && c > 0.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("constant time weight must be > 0 and finite, got ", c));
  }
  return std::make_unique<ConstantWeight>(c);
}

std::unique_ptr<TimeWeight> HazardTimeWeight(std::shared_ptr<const Scheduler> scheduler) {
  return std::make_unique<HazardWeight>(std::move(scheduler), /*inverse=*/false);
}

std::unique_ptr<TimeWeight> InverseHazardTimeWeight(std::shared_ptr<const Scheduler> scheduler) {
  return std::make_unique<HazardWeight>(std::move(scheduler), /*inverse=*/true);
}

std::unique_ptr<TimeWeight> UserTimeWeight(std::function<double(double)> w, std::string name) {
  return std::make_unique<UserWeight>(std::move(w), std::move(name));
}

absl::StatusOr<std::unique_ptr<TimeWeight>> MakeTimeWeight(absl::string_view spec) {
  if (spec == "constant") return ConstantTimeWeight(1.0);
  std::pair<absl::string_view, absl::string_view> kv =
      absl::StrSplit(spec, absl::MaxSplits(':', 1));
  if (kv.first == "constant") {
    auto c = ParseNumber(spec, kv.second);
    if (!c.ok()) return c.status();
    return ConstantTimeWeight(*c);
  }
  if (kv.first == "hazard" || kv.first == "inverse_hazard") {
    auto scheduler = MakeScheduler(kv.second);
    if (!scheduler.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("time weight '", spec, "': ", scheduler.status().message()));
    }
    std::shared_ptr<const Scheduler> shared = std::move(scheduler).value();
    if (kv.first == "hazard") return HazardTimeWeight(std::move(shared));
    return InverseHazardTimeWeight(std::move(shared));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown time weight '", spec,
      "' (expected constant, constant:C, hazard:SCHEDULER or inverse_hazard:SCHEDULER)"));
}

absl::StatusOr<ImportanceTime> ImportanceWeightedTime(std::shared_ptr<const TimeDistribution> p,
                                                      std::shared_ptr<const TimeWeight> w) {
  if (p == nullptr || w == nullptr) {
    return absl::InvalidArgumentError("ImportanceWeightedTime needs a distribution and a weight");
  }
  auto tilted = std::make_unique<Tilted>(std::move(p), std::move(w));
  const absl::Status status = tilted->Build();
  if (!status.ok()) return status;
  ImportanceTime out;
  out.z = tilted->z();
  out.distribution = std::move(tilted);
  return out;
}

}  // namespace jumpflow
