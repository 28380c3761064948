// @brief Time distributions P on [0, 1] and time weights w(t) for training.
//
// Training draws t ~ P and multiplies the per-sample loss by w(t). Lemma 4.7
// (Billera, Nordlinder, Murrell): weighting by w under P is the same
// objective as drawing t from P_w = w dP / Z and weighting by the constant Z.
//
// Example:
//   std::unique_ptr<TimeDistribution> p = UniformTime();
//   PhiloxStream rng(seed, sequence_id, kPurposeTime);
//   double t = p->Sample(rng);
#ifndef JUMPFLOW_TIME_DISTRIBUTION_H_
#define JUMPFLOW_TIME_DISTRIBUTION_H_

#include <memory>
#include <string>

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

}  // namespace jumpflow

#endif  // JUMPFLOW_TIME_DISTRIBUTION_H_
