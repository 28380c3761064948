// @brief Tests of the fused event kernels (kernels/sample_step.h,
// kernels/gillespie.h) on the CPU backend: exact equality with a
// straightforward reference of the documented canonical algorithm written
// here (same uniforms -> same events, same rates bit for bit), the host
// emulation of the CUDA warp scan, token / row / jump distributions by
// chi-square and binomial tests at stated levels, thread-count independence,
// non-finite rows, validation and dispatch; plus the deterministic math of
// kernels/detail/fast_math.h against libm.
#include <gtest/gtest.h>
#include <oneapi/tbb/task_arena.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "kernels/cpu/detail/vec16.h"
#include "kernels/detail/event_math.h"
#include "kernels/detail/fast_math.h"
#include "kernels/gillespie.h"
#include "kernels/sample_step.h"
#include "tests/kernels/backend_compare.h"
#include "tests/kernels/event_problem.h"

namespace jumpflow::kernels {
namespace {

using detail::MulD;
using detail::MulF;
using testing::Batch;
using testing::ExpectSameBits;
using testing::GArgs;
using testing::GillespieOut;
using testing::MakeBatch;
using testing::StepArgs;
using testing::StepOut;

// --- deterministic math vs libm ----------------------------------------------

TEST(FastMathTest, ExpEvMatchesLibmOnTheSoftmaxRange) {
  double worst = 0.0;
  for (int i = 0; i <= 200000; ++i) {
    const float x = -87.0f * static_cast<float>(i) / 200000.0f;
    const double ref = std::exp(static_cast<double>(x));
    worst = std::max(worst, std::fabs(detail::ExpEvF(x) - ref) / ref);
  }
  EXPECT_LT(worst, 3e-7);
  EXPECT_GT(detail::ExpEvF(-1e30f), 0.0f);  // clamped, never 0
  EXPECT_EQ(detail::ExpEvF(0.0f), 1.0f);
}

// The CPU kernels' 16-lane exponential is ExpEvF bit for bit: every float
// in [-100, 88] at a stride of 97 bit patterns (~4.5 million values, the
// clamp region and both sides of kExpEvMin included), +-0 and -inf; without
// the clamp on x >= kExpEvMin, and NaN stays NaN.
TEST(FastMathTest, VectorExpEvMatchesTheScalarBitForBit) {
  std::vector<float> xs = {0.0f, -0.0f, -std::numeric_limits<float>::infinity(), detail::kExpEvMin,
                           std::nextafter(detail::kExpEvMin, 0.0f)};
  const auto add_range = [&](float from, float to) {  // from, to of one sign
    uint32_t a = std::bit_cast<uint32_t>(from), b = std::bit_cast<uint32_t>(to);
    if (a > b) std::swap(a, b);
    for (uint32_t u = a; u <= b && u >= a; u += 97) xs.push_back(std::bit_cast<float>(u));
  };
  add_range(-100.0f, -1e-30f);
  add_range(1e-30f, 88.0f);
  while (xs.size() % detail::kWidth != 0) xs.push_back(-1.0f);
  int64_t mismatches = 0, unclamped = 0;
  for (size_t i = 0; i < xs.size(); i += detail::kWidth) {
    const detail::F16 v = detail::Load16(xs.data() + i);
    const detail::F16 e = detail::ExpEv16(v);
    const detail::F16 u = detail::ExpEv16<false>(v);
    for (int l = 0; l < detail::kWidth; ++l) {
      const float want = detail::ExpEvF(xs[i + static_cast<size_t>(l)]);
      mismatches += std::bit_cast<uint32_t>(e[l]) != std::bit_cast<uint32_t>(want);
      if (xs[i + static_cast<size_t>(l)] >= detail::kExpEvMin) {
        ++unclamped;
        mismatches += std::bit_cast<uint32_t>(u[l]) != std::bit_cast<uint32_t>(want);
      }
    }
  }
  EXPECT_EQ(mismatches, 0);
  EXPECT_GT(unclamped, 2000000);
  const detail::F16 nan = detail::F16{} + std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(std::isnan(detail::ExpEv16<false>(nan)[3]));
}

TEST(FastMathTest, CephesExpLogSoftplusMatchLibm) {
  double we = 0.0, wl = 0.0, ws = 0.0, wp = 0.0;
  for (int i = 0; i <= 20000; ++i) {
    const float x = -80.0f + 160.0f * static_cast<float>(i) / 20000.0f;
    const double e = std::exp(static_cast<double>(x));
    we = std::max(we, std::fabs(detail::ExpF(x) - e) / e);
    const double sp = std::log1p(std::exp(static_cast<double>(x)));
    ws = std::max(ws, std::fabs(detail::SoftplusF(x) - sp) / sp);
    const float y = std::ldexp(1.0f + static_cast<float>(i) / 20000.0f, i % 60 - 30);
    wl = std::max(wl, std::fabs(detail::LogF(y) - std::log(static_cast<double>(y))) /
                          std::max(1.0, std::fabs(std::log(static_cast<double>(y)))));
    const float t = std::ldexp(static_cast<float>(i + 1) / 20001.0f, -(i % 40));
    wp = std::max(wp, std::fabs(detail::Log1pF(t) - std::log1p(static_cast<double>(t))) /
                          std::log1p(static_cast<double>(t)));
  }
  EXPECT_LT(we, 3e-7);
  EXPECT_LT(wl, 3e-7);
  EXPECT_LT(ws, 1e-6);
  EXPECT_LT(wp, 1e-6);
}

TEST(FastMathTest, OneMinusExpNegMatchesExpm1) {
  double worst = 0.0;
  for (int i = 1; i <= 100000; ++i) {
    const double x = std::ldexp(static_cast<double>(i) / 100000.0, i % 70 - 60);
    const double ref = -std::expm1(-x);
    worst = std::max(worst, std::fabs(detail::OneMinusExpNeg(x) - ref) / ref);
  }
  EXPECT_LT(worst, 1e-14);
  EXPECT_EQ(detail::OneMinusExpNeg(0.0), 0.0);
  EXPECT_EQ(detail::OneMinusExpNeg(1000.0), 1.0);
}

// --- the reference: the documented canonical algorithm, written plainly -------
// (kernels/detail/event_math.h file comment). Products that feed an addition
// go through MulF / MulD so this file's compiler cannot fuse them; the
// exponentials are the shared deterministic ExpEvF / ExpF / SoftplusF.

struct RefRow {
  float lane[32];
  float zmax;
  double s_excl;
  double rate;
};

RefRow RefScanRow(const Batch& bt, int64_t r, int32_t x, float c) {
  const float* raw = bt.raw.data() + r * bt.cols;
  const float* z = raw + (HasRateColumn(bt.param) ? 1 : 0);
  RefRow out{};
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t base = 0; base < bt.v; base += 256) {
    const int64_t end = std::min<int64_t>(base + 256, bt.v);
    float cmax = -std::numeric_limits<float>::infinity();
    for (int64_t k = base; k < end; ++k) cmax = std::max(cmax, z[k]);
    if (cmax > m) {
      const float f = detail::ExpEvF(m - cmax);
      for (float& s : out.lane) s = MulF(s, f);
      m = cmax;
    }
    for (int64_t k = base; k < end; ++k) {
      if (k != x) out.lane[k % 32] += detail::ExpEvF(z[k] - m);
    }
  }
  out.zmax = m;
  double t[16];
  for (int j = 0; j < 16; ++j) t[j] = static_cast<double>(out.lane[j]) + out.lane[j + 16];
  for (int w = 8; w >= 1; w /= 2) {
    for (int j = 0; j < w; ++j) t[j] += t[j + w];
  }
  out.s_excl = t[0];
  float lambda = c;
  if (bt.param == Parametrization::kLogRateSoftmax) {
    lambda = MulF(c, detail::ExpF(std::min(raw[0], 80.0f)));
  } else if (bt.param == Parametrization::kSoftplusRateSoftmax) {
    lambda = MulF(c, detail::SoftplusF(raw[0]));
  }
  const float e_x = x >= 0 ? detail::ExpEvF(z[x] - m) : 0.0f;
  out.rate = out.s_excl > 0.0 ? MulD(lambda, out.s_excl) / (out.s_excl + e_x) : 0.0;
  return out;
}

// RefSelect is the three-level inverse CDF with uniform u (lanes, 32
// segments of each lane, elements; kernels/detail/event_math.h).
int32_t RefSelect(const Batch& bt, int64_t r, int32_t x, const RefRow& row, double u) {
  const float* z = bt.raw.data() + r * bt.cols + (HasRateColumn(bt.param) ? 1 : 0);
  const double target = MulD(u, row.s_excl);
  double c = 0.0, rem = 1e300;
  int lane = -1;
  for (int j = 0; j < 32; ++j) {
    if (!(row.lane[j] > 0.0f)) continue;
    if (target < c + row.lane[j]) {
      lane = j;
      rem = target - c;
      break;
    }
    c += row.lane[j];
    lane = j;
  }
  if (lane < 0) return -1;
  // The lane's elements, in order, with their segment.
  std::vector<int64_t> ks;
  for (int64_t k = lane; k < bt.v; k += 32) ks.push_back(k);
  const int64_t per_lane_max = (bt.v + 31) / 32;
  const int64_t seg_len = (per_lane_max + 31) / 32;
  auto e_of = [&](int64_t k) { return static_cast<double>(detail::ExpEvF(z[k] - row.zmax)); };
  for (int64_t t = 0; t < 32; ++t) {
    const int64_t i0 = std::min<int64_t>(t * seg_len, static_cast<int64_t>(ks.size()));
    const int64_t i1 = std::min<int64_t>(i0 + seg_len, static_cast<int64_t>(ks.size()));
    double seg = 0.0;
    for (int64_t i = i0; i < i1; ++i) {
      if (ks[i] != x) seg += e_of(ks[i]);
    }
    if (!(seg > 0.0)) continue;
    if (!(rem < seg)) {
      rem -= seg;
      continue;
    }
    int32_t last = -1;
    for (int64_t i = i0; i < i1; ++i) {
      if (ks[i] == x) continue;
      last = static_cast<int32_t>(ks[i]);
      if (rem < e_of(ks[i])) return last;
      rem -= e_of(ks[i]);
    }
    return last;
  }
  for (auto it = ks.rbegin(); it != ks.rend(); ++it) {
    if (*it != x) return static_cast<int32_t>(*it);
  }
  return -1;
}

// RefSampleStep applies the reference to every row.
void RefSampleStep(const SampleStepArgs& a, const Batch& bt, StepOut* out) {
  const size_t rows = static_cast<size_t>(bt.rows());
  out->jumped.assign(rows, 0);
  out->token.assign(rows, -1);
  out->rate.assign(rows, 0.0);
  out->result = SampleStepResult{};
  for (int64_t b = 0; b < bt.sequences(); ++b) {
    for (int64_t r = bt.offsets[b]; r < bt.offsets[b + 1]; ++r) {
      const int32_t x = a.tokens != nullptr ? a.tokens[r] : -1;
      const float c = a.row_scales != nullptr ? a.row_scales[r] : 1.0f;
      const RefRow row = RefScanRow(bt, r, x, c);
      out->rate[r] = row.rate;
      out->token[r] = x;
      const double m = MulD(row.rate, a.fire[b]);
      const double p =
          a.jump == JumpProbability::kLinear ? std::clamp(m, 0.0, 1.0) : detail::OneMinusExpNeg(m);
      if (!(p > 0.0)) continue;
      const Philox4x32 blk = PhiloxDraw(a.seed, a.sequence_ids[b], a.stream, a.steps[b],
                                        static_cast<uint32_t>(r - bt.offsets[b]));
      const double u1 = Uniform01(blk.v[0], blk.v[1]), u2 = Uniform01(blk.v[2], blk.v[3]);
      if (u1 < p) {
        const int32_t t = RefSelect(bt, r, x, row, u2);
        if (t >= 0) {
          out->jumped[r] = 1;
          out->token[r] = t;
          ++out->result.jumps;
        }
      }
    }
  }
}

// --- exact equality with the reference -----------------------------------------

// BoundSkips is true when row r's jump uniform is at least its
// detail::JumpBoundOf: SampleStepCpu without a row_rate output then reads the
// row only to check that it is finite (the row cannot jump).
bool BoundSkips(const SampleStepArgs& a, const Batch& bt, int64_t r) {
  const int64_t b = static_cast<int64_t>(std::upper_bound(bt.offsets.begin(), bt.offsets.end(), r) -
                                         bt.offsets.begin() - 1);
  const Philox4x32 blk = PhiloxDraw(a.seed, a.sequence_ids[b], a.stream, a.steps[b],
                                    static_cast<uint32_t>(r - bt.offsets[b]));
  const float z_rate = HasRateColumn(bt.param) ? bt.raw[static_cast<size_t>(r * bt.cols)] : 0.0f;
  const float c = a.row_scales != nullptr ? a.row_scales[r] : 1.0f;
  return Uniform01(blk.v[0], blk.v[1]) >=
         detail::JumpBoundOf(bt.param, a.jump == JumpProbability::kExponential, z_rate, c,
                             a.fire[b]);
}

// RunWithoutRates runs SampleStepCpu on `a` without the row_rate output (so
// rows the bound rules out skip the scan) into *out (out->rate stays -1).
void RunWithoutRates(SampleStepArgs a, StepOut* out) {
  const size_t rows = static_cast<size_t>(a.rows);
  out->jumped.assign(rows, 7);
  out->token.assign(rows, -7);
  out->rate.assign(rows, -1.0);
  a.jumped = out->jumped.data();
  a.new_token = out->token.data();
  a.row_rate = nullptr;
  out->result = SampleStepCpu(a);
}

// ExpectSameAsReference runs SampleStepCpu on `a` (whose outputs are *got's)
// and the reference on `bt`: the same bits, the same jump count, no
// non-finite row. Then again without the row_rate output: the same jumps
// and tokens (rows the bound rules out take the read-only path). Returns the
// number of such rows.
int64_t ExpectSameAsReference(const SampleStepArgs& a, const Batch& bt, StepOut* got) {
  got->result = SampleStepCpu(a);
  StepOut ref;
  RefSampleStep(a, bt, &ref);
  ExpectSameBits(ref.jumped, got->jumped, "jumped");
  ExpectSameBits(ref.token, got->token, "new_token");
  ExpectSameBits(ref.rate, got->rate, "row_rate");
  EXPECT_EQ(got->result.jumps, ref.result.jumps);
  EXPECT_EQ(got->result.first_nonfinite_row, -1);
  StepOut fast;
  RunWithoutRates(a, &fast);
  ExpectSameBits(ref.jumped, fast.jumped, "jumped (no row_rate)");
  ExpectSameBits(ref.token, fast.token, "new_token (no row_rate)");
  EXPECT_EQ(fast.result.jumps, ref.result.jumps);
  EXPECT_EQ(fast.result.first_nonfinite_row, -1);
  int64_t skips = 0;
  for (int64_t r = 0; r < bt.rows(); ++r) skips += BoundSkips(a, bt, r);
  return skips;
}

TEST(SampleStepTest, MatchesReferenceBitForBit) {
  uint64_t seed = 11;
  const Parametrization params[] = {Parametrization::kSoftmax, Parametrization::kLogRateSoftmax,
                                    Parametrization::kSoftplusRateSoftmax};
  // Widths: one partial vector, exact vectors, chunk + tail, several chunks
  // (2300: the longest row the CPU scan takes as one block of chunk maxima,
  // 4099: chunk by chunk).
  for (int64_t v : {5, 32, 37, 256, 300, 1100, 2300, 4099}) {
    for (Parametrization p : params) {
      for (JumpProbability jump : {JumpProbability::kLinear, JumpProbability::kExponential}) {
        for (int variant = 0; variant < 2; ++variant) {
          SCOPED_TRACE("V " + std::to_string(v) + " param " + std::to_string(static_cast<int>(p)) +
                       " jump " + std::to_string(static_cast<int>(jump)) + " variant " +
                       std::to_string(variant));
          // fire up to 3: many rows jump (p clamps at 1 for linear).
          const Batch bt = MakeBatch(p, 23, 40, v, seed++, 3.0);
          StepOut got;
          const int64_t skips = ExpectSameAsReference(
              StepArgs(bt, &got, seed, variant == 0, variant == 0, jump), bt, &got);
          EXPECT_GT(got.result.jumps, 0);
          EXPECT_GT(skips, 0);  // both paths ran
          for (size_t r = 0; r < got.token.size(); ++r) {
            if (got.jumped[r] && variant == 0) {
              ASSERT_NE(got.token[r], bt.tokens[r]) << r;
            }
          }
        }
      }
    }
  }
}

// Logits N(0, 40): many values lie more than 87 below their row's running
// max, where ExpEvF clamps; the CPU scan's full chunks then leave their
// fast path (which skips the clamp), and must still match bit for bit.
TEST(SampleStepTest, MatchesReferenceBitForBitWhereTheExpClampActs) {
  uint64_t seed = 70;
  for (int64_t v : {256, 1100, 2300, 4099}) {
    SCOPED_TRACE("V " + std::to_string(v));
    Batch bt = MakeBatch(Parametrization::kSoftmax, 11, 30, v, seed++, 3.0, 40.0f);
    // In every third row the current token x is 400 above the rest, so
    // S_excl is a sum of clamped exponentials only (exp(-87) each; without
    // the clamp they would be 0).
    for (int64_t r = 0; r < bt.rows(); r += 3) {
      bt.raw[static_cast<size_t>(r * bt.cols + bt.tokens[static_cast<size_t>(r)])] += 400.0f;
    }
    // The clamp must act in the first chunk of most rows (a guard against
    // a batch that tests nothing).
    int64_t clamped_rows = 0;
    for (int64_t r = 0; r < bt.rows(); ++r) {
      const float* z = bt.raw.data() + r * bt.cols;
      const float zmax = *std::max_element(z, z + 256);
      clamped_rows += std::any_of(z, z + 256, [&](float x) { return x - zmax < -87.0f; });
    }
    ASSERT_GT(clamped_rows, bt.rows() / 2);
    StepOut got;
    ExpectSameAsReference(StepArgs(bt, &got, seed), bt, &got);
  }
}

// The CUDA backend runs the scan as 32 lanes loading 8 elements per chunk
// (detail::LaneChunkFetch, LaneChunkMax and LaneChunkAccumulate, a warp max
// between the last two);
// emulated here lane by lane, it must give the CPU backend's bits.
TEST(SampleStepTest, HostEmulationOfCudaWarpScanMatchesCpu) {
  uint64_t seed = 300;
  for (int64_t v : {3, 32, 33, 257, 512, 1500}) {
    const Batch bt = MakeBatch(Parametrization::kSoftplusRateSoftmax, 9, 30, v, seed++, 2.0);
    StepOut got;
    const SampleStepArgs a = StepArgs(bt, &got, 5);
    got.result = SampleStepCpu(a);
    for (int64_t b = 0; b < bt.sequences(); ++b) {
      for (int64_t r = bt.offsets[b]; r < bt.offsets[b + 1]; ++r) {
        const float* raw = bt.raw.data() + r * bt.cols;
        const float* z = raw + 1;
        const int32_t x = bt.tokens[r];
        detail::RowScan scan{};
        float vals[32][detail::kPerLane];
        float m = detail::NegInfF();
        bool fin = true;
        for (int64_t base = 0; base < v; base += detail::kChunk) {
          float cmax = detail::NegInfF();
          for (int lane = 0; lane < 32; ++lane) {
            detail::LaneChunkFetch(z, v, base, lane, vals[lane]);
            cmax = std::max(cmax, detail::LaneChunkMax(vals[lane], v, base, lane, &fin));
          }
          if (cmax > m) {
            for (float& s : scan.lane) s = MulF(s, detail::ChunkRescale(m, cmax));
            m = cmax;
          }
          for (int lane = 0; lane < 32; ++lane) {
            detail::LaneChunkAccumulate(vals[lane], v, base, lane, x, m, &scan.lane[lane]);
          }
        }
        scan.zmax = m;
        scan.finite = fin;
        ASSERT_TRUE(fin);
        double s_excl = 0.0;
        const double rate = detail::ScanRowRate(bt.param, raw, v, x, bt.scales[r], scan, &s_excl);
        ASSERT_EQ(rate, got.rate[r]) << "V " << v << " row " << r;
        if (got.jumped[r]) {
          const Philox4x32 blk = PhiloxDraw(a.seed, bt.ids[b], a.stream, bt.steps[b],
                                            static_cast<uint32_t>(r - bt.offsets[b]));
          EXPECT_EQ(detail::SelectToken(z, v, x, scan, s_excl, Uniform01(blk.v[2], blk.v[3])),
                    got.token[r]);
        }
      }
    }
  }
}

TEST(SampleStepTest, IndependentOfThreadCountAndBatching) {
  const Batch bt = MakeBatch(Parametrization::kSoftmax, 64, 80, 200, 77, 1.0);
  StepOut one, two;
  {
    tbb::task_arena arena(1);
    arena.execute([&] { one.result = SampleStepCpu(StepArgs(bt, &one, 9)); });
  }
  {
    tbb::task_arena arena(2);
    arena.execute([&] { two.result = SampleStepCpu(StepArgs(bt, &two, 9)); });
  }
  ExpectSameBits(one.jumped, two.jumped, "jumped");
  ExpectSameBits(one.token, two.token, "new_token");
  ExpectSameBits(one.rate, two.rate, "row_rate");
  // The second half of the batch on its own (ids and steps travel with it).
  Batch half = bt;
  const int64_t b0 = bt.sequences() / 2, r0 = bt.offsets[b0];
  half.offsets.assign(bt.offsets.begin() + b0, bt.offsets.end());
  for (int64_t& o : half.offsets) o -= r0;
  half.raw.assign(bt.raw.begin() + r0 * bt.cols, bt.raw.end());
  half.scales.assign(bt.scales.begin() + r0, bt.scales.end());
  half.tokens.assign(bt.tokens.begin() + r0, bt.tokens.end());
  half.fire.assign(bt.fire.begin() + b0, bt.fire.end());
  half.ids.assign(bt.ids.begin() + b0, bt.ids.end());
  half.steps.assign(bt.steps.begin() + b0, bt.steps.end());
  StepOut h;
  h.result = SampleStepCpu(StepArgs(half, &h, 9));
  for (int64_t r = r0; r < bt.rows(); ++r) {
    ASSERT_EQ(h.token[static_cast<size_t>(r - r0)], one.token[static_cast<size_t>(r)]) << r;
  }
}

TEST(SampleStepTest, RatesMatchADoubleSoftmax) {
  const Parametrization params[] = {Parametrization::kSoftmax, Parametrization::kLogRateSoftmax,
                                    Parametrization::kSoftplusRateSoftmax};
  for (Parametrization p : params) {
    const Batch bt = MakeBatch(p, 10, 30, 700, 5 + static_cast<int>(p), 0.01);
    StepOut got;
    got.result = SampleStepCpu(StepArgs(bt, &got, 1));
    for (int64_t r = 0; r < bt.rows(); ++r) {
      const float* raw = bt.raw.data() + r * bt.cols;
      const float* z = raw + (HasRateColumn(p) ? 1 : 0);
      double mx = -1e300, s = 0.0;
      for (int64_t k = 0; k < bt.v; ++k) mx = std::max(mx, static_cast<double>(z[k]));
      for (int64_t k = 0; k < bt.v; ++k) s += std::exp(z[k] - mx);
      double lambda = bt.scales[r];
      if (p == Parametrization::kLogRateSoftmax) lambda *= std::exp(static_cast<double>(raw[0]));
      if (p == Parametrization::kSoftplusRateSoftmax) {
        lambda *= std::log1p(std::exp(static_cast<double>(raw[0])));
      }
      const double ref = lambda * (1.0 - std::exp(z[bt.tokens[r]] - mx) / s);
      ASSERT_NEAR(got.rate[r], ref, 2e-6 * ref + 1e-30) << "row " << r;
    }
  }
}

// --- distributions ------------------------------------------------------------------

// ChiSquareCritical is the upper `z`-sigma critical value of chi-square with
// `dof` degrees of freedom (Wilson-Hilferty; z = 3.719 is level 1e-4).
double ChiSquareCritical(int dof, double z) {
  const double k = 2.0 / (9.0 * dof);
  return dof * std::pow(1.0 - k + z * std::sqrt(k), 3.0);
}

// Token draws: every row of a batch has the same logits; over 240,000 draws
// (different steps) the new tokens follow p_a / (1 - p_x). Level 1e-4.
// TargetChiSquare draws rows x steps target tokens of one softmax row of
// width v (logits N(0, sd^2), excluded x) and returns the chi-square against the softmax with
// the critical value at p = 1e-4.
std::pair<double, double> TargetChiSquare(int64_t v, int32_t x, float sd, int64_t rows,
                                          uint32_t steps) {
  std::mt19937_64 rng(3);
  std::normal_distribution<float> normal(0.0f, sd);
  std::vector<float> z(static_cast<size_t>(v));
  for (float& val : z) val = normal(rng);
  z[x] = 3.0f;
  Batch bt;
  bt.v = v;
  bt.cols = v;
  bt.offsets = {0, rows};
  for (int64_t r = 0; r < rows; ++r) bt.raw.insert(bt.raw.end(), z.begin(), z.end());
  bt.tokens.assign(static_cast<size_t>(rows), x);
  bt.scales.assign(static_cast<size_t>(rows), 1.0f);
  bt.fire = {1e9};  // p = 1: every row jumps
  bt.ids = {42};
  bt.steps = {0};
  std::vector<int64_t> counts(static_cast<size_t>(v), 0);
  int64_t n = 0;
  for (uint32_t step = 0; step < steps; ++step) {
    bt.steps[0] = step;
    StepOut out;
    out.result = SampleStepCpu(StepArgs(bt, &out, 2024));
    EXPECT_EQ(out.result.jumps, rows);
    for (int32_t t : out.token) {
      EXPECT_NE(t, x);
      ++counts[static_cast<size_t>(t)];
      ++n;
    }
  }
  double mx = *std::max_element(z.begin(), z.end()), s = 0.0;
  for (int64_t k = 0; k < v; ++k) {
    if (k != x) s += std::exp(z[k] - mx);
  }
  double chi2 = 0.0;
  for (int64_t k = 0; k < v; ++k) {
    if (k == x) continue;
    const double expected = static_cast<double>(n) * std::exp(z[k] - mx) / s;
    chi2 += (counts[k] - expected) * (counts[k] - expected) / expected;
  }
  return {chi2, ChiSquareCritical(static_cast<int>(v - 2), 3.719)};
}

TEST(SampleStepTest, TargetTokensFollowTheSoftmaxByChiSquare) {
  // V = 300 crosses a chunk boundary (256 + 44), x in the tail chunk; V =
  // 5000 has segments of 5 elements per lane (the three-level walk); its
  // logits are narrower so every expected count is >= 9.
  const std::tuple<int64_t, int32_t, float, uint32_t> cases[] = {{300, 270, 1.0f, 240},
                                                                 {5000, 4100, 0.3f, 150}};
  for (const auto& [v, x, sd, steps] : cases) {
    const auto [chi2, critical] = TargetChiSquare(v, x, sd, 1000, steps);
    EXPECT_LT(chi2, critical) << "V " << v << " chi2 " << chi2;
  }
}

// Jump frequencies: rows with p in (0, 1) jump with probability p (linear:
// M q; exponential: 1 - exp(-M h dt)). Binomial, 5 sigma.
TEST(SampleStepTest, JumpFrequencyMatchesTheProbability) {
  for (JumpProbability jump : {JumpProbability::kLinear, JumpProbability::kExponential}) {
    Batch bt;
    bt.param = Parametrization::kLogRateSoftmax;
    bt.v = 50;
    bt.cols = 51;
    bt.offsets = {0, 1};
    std::mt19937_64 rng(8);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (int64_t k = 0; k < bt.cols; ++k) bt.raw.push_back(normal(rng));
    bt.tokens = {7};
    bt.scales = {0.8f};
    bt.fire = {1.0};
    bt.ids = {3};
    bt.steps = {0};
    StepOut probe;
    SampleStepCpu(StepArgs(bt, &probe, 1));
    const double m = probe.rate[0];
    ASSERT_GT(m, 0.0);
    bt.fire[0] = 0.3 / m;
    const double p = jump == JumpProbability::kLinear ? 0.3 : -std::expm1(-0.3);
    int64_t jumps = 0;
    const int64_t trials = 40000;
    for (uint32_t step = 0; step < trials; ++step) {
      bt.steps[0] = step;
      StepOut out;
      jumps += SampleStepCpu(StepArgs(bt, &out, 77, true, true, jump)).jumps;
    }
    const double mean = p * trials, sd = std::sqrt(trials * p * (1.0 - p));
    EXPECT_NEAR(static_cast<double>(jumps), mean, 5.0 * sd) << static_cast<int>(jump);
  }
}

TEST(SampleStepTest, NonFiniteRowsNeverJumpAndAreReported) {
  Batch bt = MakeBatch(Parametrization::kSoftplusRateSoftmax, 6, 20, 40, 31, 5.0);
  ASSERT_GT(bt.rows(), 12);
  bt.raw[static_cast<size_t>(9 * bt.cols + 5)] = std::numeric_limits<float>::quiet_NaN();
  bt.raw[static_cast<size_t>(12 * bt.cols)] = std::numeric_limits<float>::infinity();  // rate
  StepOut out;
  out.result = SampleStepCpu(StepArgs(bt, &out, 3));
  EXPECT_EQ(out.result.first_nonfinite_row, 9);
  for (int64_t r : {9, 12}) {
    EXPECT_EQ(out.jumped[r], 0);
    EXPECT_EQ(out.token[r], bt.tokens[r]);
    EXPECT_EQ(out.rate[r], 0.0);
  }
  // Without the row_rate output, at fire 0 every row takes the read-only
  // path (bound 0): the same rows are reported.
  for (double& f : bt.fire) f = 0.0;
  StepOut fast;
  RunWithoutRates(StepArgs(bt, &out, 3), &fast);
  EXPECT_EQ(fast.result.first_nonfinite_row, 9);
  EXPECT_EQ(fast.result.jumps, 0);
  bt.raw[static_cast<size_t>(9 * bt.cols + 5)] = 0.0f;
  RunWithoutRates(StepArgs(bt, &out, 3), &fast);
  EXPECT_EQ(fast.result.first_nonfinite_row, 12);
}

// One NaN, +inf or -inf anywhere in a long row (first, middle and last
// element of full chunks, the tail chunk, the excluded token) makes exactly
// that row non-finite, whichever path the CPU scan takes for its chunk (and,
// without the row_rate output at a small fire, on the read-only path of rows
// that cannot jump); every other row keeps its bits.
TEST(SampleStepTest, OneNonFiniteValueAnywhereInALongRowIsReported) {
  for (const bool rates : {true, false}) {
    const Batch clean = MakeBatch(Parametrization::kSoftmax, 4, 12, 1100, 77, rates ? 5.0 : 1e-3);
    const auto run = [&](const Batch& bt, StepOut* out) {
      if (rates) {
        out->result = SampleStepCpu(StepArgs(bt, out, 5));
      } else {
        RunWithoutRates(StepArgs(bt, out, 5), out);
      }
    };
    StepOut base;
    run(clean, &base);
    ASSERT_EQ(base.result.first_nonfinite_row, -1);
    const int64_t row = clean.rows() / 2;
    const int32_t x = clean.tokens[static_cast<size_t>(row)];
    StepOut probe;
    ASSERT_EQ(BoundSkips(StepArgs(clean, &probe, 5), clean, row), !rates);
    const float bad_values[] = {std::numeric_limits<float>::quiet_NaN(),
                                std::numeric_limits<float>::infinity(),
                                -std::numeric_limits<float>::infinity()};
    for (float bad : bad_values) {
      for (int64_t k :
           {int64_t{0}, int64_t{1}, int64_t{130}, int64_t{255}, int64_t{256}, int64_t{600},
            int64_t{1023}, int64_t{1024}, int64_t{1099}, static_cast<int64_t>(x)}) {
        SCOPED_TRACE("value " + std::to_string(bad) + " at " + std::to_string(k) +
                     (rates ? "" : " without rates"));
        Batch bt = clean;
        bt.raw[static_cast<size_t>(row * bt.cols + k)] = bad;
        StepOut out;
        run(bt, &out);
        EXPECT_EQ(out.result.first_nonfinite_row, row);
        EXPECT_EQ(out.jumped[row], 0);
        EXPECT_EQ(out.token[row], x);
        if (rates) {
          EXPECT_EQ(out.rate[row], 0.0);
        }
        for (int64_t r = 0; r < bt.rows(); ++r) {
          if (r == row) continue;
          ASSERT_EQ(out.token[r], base.token[r]) << r;
          ASSERT_EQ(out.rate[r], base.rate[r]) << r;
        }
      }
    }
  }
}

// JumpBoundOf bounds the jump probability SampleStep computes from the
// row's rate, for every parametrization and jump form, fire values from 0
// to past saturation, and rows with and without an excluded token (without
// one, M = lambda up to rounding: the tightest case).
TEST(SampleStepTest, JumpBoundIsAtLeastTheJumpProbability) {
  const Parametrization params[] = {Parametrization::kSoftmax, Parametrization::kLogRateSoftmax,
                                    Parametrization::kSoftplusRateSoftmax};
  uint64_t seed = 500;
  int64_t checked = 0;
  for (Parametrization p : params) {
    for (const bool tokens : {true, false}) {
      const Batch bt = MakeBatch(p, 20, 30, 70, seed++, 4.0);
      StepOut out;
      out.result = SampleStepCpu(StepArgs(bt, &out, 1, tokens));
      for (int64_t b = 0; b < bt.sequences(); ++b) {
        for (int64_t r = bt.offsets[b]; r < bt.offsets[b + 1]; ++r) {
          const float z_rate = HasRateColumn(p) ? bt.raw[static_cast<size_t>(r * bt.cols)] : 0.0f;
          for (const bool exponential : {false, true}) {
            for (const double fire :
                 {0.0, 1e-300, 1e-3, bt.fire[b], 0.7, 1.0 / out.rate[r], 50.0}) {
              const double prob = detail::JumpProbabilityOf(exponential, out.rate[r], fire);
              const double bound = detail::JumpBoundOf(p, exponential, z_rate, bt.scales[r], fire);
              ASSERT_GE(bound, prob) << "row " << r << " fire " << fire;
              ++checked;
            }
          }
        }
      }
    }
  }
  EXPECT_GT(checked, 1000);
}

TEST(SampleStepTest, GapRowsWithoutTokensExcludeNothing) {
  Batch bt = MakeBatch(Parametrization::kSoftmax, 5, 10, 3, 4, 1e6);
  StepOut out;
  out.result = SampleStepCpu(StepArgs(bt, &out, 3, /*use_tokens=*/false, /*use_scales=*/false));
  for (int64_t r = 0; r < bt.rows(); ++r) {
    EXPECT_EQ(out.jumped[r], 1);  // M = 1 (scale 1, nothing excluded), fire huge
    EXPECT_DOUBLE_EQ(out.rate[r], 1.0);
  }
}

// --- Gillespie ---------------------------------------------------------------------

TEST(GillespieTest, MatchesReferenceBitForBit) {
  uint64_t seed = 900;
  for (int64_t v : {7, 64, 300}) {
    for (Parametrization p : {Parametrization::kSoftmax, Parametrization::kLogRateSoftmax}) {
      const Batch bt = MakeBatch(p, 37, 50, v, seed++);
      GillespieOut got;
      const GillespieArgs g = GArgs(bt, &got, 17);
      got.result = GillespieCpu(g);
      int64_t events = 0;
      for (int64_t b = 0; b < bt.sequences(); ++b) {
        const int64_t begin = bt.offsets[b], end = bt.offsets[b + 1];
        double total = 0.0;
        std::vector<RefRow> rows;
        for (int64_t r = begin; r < end; ++r) {
          rows.push_back(RefScanRow(bt, r, bt.tokens[r], bt.scales[r]));
          ASSERT_EQ(rows.back().rate, got.row_rate[r]) << "row " << r;
          total += rows.back().rate;
        }
        ASSERT_EQ(total, got.total[b]) << "sequence " << b;
        if (end == begin) {
          EXPECT_EQ(got.position[b], -1);
          continue;
        }
        const Philox4x32 blk = PhiloxDraw(17, bt.ids[b], kStreamGillespie, bt.steps[b], 0);
        const double target = MulD(Uniform01(blk.v[0], blk.v[1]), total);
        double c = 0.0;
        int64_t chosen = -1;
        for (int64_t i = 0; i < end - begin; ++i) {
          if (!(rows[i].rate > 0.0)) continue;
          chosen = i;
          if (target < c + rows[i].rate) break;
          c += rows[i].rate;
        }
        ASSERT_EQ(got.position[b], chosen) << "sequence " << b;
        const int64_t r = begin + chosen;
        EXPECT_EQ(got.token[b],
                  RefSelect(bt, r, bt.tokens[r], rows[chosen], Uniform01(blk.v[2], blk.v[3])));
        EXPECT_NE(got.token[b], bt.tokens[r]);
        ++events;
      }
      EXPECT_EQ(got.result.events, events);
    }
  }
}

// Event rows follow M_r / total over 60,000 proposals (chi-square, level
// 1e-4), and the row's tokens follow its softmax.
TEST(GillespieTest, EventRowsFollowTheRowRatesByChiSquare) {
  Batch bt = MakeBatch(Parametrization::kLogRateSoftmax, 1, 1, 20, 55);
  const int64_t len = 12;
  bt.offsets = {0, len};
  std::mt19937_64 rng(8);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  bt.raw.resize(static_cast<size_t>(len * bt.cols));
  bt.tokens.resize(static_cast<size_t>(len));
  bt.scales.assign(static_cast<size_t>(len), 1.0f);
  for (int64_t r = 0; r < len; ++r) {
    for (int64_t k = 0; k < bt.cols; ++k) bt.raw[r * bt.cols + k] = normal(rng);
    bt.tokens[r] = static_cast<int32_t>(r % bt.v);
  }
  std::vector<int64_t> row_counts(static_cast<size_t>(len), 0);
  std::vector<int64_t> tok_counts(static_cast<size_t>(bt.v), 0);
  GillespieOut out;
  const int64_t n = 60000;
  int64_t row3 = 0;
  for (uint32_t step = 0; step < n; ++step) {
    bt.steps[0] = step;
    GillespieCpu(GArgs(bt, &out, 4));
    ASSERT_GE(out.position[0], 0);
    ++row_counts[out.position[0]];
    if (out.position[0] == 3) {
      ++tok_counts[out.token[0]];
      ++row3;
    }
  }
  double chi2 = 0.0;
  for (int64_t r = 0; r < len; ++r) {
    const double expected = n * out.row_rate[r] / out.total[0];
    chi2 += (row_counts[r] - expected) * (row_counts[r] - expected) / expected;
  }
  EXPECT_LT(chi2, ChiSquareCritical(static_cast<int>(len - 1), 3.719)) << chi2;
  const float* z = bt.raw.data() + 3 * bt.cols + 1;
  double s = 0.0;
  for (int64_t k = 0; k < bt.v; ++k) {
    if (k != bt.tokens[3]) s += std::exp(static_cast<double>(z[k]));
  }
  double chi2t = 0.0;
  for (int64_t k = 0; k < bt.v; ++k) {
    if (k == bt.tokens[3]) {
      EXPECT_EQ(tok_counts[k], 0);
      continue;
    }
    const double expected = row3 * std::exp(static_cast<double>(z[k])) / s;
    chi2t += (tok_counts[k] - expected) * (tok_counts[k] - expected) / expected;
  }
  EXPECT_LT(chi2t, ChiSquareCritical(static_cast<int>(bt.v - 2), 3.719)) << chi2t;
}

TEST(GillespieTest, IndependentOfThreadCount) {
  const Batch bt = MakeBatch(Parametrization::kSoftplusRateSoftmax, 90, 60, 130, 5);
  GillespieOut one, two;
  {
    tbb::task_arena arena(1);
    arena.execute([&] { one.result = GillespieCpu(GArgs(bt, &one, 8)); });
  }
  {
    tbb::task_arena arena(2);
    arena.execute([&] { two.result = GillespieCpu(GArgs(bt, &two, 8)); });
  }
  ExpectSameBits(one.row_rate, two.row_rate, "row_rate");
  ExpectSameBits(one.total, two.total, "total");
  ExpectSameBits(one.position, two.position, "event_position");
  ExpectSameBits(one.token, two.token, "event_token");
}

// --- validation and dispatch ----------------------------------------------------------

TEST(EventDispatchTest, ValidationNamesTheOffendingValue) {
  Batch bt = MakeBatch(Parametrization::kSoftmax, 10, 6, 10, 2);
  ASSERT_GT(bt.rows(), 2);
  StepOut out;
  SampleStepArgs a = StepArgs(bt, &out, 1);
  EXPECT_TRUE(ValidateSampleStep(a).ok());
  bt.tokens[2] = 10;
  absl::Status s = ValidateSampleStep(a);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("tokens[2] = 10"), std::string::npos) << s;
  bt.tokens[2] = 0;
  bt.fire[1] = -1.0;
  EXPECT_NE(ValidateSampleStep(a).message().find("fire[1]"), std::string::npos);
  bt.fire[1] = 0.0;
  // A row scale of 0 is a row that never jumps; a negative one is an error.
  bt.scales[1] = 0.0f;
  const absl::StatusOr<SampleStepResult> zero = SampleStep(a);
  ASSERT_TRUE(zero.ok()) << zero.status();
  EXPECT_EQ(out.jumped[1], 0);
  EXPECT_EQ(out.rate[1], 0.0);
  EXPECT_GT(out.rate[0], 0.0);
  bt.scales[1] = -0.5f;
  EXPECT_NE(ValidateSampleStep(a).message().find("row_scales[1] = -0.5"), std::string::npos);
  bt.scales[1] = 1.0f;
  bt.offsets.back() += 1;
  EXPECT_EQ(SampleStep(a).status().code(), absl::StatusCode::kInvalidArgument);
  bt.offsets.back() -= 1;
  a.parametrization = Parametrization::kSoftplus;
  EXPECT_NE(ValidateSampleStep(a).message().find("softmax"), std::string::npos);
}

