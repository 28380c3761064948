// @brief Tests of the fused parametrization + Bregman loss kernels
// (kernels/loss.h): loss values against a naive reference written here,
// finite-difference gradient checks in double for every (divergence,
// parametrization) pair, float (vectorised) vs double agreement,
// extreme inputs, and thread-count independence.
#include "kernels/loss.h"

#include <gtest/gtest.h>
#include <oneapi/tbb/info.h>
#include <oneapi/tbb/task_arena.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "tests/kernels/loss_problem.h"

namespace jumpflow::kernels {
namespace {

using testing::kAllLossDivs;
using testing::kAllLossParams;
using testing::LossLabel;
using testing::MakeProblem;
using testing::Problem;

// --- naive reference, written independently of the kernel ------------------

double RefSoftplus(double z) {
  return z > 0 ? z + std::log1p(std::exp(-z)) : std::log1p(std::exp(z));
}

std::vector<double> RefMultipliers(Parametrization p, const double* z, int64_t v, double c) {
  std::vector<double> m(static_cast<size_t>(v));
  if (IsSoftmaxFamily(p)) {
    const double* logits = z + (HasRateColumn(p) ? 1 : 0);
    double lambda = c;
    if (p == Parametrization::kLogRateSoftmax) lambda = c * std::exp(z[0]);
    if (p == Parametrization::kSoftplusRateSoftmax) lambda = c * RefSoftplus(z[0]);
    const double mx = *std::max_element(logits, logits + v);
    double s = 0.0;
    for (int64_t j = 0; j < v; ++j) s += std::exp(logits[j] - mx);
    for (int64_t j = 0; j < v; ++j)
      m[static_cast<size_t>(j)] = lambda * std::exp(logits[j] - mx) / s;
    return m;
  }
  for (int64_t j = 0; j < v; ++j) {
    const double x = z[j];
    double s = 0.0;
    if (p == Parametrization::kSoftplus) s = RefSoftplus(x);
    if (p == Parametrization::kExp) s = std::exp(x);
    if (p == Parametrization::kSigmoid) s = 1.0 / (1.0 + std::exp(-x));
    m[static_cast<size_t>(j)] = c * s;
  }
  return m;
}

double RefDivergence(Divergence d, double a, double b) {
  auto xlog = [](double x, double y) { return x > 0 ? x * std::log(x / y) : 0.0; };
  switch (d) {
    case Divergence::kPoisson:
      return xlog(a, b) - a + b;
    case Divergence::kBce:
      return xlog(a, b) + xlog(1.0 - a, 1.0 - b);
    case Divergence::kMse:
      return (a - b) * (a - b);
    case Divergence::kGeneralizedKl:
      return xlog(a, b);
  }
  return 0.0;
}

// RefRowLoss is weight_r * sum_{j != x} D(a_j, mhat_j) (0 for masked rows).
double RefRowLoss(const Problem<double>& pr, int64_t r) {
  if (!pr.mask.empty() && pr.mask[static_cast<size_t>(r)] == 0) return 0.0;
  const double w = pr.weights.empty() ? 1.0 : pr.weights[static_cast<size_t>(r)];
  const double c = pr.scales.empty() ? 1.0 : pr.scales[static_cast<size_t>(r)];
  const int32_t x = pr.excluded.empty() ? -1 : pr.excluded[static_cast<size_t>(r)];
  const std::vector<double> m = RefMultipliers(pr.param, pr.raw.data() + r * pr.cols, pr.v, c);
  double total = 0.0;
  for (int64_t j = 0; j < pr.v; ++j) {
    if (j == x) continue;
    total += RefDivergence(pr.div, pr.Target(r, j), m[static_cast<size_t>(j)]);
  }
  return w * total;
}

// --- tests ---------------------------------------------------------------

TEST(FusedLossTest, LossMatchesNaiveReferenceForEveryPair) {
  uint64_t seed = 1;
  for (Parametrization p : kAllLossParams) {
    for (Divergence d : kAllLossDivs) {
      for (bool dense : {false, true}) {
        SCOPED_TRACE(LossLabel(p, d, dense));
        const Problem<double> pr = MakeProblem(p, d, dense, 14, 9, seed++);
        std::vector<double> grad(pr.raw.size()), row_loss(static_cast<size_t>(pr.rows));
        const LossResult res = FusedLossCpu(pr.Args(grad.data(), row_loss.data()));
        double ref_sum = 0.0;
        int64_t active = 0;
        for (int64_t r = 0; r < pr.rows; ++r) {
          const double ref = RefRowLoss(pr, r);
          EXPECT_NEAR(row_loss[static_cast<size_t>(r)], ref, 1e-12 * (1.0 + std::fabs(ref)))
              << "row " << r;
          ref_sum += ref;
          active += pr.mask[static_cast<size_t>(r)] != 0 ? 1 : 0;
        }
        EXPECT_NEAR(res.sum, ref_sum, 1e-12 * (1.0 + std::fabs(ref_sum)));
        EXPECT_EQ(res.active_rows, active);
        EXPECT_NEAR(res.mean, ref_sum / static_cast<double>(active), 1e-12 * (1.0 + ref_sum));
        EXPECT_EQ(res.first_nonfinite_row, -1);
      }
    }
  }
}

// Central differences in double: step 1e-6, error O(h^2 L''') + O(eps L / h)
// ~ 1e-9 here; a wrong gradient formula is off by O(1e-2) or more.
TEST(FusedLossTest, GradientMatchesFiniteDifferencesForEveryPair) {
  uint64_t seed = 100;
  for (Reduction reduction : {Reduction::kSum, Reduction::kMean}) {
    for (Parametrization p : kAllLossParams) {
      for (Divergence d : kAllLossDivs) {
        for (bool dense : {false, true}) {
          SCOPED_TRACE(LossLabel(p, d, dense) + (reduction == Reduction::kMean ? " mean" : " sum"));
          Problem<double> pr = MakeProblem(p, d, dense, 7, 6, seed++);
          pr.reduction = reduction;
          std::vector<double> grad(pr.raw.size(), std::nan(""));
          const LossResult res = FusedLossCpu(pr.Args(grad.data(), nullptr));
          auto value = [&](const Problem<double>& q) {
            const LossResult r = FusedLossCpu(q.Args(nullptr, nullptr));
            return reduction == Reduction::kMean ? r.mean : r.sum;
          };
          EXPECT_DOUBLE_EQ(value(pr), reduction == Reduction::kMean ? res.mean : res.sum);
          constexpr double kStep = 1e-6;
          for (size_t i = 0; i < pr.raw.size(); ++i) {
            Problem<double> plus = pr, minus = pr;
            plus.raw[i] += kStep;
            minus.raw[i] -= kStep;
            const double fd = (value(plus) - value(minus)) / (2.0 * kStep);
            ASSERT_NEAR(grad[i], fd, 1e-6 * (1.0 + std::fabs(fd)))
                << "raw index " << i << " (row " << static_cast<int64_t>(i) / pr.cols << ")";
          }
        }
      }
    }
  }
}

// On the simplex (distribution targets against a plain softmax, no excluded
// column, c = 1) the generalized KL sum a log(a / b) equals the Poisson
// (I-divergence) sum, and so do the gradients (b - a for both).
TEST(FusedLossTest, GeneralizedKlEqualsPoissonOnTheSimplex) {
  Problem<double> pr =
      MakeProblem(Parametrization::kSoftmax, Divergence::kPoisson, true, 9, 12, 77, false);
  for (int64_t r = 0; r < pr.rows; ++r) {
    double total = 0.0;
    for (int64_t j = 0; j < pr.v; ++j) total += pr.dense_targets[static_cast<size_t>(r * pr.v + j)];
    ASSERT_GT(total, 0.0);
    for (int64_t j = 0; j < pr.v; ++j) pr.dense_targets[static_cast<size_t>(r * pr.v + j)] /= total;
  }
  Problem<double> kl = pr;
  kl.div = Divergence::kGeneralizedKl;
  std::vector<double> gp(pr.raw.size()), gk(pr.raw.size()), lp(9), lk(9);
  FusedLossCpu(pr.Args(gp.data(), lp.data()));
  FusedLossCpu(kl.Args(gk.data(), lk.data()));
  for (size_t r = 0; r < lp.size(); ++r) EXPECT_NEAR(lk[r], lp[r], 1e-13) << r;
  for (size_t i = 0; i < gp.size(); ++i) EXPECT_NEAR(gk[i], gp[i], 1e-13) << i;
}

TEST(FusedLossTest, MaskedAndZeroWeightRowsHaveZeroGradientAndLoss) {
  const Problem<double> pr =
      MakeProblem(Parametrization::kSoftmax, Divergence::kPoisson, false, 21, 5, 7);
  std::vector<double> grad(pr.raw.size(), 123.0), row_loss(static_cast<size_t>(pr.rows), 5.0);
  FusedLossCpu(pr.Args(grad.data(), row_loss.data()));
  int checked = 0;
  for (int64_t r = 0; r < pr.rows; ++r) {
    if (pr.mask[static_cast<size_t>(r)] != 0 && pr.weights[static_cast<size_t>(r)] != 0.0) {
      continue;
    }
    ++checked;
    EXPECT_EQ(row_loss[static_cast<size_t>(r)], 0.0);
    for (int64_t k = 0; k < pr.cols; ++k)
      EXPECT_EQ(grad[static_cast<size_t>(r * pr.cols + k)], 0.0);
  }
  EXPECT_GE(checked, 5);
}

// The float path (generic-vector exp/log, in-place and streaming writes) must
// agree with the double reference path.
void ExpectFloatMatchesDouble(const Problem<double>& pd, double rel_tol) {
  const Problem<float> pf = pd.Cast<float>();
  std::vector<double> gd(pd.raw.size()), ld(static_cast<size_t>(pd.rows));
  std::vector<float> gf(pd.raw.size()), lf(static_cast<size_t>(pd.rows));
  const LossResult rd = FusedLossCpu(pd.Args(gd.data(), ld.data()));
  const LossResult rf = FusedLossCpu(pf.Args(gf.data(), lf.data()));
  ASSERT_EQ(rf.first_nonfinite_row, -1);
  EXPECT_NEAR(rf.sum, rd.sum, rel_tol * (1.0 + std::fabs(rd.sum)));
  // A gradient entry is a difference of terms of size ~ w c (1 + max a)
  // (e.g. w (b_k - a_k - p_k BG) for Poisson), so float rounding is relative
  // to that scale (or to the row's largest entry), not to the entry itself,
  // which may cancel to ~0.
  int64_t bad = 0;
  for (int64_t r = 0; r < pd.rows; ++r) {
    double row_max = 0.0, max_target = 0.0;
    for (int64_t k = 0; k < pd.cols; ++k) {
      row_max = std::max(row_max, std::fabs(gd[static_cast<size_t>(r * pd.cols + k)]));
    }
    if (pd.dense) {
      for (int64_t j = 0; j < pd.v; ++j) {
        max_target =
            std::max(max_target, std::fabs(pd.dense_targets[static_cast<size_t>(r * pd.v + j)]));
      }
    } else {
      for (int64_t k = pd.offsets[static_cast<size_t>(r)];
           k < pd.offsets[static_cast<size_t>(r) + 1]; ++k) {
        max_target = std::max(max_target, std::fabs(pd.sparse_values[static_cast<size_t>(k)]));
      }
    }
    const double w = pd.weights.empty() ? 1.0 : pd.weights[static_cast<size_t>(r)];
    const double c = pd.scales.empty() ? 1.0 : pd.scales[static_cast<size_t>(r)];
    const double scale = std::max(row_max, w * c * (1.0 + max_target));
    for (int64_t k = 0; k < pd.cols; ++k) {
      const size_t i = static_cast<size_t>(r * pd.cols + k);
      if (std::fabs(gf[i] - gd[i]) > rel_tol * scale) {
        if (++bad < 5) {
          ADD_FAILURE() << "grad [" << r << ", " << k << "]: float " << gf[i] << " double " << gd[i]
                        << " (row max " << row_max << ")";
        }
      }
    }
    EXPECT_NEAR(lf[static_cast<size_t>(r)], ld[static_cast<size_t>(r)],
                rel_tol * (1.0 + std::fabs(ld[static_cast<size_t>(r)])));
  }
  EXPECT_EQ(bad, 0);
}

TEST(FusedLossTest, FloatMatchesDoubleForEveryPairAndWidth) {
  uint64_t seed = 500;
  // Widths around the 16-lane vectors: pure tail, exact vectors, vectors + tail.
  for (int64_t v : {3, 16, 37, 300}) {
    for (Parametrization p : kAllLossParams) {
      for (Divergence d : kAllLossDivs) {
        for (bool dense : {false, true}) {
          SCOPED_TRACE(LossLabel(p, d, dense) + " V " + std::to_string(v));
          ExpectFloatMatchesDouble(MakeProblem(p, d, dense, 40, v, seed++), 2e-5);
        }
      }
    }
  }
}

// MakeOneHotProblem is the DFM case on short rows: kSoftmax, one sparse
// target per row (mostly a = 1, some 0.5, 2 and 0; some on the excluded
// column), logits spread over [-8, 8], positive weights, no scales or mask:
// the rows the CPU backend's 16-rows-at-a-time path (V <= 32) takes.
Problem<double> MakeOneHotProblem(Divergence d, int64_t rows, int64_t v, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  Problem<double> pr;
  pr.param = Parametrization::kSoftmax;
  pr.div = d;
  pr.rows = rows;
  pr.v = v;
  pr.cols = v;
  for (int64_t k = 0; k < rows * v; ++k) pr.raw.push_back(-8.0 + 16.0 * u01(rng));
  pr.offsets.push_back(0);
  for (int64_t r = 0; r < rows; ++r) {
    const int32_t t = static_cast<int32_t>(rng() % static_cast<uint64_t>(v));
    const int32_t x = r % 4 == 1 ? -1 : r % 9 == 2 ? t : static_cast<int32_t>(rng() % v);
    const double a = r % 5 == 3 ? 0.5 : r % 11 == 4 ? 2.0 : r % 13 == 6 ? 0.0 : 1.0;
    pr.sparse_cols.push_back(t);
    pr.sparse_values.push_back(a);
    pr.offsets.push_back(r + 1);
    pr.excluded.push_back(x);
    pr.weights.push_back(0.5 + u01(rng));
  }
  return pr;
}

// Short one-hot rows (full 16-row blocks, a partial last block, widths
// below, at and between the vectors) agree with the double path, with and
// without a gradient, for both reductions; a block with a zero-weight row,
// a masked row, a row with two targets or a non-finite logit takes the
// general path and still agrees.
TEST(FusedLossTest, ShortOneHotRowsMatchDouble) {
  uint64_t seed = 700;
  for (int64_t v : {5, 16, 26, 32}) {
    for (Divergence d : {Divergence::kPoisson, Divergence::kGeneralizedKl}) {
      for (Reduction reduction : {Reduction::kSum, Reduction::kMean}) {
        SCOPED_TRACE("V " + std::to_string(v) + " div " + std::to_string(static_cast<int>(d)));
        Problem<double> pd = MakeOneHotProblem(d, 16 * 4 + 5, v, seed++);
        pd.reduction = reduction;
        ExpectFloatMatchesDouble(pd, 2e-5);
        // Loss only: the same sum as with the gradient.
        const Problem<float> pf = pd.Cast<float>();
        std::vector<float> grad(pf.raw.size());
        EXPECT_EQ(FusedLossCpu(pf.Args(nullptr, nullptr)).sum,
                  FusedLossCpu(pf.Args(grad.data(), nullptr)).sum);
      }
    }
  }
  Problem<double> pd = MakeOneHotProblem(Divergence::kPoisson, 16 * 4, 26, seed++);
  pd.weights[3] = 0.0;  // block 0: a zero weight
  pd.mask.assign(static_cast<size_t>(pd.rows), 1);
  pd.mask[20] = 0;  // block 1: a masked row
  pd.sparse_cols.insert(pd.sparse_cols.begin() + 40, (pd.sparse_cols[40] + 1) % 26);
  pd.sparse_values.insert(pd.sparse_values.begin() + 40, 0.25);
  std::sort(pd.sparse_cols.begin() + 40, pd.sparse_cols.begin() + 42);
  for (size_t r = 41; r < pd.offsets.size(); ++r) ++pd.offsets[r];  // block 2: two targets
  ExpectFloatMatchesDouble(pd, 2e-5);
  // A gradient of >= 16 MiB (131,200 rows of 32): the blocks that do not
  // qualify (masked rows) take the general path's streaming writes.
  Problem<double> big = MakeOneHotProblem(Divergence::kPoisson, 131200, 32, seed++);
  big.mask.assign(static_cast<size_t>(big.rows), 1);
  for (size_t r = 5; r < big.mask.size(); r += 997) big.mask[r] = 0;
  ExpectFloatMatchesDouble(big, 2e-5);
  // Block 3: a NaN logit in row 50 is reported; the other rows of its block
  // are computed.
  Problem<double> bad = MakeOneHotProblem(Divergence::kPoisson, 16 * 4, 32, seed++);
  bad.raw[static_cast<size_t>(50 * 32 + 7)] = std::numeric_limits<double>::quiet_NaN();
  const Problem<float> bf = bad.Cast<float>();
  std::vector<float> gf(bf.raw.size()), lf(static_cast<size_t>(bf.rows));
  std::vector<double> gd(bad.raw.size()), ld(static_cast<size_t>(bad.rows));
  const LossResult rf = FusedLossCpu(bf.Args(gf.data(), lf.data()));
  const LossResult rd = FusedLossCpu(bad.Args(gd.data(), ld.data()));
  EXPECT_EQ(rf.first_nonfinite_row, 50);
  EXPECT_EQ(rd.first_nonfinite_row, 50);
  EXPECT_NEAR(rf.sum, rd.sum, 2e-5 * (1.0 + std::fabs(rd.sum)));
  for (int64_t r = 48; r < 64; ++r) {
    EXPECT_NEAR(lf[static_cast<size_t>(r)], ld[static_cast<size_t>(r)],
                2e-5 * (1.0 + std::fabs(ld[static_cast<size_t>(r)])));
  }
}

// Long rows (>= 1 KiB: the next batch's rows are prefetched) whose starts are
// not 64-byte aligned (4100 columns), for every divergence.
TEST(FusedLossTest, LongUnalignedRowsMatchDouble) {
  uint64_t seed = 900;
  for (Divergence d : kAllLossDivs) {
    SCOPED_TRACE(static_cast<int>(d));
    ExpectFloatMatchesDouble(MakeProblem(Parametrization::kSoftmax, d, false, 60, 4100, seed++),
                             2e-5);
  }
  ExpectFloatMatchesDouble(
      MakeProblem(Parametrization::kLogRateSoftmax, Divergence::kPoisson, false, 60, 4100, seed),
      2e-5);
}

TEST(FusedLossTest, ResultIsIndependentOfThreadCount) {
  const Problem<float> pf =
      MakeProblem(Parametrization::kSoftmax, Divergence::kPoisson, false, 5000, 200, 11)
          .Cast<float>();
  auto run = [&](int threads, std::vector<float>* grad) {
    tbb::task_arena arena(threads);
    LossResult res;
    arena.execute([&] { res = FusedLossCpu(pf.Args(grad->data(), nullptr)); });
    return res;
  };
  std::vector<float> g1(pf.raw.size()), g2(pf.raw.size()), g3(pf.raw.size());
  const LossResult r1 = run(1, &g1), r2 = run(2, &g2);
  const LossResult r3 = run(tbb::info::default_concurrency(), &g3);
  EXPECT_EQ(r1.sum, r2.sum);  // bitwise: fixed blocks, fixed reduction tree
  EXPECT_EQ(r1.sum, r3.sum);
  EXPECT_EQ(std::memcmp(g1.data(), g2.data(), g1.size() * sizeof(float)), 0);
  EXPECT_EQ(std::memcmp(g1.data(), g3.data(), g1.size() * sizeof(float)), 0);
}

TEST(FusedLossTest, NonFiniteRawRowIsReportedAndSkipped) {
  for (Parametrization p :
       {Parametrization::kSoftmax, Parametrization::kSoftplus, Parametrization::kLogRateSoftmax}) {
    for (float bad :
         {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
          -std::numeric_limits<float>::infinity()}) {
      Problem<float> pf =
          MakeProblem(p, Divergence::kPoisson, false, 10, 20, 12, false).Cast<float>();
      pf.raw[static_cast<size_t>(3 * pf.cols + 2)] = bad;
      pf.raw[static_cast<size_t>(6 * pf.cols)] = bad;
      std::vector<float> grad(pf.raw.size(), 1.0f);
      const LossResult res = FusedLossCpu(pf.Args(grad.data(), nullptr));
      EXPECT_EQ(res.first_nonfinite_row, 3);
      EXPECT_TRUE(std::isfinite(res.sum));
      for (int64_t k = 0; k < pf.cols; ++k) {
        EXPECT_EQ(grad[static_cast<size_t>(3 * pf.cols + k)], 0.0f);
      }
    }
  }
}

// Long softmax rows: one NaN / +inf / -inf at positions that start the row
// max / min chains (0, 16, 32, 48), in the middle, in the last full vector
// and in the tail of a 1,100-wide row is reported for exactly that row (the
// float path finds most NaNs only through its exponential sum).
TEST(FusedLossTest, OneNonFiniteValueAnywhereInALongRowIsReported) {
  const int64_t v = 1100;
  Problem<float> clean =
      MakeProblem(Parametrization::kSoftmax, Divergence::kPoisson, false, 4, v, 15, false)
          .Cast<float>();
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    for (int64_t k : {0, 16, 32, 48, 5, 550, 1087, 1088, 1099}) {
      SCOPED_TRACE("value " + std::to_string(bad) + " at " + std::to_string(k));
      Problem<float> pf = clean;
      pf.raw[static_cast<size_t>(2 * v + k)] = bad;
      std::vector<float> grad(pf.raw.size(), 1.0f), row_loss(4);
      const LossResult res = FusedLossCpu(pf.Args(grad.data(), row_loss.data()));
      EXPECT_EQ(res.first_nonfinite_row, 2);
      EXPECT_TRUE(std::isfinite(res.sum));
      EXPECT_EQ(row_loss[2], 0.0f);
      for (int64_t j = 0; j < v; ++j) ASSERT_EQ(grad[static_cast<size_t>(2 * v + j)], 0.0f) << j;
      for (int64_t r : {0, 1, 3}) EXPECT_NE(row_loss[static_cast<size_t>(r)], 0.0f) << r;
    }
  }
}

// Extreme but finite raw outputs: everything stays finite, and a target on
// an underflowed softmax entry still gets the exact gradient -a (+ p BG ~ 0).
TEST(FusedLossTest, ExtremeInputsStayFinite) {
  for (Parametrization p : kAllLossParams) {
    for (Divergence d : kAllLossDivs) {
      SCOPED_TRACE(LossLabel(p, d, false));
      Problem<float> pf = MakeProblem(p, d, false, 4, 8, 13, false).Cast<float>();
      for (size_t i = 0; i < pf.raw.size(); ++i) {
        pf.raw[i] = (i % 3 == 0) ? 1e4f : (i % 3 == 1 ? -1e4f : 0.0f);
      }
      std::vector<float> grad(pf.raw.size());
      const LossResult res = FusedLossCpu(pf.Args(grad.data(), nullptr));
      EXPECT_EQ(res.first_nonfinite_row, -1);
      if (!(d == Divergence::kMse &&
            (p == Parametrization::kExp || p == Parametrization::kLogRateSoftmax))) {
        // exp(80)^2 overflows float: the one documented overflow (reported by
        // jumpflow/losses.h), everything else must be finite.
        EXPECT_TRUE(std::isfinite(res.sum)) << res.sum;
        for (float g : grad) EXPECT_TRUE(std::isfinite(g));
      }
    }
  }
  // Softmax with one dominant logit and a unit target on a column whose
  // probability underflows: d/dz_target = -1 exactly (the p terms vanish).
  Problem<float> pf =
      MakeProblem(Parametrization::kSoftmax, Divergence::kPoisson, false, 1, 4, 14, false)
          .Cast<float>();
  pf.raw = {500.0f, 0.0f, -500.0f, 0.0f};
  pf.offsets = {0, 1};
  pf.sparse_cols = {2};
  pf.sparse_values = {1.0f};
  std::vector<float> grad(4);
  const LossResult res = FusedLossCpu(pf.Args(grad.data(), nullptr));
  EXPECT_TRUE(std::isfinite(res.sum));
  EXPECT_GT(res.sum, 900.0);  // -log p_2 ~ 1000
  EXPECT_NEAR(grad[2], -1.0f, 1e-6f);
}

TEST(FusedLossTest, CudaDispatchIsAnErrorNotACrash) {
  Problem<float> pf =
      MakeProblem(Parametrization::kSoftmax, Divergence::kPoisson, false, 3, 4, 15).Cast<float>();
  std::vector<float> grad(pf.raw.size());
  const auto cpu = FusedLoss(Backend::kCpu, pf.Args(grad.data(), nullptr));
  ASSERT_TRUE(cpu.ok());
  const auto cuda = FusedLoss(Backend::kCuda, pf.Args(grad.data(), nullptr));
  if (CudaDeviceCount() > 0) {  // issue 7: the CUDA kernel exists (cuda_kernels_test compares)
    EXPECT_TRUE(cuda.ok()) << cuda.status();
  } else {
    EXPECT_EQ(cuda.status().code(), absl::StatusCode::kFailedPrecondition) << cuda.status();
  }
}

// Gradients of at least 16 MiB are built in a per-thread scratch row and
// streamed out with non-temporal stores (WriteMode::kStream); the results
// must be those of the double path, masked and zero-weight rows zeroed.
TEST(FusedLossTest, StreamedLargeGradientsMatchDouble) {
  uint64_t seed = 1300;
  const Parametrization params[] = {Parametrization::kSoftmax,
                                    Parametrization::kSoftplusRateSoftmax};
  for (Parametrization p : params) {
    for (Divergence d : {Divergence::kPoisson, Divergence::kBce}) {
      for (bool dense : {false, true}) {
        if (dense && d == Divergence::kBce) continue;
        SCOPED_TRACE(LossLabel(p, d, dense));
        // 4,100 rows x 1,025 columns x 4 bytes = 16.8 MB >= 16 MiB.
        ExpectFloatMatchesDouble(MakeProblem(p, d, dense, 4100, 1024, seed++), 2e-5);
      }
    }
  }
}

}  // namespace
}  // namespace jumpflow::kernels
