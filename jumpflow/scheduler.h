// @brief Schedulers kappa(t): the event-time law of every jump process.
//
// A scheduler is a CDF kappa on [0, 1] with kappa(0) = 0, kappa(1) = 1. An
// element's event time has CDF kappa; its hazard is h = kappa' / (1 - kappa),
// its cumulative hazard H = -log(1 - kappa). Everything is computed in
// survival form S(t) = 1 - kappa(t) (closed forms that avoid cancellation
// near t = 1), which is what exact samplers need.
//
// Numerical contract (no NaN or inf ever escapes): t is clamped into [0, 1];
// S(t) is floored at kMinSurvival (1e-300) inside H, so H(t) <= -log(1e-300)
// ~ 690.8 (H(1) returns that cap); the hazard is capped at kMaxHazard (1e12),
// which it reaches only within ~1e-12 of t = 1 for the built-in schedulers.
// InverseSurvival(u) clamps u into [0, 1] and returns 1 for u = 0.
//
// Example:
//   JUMPFLOW_ASSIGN_OR_RETURN(auto sched, MakeScheduler("poly:3"));
//   double k = sched->Kappa(0.5);             // 0.125
//   double t = sched->InverseSurvival(0.5);   // kappa(t) = 0.5
#ifndef JUMPFLOW_SCHEDULER_H_
#define JUMPFLOW_SCHEDULER_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/status/statusor.h"

namespace jumpflow {

// Scheduler is an immutable, thread-safe kappa(t).
class Scheduler {
 public:
  static constexpr double kMinSurvival = 1e-300;
  static constexpr double kMaxHazard = 1e12;

  virtual ~Scheduler() = default;

  // Name returns the spec MakeScheduler() accepts for this scheduler.
  virtual std::string Name() const = 0;

  // Kappa returns kappa(t) in [0, 1].
  virtual double Kappa(double t) const = 0;
  // KappaDerivative returns kappa'(t) >= 0 (finite).
  virtual double KappaDerivative(double t) const = 0;
  // Survival returns 1 - kappa(t), accurate when it is tiny.
  virtual double Survival(double t) const = 0;
  // InverseSurvival returns the smallest t with Survival(t) <= u.
  virtual double InverseSurvival(double u) const = 0;

  // InverseKappa returns t with kappa(t) = k (k clamped into [0, 1]).
  double InverseKappa(double k) const;
  // Hazard returns kappa'(t) / (1 - kappa(t)), capped at kMaxHazard.
  double Hazard(double t) const;
  // CumulativeHazard returns H(t) = -log(1 - kappa(t)), capped (see above).
  double CumulativeHazard(double t) const;
  // InverseCumulativeHazard returns t with H(t) = big_h (big_h >= 0).
  double InverseCumulativeHazard(double big_h) const;
};

// LinearScheduler: kappa(t) = t.
std::unique_ptr<Scheduler> LinearScheduler();
// PolynomialScheduler: kappa(t) = t^n, n > 0 (Edit Flows uses n = 3).
std::unique_ptr<Scheduler> PolynomialScheduler(double n);
// CosineScheduler: kappa(t) = sin^2(pi t / 2).
std::unique_ptr<Scheduler> CosineScheduler();
// BetaScheduler: kappa = regularized incomplete beta I_t(a, b), a, b > 0.
std::unique_ptr<Scheduler> BetaScheduler(double a, double b);
// CustomScheduler wraps user functions kappa and kappa' (kappa must be a CDF
// on [0, 1]); the survival is 1 - kappa and the inverse is found by
// bisection, so accuracy near t = 1 is that of the user's kappa.
std::unique_ptr<Scheduler> CustomScheduler(std::function<double(double)> kappa,
                                           std::function<double(double)> kappa_derivative,
                                           std::string name = "custom");

// MakeScheduler parses "linear", "poly:N", "cosine" or "beta:A,B" and fails
// with InvalidArgument naming the bad spec.
absl::StatusOr<std::unique_ptr<Scheduler>> MakeScheduler(absl::string_view spec);

// RegularizedIncompleteBeta returns I_x(a, b) (continued fraction, Lentz's
// method; Numerical Recipes 3rd ed. section 6.4); exposed for tests.
double RegularizedIncompleteBeta(double a, double b, double x);

}  // namespace jumpflow

#endif  // JUMPFLOW_SCHEDULER_H_
