// @brief Time distributions P on [0, 1] and time weights w(t) for training.
//
// Training draws t ~ P and multiplies the per-sample loss by w(t). Lemma 4.7
// (Billera, Nordlinder, Murrell): weighting by w under P is the same
// objective as drawing t from P_w = w dP / Z, Z = E_P[w], and weighting by
// the constant Z:  E_P[w(t) f(t)] = Z E_{P_w}[f(t)]. ImportanceWeightedTime()
// performs that conversion (importance-sampled time).
//
// Distribution specs (MakeTimeDistribution):
//   "uniform"                 U(0, 1)
//   "beta:A,B"                Beta(A, B), A, B > 0
//   "logitnormal:MU,SIGMA"    t = sigmoid(MU + SIGMA N), N ~ N(0, 1), SIGMA > 0
//   "mix:W1*SPEC1+W2*SPEC2+..."  mixture with weights W_i > 0 (normalised
//                             to sum 1); components are non-mixture specs
//                             and may not contain '+'
//   "tilted:WEIGHT|SPEC"      P_w for weight spec WEIGHT and distribution
//                             SPEC (see ImportanceWeightedTime)
// Weight specs (MakeTimeWeight):
//   "constant" or "constant:C"   w = C (default 1), C > 0
//   "hazard:SCHED"               w = h(t) of scheduler spec SCHED
//                                (jumpflow/scheduler.h), e.g. "hazard:poly:3"
//   "inverse_hazard:SCHED"       w = 1 / h(t), capped at kMaxTimeWeight
// User weights come from UserTimeWeight().
//
// Reproducibility: Sample() consumes draws only from the PhiloxStream it is
// given, so a time is a function of the stream's (seed, counter) key.
//
// Example:
//   JUMPFLOW_ASSIGN_OR_RETURN(std::shared_ptr<const TimeDistribution> p,
//                             MakeTimeDistribution("logitnormal:0,1"));
//   JUMPFLOW_ASSIGN_OR_RETURN(std::shared_ptr<const TimeWeight> w,
//                             MakeTimeWeight("hazard:poly:3"));
//   JUMPFLOW_ASSIGN_OR_RETURN(ImportanceTime pw, ImportanceWeightedTime(p, w));
//   PhiloxStream rng(seed, sequence_id, kPurposeTime);
//   double t = pw.distribution->Sample(rng);   // loss weight: pw.z
#ifndef JUMPFLOW_TIME_DISTRIBUTION_H_
#define JUMPFLOW_TIME_DISTRIBUTION_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "jumpflow/scheduler.h"
#include "kernels/philox.h"

