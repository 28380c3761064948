// @brief CPU backend of the fused event kernels (kernels/sample_step.h,
// kernels/gillespie.h): oneTBB over fixed row blocks, the canonical chunked
// online softmax scan of kernels/detail/event_math.h on 16-lane vectors.
//
// This file is compiled with -ffp-contract=off (kernels/CMakeLists.txt): the
// CUDA backend must reproduce its arithmetic bit for bit, so no a * b + c may
// be fused behind our back; the FMAs of ExpEvF are explicit.
//
// Per row: one read of the logits from memory. Each 256-element chunk is
// read twice from L1 (its max, then its exponentials; rows shorter than 9
// chunks take all their chunk maxima first); lanes 0-15 and 16-31
// of the canonical scan live in two 16-lane accumulators. The jump decision,
// the Philox draw and (for jumping rows only) the inverse-CDF walk through
// one lane are scalar code shared with the CUDA backend. SampleStep rows
// that cannot jump (kernels/sample_step.h) skip the scan when no row rate is
// asked for: one read, checked for inf / NaN.
#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_reduce.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>

#include "kernels/cpu/detail/vec16.h"
#include "kernels/detail/event_math.h"
#include "kernels/detail/fast_math.h"
#include "kernels/gillespie.h"
#include "kernels/sample_step.h"