TEST(EventDispatchTest, HostPointersRunOnTheCpuAndCudaIsAnErrorWithoutAGpu) {
  const Batch bt = MakeBatch(Parametrization::kSoftmax, 8, 20, 33, 12, 1.0);
  StepOut a_out, b_out;
  const absl::StatusOr<SampleStepResult> dispatched = SampleStep(StepArgs(bt, &a_out, 6));
  ASSERT_TRUE(dispatched.ok()) << dispatched.status();
  b_out.result = SampleStepCpu(StepArgs(bt, &b_out, 6));
  EXPECT_EQ(dispatched->jumps, b_out.result.jumps);
  ExpectSameBits(b_out.token, a_out.token, "new_token");
  EXPECT_EQ(PointerBackend(bt.raw.data()), Backend::kCpu);
  if (CudaDeviceCount() == 0) {
    StepOut c_out;
    const absl::StatusOr<SampleStepResult> cuda =
        SampleStep(Backend::kCuda, StepArgs(bt, &c_out, 6));
    EXPECT_EQ(cuda.status().code(), absl::StatusCode::kFailedPrecondition) << cuda.status();
    GillespieOut g_out;
    EXPECT_EQ(Gillespie(Backend::kCuda, GArgs(bt, &g_out, 1)).status().code(),
              absl::StatusCode::kFailedPrecondition);
  }
}

}  // namespace
}  // namespace jumpflow::kernels
