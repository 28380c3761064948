// @brief The canonical arithmetic of the fused event kernels
// (kernels/sample_step.h, kernels/gillespie.h), shared by the CPU and CUDA
// backends so that both draw bit-identical events.
//
// A softmax row z[0..V) with current token x (excluded; -1 for none) is
// reduced to 32 lane sums by the "chunked online" scan below, and every
// later decision (row rate, jump, lane choice, token choice) is a scalar
// function of those sums, z and the uniforms:
//
//   m = -inf; s[0..32) = 0
//   for each chunk c = [256 c, min(256 (c + 1), V)):
//     m' = max(m, max of z over the chunk)
//     if m' > m: s[j] *= ExpEvF(m - m') for every j;  m = m'
//     for k in the chunk, in increasing order, k != x:
//       s[k mod 32] += ExpEvF(z[k] - m)
//
// Lane j thus sums the elements k = j (mod 32) in increasing k. The CPU
// backend runs it on 16-lane vectors (lanes 0-15 and 16-31 in two
// accumulators), the CUDA backend with one warp per row (thread j = lane j,
// eight elements of a chunk per thread); both add the same numbers in the
// same order, and ExpEvF is deterministic (kernels/detail/fast_math.h). The
// per-chunk rescale is the "online softmax": the row is read from memory
// once.
//
// From the sums (in double):
//   S_excl = the lane sums added as a fixed pairwise tree (LaneTotal)
//   S_full = S_excl + ExpEvF(z[x] - m)  (S_excl if x < 0)
//   lambda = c                        softmax
//          = c ExpF(min(z_rate, 80))   log-rate x softmax
//          = c SoftplusF(z_rate)        softplus-rate x softmax   (float)
//   M = lambda S_excl / S_full      the row's total multiplier over a != x
// Inverse CDF of a uniform u over the tokens a != x, three levels, every
// running sum in double:
//   1. lanes: target T = u S_excl; walk the lanes in order with a running
//      sum C, choose the first lane j with s[j] > 0 and T < C + s[j];
//      R = T - C.
//   2. segments: lane j's elements k = j + 32 i (i = 0, 1, ...) form 32
//      contiguous segments of SegmentLength(V) = ceil(ceil(V / 32) / 32)
//      values of i; the segment sums S_t (sequential in i, k != x) are
//      walked like the lanes: the first t with S_t > 0 and R < S_t, else
//      R -= S_t.
//   3. elements of segment t in order (k != x): the first k with
//      R < ExpEvF(z[k] - m), else R -= ExpEvF(z[k] - m).
// Where rounding runs past the end (the recomputed exponentials are not
// exactly the rescaled running sums), the last lane with s[j] > 0, the last
// element of the lane, respectively the last element of the segment, is
// chosen: a bias of order 1e-7 relative in the probabilities, identical on
// both backends. The segment level lets a warp compute the 32 segment sums
// in parallel (one per thread) instead of one thread walking ceil(V / 32)
// strided elements; the CPU computes them in a loop.
//
// Example (after a backend filled `scan` for row z):
//   double s_excl;
//   const double rate = detail::ScanRowRate(p, raw_row, V, x, c, scan, &s_excl);
//   const detail::EventUniforms u = detail::KeyedUniforms(seed, seq, stream, step, pos);
//   if (u.first < detail::JumpProbabilityOf(false, rate, q))
//     token = detail::SelectToken(z, V, x, scan, s_excl, u.second);
#ifndef JUMPFLOW_KERNELS_DETAIL_EVENT_MATH_H_
#define JUMPFLOW_KERNELS_DETAIL_EVENT_MATH_H_

#include <cstdint>

#include "kernels/detail/fast_math.h"
#include "kernels/parametrization.h"
#include "kernels/philox.h"

