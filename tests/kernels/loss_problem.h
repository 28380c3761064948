// @brief Random float loss problems (kernels/loss.h) shared by the backend
// comparison tests: every parametrization / divergence, dense or sparse
// targets, weights (some 0), scales, masks and excluded columns, values in
// the region where every divergence is smooth (BCE predictions stay < 1).
//
// Example:
//   LossProblem pr = MakeLossProblem(Parametrization::kSoftmax, Divergence::kPoisson,
//                                    /*dense=*/false, /*rows=*/24, /*v=*/37, /*seed=*/1);
//   LossResult r = FusedLossCpu(pr.Args(grad.data(), row_loss.data()));
#ifndef JUMPFLOW_TESTS_KERNELS_LOSS_PROBLEM_H_
#define JUMPFLOW_TESTS_KERNELS_LOSS_PROBLEM_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "kernels/loss_args.h"

namespace jumpflow::kernels::testing {

constexpr Parametrization kAllLossParams[] = {Parametrization::kSoftmax,
                                              Parametrization::kSoftplus,
                                              Parametrization::kExp,
                                              Parametrization::kSigmoid,
                                              Parametrization::kLogRateSoftmax,
                                              Parametrization::kSoftplusRateSoftmax};
constexpr Divergence kAllLossDivs[] = {Divergence::kPoisson, Divergence::kBce, Divergence::kMse,
                                       Divergence::kGeneralizedKl};

inline std::string LossLabel(Parametrization p, Divergence d, bool dense) {
  return "param " + std::to_string(static_cast<int>(p)) + " div " +
         std::to_string(static_cast<int>(d)) + (dense ? " dense" : " sparse");
}

// Problem holds one loss problem in type T with owned buffers (weights,
// scales, mask and excluded columns may be empty: no such input).
template <typename T>
struct Problem {
  Parametrization param = Parametrization::kSoftmax;
  Divergence div = Divergence::kPoisson;
  Reduction reduction = Reduction::kSum;
  int64_t rows = 0, v = 0, cols = 0;
  bool dense = false;
  std::vector<T> raw, dense_targets, sparse_values, weights, scales;
  std::vector<int64_t> offsets;
  std::vector<int32_t> sparse_cols, excluded;
  std::vector<uint8_t> mask;

  LossArgs<T> Args(T* grad, T* row_loss) const {
    LossArgs<T> a;
    a.parametrization = param;
    a.divergence = div;
    a.reduction = reduction;
    a.rows = rows;
    a.targets_per_row = v;
    a.raw = raw.data();
    if (dense) {
      a.dense_targets = dense_targets.data();
    } else {
      a.sparse_row_offsets = offsets.data();
      a.sparse_cols = sparse_cols.data();
      a.sparse_values = sparse_values.data();
    }
    a.row_weights = weights.empty() ? nullptr : weights.data();
    a.row_scales = scales.empty() ? nullptr : scales.data();
    a.row_mask = mask.empty() ? nullptr : mask.data();
    a.excluded_cols = excluded.empty() ? nullptr : excluded.data();
    a.grad = grad;
    a.row_loss = row_loss;
    return a;
  }

  // Target a_j of row r (0 when absent).
  double Target(int64_t r, int64_t j) const {
    if (dense) return static_cast<double>(dense_targets[static_cast<size_t>(r * v + j)]);
    for (int64_t k = offsets[static_cast<size_t>(r)]; k < offsets[static_cast<size_t>(r) + 1];
         ++k) {
      if (sparse_cols[static_cast<size_t>(k)] == j) {
        return static_cast<double>(sparse_values[static_cast<size_t>(k)]);
      }
    }
    return 0.0;
  }

  // GradScales returns, per row, the size of the terms its gradient entries
  // are differences of: gw c (1 + max |a|) (gw = weight, / active rows for
  // the mean), so an entry that cancels to ~0 is compared at that scale.
  // Needs the weights and scales.
  std::vector<double> GradScales() const {
    int64_t active = 0;
    for (uint8_t m : mask) active += m != 0;
    const double red = reduction == Reduction::kMean && active > 0 ? 1.0 / active : 1.0;
    std::vector<double> out;
    for (int64_t r = 0; r < rows; ++r) {
      double max_a = 0.0;
      if (dense) {
        for (int64_t j = 0; j < v; ++j) {
          max_a = std::max(max_a, std::fabs(static_cast<double>(dense_targets[r * v + j])));
        }
      } else {
        for (int64_t k = offsets[r]; k < offsets[r + 1]; ++k) {
          max_a = std::max(max_a, std::fabs(static_cast<double>(sparse_values[k])));
        }
      }
      out.push_back(red * static_cast<double>(weights[static_cast<size_t>(r)]) *
                    static_cast<double>(scales[static_cast<size_t>(r)]) * (1.0 + max_a));
    }
    return out;
  }