namespace jumpflow {

// TimeDistribution is an immutable, thread-safe distribution on [0, 1] with a
// density positive almost everywhere.
class TimeDistribution {
 public:
  virtual ~TimeDistribution() = default;
  // Name returns a spec that the factory accepts.
  virtual std::string Name() const = 0;
  // Sample draws t in [0, 1] using only `rng` (reproducible from its key).
  virtual double Sample(PhiloxStream& rng) const = 0;
  // Density returns the density at t (0 outside [0, 1]).
  virtual double Density(double t) const = 0;
};

// UniformTime is U(0, 1).
std::unique_ptr<TimeDistribution> UniformTime();

// BetaTime is Beta(a, b), a, b > 0 (finite). Sampling inverts the CDF
// I_t(a, b) with a safeguarded Newton iteration (one uniform per sample).
absl::StatusOr<std::unique_ptr<TimeDistribution>> BetaTime(double a, double b);

// LogitNormalTime is t = sigmoid(mu + sigma N), sigma > 0 (two uniforms per
// sample, Box-Muller).
absl::StatusOr<std::unique_ptr<TimeDistribution>> LogitNormalTime(double mu, double sigma);

// MixtureTime mixes `components` with `weights` (positive, finite; they are
// normalised). One uniform picks the component, then it samples.
absl::StatusOr<std::unique_ptr<TimeDistribution>> MixtureTime(
    std::vector<double> weights, std::vector<std::unique_ptr<TimeDistribution>> components);

// MakeTimeDistribution parses a spec (file comment); InvalidArgument names
// the bad spec.
absl::StatusOr<std::unique_ptr<TimeDistribution>> MakeTimeDistribution(absl::string_view spec);

// kMaxTimeWeight caps every built-in weight (1 / h at a zero hazard).
inline constexpr double kMaxTimeWeight = 1e12;

// TimeWeight is an immutable, thread-safe weight w(t) >= 0 on [0, 1].
class TimeWeight {
 public:
  virtual ~TimeWeight() = default;
  // Name returns the spec MakeTimeWeight() accepts (user weights: the name
  // they were given).
  virtual std::string Name() const = 0;
  // Weight returns w(t), finite and >= 0 (t is clamped into [0, 1]).
  virtual double Weight(double t) const = 0;
};

// ConstantTimeWeight is w = c (c > 0 finite, else InvalidArgument).
absl::StatusOr<std::unique_ptr<TimeWeight>> ConstantTimeWeight(double c);
// HazardTimeWeight is w = h(t) of `scheduler` (capped at Scheduler::kMaxHazard).
std::unique_ptr<TimeWeight> HazardTimeWeight(std::shared_ptr<const Scheduler> scheduler);
// InverseHazardTimeWeight is w = 1 / h(t), capped at kMaxTimeWeight.
std::unique_ptr<TimeWeight> InverseHazardTimeWeight(std::shared_ptr<const Scheduler> scheduler);
// UserTimeWeight wraps `w`; values that are NaN or negative read as 0 and
// values above kMaxTimeWeight (or +inf) as kMaxTimeWeight.
std::unique_ptr<TimeWeight> UserTimeWeight(std::function<double(double)> w,
                                           std::string name = "user");
// MakeTimeWeight parses a weight spec (file comment).
absl::StatusOr<std::unique_ptr<TimeWeight>> MakeTimeWeight(absl::string_view spec);

// ImportanceTime is the Lemma 4.7 pair: sample t from `distribution` (P_w)
// and weight every sample's loss by `z` (= E_P[w]).
struct ImportanceTime {
  std::unique_ptr<TimeDistribution> distribution;
  double z = 0.0;
};

// ImportanceWeightedTime builds P_w = w p / Z and Z = integral of w p.
//
// Z and the CDF of P_w are tabulated once by composite 5-point
// Gauss-Legendre quadrature on a mesh graded towards both ends: 1024
// uniform cells on [1/4, 3/4], 32 uniform cells in each octave
// [2^-(k+1), 2^-k] down to 2^-62 and [1 - 2^-k, 1 - 2^-(k+1)] up to
// 1 - 2^-46, and one innermost cell at each end; graded cells integrate
// endpoint singularities t^beta, (1 - t)^beta (beta > -1) accurately.
// Sampling draws one uniform U, finds the cell holding U Z by binary search
// and solves for t inside it with a safeguarded Newton iteration on 5-point
// Gauss-Legendre partial integrals, so samples follow w p / Z up to the
// quadrature error (~1e-10 relative for smooth w p, ~1e-6 with endpoint
// singularities). Density() is the exact w(t) p(t) / Z.
//
// Errors (InvalidArgument): w p is negative or not finite at a node, Z is
// not in (0, 1e12], the 3- and 5-point rules disagree on Z by more than
// 1e-6 relative (rough integrand), or an innermost cell holds more than 1e-6
// of Z: w p is not integrable (e.g. w = h(t) under a P whose density stays
// positive at t = 1: E_P[h] = H(1) = infinity) or has an endpoint
// singularity stronger than about t^-0.55.
absl::StatusOr<ImportanceTime> ImportanceWeightedTime(std::shared_ptr<const TimeDistribution> p,
                                                      std::shared_ptr<const TimeWeight> w);

}  // namespace jumpflow

#endif  // JUMPFLOW_TIME_DISTRIBUTION_H_
