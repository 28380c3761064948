// @brief Multiplier parametrizations, divergences and reductions shared by
// the fused kernels (kernels/loss.h, kernels/sample_step.h,
// kernels/gillespie.h). Plain enums and constexpr helpers, usable from CUDA
// translation units (no abseil, no CUDA headers).
//
// Example:
//   const int64_t cols = kernels::RawColumns(Parametrization::kLogRateSoftmax, V);  // V + 1
#ifndef JUMPFLOW_KERNELS_PARAMETRIZATION_H_
#define JUMPFLOW_KERNELS_PARAMETRIZATION_H_

#include <cstdint>

namespace jumpflow::kernels {

// Parametrization maps a row of raw outputs to V multipliers (file comment).
enum class Parametrization : uint8_t {
  kSoftmax = 0,
  kSoftplus = 1,
  kExp = 2,
  kSigmoid = 3,
  kLogRateSoftmax = 4,
  kSoftplusRateSoftmax = 5,
};

// Divergence is the per-component Bregman divergence D(a, b) (file comment).
enum class Divergence : uint8_t {
  kPoisson = 0,
  kBce = 1,
  kMse = 2,
  kGeneralizedKl = 3,
};

// Reduction says whether a call returns (and differentiates) the sum over
// rows or the mean over unmasked rows.
enum class Reduction : uint8_t { kSum = 0, kMean = 1 };

// kMaxExpArg bounds the argument of exp() in the kExp and kLogRateSoftmax
// parametrizations (float: 80, exp(80) ~ 5.5e34 < FLT_MAX; double: 700), so
// multipliers stay finite; above it the multiplier is constant in z.
template <typename T>
constexpr T kMaxExpArg = sizeof(T) == 4 ? T(80) : T(700);

// HasRateColumn is true for the total-rate x softmax parametrizations.
constexpr bool HasRateColumn(Parametrization p) {
  return p == Parametrization::kLogRateSoftmax || p == Parametrization::kSoftplusRateSoftmax;
}

// IsSoftmaxFamily is true when the V multipliers of a row share a softmax.
constexpr bool IsSoftmaxFamily(Parametrization p) {
  return p == Parametrization::kSoftmax || HasRateColumn(p);
}

// RawColumns returns the number of raw outputs per row for V multipliers:
// V, or V + 1 with a rate column.
constexpr int64_t RawColumns(Parametrization p, int64_t targets_per_row) {
  return targets_per_row + (HasRateColumn(p) ? 1 : 0);
}

}  // namespace jumpflow::kernels

#endif  // JUMPFLOW_KERNELS_PARAMETRIZATION_H_