  template <typename U>
  Problem<U> Cast() const {
    Problem<U> p;
    p.param = param;
    p.div = div;
    p.rows = rows;
    p.v = v;
    p.cols = cols;
    p.dense = dense;
    p.reduction = reduction;
    auto cast = [](const std::vector<T>& x) { return std::vector<U>(x.begin(), x.end()); };
    p.raw = cast(raw);
    p.dense_targets = cast(dense_targets);
    p.sparse_values = cast(sparse_values);
    p.weights = cast(weights);
    p.scales = cast(scales);
    p.offsets = offsets;
    p.sparse_cols = sparse_cols;
    p.excluded = excluded;
    p.mask = mask;
    return p;
  }
};

// LossProblem is the float problem the backend comparisons use.
using LossProblem = Problem<float>;

// MakeProblem draws a random problem whose predictions stay in the region
// where every divergence is smooth: for BCE all b = mhat stay below ~0.6
// (so the 1 - b floor is never active). with_extras: weights (every fifth
// 0), scales, a mask (every seventh row off) and excluded columns.
inline Problem<double> MakeProblem(Parametrization p, Divergence d, bool dense, int64_t rows,
                                   int64_t v, uint64_t seed, bool with_extras = true) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  Problem<double> pr;
  pr.param = p;
  pr.div = d;
  pr.rows = rows;
  pr.v = v;
  pr.cols = RawColumns(p, v);
  pr.dense = dense;
  const bool bce = d == Divergence::kBce;
  pr.raw.resize(static_cast<size_t>(rows * pr.cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t k = 0; k < pr.cols; ++k) {
      double z = -2.0 + 3.0 * u01(rng);                     // [-2, 1]
      if (HasRateColumn(p) && k == 0) z = -1.0 + u01(rng);  // rate column in [-1, 0]
      pr.raw[static_cast<size_t>(r * pr.cols + k)] = z;
    }
  }
  auto draw_target = [&]() {
    if (bce) return u01(rng);  // [0, 1]
    if (d == Divergence::kMse) return 2.0 * u01(rng) - 0.5;
    return std::floor(3.0 * u01(rng)) * 0.5 + (u01(rng) < 0.3 ? 0.0 : 0.25);  // >= 0, some 0.25s
  };
  pr.offsets.push_back(0);
  if (dense) pr.dense_targets.resize(static_cast<size_t>(rows * v));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < v; ++j) {
      if (dense) {
        pr.dense_targets[static_cast<size_t>(r * v + j)] = u01(rng) < 0.3 ? 0.0 : draw_target();
      } else if (u01(rng) < 0.35) {
        pr.sparse_cols.push_back(static_cast<int32_t>(j));
        pr.sparse_values.push_back(draw_target());
      }
    }
    pr.offsets.push_back(static_cast<int64_t>(pr.sparse_cols.size()));
  }
  if (with_extras) {
    for (int64_t r = 0; r < rows; ++r) {
      pr.weights.push_back(r % 5 == 4 ? 0.0 : 0.5 + u01(rng));
      // BCE with unbounded parametrizations needs a small scale to keep b < 1;
      // sigmoid gets c = 1 on even rows (its exact branch) and < 1 otherwise.
      double c = 0.3 + 0.6 * u01(rng);
      if (p == Parametrization::kSigmoid && r % 2 == 0) c = 1.0;
      if (bce && p != Parametrization::kSigmoid && p != Parametrization::kSoftmax) {
        c = 0.15 + 0.15 * u01(rng);
      }
      pr.scales.push_back(c);
      pr.mask.push_back(r % 7 == 3 ? 0 : 1);
      pr.excluded.push_back(r % 3 == 0 ? -1 : static_cast<int32_t>(rng() % v));
    }
  }
  return pr;
}

// MakeLossProblem is MakeProblem with every extra, in float.
inline LossProblem MakeLossProblem(Parametrization p, Divergence d, bool dense, int64_t rows,
                                   int64_t v, uint64_t seed) {
  return MakeProblem(p, d, dense, rows, v, seed).Cast<float>();
}

}  // namespace jumpflow::kernels::testing

#endif  // JUMPFLOW_TESTS_KERNELS_LOSS_PROBLEM_H_