namespace jumpflow::kernels::detail {

// kLanes is the number of lane sums of the canonical scan.
constexpr int kLanes = 32;
// kChunk is the chunk length of the online rescale (8 elements per lane).
constexpr int kChunk = 256;
// kPerLane is kChunk / kLanes.
constexpr int kPerLane = kChunk / kLanes;

// RowScan is the result of the canonical scan of one row.
struct RowScan {
  float lane[kLanes];
  float zmax;
  bool finite;
};

// LaneTotal is S_excl: the 32 lane sums in double, added as the fixed tree
// t[j] = s[j] + s[j + 16] (j < 16), then t[j] += t[j + w] for w = 8, 4, 2, 1
// (what a warp's butterfly shuffle computes in lane 0).
JUMPFLOW_HD double LaneTotal(const float* lane) {
  double t[kLanes / 2];
  for (int j = 0; j < kLanes / 2; ++j) {
    t[j] = static_cast<double>(lane[j]) + static_cast<double>(lane[j + kLanes / 2]);
  }
  for (int w = kLanes / 4; w >= 1; w /= 2) {
    for (int j = 0; j < w; ++j) t[j] = t[j] + t[j + w];
  }
  return t[0];
}

// RateFactor is lambda (file comment) for a softmax-family parametrization;
// z_rate is the rate column (ignored for kSoftmax), c the row scale.
JUMPFLOW_HD float RateFactor(Parametrization p, float z_rate, float c) {
  if (p == Parametrization::kLogRateSoftmax) return MulF(c, ExpF(MinF(z_rate, 80.0f)));
  if (p == Parametrization::kSoftplusRateSoftmax) return MulF(c, SoftplusF(z_rate));
  return c;
}

// RowRate is M = lambda S_excl / S_full (0 when S_excl is 0).
JUMPFLOW_HD double RowRate(float lambda, double s_excl, float e_x) {
  if (!(s_excl > 0.0)) return 0.0;
  const double s_full = s_excl + static_cast<double>(e_x);
  return MulD(static_cast<double>(lambda), s_excl) / s_full;
}

// IsFiniteF is true for finite x (x - x is 0, NaN for inf and NaN).
JUMPFLOW_HD bool IsFiniteF(float x) { return x - x == 0.0f; }

// RowRateFromTotal is M for a row whose lane total S_excl is known
// (file comment). raw_row is the row's raw outputs (rate column first when
// the parametrization has one), x the excluded token or -1, c the row
// scale, zmax the row max of the logits.
JUMPFLOW_HD double RowRateFromTotal(Parametrization p, const float* raw_row, int64_t v, int32_t x,
                                    float c, float zmax, double s_excl) {
  const bool has_rate = HasRateColumn(p);
  const float* z = raw_row + (has_rate ? 1 : 0);
  const float e_x = x >= 0 && x < v ? ExpEvF(z[x] - zmax) : 0.0f;
  const float lambda = RateFactor(p, has_rate ? raw_row[0] : 0.0f, c);
  return RowRate(lambda, s_excl, e_x);
}

// ScanRowRate finishes a row from its scan: sets *s_excl = LaneTotal and
// returns M.
JUMPFLOW_HD double ScanRowRate(Parametrization p, const float* raw_row, int64_t v, int32_t x,
                               float c, const RowScan& scan, double* s_excl) {
  *s_excl = LaneTotal(scan.lane);
  return RowRateFromTotal(p, raw_row, v, x, c, scan.zmax, *s_excl);
}

// JumpProbabilityOf turns a row rate M and the sequence's `fire` value into
// the jump probability: linear min(1, M fire) (fire = q = 1 - S(t')/S(t),
// the samplers' form) or exponential 1 - exp(-M fire) (fire = h dt).
JUMPFLOW_HD double JumpProbabilityOf(bool exponential, double rate, double fire) {
  const double x = MulD(rate, fire);
  if (exponential) return OneMinusExpNeg(x);
  return x < 1.0 ? (x > 0.0 ? x : 0.0) : 1.0;
}

// JumpBoundOf bounds a row's jump probability without its logits' scan:
// M = lambda S_excl / S_full <= lambda (S_excl <= S_full), so the probability
// at lambda (1 + 2^-20) is at least JumpProbabilityOf(exponential, M, fire)
// as computed (the margin covers the rounding of M, at most an ulp, and
// OneMinusExpNeg's ~1e-15 relative error). A row whose jump uniform is >=
// the bound cannot jump, whatever its softmax. z_rate is the rate column
// (ignored for kSoftmax), c the row scale.
JUMPFLOW_HD double JumpBoundOf(Parametrization p, bool exponential, float z_rate, float c,
                               double fire) {
  const double lambda = static_cast<double>(RateFactor(p, z_rate, c));
  return JumpProbabilityOf(exponential, MulD(lambda, 1.0 + 0x1p-20), fire);
}

// SelectLane returns the lane of the inverse-CDF walk for uniform u (file
// comment) and sets *remainder = T - C (T - C of the lane chosen; +inf when
// rounding ran past the last positive lane). -1 when every lane is 0.
JUMPFLOW_HD int SelectLane(const float* lane, double s_excl, double u, double* remainder) {
  const double target = MulD(u, s_excl);
  double c = 0.0;
  int last = -1;
  for (int j = 0; j < kLanes; ++j) {
    const double s = static_cast<double>(lane[j]);
    if (!(s > 0.0)) continue;
    last = j;
    if (target < c + s) {
      *remainder = target - c;
      return j;
    }
    c += s;
  }
  *remainder = 1e300;
  return last;
}

// kSegments is the number of segments a lane is split into (file comment).
constexpr int kSegments = 32;

// LaneLength is the number of elements k = lane + 32 i < v of a lane.
JUMPFLOW_HD int64_t LaneLength(int64_t v, int lane) {
  return lane < v ? (v - lane + kLanes - 1) / kLanes : 0;
}

// SegmentLength is ceil(ceil(v / 32) / 32): the values of i per segment.
JUMPFLOW_HD int64_t SegmentLength(int64_t v) {
  const int64_t n = (v + kLanes - 1) / kLanes;
  return (n + kSegments - 1) / kSegments;
}

// SegmentSum is S_t of segment `seg` of lane `lane` (file comment).
JUMPFLOW_HD double SegmentSum(const float* z, int64_t v, int32_t x, float zmax, int lane, int seg) {
  const int64_t len = SegmentLength(v), n = LaneLength(v, lane);
  const int64_t end = (seg + 1) * len < n ? (seg + 1) * len : n;
  double s = 0.0;
  for (int64_t i = seg * len; i < end; ++i) {
    const int64_t k = lane + static_cast<int64_t>(kLanes) * i;
    if (k != x) s += static_cast<double>(ExpEvF(z[k] - zmax));
  }
  return s;
}

// PickSegment walks the kSegments segment sums with *remainder (level 2 of
// the file comment): returns the segment and leaves its remainder in
// *remainder, or -1 when rounding ran past the last segment.
JUMPFLOW_HD int PickSegment(const double* seg_sums, double* remainder) {
  for (int t = 0; t < kSegments; ++t) {
    const double s = seg_sums[t];
    if (!(s > 0.0)) continue;
    if (*remainder < s) return t;
    *remainder -= s;
  }
  return -1;
}

// LastInLane is the last element k != x of a lane (-1 when none).
JUMPFLOW_HD int32_t LastInLane(int64_t v, int32_t x, int lane) {
  for (int64_t i = LaneLength(v, lane) - 1; i >= 0; --i) {
    const int64_t k = lane + static_cast<int64_t>(kLanes) * i;
    if (k != x) return static_cast<int32_t>(k);
  }
  return -1;
}

// SelectInLane runs levels 2 and 3 of the file comment on lane `lane` of row
// z (V elements, excluded x, row max zmax) with the remainder of SelectLane
// and returns the token.
JUMPFLOW_HD int32_t SelectInLane(const float* z, int64_t v, int32_t x, float zmax, int lane,
                                 double remainder) {
  double sums[kSegments];
  for (int t = 0; t < kSegments; ++t) sums[t] = SegmentSum(z, v, x, zmax, lane, t);
  const int seg = PickSegment(sums, &remainder);
  if (seg < 0) return LastInLane(v, x, lane);
  const int64_t len = SegmentLength(v), n = LaneLength(v, lane);
  const int64_t end = (seg + 1) * len < n ? (seg + 1) * len : n;
  int32_t last = -1;
  for (int64_t i = seg * len; i < end; ++i) {
    const int64_t k = lane + static_cast<int64_t>(kLanes) * i;
    if (k == x) continue;
    const double e = static_cast<double>(ExpEvF(z[k] - zmax));
    last = static_cast<int32_t>(k);
    if (remainder < e) return last;
    remainder -= e;
  }
  return last;
}

// SelectToken is SelectLane + SelectInLane: the token a != x drawn with
// uniform u, or -1 when S_excl is 0.
JUMPFLOW_HD int32_t SelectToken(const float* z, int64_t v, int32_t x, const RowScan& scan,
                                double s_excl, double u) {
  double rem = 0.0;
  const int lane = SelectLane(scan.lane, s_excl, u, &rem);
  if (lane < 0) return -1;
  return SelectInLane(z, v, x, scan.zmax, lane, rem);
}

// SelectRow is the Gillespie row choice: the first row i (in order, with
// rates[i] > 0) such that u total < C + rates[i], C the running double sum of
// the rows before it; the last positive row when rounding runs past the end;
// -1 when no row is positive. rates has n entries.
JUMPFLOW_HD int64_t SelectRow(const double* rates, int64_t n, double total, double u) {
  const double target = MulD(u, total);
  double c = 0.0;
  int64_t last = -1;
  for (int64_t i = 0; i < n; ++i) {
    const double m = rates[i];
    if (!(m > 0.0)) continue;
    last = i;
    if (target < c + m) return i;
    c += m;
  }
  return last;
}

// LaneChunkFetch is the load half of the per-lane part of one chunk on the
// CUDA side (and in the host emulation that tests it): lane j loads its
// kPerLane elements of the chunk starting at `base` into vals (-inf past the
// row end). Nothing here uses the loaded values, so a warp can issue the
// loads of several chunks before it waits for the first (events.cu).
JUMPFLOW_HD void LaneChunkFetch(const float* z, int64_t v, int64_t base, int lane, float* vals) {
  if (base + kChunk <= v) {
    for (int i = 0; i < kPerLane; ++i) vals[i] = z[base + lane + kLanes * i];
    return;
  }
  for (int i = 0; i < kPerLane; ++i) {
    const int64_t k = base + lane + static_cast<int64_t>(kLanes) * i;
    vals[i] = k < v ? z[k] : NegInfF();
  }
}

// LaneChunkMax is the other half: the max of lane j's fetched elements of
// the chunk at `base`; clears *finite when one of them (within the row) is
// inf or NaN. A max is exact, so the warp max of these is the chunk max
// in any order.
JUMPFLOW_HD float LaneChunkMax(const float* vals, int64_t v, int64_t base, int lane, bool* finite) {
  float m = NegInfF();
  if (base + kChunk <= v) {
    // A full chunk: one finiteness test.
    float check = 0.0f;
    for (int i = 0; i < kPerLane; ++i) {
      check += vals[i] - vals[i];  // 0 unless some value is inf or NaN
      m = MaxF(m, vals[i]);
    }
    if (!(check == 0.0f)) *finite = false;
    return m;
  }
  for (int i = 0; i < kPerLane; ++i) {
    const int64_t k = base + lane + static_cast<int64_t>(kLanes) * i;
    if (k < v && !(vals[i] - vals[i] == 0.0f)) *finite = false;
    m = MaxF(m, vals[i]);
  }
  return m;
}

// LaneChunkAccumulate adds lane j's elements of the chunk at `base` (values
// from LaneChunkFetch) to its sum *s, after the chunk's rescale.
JUMPFLOW_HD void LaneChunkAccumulate(const float* vals, int64_t v, int64_t base, int lane,
                                     int32_t x, float m, float* s) {
  if (base + kChunk <= v && (x < base || x >= base + kChunk)) {
    // A full chunk without the excluded token: the same additions, no tests.
    for (int i = 0; i < kPerLane; ++i) *s += ExpEvF(vals[i] - m);
    return;
  }
  for (int i = 0; i < kPerLane; ++i) {
    const int64_t k = base + lane + static_cast<int64_t>(kLanes) * i;
    if (k < v && k != x) *s += ExpEvF(vals[i] - m);
  }
}

// ChunkRescale is the factor ExpEvF(m_old - m_new) applied when the running
// max rises.
JUMPFLOW_HD float ChunkRescale(float m_old, float m_new) { return ExpEvF(m_old - m_new); }

// EventUniforms are the two double uniforms of one keyed draw.
struct EventUniforms {
  double first, second;
};

// KeyedUniforms returns Uniform01(w0, w1) and Uniform01(w2, w3) of
// PhiloxDraw(seed, c0, c1, c2, c3).
JUMPFLOW_HD EventUniforms KeyedUniforms(uint64_t seed, uint32_t c0, uint32_t c1, uint32_t c2,
                                        uint32_t c3) {
  const Philox4x32 b = PhiloxDraw(seed, c0, c1, c2, c3);
  return {Uniform01(b.v[0], b.v[1]), Uniform01(b.v[2], b.v[3])};
}

// SequenceUniforms is the keyed draw of sequence b of a batch at `position`
// (SampleStepArgs or GillespieArgs): seed, the sequence's stream id
// (sequence_ids[b], or first_sequence_id + b), the kernel's stream, the
// sequence's step (steps[b], or step) and the position, the key both
// backends must use alike.
template <class Args>
JUMPFLOW_HD EventUniforms SequenceUniforms(const Args& a, int64_t b, uint32_t position) {
  const uint32_t seq = a.sequence_ids != nullptr ? a.sequence_ids[b]
                                                 : a.first_sequence_id + static_cast<uint32_t>(b);
  const uint32_t step = a.steps != nullptr ? a.steps[b] : a.step;
  return KeyedUniforms(a.seed, seq, a.stream, step, position);
}

}  // namespace jumpflow::kernels::detail

#endif  // JUMPFLOW_KERNELS_DETAIL_EVENT_MATH_H_
