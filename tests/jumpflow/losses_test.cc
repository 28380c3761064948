// @brief Tests of the validated loss front end (jumpflow/losses.h): the DFM
// equivalence with flow_matching's generalized-KL loss, every bad-input
// error, time weights and scales, scalar-per-row and separable losses, row
// expansion, and thread-count independence.
#include "jumpflow/losses.h"

#include <gtest/gtest.h>
#include <oneapi/tbb/task_arena.h>

#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "jumpflow/scheduler.h"

namespace jumpflow {
namespace {

// Dfm is a DFM-like batch: B sequences of length L over V tokens, x_t and
// x_1, a time per sequence, random logits.
struct Dfm {
  int64_t b = 0, l = 0, v = 0;
  std::vector<int32_t> x_t, x_1;
  std::vector<double> times;  // per row
  std::vector<float> logits;  // [rows x V]
  SparseRows targets;         // one-hot x_1 where x_t != x_1
  int64_t rows() const { return b * l; }
};

Dfm MakeDfm(int64_t b, int64_t l, int64_t v, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  std::normal_distribution<float> normal(0.0f, 1.5f);
  Dfm d;
  d.b = b;
  d.l = l;
  d.v = v;
  for (int64_t s = 0; s < b; ++s) {
    const double t = s == 0 ? 0.0 : (s == 1 ? 0.999 : u01(rng));
    for (int64_t i = 0; i < l; ++i) {
      const int32_t x1 = static_cast<int32_t>(rng() % static_cast<uint64_t>(v));
      // x_t = x_1 with probability ~ t, else noise (a "mask" token 0 or uniform).
      int32_t xt = x1;
      if (u01(rng) > t)
        xt = u01(rng) < 0.5 ? 0 : static_cast<int32_t>(rng() % static_cast<uint64_t>(v));
      d.x_1.push_back(x1);
      d.x_t.push_back(xt);
      d.times.push_back(t);
      if (xt != x1) {
        d.targets.cols.push_back(x1);
        d.targets.values.push_back(1.0f);
      }
      d.targets.row_offsets.push_back(static_cast<int64_t>(d.targets.cols.size()));
    }
  }
  d.logits.resize(static_cast<size_t>(d.rows() * v));
  for (float& z : d.logits) z = normal(rng);
  return d;
}

LossInputs DfmInputs(const Dfm& d, const TimeWeight* hazard) {
  LossInputs in;
  in.rows = d.rows();
  in.targets_per_row = d.v;
  in.raw = d.logits;
  in.sparse_targets = &d.targets;
  in.excluded_cols = d.x_t;
  in.row_times = d.times;
  in.time_weight = hazard;
  return in;
}

// The DESIGN.md check: h(t) x Poisson-Bregman between the one-hot DFM target
// delta(y, x_1) and mhat = softmax(z), over y != x_t, equals flow_matching's
// MixturePathGeneralizedKL term by term. That loss (written here from its
// definition, in double) is, per position,
//   l = -h(t) [ p(x_t) - delta(x_t, x_1) + (1 - delta(x_t, x_1)) log p(x_1) ],
// with p = softmax(z); its gradient is
//   dl/dz = -h(t) [ p(x_t) (e_{x_t} - p) + (1 - delta) (e_{x_1} - p) ].
TEST(LossesTest, DfmPoissonEqualsFlowMatchingGeneralizedKlTermByTerm) {
  for (const char* spec : {"poly:3", "linear", "cosine"}) {
    SCOPED_TRACE(spec);
    std::shared_ptr<const Scheduler> sched = MakeScheduler(spec).value();
    auto hazard = HazardTimeWeight(sched);
    const Dfm d = MakeDfm(6, 40, 27, 3);
    std::vector<float> grad(d.logits.size()), row_loss(static_cast<size_t>(d.rows()));
    auto res = ComputeLoss(LossSpec{}, DfmInputs(d, hazard.get()), grad, row_loss);
    ASSERT_TRUE(res.ok()) << res.status();
    double total = 0.0;
    for (int64_t r = 0; r < d.rows(); ++r) {
      const float* z = d.logits.data() + r * d.v;
      double mx = z[0];
      for (int64_t y = 1; y < d.v; ++y) mx = std::max(mx, static_cast<double>(z[y]));
      double s = 0.0;
      for (int64_t y = 0; y < d.v; ++y) s += std::exp(z[y] - mx);
      std::vector<double> p(static_cast<size_t>(d.v));
      for (int64_t y = 0; y < d.v; ++y) p[static_cast<size_t>(y)] = std::exp(z[y] - mx) / s;
      const int32_t xt = d.x_t[static_cast<size_t>(r)], x1 = d.x_1[static_cast<size_t>(r)];
      const double delta = xt == x1 ? 1.0 : 0.0;
      const double h = sched->Hazard(d.times[static_cast<size_t>(r)]);
      const double log_p_x1 = (z[x1] - mx) - std::log(s);
      const double fm = -h * (p[static_cast<size_t>(xt)] - delta + (1.0 - delta) * log_p_x1);
      EXPECT_NEAR(row_loss[static_cast<size_t>(r)], fm, 2e-5 * (1.0 + std::fabs(fm)))
          << "row " << r;
      total += fm;
      for (int64_t y = 0; y < d.v; ++y) {
        const double py = p[static_cast<size_t>(y)];
        const double g = -h * (p[static_cast<size_t>(xt)] * ((y == xt ? 1.0 : 0.0) - py) +
                               (1.0 - delta) * ((y == x1 ? 1.0 : 0.0) - py));
        EXPECT_NEAR(grad[static_cast<size_t>(r * d.v + y)], g, 2e-5 * (1.0 + h))
            << "row " << r << " col " << y;
      }
    }
    EXPECT_NEAR(res->sum, total, 2e-5 * (1.0 + std::fabs(total)));
  }
}

TEST(LossesTest, TimeWeightAndScaleEqualExplicitRowArrays) {
  const Dfm d = MakeDfm(5, 30, 11, 4);
  std::shared_ptr<const Scheduler> sched = MakeScheduler("poly:3").value();
  auto hazard = HazardTimeWeight(sched);
  std::vector<float> weights, scales;
  for (double t : d.times) {
    weights.push_back(static_cast<float>(hazard->Weight(t)));
    scales.push_back(static_cast<float>(0.5 + t));
  }
  LossSpec spec;
  spec.parametrization = Parametrization::kSoftplusRateSoftmax;
  Dfm rate = d;
  rate.logits.clear();
  for (int64_t r = 0; r < d.rows(); ++r) {
    rate.logits.push_back(0.1f * static_cast<float>(r % 7) - 0.3f);  // rate column
    for (int64_t y = 0; y < d.v; ++y)
      rate.logits.push_back(d.logits[static_cast<size_t>(r * d.v + y)]);
  }
  LossInputs implicit = DfmInputs(rate, hazard.get());
  implicit.time_scale = [](double t) { return 0.5 + t; };
  LossInputs explicit_in = DfmInputs(rate, nullptr);
  explicit_in.row_weights = weights;
  explicit_in.row_scales = scales;
  std::vector<float> g1(rate.logits.size()), g2(rate.logits.size());
  auto a = ComputeLoss(spec, implicit, g1);
  auto b = ComputeLoss(spec, explicit_in, g2);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(a->sum, b->sum);
  EXPECT_EQ(g1, g2);
}

TEST(LossesTest, MeanIsSumOverUnmaskedRowsAndItsGradientScales) {
  const Dfm d = MakeDfm(4, 25, 9, 5);
  std::vector<uint8_t> mask(static_cast<size_t>(d.rows()));
  int64_t active = 0;
  for (size_t r = 0; r < mask.size(); ++r) {
    mask[r] = r % 4 != 1;
    active += mask[r];
  }
  LossInputs in = DfmInputs(d, nullptr);
  in.row_mask = mask;
  std::vector<float> gs(d.logits.size()), gm(d.logits.size());
  LossSpec sum_spec, mean_spec;
  mean_spec.reduction = Reduction::kMean;
  auto s = ComputeLoss(sum_spec, in, gs);
  auto m = ComputeLoss(mean_spec, in, gm);
  ASSERT_TRUE(s.ok() && m.ok());
  EXPECT_EQ(s->active_rows, active);
  EXPECT_NEAR(m->mean, s->sum / static_cast<double>(active), 1e-12 * std::fabs(s->sum));
  for (size_t i = 0; i < gs.size(); ++i) {
    EXPECT_NEAR(gm[i], gs[i] / static_cast<float>(active), 1e-6f * (std::fabs(gs[i]) + 1e-6f));
  }
}

TEST(LossesTest, ResultIsIndependentOfThreadCount) {
  const Dfm d = MakeDfm(16, 128, 64, 6);
  auto hazard = HazardTimeWeight(MakeScheduler("poly:3").value());
  auto run = [&](int threads, std::vector<float>* grad) {
    tbb::task_arena arena(threads);
    absl::StatusOr<LossResult> res;
    arena.execute([&] { res = ComputeLoss(LossSpec{}, DfmInputs(d, hazard.get()), *grad); });
    return res.value();
  };
  std::vector<float> g1(d.logits.size()), g2(d.logits.size());
  EXPECT_EQ(run(1, &g1).sum, run(2, &g2).sum);
  EXPECT_EQ(g1, g2);
}

// --- bad input --------------------------------------------------------------

// ExpectError checks that `status` is InvalidArgument and names `needle`.
void ExpectError(const absl::Status& status, const std::string& needle) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_NE(status.message().find(needle), std::string::npos)
      << "'" << status.message() << "' should mention '" << needle << "'";
}

struct Small {
  std::vector<float> raw = {0.1f, -0.2f, 0.3f, 1.0f, 0.0f, -1.0f};  // 2 x 3
  std::vector<float> dense = {0.0f, 1.0f, 0.0f, 0.5f, 0.0f, 0.25f};
  SparseRows sparse;
  Small() {
    sparse.row_offsets = {0, 1, 3};
    sparse.cols = {1, 0, 2};
    sparse.values = {1.0f, 0.5f, 0.25f};
  }
  LossInputs Dense() const {
    LossInputs in;
    in.rows = 2;
    in.targets_per_row = 3;
    in.raw = raw;
    in.dense_targets = dense;
    return in;
  }
  LossInputs Sparse() const {
    LossInputs in = Dense();
    in.dense_targets = {};
    in.sparse_targets = &sparse;
    return in;
  }
};

absl::Status RunLoss(const LossSpec& spec, const LossInputs& in) {
  std::vector<float> grad(in.raw.size());
  return ComputeLoss(spec, in, grad).status();
}

TEST(LossesBadInputTest, ShapesAndTargets) {
  Small s;
  const LossSpec poisson;
  LossSpec bce;
  bce.divergence = Divergence::kBce;
  bce.parametrization = Parametrization::kSigmoid;
  ASSERT_TRUE(RunLoss(poisson, s.Dense()).ok());
  ASSERT_TRUE(RunLoss(poisson, s.Sparse()).ok());
  ASSERT_TRUE(RunLoss(bce, s.Dense()).ok());

  LossInputs in = s.Dense();
  in.targets_per_row = 4;
  ExpectError(RunLoss(poisson, in), "raw");
  LossSpec rate = poisson;
  rate.parametrization = Parametrization::kLogRateSoftmax;  // needs 4 columns
  ExpectError(RunLoss(rate, s.Dense()), "raw");
  in = s.Dense();
  in.targets_per_row = 0;
  ExpectError(RunLoss(poisson, in), "targets_per_row");
  in = s.Dense();
  in.sparse_targets = &s.sparse;
  ExpectError(RunLoss(poisson, in), "exactly one");
  in.dense_targets = {};
  in.sparse_targets = nullptr;
  ExpectError(RunLoss(poisson, in), "exactly one");
  {
    std::vector<float> grad(5);
    ExpectError(ComputeLoss(poisson, s.Dense(), grad).status(), "grad");
    std::vector<float> g6(6), rl(3);
    ExpectError(ComputeLoss(poisson, s.Dense(), g6, rl).status(), "row_loss");
  }
  std::vector<float> short_dense(5, 0.0f);
  in = s.Dense();
  in.dense_targets = short_dense;
  ExpectError(RunLoss(poisson, in), "dense_targets");

  // Poisson / KL targets must be >= 0; BCE targets in [0, 1]; all finite.
  Small neg;
  neg.dense[4] = -0.5f;
  ExpectError(RunLoss(poisson, neg.Dense()), "-0.5");
  LossSpec kl = poisson;
  kl.divergence = Divergence::kGeneralizedKl;
  ExpectError(RunLoss(kl, neg.Dense()), "-0.5");
  ExpectError(RunLoss(bce, neg.Dense()), "-0.5");
  Small big;
  big.dense[2] = 1.5f;
  ExpectError(RunLoss(bce, big.Dense()), "1.5");
  EXPECT_TRUE(RunLoss(poisson, big.Dense()).ok());  // counts may exceed 1
  Small nan;
  nan.dense[1] = std::numeric_limits<float>::quiet_NaN();
  ExpectError(RunLoss(poisson, nan.Dense()), "nan");
  Small sneg;
  sneg.sparse.values[2] = -2.0f;
  ExpectError(RunLoss(poisson, sneg.Sparse()), "-2");
  Small sinf;
  sinf.sparse.values[0] = std::numeric_limits<float>::infinity();
  LossSpec mse = poisson;
  mse.divergence = Divergence::kMse;
  ExpectError(RunLoss(mse, sinf.Sparse()), "inf");
}

TEST(LossesBadInputTest, SparseStructure) {
  const LossSpec poisson;
  Small s;
  s.sparse.cols[0] = 3;  // outside [0, 3)
  ExpectError(RunLoss(poisson, s.Sparse()), "column 3");
  Small u;
  u.sparse.cols = {1, 2, 0};  // row 1 unsorted
  ExpectError(RunLoss(poisson, u.Sparse()), "increasing");
  Small dup;
  dup.sparse.cols = {1, 2, 2};
  ExpectError(RunLoss(poisson, dup.Sparse()), "increasing");
  Small off;
  off.sparse.row_offsets = {0, 1, 2};  // ends before the 3 entries
  ExpectError(RunLoss(poisson, off.Sparse()), "inconsistent");
  Small rows;
  rows.sparse.row_offsets = {0, 3};
  ExpectError(RunLoss(poisson, rows.Sparse()), "rows");
}

TEST(LossesBadInputTest, RawWeightsScalesMasksTimes) {
  const LossSpec poisson;
  Small s;
  s.raw[4] = std::numeric_limits<float>::quiet_NaN();
  ExpectError(RunLoss(poisson, s.Dense()), "raw output [1, 1] = nan");
  Small inf;
  inf.raw[0] = -std::numeric_limits<float>::infinity();
  ExpectError(RunLoss(poisson, inf.Dense()), "raw output [0, 0] = -inf");

  Small ok;
  LossInputs in = ok.Dense();
  std::vector<float> w = {1.0f, -0.25f};
  in.row_weights = w;
  ExpectError(RunLoss(poisson, in), "-0.25");
  std::vector<float> wnan = {std::nanf(""), 1.0f};
  in.row_weights = wnan;
  ExpectError(RunLoss(poisson, in), "weight 0");
  std::vector<float> w1 = {1.0f};
  in.row_weights = w1;
  ExpectError(RunLoss(poisson, in), "row_weights");

  in = ok.Dense();
  std::vector<float> c = {0.0f, 1.0f};
  in.row_scales = c;
  ExpectError(RunLoss(poisson, in), "scale 0");
  std::vector<uint8_t> m = {1};
  in = ok.Dense();
  in.row_mask = m;
  ExpectError(RunLoss(poisson, in), "row_mask");
  std::vector<int32_t> x = {0, 3};
  in = ok.Dense();
  in.excluded_cols = x;
  ExpectError(RunLoss(poisson, in), "excluded column 3");

  auto hazard = HazardTimeWeight(MakeScheduler("linear").value());
  in = ok.Dense();
  in.time_weight = hazard.get();
  ExpectError(RunLoss(poisson, in), "row_times");
  std::vector<double> t = {0.5, 1.25};
  in.row_times = t;
  ExpectError(RunLoss(poisson, in), "1.25");
  std::vector<double> tn = {std::nan(""), 0.5};
  in.row_times = tn;
  ExpectError(RunLoss(poisson, in), "nan");
  std::vector<double> tok = {0.5, 0.25};
  in.row_times = tok;
  EXPECT_TRUE(RunLoss(poisson, in).ok());
  in.time_weight = nullptr;
  in.time_scale = [](double t) { return t - 0.3; };  // negative at t = 0.25
  ExpectError(RunLoss(poisson, in), "c(t)");
}

TEST(LossesBadInputTest, OverflowIsReportedNotReturned) {
  Small s;
  for (float& z : s.raw) z = 80.0f;  // exp(80)^2 overflows float
  LossSpec mse;
  mse.parametrization = Parametrization::kExp;
  mse.divergence = Divergence::kMse;
  ExpectError(RunLoss(mse, s.Dense()), "overflow");
}

TEST(LossesBadInputTest, UnavailableBackendIsAnError) {
  Small s;
  LossSpec spec;
  spec.backend = kernels::Backend::kCuda;
  const absl::Status status = RunLoss(spec, s.Dense());
  if (kernels::CudaDeviceCount() > 0) {  // issue 7: the CUDA loss kernel runs (host pointers)
    EXPECT_TRUE(status.ok()) << status;
    return;
  }
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
}

// --- helpers and variants -------------------------------------------------

TEST(LossesTest, ScalarRowLossMatchesClosedForms) {
  std::vector<float> raw = {-2.0f, 0.0f, 0.7f, 3.0f};
  std::vector<float> del = {0.0f, 1.0f, 1.0f, 0.25f};  // BCE targets in [0, 1]
  std::vector<float> grad(4);
  LossSpec bce;
  bce.parametrization = Parametrization::kSigmoid;
  bce.divergence = Divergence::kBce;
  auto r = ScalarRowLoss(bce, raw, del, LossInputs{}, grad);
  ASSERT_TRUE(r.ok()) << r.status();
  double expect = 0.0;
  for (size_t i = 0; i < raw.size(); ++i) {
    const double s = 1.0 / (1.0 + std::exp(-static_cast<double>(raw[i])));
    const double a = del[i];
    expect +=
        (a > 0 ? a * std::log(a / s) : 0.0) + (a < 1 ? (1 - a) * std::log((1 - a) / (1 - s)) : 0.0);
    EXPECT_NEAR(grad[i], s - a, 1e-6);  // d BCE / dz for a sigmoid = sigmoid - a
  }
  EXPECT_NEAR(r->sum, expect, 1e-5);

  // Split counts: Poisson on softplus, D(a, b) = a log(a / b) - a + b.
  std::vector<float> counts = {0.0f, 2.0f, 1.0f, 5.0f};
  LossSpec poisson;
  poisson.parametrization = Parametrization::kSoftplus;
  auto p = ScalarRowLoss(poisson, raw, counts, LossInputs{}, grad);
  ASSERT_TRUE(p.ok());
  expect = 0.0;
  for (size_t i = 0; i < raw.size(); ++i) {
    const double b = std::log1p(std::exp(static_cast<double>(raw[i])));
    const double a = counts[i];
    expect += (a > 0 ? a * std::log(a / b) : 0.0) - a + b;
  }
  EXPECT_NEAR(p->sum, expect, 1e-5);

  LossSpec softmax;
  ExpectError(ScalarRowLoss(softmax, raw, counts, LossInputs{}, grad).status(), "elementwise");
  std::vector<float> three(3);
  ExpectError(ScalarRowLoss(poisson, raw, three, LossInputs{}, grad).status(), "targets");
}

TEST(LossesTest, SeparableLossSumsTermsAndNamesTheBadOne) {
  const Dfm d = MakeDfm(3, 10, 7, 8);
  std::vector<float> raw = {-1.0f, 0.5f, 2.0f};
  std::vector<float> counts = {0.0f, 1.0f, 3.0f};
  std::vector<float> g1(d.logits.size()), g2(raw.size());
  LossTerm tokens{LossSpec{}, DfmInputs(d, nullptr), g1};
  LossTerm splits;
  splits.spec.parametrization = Parametrization::kSoftplus;
  splits.inputs.rows = 3;
  splits.inputs.targets_per_row = 1;
  splits.inputs.raw = raw;
  splits.inputs.dense_targets = counts;
  splits.grad = g2;
  std::vector<LossTerm> terms = {tokens, splits};
  std::vector<LossResult> parts;
  auto total = SeparableLoss(terms, &parts);
  ASSERT_TRUE(total.ok()) << total.status();
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_DOUBLE_EQ(*total, parts[0].sum + parts[1].sum);
  EXPECT_GT(parts[1].sum, 0.0);
  std::vector<float> bad_counts = {0.0f, -1.0f, 3.0f};
  terms[1].inputs.dense_targets = bad_counts;
  ExpectError(SeparableLoss(terms).status(), "loss term 1");
}

TEST(LossesTest, ExpandPerSequenceAndRowTimes) {
  auto batch =
      SequenceBatch::FromVectors({{5, 6}, {}, {7, 8, 9}}, 10, std::vector<double>{0.1, 0.2, 0.3});
  ASSERT_TRUE(batch.ok()) << batch.status();
  std::vector<float> w = {1.0f, 2.0f, 3.0f};
  auto tokens = ExpandPerSequence(*batch, w, RowSpace::kTokens);
  ASSERT_TRUE(tokens.ok());
  EXPECT_EQ(*tokens, (std::vector<float>{1, 1, 3, 3, 3}));
  auto gaps = ExpandPerSequence(*batch, w, RowSpace::kGaps);
  ASSERT_TRUE(gaps.ok());
  EXPECT_EQ(*gaps, (std::vector<float>{1, 1, 1, 2, 3, 3, 3, 3}));
  EXPECT_EQ(RowTimes(*batch, RowSpace::kTokens), (std::vector<double>{0.1, 0.1, 0.3, 0.3, 0.3}));
  EXPECT_EQ(RowTimes(*batch, RowSpace::kGaps).size(), 8u);
  std::vector<float> two = {1.0f, 2.0f};
  ExpectError(ExpandPerSequence(*batch, two, RowSpace::kTokens).status(), "per_sequence");
}

TEST(LossesTest, NamesRoundTrip) {
  for (const char* n :
       {"softmax", "softplus", "exp", "sigmoid", "lograte_softmax", "softplusrate_softmax"}) {
    auto p = ParseParametrization(n);
    ASSERT_TRUE(p.ok()) << n;
    EXPECT_EQ(ParametrizationName(*p), n);
  }
  for (const char* n : {"poisson", "bce", "mse", "kl"}) {
    auto d = ParseDivergence(n);
    ASSERT_TRUE(d.ok()) << n;
    EXPECT_EQ(DivergenceName(*d), n);
  }
  ExpectError(ParseParametrization("tanh").status(), "tanh");
  ExpectError(ParseDivergence("hinge").status(), "hinge");
}

}  // namespace
}  // namespace jumpflow
