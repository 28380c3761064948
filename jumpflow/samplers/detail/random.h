// @brief Private random-variate helpers of the samplers: Poisson counts and
// categorical draws over a dense weight row, all from a PhiloxStream.
//
// Example:
//   PhiloxStream rng(seed, id, kPurposeSampler);
//   int64_t k = detail::SamplePoisson(2.5, rng);
//   int32_t a = detail::SampleCategorical(row, /*exclude=*/x, total, rng);
#ifndef JUMPFLOW_SAMPLERS_DETAIL_RANDOM_H_
#define JUMPFLOW_SAMPLERS_DETAIL_RANDOM_H_

#include <cmath>
#include <cstdint>
#include <span>

#include "kernels/philox.h"

namespace jumpflow::detail {

// LogFactorial returns log(k!) for k >= 0: exact sums below 64, the Stirling
// series of log Gamma(k + 1) with three correction terms above (error < 1e-16
// relative; Abramowitz and Stegun 6.1.41). Thread-safe (std::lgamma writes
// the global signgam).
inline double LogFactorial(int64_t k) {
  if (k < 64) {
    double s = 0.0;
    for (int64_t i = 2; i <= k; ++i) s += std::log(static_cast<double>(i));
    return s;
  }
  const double x = static_cast<double>(k) + 1.0;
  const double inv = 1.0 / x, inv2 = inv * inv;
  return (x - 0.5) * std::log(x) - x + 0.91893853320467274178 +
         inv * (1.0 / 12.0 - inv2 * (1.0 / 360.0 - inv2 / 1260.0));
}

// SamplePoisson draws Poisson(mean) (mean >= 0, finite). Below mean 10:
// inversion by sequential search; above: Hoermann's transformed rejection
// PTRS (W. Hoermann, "The transformed rejection method for generating Poisson
// random variables", Insurance: Math. Econ. 12 (1993) 39-45), constants as
// published there.
inline int64_t SamplePoisson(double mean, PhiloxStream& rng) {
  if (!(mean > 0.0)) return 0;
  if (mean < 10.0) {
    double p = std::exp(-mean), cdf = p;
    const double u = rng.Uniform();
    int64_t k = 0;
    while (u > cdf && k < 1000) {
      ++k;
      p *= mean / static_cast<double>(k);
      cdf += p;
    }
    return k;
  }
  const double smu = std::sqrt(mean);
  const double b = 0.931 + 2.53 * smu;
  const double a = -0.059 + 0.02483 * b;
  const double inv_alpha = 1.1239 + 1.1328 / (b - 3.4);
  const double vr = 0.9277 - 3.6224 / (b - 2.0);
  const double log_mean = std::log(mean);
  for (;;) {
    const double u = rng.Uniform() - 0.5;
    const double v = rng.Uniform();
    const double us = 0.5 - std::fabs(u);
    const double kf = std::floor((2.0 * a / us + b) * u + mean + 0.43);
    if (us >= 0.07 && v <= vr) return static_cast<int64_t>(kf);
    if (kf < 0.0 || (us < 0.013 && v > us)) continue;
    const int64_t k = static_cast<int64_t>(kf);
    if (std::log(v) + std::log(inv_alpha) - std::log(a / (us * us) + b) <=
        -mean + kf * log_mean - LogFactorial(k)) {
      return k;
    }
  }
}

// SampleCategorical draws an index a != exclude with probability
// row[a] / total, where total = sum of row[a] over a != exclude (> 0; pass
// exclude = -1 to exclude nothing). Rounding that runs past the end returns
// the last index with positive weight.
inline int32_t SampleCategorical(std::span<const double> row, int32_t exclude, double total,
                                 PhiloxStream& rng) {
  double target = rng.Uniform() * total;
  int32_t last = -1;
  const int32_t n = static_cast<int32_t>(row.size());
  for (int32_t a = 0; a < n; ++a) {
    if (a == exclude || !(row[a] > 0.0)) continue;
    last = a;
    target -= row[a];
    if (target < 0.0) return a;
  }
  return last;
}

}  // namespace jumpflow::detail

#endif  // JUMPFLOW_SAMPLERS_DETAIL_RANDOM_H_