namespace jumpflow::kernels {
namespace {

using detail::kChunk;
using detail::kLanes;
using detail::RowScan;

// Target work per row block (elements); rows are independent, so blocks only
// balance load (results never depend on them).
constexpr int64_t kBlockElements = 65536;

// kPrefetchChunks: how many 256-element chunks ahead ScanRow prefetches.
constexpr int64_t kPrefetchChunks = 4;

using detail::AllAtLeast;
using detail::ExpEv16;
using detail::F16;
using detail::HMax;
using detail::I16;
using detail::kWidth;
using detail::Load16;
using detail::LoadPartial16;

// LaneTotal16 is detail::LaneTotal on the two accumulators, bit for bit:
// t = double(lanes 0-15) + double(lanes 16-31), then halves added (w = 8, 4,
// 2, 1) exactly as the scalar tree does.
inline double LaneTotal16(F16 acc0, F16 acc1) {
  using F8 = float __attribute__((vector_size(32)));
  using D8 = double __attribute__((vector_size(64)));
  using D4 = double __attribute__((vector_size(32)));
  using D2 = double __attribute__((vector_size(16)));
  const F8 a_lo = __builtin_shufflevector(acc0, acc0, 0, 1, 2, 3, 4, 5, 6, 7);
  const F8 a_hi = __builtin_shufflevector(acc0, acc0, 8, 9, 10, 11, 12, 13, 14, 15);
  const F8 b_lo = __builtin_shufflevector(acc1, acc1, 0, 1, 2, 3, 4, 5, 6, 7);
  const F8 b_hi = __builtin_shufflevector(acc1, acc1, 8, 9, 10, 11, 12, 13, 14, 15);
  // t[0..8) and t[8..16) of the tree.
  const D8 t_lo = __builtin_convertvector(a_lo, D8) + __builtin_convertvector(b_lo, D8);
  const D8 t_hi = __builtin_convertvector(a_hi, D8) + __builtin_convertvector(b_hi, D8);
  const D8 w8 = t_lo + t_hi;  // t[j] + t[j + 8]
  const D4 w4 =
      __builtin_shufflevector(w8, w8, 0, 1, 2, 3) + __builtin_shufflevector(w8, w8, 4, 5, 6, 7);
  const D2 w2 = __builtin_shufflevector(w4, w4, 0, 1) + __builtin_shufflevector(w4, w4, 2, 3);
  return w2[0] + w2[1];
}

// AddExcept returns acc + e, except lane `lane` (0-15; any other value: no
// lane) keeps acc's value.
inline F16 AddExcept(F16 acc, F16 e, int32_t lane) {
#if defined(__AVX512F__)
  const __mmask16 keep = static_cast<__mmask16>(~(1u << (lane & 31)));
  return std::bit_cast<F16>(_mm512_mask_add_ps(
      std::bit_cast<__m512>(acc), keep, std::bit_cast<__m512>(acc), std::bit_cast<__m512>(e)));
#else
  if (lane >= 0 && lane < kWidth) e[lane] = 0.0f;
  return acc + e;
#endif
}

// ChunkMaxMin reads the full chunk zc[0..kChunk): *cmax = its max, *cmin =
// its lane minima (detail::LaneMaxMin4). Prefetches kPrefetchChunks ahead
// (into the next row at the end of this one): measured 1.3-1.6x faster than
// the hardware prefetcher alone at V = 1024 and V = 32768.
inline void ChunkMaxMin(const float* zc, float* cmax, F16* cmin) {
  for (int i = 0; i < kChunk / kWidth; ++i) {
    __builtin_prefetch(zc + kPrefetchChunks * kChunk + kWidth * i, 0, 3);
  }
  F16 mx;
  detail::LaneMaxMin4(zc, kChunk / (4 * kWidth), &mx, cmin);
  *cmax = HMax(mx);
}

// kShortRowChunks: rows of at most this many full chunks (V < 2304) take
// all their chunk maxima before their first exponential (ScanRowBlocks).
constexpr int kShortRowChunks = 8;

// ScanRowBlocks runs the canonical scan of kernels/detail/event_math.h on
// z[0..v) with excluded token x (-1: none): out->lane, out->zmax,
// out->finite, and returns S_excl (detail::LaneTotal of the lanes).
//
// Full chunks go in blocks of kBlock: first the max and min of each chunk
// of the block, then each chunk's rescale and exponentials, in chunk order
// (the canonical arithmetic: the same bits for any kBlock). kBlock = 1 is
// the plain chunk loop; for short rows (kShortRowChunks, one block a row)
// the exponentials of a chunk no longer wait on its max's shuffle tree and
// scalar rescale, which the next chunk's max pass used to hide only in
// part: the scan alone (V = 1024, rows in L2, 1 thread) measured 25-26 ->
// 27-28.5 GB/s; at V >= 4096 blocks of 8 were 4-6% slower than kBlock = 1.
//
// A full chunk takes the fast path when every z - m of the chunk is at least
// kExpEvMin (m the running max after the chunk's rescale): ExpEvF's clamp is
// then the identity, so the exponentials skip it, and the chunk's max pass
// tracks the min instead of a finiteness sum: 14 vector operations a vector
// of elements instead of 16. Measured: +5% on rows that sit in L2; at the
// benchmark shapes (64 MiB of logits) within the noise at V = 1024 and +7%
// at V = 32768 with 2 threads (bench/RESULTS.md). Non-finite values are
// still found: -inf, +inf (m or z - m) and a NaN that starts a lane's min
// fail the test; any other NaN passes through the unclamped exponential
// into its lane sum (tested on S_excl at the end), except at x, whose value
// is tested on its own.
template <int kBlock>
double ScanRowBlocks(const float* z, int64_t v, int32_t x, RowScan* out) {
  const I16 iota = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  const F16 neg_inf = F16{} + detail::NegInfF();
  F16 acc0 = F16{}, acc1 = F16{}, fin = F16{};
  float m = detail::NegInfF();
  const int64_t full = v - v % kChunk;
  for (int64_t block = 0; block < full; block += kBlock * kChunk) {
    const int nc = static_cast<int>(std::min<int64_t>(kBlock, (full - block) / kChunk));
    float cmax[kBlock];
    F16 cmin[kBlock];
    for (int c = 0; c < nc; ++c) ChunkMaxMin(z + block + c * kChunk, &cmax[c], &cmin[c]);
    for (int c = 0; c < nc; ++c) {
      const int64_t base = block + c * kChunk;
      const float* zc = z + base;
      const bool x_here = x >= base && x < base + kChunk;
      if (cmax[c] > m) {
        const float f = detail::ChunkRescale(m, cmax[c]);
        acc0 *= f;
        acc1 *= f;
        m = cmax[c];
      }
      const F16 mm = F16{} + m;
      // fl(z - m) is monotone in z: the lane minima bound every element.
      if (AllAtLeast(cmin[c] - mm, detail::kExpEvMin)) {
        if (!x_here) {
          // Most chunks: plain adds. Per-vector masks for x cost 4-6% at
          // V = 1024 and 9% at V = 32768 (scan in cache, 1 thread).
          for (int i = 0; i < kChunk / kWidth; i += 2) {
            acc0 += ExpEv16<false>(Load16(zc + kWidth * i) - mm);
            acc1 += ExpEv16<false>(Load16(zc + kWidth * (i + 1)) - mm);
          }
          continue;
        }
        // x's vector (i_x) and lane.
        const int32_t xi = static_cast<int32_t>(x - base);
        const int32_t i_x = xi / kWidth;
        for (int i = 0; i < kChunk / kWidth; i += 2) {
          const F16 e0 = ExpEv16<false>(Load16(zc + kWidth * i) - mm);
          const F16 e1 = ExpEv16<false>(Load16(zc + kWidth * (i + 1)) - mm);
          acc0 = AddExcept(acc0, e0, i == i_x ? xi % kWidth : -1);
          acc1 = AddExcept(acc1, e1, i + 1 == i_x ? xi % kWidth : -1);
        }
        continue;
      }
      // Slow path (values below m + kExpEvMin, or not finite): clamped
      // exponentials and the finiteness sum (z - z is 0 unless z is inf or
      // NaN).
      for (int i = 0; i < kChunk / kWidth; ++i) {
        const F16 w = Load16(zc + kWidth * i);
        fin += w - w;
      }
      const I16 xv = I16{} + static_cast<int32_t>(x_here ? x - base : -1);
      for (int i = 0; i < kChunk / kWidth; i += 2) {
        F16 e0 = ExpEv16(Load16(zc + kWidth * i) - mm);
        F16 e1 = ExpEv16(Load16(zc + kWidth * (i + 1)) - mm);
        e0 = (iota + kWidth * i) == xv ? F16{} : e0;
        e1 = (iota + kWidth * (i + 1)) == xv ? F16{} : e1;
        acc0 += e0;
        acc1 += e1;
      }
    }
  }
  if (full < v) {
    // Tail chunk: padded vectors (pad lanes 0, excluded from the max and
    // zeroed after the exponential).
    const int64_t base = full, len = v - full;
    const float* zc = z + base;
    const bool x_here = x >= base && x < v;
    const int nvec = static_cast<int>((len + kWidth - 1) / kWidth);
    const I16 lenv = I16{} + static_cast<int32_t>(len);
    F16 mv = neg_inf;
    for (int i = 0; i < nvec; ++i) {
      const int n = static_cast<int>(std::min<int64_t>(kWidth, len - kWidth * i));
      const F16 w = n == kWidth ? Load16(zc + kWidth * i) : LoadPartial16(zc + kWidth * i, n);
      fin += w - w;
      const F16 wm = (iota + kWidth * i) < lenv ? w : neg_inf;
      mv = wm > mv ? wm : mv;
    }
    const float cmax = HMax(mv);
    if (cmax > m) {
      const float f = detail::ChunkRescale(m, cmax);
      acc0 *= f;
      acc1 *= f;
      m = cmax;
    }
    const F16 mm = F16{} + m;
    const I16 xv = I16{} + static_cast<int32_t>(x_here ? x - base : -1);
    for (int i = 0; i < nvec; ++i) {
      const int n = static_cast<int>(std::min<int64_t>(kWidth, len - kWidth * i));
      const F16 w = n == kWidth ? Load16(zc + kWidth * i) : LoadPartial16(zc + kWidth * i, n);
      F16 e = ExpEv16(w - mm);
      const I16 idx = iota + kWidth * i;
      e = (idx < lenv) & (idx != xv) ? e : F16{};
      if (i % 2 == 0) {
        acc0 += e;
      } else {
        acc1 += e;
      }
    }
  }
  std::memcpy(out->lane, &acc0, sizeof(acc0));
  std::memcpy(out->lane + kWidth, &acc1, sizeof(acc1));
  out->zmax = m;
  const double s_excl = LaneTotal16(acc0, acc1);
  // fin holds z - z summed over the slow and tail chunks: 0 in every lane
  // unless some z was inf or NaN there. A NaN of a fast chunk made S_excl
  // NaN (lane sums are otherwise finite: every exponential is <= 1).
  out->finite = HMax(fin != fin ? F16{} + 1.0f : F16{}) == 0.0f && s_excl == s_excl &&
                (x < 0 || x >= v || detail::IsFiniteF(z[x]));
  return s_excl;
}

// ScanRow is ScanRowBlocks with one block for a short row, else kBlock = 1.
double ScanRow(const float* z, int64_t v, int32_t x, RowScan* out) {
  return v < (kShortRowChunks + 1) * kChunk ? ScanRowBlocks<kShortRowChunks>(z, v, x, out)
                                            : ScanRowBlocks<1>(z, v, x, out);
}

// AllFinite is true when p[0..n) holds no inf or NaN (z - z is 0 for every
// finite z): a read at memory speed, two vector operations per 16 values.
bool AllFinite(const float* p, int64_t n) {
  F16 fin0 = F16{}, fin1 = F16{};
  int64_t i = 0;
  for (; i + 2 * kWidth <= n; i += 2 * kWidth) {
    __builtin_prefetch(p + i + kPrefetchChunks * kChunk, 0, 3);
    __builtin_prefetch(p + i + kPrefetchChunks * kChunk + kWidth, 0, 3);
    const F16 w0 = Load16(p + i), w1 = Load16(p + i + kWidth);
    fin0 += w0 - w0;
    fin1 += w1 - w1;
  }
  for (; i < n; i += kWidth) {
    const F16 w = LoadPartial16(p + i, static_cast<int>(std::min<int64_t>(kWidth, n - i)));
    fin0 += w - w;
  }
  const F16 fin = fin0 + fin1;
  return HMax(fin != fin ? F16{} + 1.0f : F16{}) == 0.0f;
}

// SequenceOf returns the sequence b with offsets[b] <= r < offsets[b + 1]
// (the last such b when empty sequences share the offset).
int64_t SequenceOf(const int64_t* offsets, int64_t num_sequences, int64_t r) {
  const int64_t* it = std::upper_bound(offsets, offsets + num_sequences + 1, r);
  return static_cast<int64_t>(it - offsets) - 1;
}

// RowContext is what one row needs besides its logits.
struct RowOutcome {
  double rate = 0.0;
  double s_excl = 0.0;
  bool finite = true;
};

// EvaluateRow scans row r and returns its total multiplier.
RowOutcome EvaluateRow(Parametrization p, const float* raw_row, int64_t v, int32_t x, float c,
                       RowScan* scan) {
  const bool has_rate = HasRateColumn(p);
  const double s_excl = ScanRow(raw_row + (has_rate ? 1 : 0), v, x, scan);
  RowOutcome out;
  out.finite = scan->finite && (!has_rate || detail::IsFiniteF(raw_row[0]));
  if (!out.finite) return out;
  out.s_excl = s_excl;
  out.rate = detail::RowRateFromTotal(p, raw_row, v, x, c, scan->zmax, s_excl);
  return out;
}

struct StepPartial {
  int64_t jumps = 0;
  int64_t first_nonfinite_row = -1;
};

StepPartial JoinPartial(StepPartial a, const StepPartial& b) {
  a.jumps += b.jumps;
  if (a.first_nonfinite_row < 0 ||
      (b.first_nonfinite_row >= 0 && b.first_nonfinite_row < a.first_nonfinite_row)) {
    a.first_nonfinite_row = b.first_nonfinite_row;
  }
  return a;
}

}  // namespace

SampleStepResult SampleStepCpu(const SampleStepArgs& a) {
  SampleStepResult result;
  if (a.rows <= 0) return result;
  const int64_t v = a.vocab;
  const int64_t cols = RawColumns(a.parametrization, v);
  const int64_t grain = std::max<int64_t>(1, kBlockElements / std::max<int64_t>(cols, 1));
  const bool exponential = a.jump == JumpProbability::kExponential;
  const bool has_rate = HasRateColumn(a.parametrization);
  const int64_t* offsets = a.offsets;
  auto body = [&](const tbb::blocked_range<int64_t>& range, StepPartial partial) {
    int64_t b = SequenceOf(offsets, a.num_sequences, range.begin());
    RowScan scan;
    for (int64_t r = range.begin(); r < range.end(); ++r) {
      while (r >= offsets[b + 1]) ++b;
      const float* raw_row = a.raw + r * cols;
      const int32_t x = a.tokens != nullptr ? a.tokens[r] : -1;
      const float c = a.row_scales != nullptr ? a.row_scales[r] : 1.0f;
      // The row's draw does not depend on its logits: made first, so the
      // out-of-order core overlaps the Philox rounds with the scan.
      const detail::EventUniforms u =
          detail::SequenceUniforms(a, b, static_cast<uint32_t>(r - offsets[b]));
      if (a.row_rate == nullptr &&
          u.first >= detail::JumpBoundOf(a.parametrization, exponential,
                                         has_rate ? raw_row[0] : 0.0f, c, a.fire[b])) {
        // No softmax of this row can make it jump: the scan would only
        // find out whether the row is finite, which a plain read does.
        if (partial.first_nonfinite_row < 0 && !AllFinite(raw_row, cols)) {
          partial.first_nonfinite_row = r;
        }
        a.jumped[r] = 0;
        a.new_token[r] = x;
        continue;
      }
      const RowOutcome o = EvaluateRow(a.parametrization, raw_row, v, x, c, &scan);
      uint8_t jumped = 0;
      int32_t token = x;
      if (!o.finite) {
        if (partial.first_nonfinite_row < 0) partial.first_nonfinite_row = r;
      } else {
        const double p = detail::JumpProbabilityOf(exponential, o.rate, a.fire[b]);
        if (p > 0.0) {
          if (u.first < p) {
            const float* z = raw_row + (has_rate ? 1 : 0);
            const int32_t t = detail::SelectToken(z, v, x, scan, o.s_excl, u.second);
            if (t >= 0) {
              jumped = 1;
              token = t;
              ++partial.jumps;
            }
          }
        }
      }
      a.jumped[r] = jumped;
      a.new_token[r] = token;
      if (a.row_rate != nullptr) a.row_rate[r] = o.rate;
    }
    return partial;
  };
  const StepPartial total =
      tbb::parallel_reduce(tbb::blocked_range<int64_t>(0, a.rows, static_cast<size_t>(grain)),
                           StepPartial{}, body, JoinPartial);
  result.jumps = total.jumps;
  result.first_nonfinite_row = total.first_nonfinite_row;
  return result;
}

GillespieResult GillespieCpu(const GillespieArgs& a) {
  GillespieResult result;
  if (a.num_sequences <= 0) return result;
  const int64_t v = a.vocab;
  const int64_t cols = RawColumns(a.parametrization, v);
  const int64_t grain = std::max<int64_t>(1, kBlockElements / std::max<int64_t>(cols, 1));
  const int64_t zoff = HasRateColumn(a.parametrization) ? 1 : 0;
  // Phase 1: every row's total multiplier.
  auto rows_body = [&](const tbb::blocked_range<int64_t>& range, StepPartial partial) {
    RowScan scan;
    for (int64_t r = range.begin(); r < range.end(); ++r) {
      const int32_t x = a.tokens != nullptr ? a.tokens[r] : -1;
      const float c = a.row_scales != nullptr ? a.row_scales[r] : 1.0f;
      const RowOutcome o = EvaluateRow(a.parametrization, a.raw + r * cols, v, x, c, &scan);
      if (!o.finite && partial.first_nonfinite_row < 0) partial.first_nonfinite_row = r;
      a.row_rate[r] = o.rate;
    }
    return partial;
  };
  StepPartial total;
  if (a.rows > 0) {
    total = tbb::parallel_reduce(tbb::blocked_range<int64_t>(0, a.rows, static_cast<size_t>(grain)),
                                 StepPartial{}, rows_body, JoinPartial);
  }
  // Phase 2: per sequence, the total and the event.
  auto seq_body = [&](const tbb::blocked_range<int64_t>& range, StepPartial partial) {
    RowScan scan;
    for (int64_t b = range.begin(); b < range.end(); ++b) {
      const int64_t begin = a.offsets[b], end = a.offsets[b + 1];
      double sum = 0.0;
      for (int64_t r = begin; r < end; ++r) sum += a.row_rate[r];
      a.total[b] = sum;
      a.event_position[b] = -1;
      a.event_token[b] = -1;
      if (!(sum > 0.0)) continue;
      const detail::EventUniforms u = detail::SequenceUniforms(a, b, 0);
      const int64_t row = detail::SelectRow(a.row_rate + begin, end - begin, sum, u.first);
      if (row < 0) continue;
      const int64_t r = begin + row;
      const int32_t x = a.tokens != nullptr ? a.tokens[r] : -1;
      const float c = a.row_scales != nullptr ? a.row_scales[r] : 1.0f;
      const RowOutcome o = EvaluateRow(a.parametrization, a.raw + r * cols, v, x, c, &scan);
      const int32_t t =
          detail::SelectToken(a.raw + r * cols + zoff, v, x, scan, o.s_excl, u.second);
      if (t < 0) continue;
      a.event_position[b] = static_cast<int32_t>(row);
      a.event_token[b] = t;
      ++partial.jumps;
    }
    return partial;
  };
  const StepPartial events = tbb::parallel_reduce(
      tbb::blocked_range<int64_t>(0, a.num_sequences, 16), StepPartial{}, seq_body, JoinPartial);
  result.events = events.jumps;
  result.first_nonfinite_row = total.first_nonfinite_row;
  return result;
}

}  // namespace jumpflow::kernels
