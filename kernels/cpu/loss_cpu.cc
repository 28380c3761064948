// @brief CPU backend of the fused parametrization + Bregman loss
// (kernels/loss.h): oneTBB over fixed row blocks, vectorised inner loops.
//
// Softmax-family rows (softmax, rate x softmax) go in batches of up to 16
// rows (as many as keep ~32 KiB of logits in cache), pass by pass so the
// long per-row dependency chains of different rows overlap:
//   1. max and min of z, or (float rows with values more than 87 below
//      their max, double rows) max and a finiteness check (the only read
//      from memory: while pass 2 runs, the next batch's rows are prefetched);
//   2. e_k = exp(z_k - max) stored in the gradient row, sum of e (a NaN sum
//      marks a row that passed the min test non-finite);
//   3. the loss and BG = sum_{k != x} bg_k with bg_k = b_k dD/db_k
//      (b = mhat); for sparse targets every column first gets its a = 0 term
//      in closed form or one pass (the "baseline"), then target columns swap
//      it for their a term (O(nnz) work), so the V-long loops stay
//      branch-free;
//   4. the gradient written in place over e: dL/dz_k = bg_k - p_k BG
//      (k != x), dL/dz_x = -p_x BG, dL/dz_rate = BG * dlog(lambda)/dz_rate,
//      then the target columns fixed up.
// The log of each row's softmax normaliser enters its loss linearly and is
// taken for 16 rows at once. Elementwise parametrizations (softplus, exp,
// sigmoid) take one pass per row, merging sorted sparse targets as they go.
//
// The float path computes exp with detail::ExpEvF / ExpEv16 and log with a
// branch-free Cephes polynomial on 16-lane GCC/Clang generic vectors; the
// double path is plain scalar code with std::exp / std::log and serves as
// the reference in the tests.
#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_reduce.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "kernels/cpu/detail/vec16.h"
#include "kernels/detail/fast_math.h"
#include "kernels/loss.h"

namespace jumpflow::kernels {
namespace {

// Target work per row block (elements); blocks depend on the shape only.
constexpr int64_t kBlockElements = 16384;

// Rows of at least this many bytes prefetch the next batch's rows.
constexpr int64_t kPrefetchMinBytes = 1024;

// Logit bytes a softmax batch keeps in cache between its passes. With the
// gradient (or, streaming, its scratch rows) as large again, 16 KiB keeps a
// batch within a 48 KiB L1; 32 KiB did not. At V = 1024 (Zen 5 VM, 1 / 2
// threads, medians of interleaved runs) 16 KiB ran at 23.6 / 44.7 GB/s
// against 32 KiB's 18.9 / 38.5 in one run and 22.6 / 39.9 against
// 20.6 / 38.3 in another; 8 KiB was no better (23.1 / 45.9).
constexpr int64_t kBatchBytes = 16 << 10;

// Rows up to this many bytes stream their gradient through a scratch row
// (WriteMode::kStream, below).
constexpr int64_t kStreamMaxRowBytes = 32 << 10;

// ExpFast is exp(x) for float, x <= 0 here (logits minus their row max):
// detail::ExpEvF (kernels/detail/fast_math.h), branch-free, relative error
// ~1.5e-7, x clamped at -87 (exp of anything below is ~1.6e-38 instead of 0,
// harmless in a softmax). Its 16-lane twin ExpEv16 (kernels/cpu/detail/
// vec16.h) is 11 vector operations on AVX-512 (round, scalef and seven FMAs),
// about two thirds of the Cephes expf it replaces.
inline float ExpFast(float x) { return detail::ExpEvF(x); }
// The double path is the reference (gradient checks): plain std::exp.
inline double ExpFast(double x) { return std::exp(x); }

template <typename T>
T Softplus(T z) {
  return z > T(0) ? z + std::log1p(std::exp(-z)) : std::log1p(std::exp(z));
}

template <typename T>
T Sigmoid(T z) {
  if (z >= T(0)) return T(1) / (T(1) + std::exp(-z));
  const T e = std::exp(z);
  return e / (T(1) + e);
}

// LogSoftplus is log(softplus(z)), finite for every finite z: for z < -20,
// softplus(z) = e^z (1 - e^z / 2 + O(e^2z)), so log = z - e^z / 2 to O(e^2z).
template <typename T>
T LogSoftplus(T z) {
  if (z < T(-20)) return z - T(0.5) * std::exp(z);
  return std::log(Softplus(z));
}

// SigmoidOverSoftplus is sigmoid(z) / softplus(z) = dlog softplus(z) / dz;
// for z < -20 the series 1 - e^z / 2 + O(e^2z) (same expansion as above).
template <typename T>
T SigmoidOverSoftplus(T z) {
  if (z < T(-20)) return T(1) - T(0.5) * std::exp(z);
  return Sigmoid(z) / Softplus(z);
}

// XLogX is a log a with 0 log 0 = 0 (and no log call for the common
// one-hot a = 1).
template <typename T>
T XLogX(T a) {
  return a > T(0) && a != T(1) ? a * std::log(a) : T(0);
}

// BceFloor is the smallest 1 - b used by BCE (see kernels/loss.h).
template <typename T>
constexpr T kBceFloor = std::numeric_limits<T>::epsilon();

// Pred holds one prediction b = mhat and what the divergences need:
// log b, q = dlog b / dz, bq = db / dz, and for BCE 1 - b, log(1 - b) and
// bq / (1 - b).
template <typename T>
struct Pred {
  T b, log_b, q, bq;
  T one_minus_b, log_one_minus_b, bq_over_one_minus_b;
};

// FillBceFromB fills the BCE fields from b and bq. Where 1 - b < kBceFloor
// the (1 - a) log(1 - b) term is evaluated at the floor and, being constant
// there, contributes no gradient (so nothing overflows).
template <typename T>
void FillBceFromB(Pred<T>* p) {
  const T one_minus_b = T(1) - p->b;
  if (one_minus_b >= kBceFloor<T>) {
    p->one_minus_b = one_minus_b;
    p->log_one_minus_b = p->b < T(0.5) ? std::log1p(-p->b) : std::log(one_minus_b);
    p->bq_over_one_minus_b = p->bq / one_minus_b;
  } else {
    p->one_minus_b = kBceFloor<T>;
    p->log_one_minus_b = std::log(kBceFloor<T>);
    p->bq_over_one_minus_b = T(0);
  }
}

// EvalElementwise evaluates an elementwise parametrization at z with row
// scale c (log_c = log c).
template <typename T, Parametrization P, bool kBce>
Pred<T> EvalElementwise(T z, T c, T log_c) {
  Pred<T> p{};
  if constexpr (P == Parametrization::kExp) {
    const T zc = std::min(z, kMaxExpArg<T>);
    p.b = c * std::exp(zc);
    p.log_b = log_c + zc;
    p.q = z > kMaxExpArg<T> ? T(0) : T(1);
    p.bq = p.b * p.q;
    if constexpr (kBce) FillBceFromB(&p);
  } else if constexpr (P == Parametrization::kSoftplus) {
    const T sig = Sigmoid(z);
    p.b = c * Softplus(z);
    p.log_b = log_c + LogSoftplus(z);
    p.q = SigmoidOverSoftplus(z);
    p.bq = c * sig;
    if constexpr (kBce) FillBceFromB(&p);
  } else {  // kSigmoid: everything from sigmoid(z) and sigmoid(-z), no cancellation.
    const T sig = Sigmoid(z), sig_neg = Sigmoid(-z);
    p.b = c * sig;
    p.log_b = log_c - Softplus(-z);
    p.q = sig_neg;
    p.bq = c * sig * sig_neg;
    if constexpr (kBce) {
      if (c == T(1)) {
        // 1 - b = sigmoid(-z): exact, and bq / (1 - b) = sigmoid(z).
        p.one_minus_b = sig_neg;
        p.log_one_minus_b = -Softplus(z);
        p.bq_over_one_minus_b = sig;
      } else if (c < T(1)) {
        // 1 - c sigmoid(z) = sigmoid(-z) + (1 - c) sigmoid(z): a sum of
        // positive terms, >= min(1 - c, 1) / 2.
        p.one_minus_b = sig_neg + (T(1) - c) * sig;
        p.log_one_minus_b = std::log(p.one_minus_b);
        p.bq_over_one_minus_b = p.bq / p.one_minus_b;
      } else {
        FillBceFromB(&p);
      }
    }
  }
  return p;
}

// Divergence value D(a, b) from a prediction.
template <typename T, Divergence D>
T DivergenceValue(T a, const Pred<T>& p) {
  if constexpr (D == Divergence::kPoisson) {
    return XLogX(a) - a * p.log_b - a + p.b;
  } else if constexpr (D == Divergence::kGeneralizedKl) {
    return XLogX(a) - a * p.log_b;
  } else if constexpr (D == Divergence::kMse) {
    const T d = a - p.b;
    return d * d;
  } else {
    return XLogX(a) - a * p.log_b + XLogX(T(1) - a) - (T(1) - a) * p.log_one_minus_b;
  }
}

// ElementwiseGrad is dD(a, b(z)) / dz. The a / b factor of every a log b
// term is written as a * q, finite even when b underflows.
template <typename T, Divergence D>
T ElementwiseGrad(T a, const Pred<T>& p) {
  if constexpr (D == Divergence::kPoisson) {
    return p.bq - a * p.q;
  } else if constexpr (D == Divergence::kGeneralizedKl) {
    return -a * p.q;
  } else if constexpr (D == Divergence::kMse) {
    return T(2) * (p.b - a) * p.bq;
  } else {
    return -a * p.q + (T(1) - a) * p.bq_over_one_minus_b;
  }
}

// DivergenceDelta is D(a, b) - D(0, b), formed without cancellation of the
// shared terms (used to swap a target column's baseline term).
template <typename T, Divergence D>
T DivergenceDelta(T a, const Pred<T>& p) {
  if constexpr (D == Divergence::kPoisson) {
    return XLogX(a) - a * p.log_b - a;
  } else if constexpr (D == Divergence::kGeneralizedKl) {
    return XLogX(a) - a * p.log_b;
  } else if constexpr (D == Divergence::kMse) {
    return a * (a - T(2) * p.b);
  } else {
    return XLogX(a) + XLogX(T(1) - a) - a * p.log_b + a * p.log_one_minus_b;
  }
}

// SoftmaxPred builds the prediction for one softmax column from b = lambda p
// and log b (the softmax family needs no q: see SoftmaxBg).
template <typename T, Divergence D>
Pred<T> SoftmaxPred(T b, T log_b) {
  Pred<T> p{};
  p.b = b;
  p.log_b = log_b;
  if constexpr (D == Divergence::kBce) {
    p.bq = b;  // so that bq / (1 - b) = b / (1 - b)
    FillBceFromB(&p);
  }
  return p;
}

// SoftmaxBgDelta is SoftmaxBg(a, p) - SoftmaxBg(0, p).
template <typename T, Divergence D>
T SoftmaxBgDelta(T a, const Pred<T>& p) {
  if constexpr (D == Divergence::kPoisson || D == Divergence::kGeneralizedKl) {
    return -a;
  } else if constexpr (D == Divergence::kMse) {
    return T(-2) * p.b * a;
  } else {
    return -a - a * p.bq_over_one_minus_b;
  }
}

// SoftmaxBg is b dD/db for the softmax family (dD/dz_k = bg_k - p_k BG).
template <typename T, Divergence D>
T SoftmaxBg(T a, const Pred<T>& p) {
  if constexpr (D == Divergence::kPoisson) {
    return p.b - a;
  } else if constexpr (D == Divergence::kGeneralizedKl) {
    return -a;
  } else if constexpr (D == Divergence::kMse) {
    return T(2) * p.b * (p.b - a);
  } else {
    return -a + (T(1) - a) * p.bq_over_one_minus_b;
  }
}

// --- float fast path: GCC/Clang generic vectors of 16 floats (one AVX-512
// register, two AVX2 or four SSE registers; the compiler lowers them to what
// the target has). The double path is the plain-loop reference.

using detail::AllAtLeast;
using detail::F16;
using detail::HMax;
using detail::I16;
using detail::kWidth;
using detail::Load16;
using detail::ReduceRows16;

inline void Store16(float* p, F16 v) { std::memcpy(p, &v, sizeof(v)); }

// ExpFast16 is ExpFast on 16 lanes.
inline F16 ExpFast16(F16 x) { return detail::ExpEv16(x); }

// BceRatio is b / (1 - b), or 0 where 1 - b < kBceFloor (see FillBceFromB).
inline float BceRatio(float b) {
  const float omb = 1.0f - b;
  return omb >= std::numeric_limits<float>::epsilon() ? b / omb : 0.0f;
}
inline double BceRatio(double b) {
  const double omb = 1.0 - b;
  return omb >= std::numeric_limits<double>::epsilon() ? b / omb : 0.0;
}

using F8 = float __attribute__((vector_size(32)));
using F4 = float __attribute__((vector_size(16)));

// HSum adds the 16 lanes as a fixed pairwise tree, in registers.
inline float HSum(F16 v) {
  const F8 a = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
               __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
  const F4 b =
      __builtin_shufflevector(a, a, 0, 1, 2, 3) + __builtin_shufflevector(a, a, 4, 5, 6, 7);
  return (b[0] + b[2]) + (b[1] + b[3]);
}

// RowMaxFinite returns max(z[0..n)) in *out_max and whether every entry is
// finite (z - z is 0 for finite z and NaN for inf or NaN).
[[gnu::always_inline]] inline bool RowMaxFinite(const float* z, int64_t n, float* out_max) {
  F16 m = F16{} - std::numeric_limits<float>::infinity();
  F16 f = F16{};
  int64_t k = 0;
  for (; k + kWidth <= n; k += kWidth) {
    const F16 v = Load16(z + k);
    m = v > m ? v : m;
    f += v - v;
  }
  float mt = HMax(m), ft = HSum(f);
  for (; k < n; ++k) {
    mt = z[k] > mt ? z[k] : mt;
    ft += z[k] - z[k];
  }
  *out_max = mt;
  return ft == 0.0f;
}
inline bool RowMaxFinite(const double* z, int64_t n, double* out_max) {
  double m = -std::numeric_limits<double>::infinity(), f = 0.0;
  for (int64_t k = 0; k < n; ++k) {
    m = z[k] > m ? z[k] : m;
    f += z[k] - z[k];
  }
  *out_max = m;
  return f == 0.0;
}

// RowMaxFast returns max(z[0..n)) in *out_max (n >= 1) and whether
// ExpEvF's clamp is the identity on every z - max: each fl(z - max) is at
// least kExpEvMin (fl(z - m) is monotone in z, so the lane minima bound
// them all). False for an inf or NaN in z[0..n) except a NaN that neither
// starts a lane's max / min chain nor sits in the tail: the unclamped
// exponential of that one turns the row's sum NaN (see ExpSum). Max and
// min run as four chains each (detail::LaneMaxMin4). Two vector operations a
// vector, where RowMaxFinite needs three in one chain of dependent adds.
[[gnu::always_inline]] inline bool RowMaxFast(const float* z, int64_t n, float* out_max) {
  int64_t k = 0;
  float tail_max = -std::numeric_limits<float>::infinity();
  float tail_min = std::numeric_limits<float>::infinity(), tail_fin = 0.0f;
  F16 mx = F16{} - std::numeric_limits<float>::infinity();
  F16 mn = F16{} + std::numeric_limits<float>::infinity();
  if (n >= 4 * kWidth) {
    detail::LaneMaxMin4(z, n / (4 * kWidth), &mx, &mn);
    k = n / (4 * kWidth) * (4 * kWidth);
  }
  for (; k + kWidth <= n; k += kWidth) {
    const F16 v = Load16(z + k);
    mx = v > mx ? v : mx;
    mn = v < mn ? v : mn;
  }
  for (; k < n; ++k) {
    tail_max = z[k] > tail_max ? z[k] : tail_max;
    tail_min = z[k] < tail_min ? z[k] : tail_min;
    tail_fin += z[k] - z[k];
  }
  const float vmax = HMax(mx);
  const float zmax = tail_max > vmax ? tail_max : vmax;
  *out_max = zmax;
  const F16 lows = (mn < tail_min ? mn : F16{} + tail_min) - zmax;
  return tail_fin == 0.0f && AllAtLeast(lows, detail::kExpEvMin);
}

// ExpSum returns sum_k exp(z_k - shift) and, when kStore, stores the terms
// in e[0..n).
//
// `ahead` (may be null) is a row that will be processed later, at the same
// offset from z and e as the next batch: one cache line of its logits (and,
// with kStore, of its gradient, for writing) is prefetched per 16 lanes, so
// the next row streams in from memory while this row's exponentials are
// computed (the first pass over a row is otherwise a bare memory stall).
// kPrefetchE is false when e is a scratch row (WriteMode::kStream).
//
// kClamp = false (the rows RowMaxFast passes) leaves out ExpEvF's clamp,
// which is the identity on them: the same terms, one vector operation fewer,
// and a NaN among the logits makes the sum NaN.
template <bool kStore, bool kPrefetchE, bool kClamp = true>
[[gnu::always_inline]] inline float ExpSum(const float* z, float shift, int64_t n, float* e,
                                           int64_t ahead) {
  F16 s = F16{};
  int64_t k = 0;
  for (; k + kWidth <= n; k += kWidth) {
    if (ahead != 0) {
      __builtin_prefetch(z + ahead + k, 0, 3);
      if constexpr (kStore && kPrefetchE) __builtin_prefetch(e + ahead + k, 1, 3);
    }
    const F16 v = detail::ExpEv16<kClamp>(Load16(z + k) - shift);
    if constexpr (kStore) Store16(e + k, v);
    s += v;
  }
  float t = HSum(s);
  for (; k < n; ++k) {
    const float v = ExpFast(z[k] - shift);
    if constexpr (kStore) e[k] = v;
    t += v;
  }
  return t;
}
template <bool kStore, bool kPrefetchE, bool kClamp = true>
double ExpSum(const double* z, double shift, int64_t n, double* e, int64_t /*ahead*/) {
  double t = 0.0;
  for (int64_t k = 0; k < n; ++k) {
    const double v = std::exp(z[k] - shift);
    if constexpr (kStore) e[k] = v;
    t += v;
  }
  return t;
}

// ExpSquareSum returns sum_k e_k^2 with e_k = e[k] (kStored) or
// exp(z_k - shift).
template <bool kStored>
float ExpSquareSum(const float* z, float shift, const float* e, int64_t n) {
  F16 s = F16{};
  int64_t k = 0;
  for (; k + kWidth <= n; k += kWidth) {
    const F16 v = kStored ? Load16(e + k) : ExpFast16(Load16(z + k) - shift);
    s += v * v;
  }
  float t = HSum(s);
  for (; k < n; ++k) {
    const float v = kStored ? e[k] : ExpFast(z[k] - shift);
    t += v * v;
  }
  return t;
}
template <bool kStored>
double ExpSquareSum(const double* z, double shift, const double* e, int64_t n) {
  double t = 0.0;
  for (int64_t k = 0; k < n; ++k) {
    const double v = kStored ? e[k] : std::exp(z[k] - shift);
    t += v * v;
  }
  return t;
}

// LogOfSum16 is log(s) on 16 lanes for softmax normalisers s >= 1: Cephes
// logf (S. Moshier, Cephes Math Library 2.2, logf.c), relative error
// ~ 1e-7: s = m 2^e with m in [sqrt(1/2), sqrt(2)), degree-8 polynomial in
// m - 1. Branch-free: m -> 2m - 1, e -> e - 1 where m < sqrt(1/2), else
// m -> m - 1; both exact (Sterbenz).
inline F16 LogOfSum16(F16 s) {
  const I16 bits = std::bit_cast<I16>(s);
  const F16 m0 = std::bit_cast<F16>((bits & 0x007fffff) | 0x3f000000);  // [0.5, 1)
  const I16 small = m0 < 0.707106781186547524f;                         // -1 or 0
  const I16 e = ((bits >> 23) & 0xff) - 126 + small;
  const F16 m = (m0 - 1.0f) + std::bit_cast<F16>(std::bit_cast<I16>(m0) & small);
  const F16 z = m * m;
  F16 y = F16{} + 7.0376836292e-2f;
  y = y * m - 1.1514610310e-1f;
  y = y * m + 1.1676998740e-1f;
  y = y * m - 1.2420140846e-1f;
  y = y * m + 1.4249322787e-1f;
  y = y * m - 1.6668057665e-1f;
  y = y * m + 2.0000714765e-1f;
  y = y * m - 2.4999993993e-1f;
  y = y * m + 3.3333331174e-1f;
  y = y * m * z;
  const F16 fe = __builtin_convertvector(e, F16);
  y += -2.12194440e-4f * fe;
  y += -0.5f * z;
  return m + y + 0.693359375f * fe;
}

// LogBatch sets out[i] = log(in[i]) for i < 16 (in[i] >= 1). The log of a
// softmax normaliser enters a row's loss linearly (see SoftmaxBatch), so it is
// taken for 16 rows at once, off the rows' critical paths.
inline void LogBatch(const double* in, float /*tag*/, double* out) {
  float f[kWidth];
  for (int i = 0; i < kWidth; ++i) f[i] = static_cast<float>(in[i]);
  const F16 l = LogOfSum16(Load16(f));
  for (int i = 0; i < kWidth; ++i) out[i] = static_cast<double>(l[i]);
}
inline void LogBatch(const double* in, double /*tag*/, double* out) {
  for (int i = 0; i < kWidth; ++i) out[i] = std::log(in[i]);
}

// RowInputs is what one row computation sees.
template <typename T>
struct RowInputs {
  const T* raw;            // the row's raw outputs (cols)
  const T* dense;          // the row's dense targets (V) or null
  const int32_t* sp_cols;  // the row's sparse entries or null
  const T* sp_vals;
  int64_t nnz;
  int64_t v;        // targets per row
  int32_t exclude;  // excluded column or -1
  T c, log_c;       // row scale
  T gw;             // gradient weight: row weight x reduction scale
  T* grad;          // the row's gradient (cols) or null
  T* work;          // WriteMode::kStream: the row's scratch (cols), else null
};

// RowOutcome is a row's unweighted loss sum_j D = loss + log_coef *
// log(log_arg) (softmax rows defer the log of their normaliser) and whether
// the row was finite.
struct RowOutcome {
  double loss = 0.0;
  double log_arg = 1.0;
  double log_coef = 0.0;
  bool finite = true;
};

// WriteMode says whether a softmax row computes the loss only (kNone),
// writes its gradient in place over the exponentials it stored there in
// pass 2 (kInPlace), or (kStream, float, large outputs) stores the
// exponentials and builds the gradient in a per-thread scratch row that
// stays in cache, then streams it to the gradient with non-temporal stores,
// as a large memcpy does: the gradient's cache lines are never read for
// ownership, so the kernel moves 8 bytes per entry instead of 12.
// (Recomputing the exponentials in the last pass instead of keeping them in
// a scratch row measured ~1.7x slower: exp throughput bound.)
enum class WriteMode { kNone, kInPlace, kStream };

// kStreamMinBytes: gradients at least this large (beyond the caches) use
// WriteMode::kStream; smaller ones stay in place so the caller reads them
// from cache. Rows longer than kStreamMaxRowBytes also stay in place: their
// scratch row would live in L2, and the extra L2 passes cost more than the
// saved reads for ownership (measured at V = 32768: -20%; at V = 1024: +10%).
constexpr int64_t kStreamMinBytes = 16 << 20;

// StreamRow copies n floats from the scratch row src to dst with
// non-temporal stores (normal stores up to dst's first 64-byte boundary and
// after its last). The caller fences (_mm_sfence) before its writes must be
// visible to other threads.
inline void StreamRow(float* dst, const float* src, int64_t n) {
#if defined(__AVX512F__)
  int64_t k = 0;
  for (; k < n && (reinterpret_cast<uintptr_t>(dst + k) & 63u) != 0; ++k) dst[k] = src[k];
  for (; k + kWidth <= n; k += kWidth) _mm512_stream_ps(dst + k, _mm512_loadu_ps(src + k));
  for (; k < n; ++k) dst[k] = src[k];
#else
  std::memcpy(dst, src, sizeof(float) * static_cast<size_t>(n));
#endif
}
inline void StreamRow(double* dst, const double* src, int64_t n) {
  std::memcpy(dst, src, sizeof(double) * static_cast<size_t>(n));
}

// StreamFence orders the non-temporal stores of StreamRow before later
// stores (called once per row block).
inline void StreamFence() {
#if defined(__AVX512F__) || defined(__SSE2__)
  _mm_sfence();
#endif
}

// SoftmaxState is one softmax row between the passes of SoftmaxBatch.
template <typename T>
struct SoftmaxState {
  const T* z;  // the row's logits (after the rate column)
  T* g;        // the row's logit gradient or null
  bool finite;
  bool fast = false;  // float rows RowMaxFast passed (no clamp in pass 2)
  T zmax, lambda, log_lambda, q_lambda, sum, inv, b_scale, e_x, big_g;
  double loss, log_coef;
};

// SoftmaxBatch handles kSoftmax and the rate x softmax parametrizations for
// n <= kWidth rows. It runs pass by pass over the rows (all maxima, then all
// exponential sums, ...), so the long dependency chains of different rows
// (max -> exp -> sum -> 1/sum -> gradient) overlap in the out-of-order core;
// the caller sizes n so the batch's rows stay in L1/L2 between passes.
template <typename T, Divergence D, bool kDense, WriteMode M>
void SoftmaxBatch(const RowInputs<T>* in, int n, Parametrization param, RowOutcome* out) {
  constexpr bool kStoreE = M != WriteMode::kNone;
  const bool has_rate = HasRateColumn(param);
  const int off = has_rate ? 1 : 0;
  // Rows are contiguous: the same row of the next batch is n rows ahead.
  // Only rows of at least kPrefetchMinBytes are prefetched by hand; shorter
  // ones are left to the hardware prefetcher.
  const int64_t cols = RawColumns(param, in[0].v);
  const int64_t prefetch_ahead =
      cols * static_cast<int64_t>(sizeof(T)) >= kPrefetchMinBytes ? n * cols : 0;
  SoftmaxState<T> st[kWidth];

  // Pass 1: maxima and finiteness (first read of the row from memory).
  for (int i = 0; i < n; ++i) {
    SoftmaxState<T>& s = st[i];
    s.z = in[i].raw + off;
    s.g = M == WriteMode::kInPlace  ? in[i].grad + off
          : M == WriteMode::kStream ? in[i].work + off
                                    : nullptr;
    bool finite_logits;
    if constexpr (std::is_same_v<T, float>) {
      // Rows whose values all lie within 87 of their max (the common case)
      // take the clamp-free exponentials of pass 2, which also find any NaN
      // RowMaxFast let through; the others are checked here.
      s.fast = RowMaxFast(s.z, in[i].v, &s.zmax);
      finite_logits = s.fast || RowMaxFinite(s.z, in[i].v, &s.zmax);
    } else {
      finite_logits = RowMaxFinite(s.z, in[i].v, &s.zmax);
    }
    s.finite = finite_logits && (!has_rate || std::isfinite(in[i].raw[0]));
    out[i] = RowOutcome{};
    out[i].finite = s.finite;
  }

  // Pass 2: total rate lambda = c r(z_rate), log lambda, q_lambda =
  // dlog r / dz_rate; exponential sums (stored in the gradient row when
  // kStoreE).
  for (int i = 0; i < n; ++i) {
    SoftmaxState<T>& s = st[i];
    if (!s.finite) continue;
    const RowInputs<T>& r = in[i];
    s.lambda = r.c;
    s.log_lambda = r.log_c;
    s.q_lambda = T(0);
    if (param == Parametrization::kLogRateSoftmax) {
      const T zr = std::min(r.raw[0], kMaxExpArg<T>);
      s.lambda = r.c * std::exp(zr);
      s.log_lambda = r.log_c + zr;
      s.q_lambda = r.raw[0] > kMaxExpArg<T> ? T(0) : T(1);
    } else if (param == Parametrization::kSoftplusRateSoftmax) {
      s.lambda = r.c * Softplus(r.raw[0]);
      s.log_lambda = r.log_c + LogSoftplus(r.raw[0]);
      s.q_lambda = SigmoidOverSoftplus(r.raw[0]);
    }
    if (s.fast) {
      s.sum =
          ExpSum<kStoreE, M == WriteMode::kInPlace, false>(s.z, s.zmax, r.v, s.g, prefetch_ahead);
      // Every term is <= 1: only a NaN in the row makes the sum NaN.
      if (s.sum != s.sum) s.finite = out[i].finite = false;
    } else {
      s.sum = ExpSum<kStoreE, M == WriteMode::kInPlace>(s.z, s.zmax, r.v, s.g, prefetch_ahead);
    }
  }

  // Pass 3: the loss and BG = sum_{k != x} bg_k.
  for (int i = 0; i < n; ++i) {
    SoftmaxState<T>& s = st[i];
    if (!s.finite) continue;
    const RowInputs<T>& r = in[i];
    const int64_t v = r.v;
    const int32_t x = r.exclude;
    s.inv = T(1) / s.sum;
    s.b_scale = s.lambda * s.inv;  // b_k = b_scale * e_k
    auto e_at = [&](int64_t k) -> T {
      if constexpr (kStoreE) {
        return s.g[k];
      } else {
        return ExpFast(s.z[k] - s.zmax);
      }
    };
    // log b_k = log lambda + (z_k - zmax) - log(sum): the last term is left
    // out here and added once per row as A log(sum), A = sum_{k != x} a_k
    // (every divergence but MSE is linear in log b with coefficient -a).
    auto pred_at = [&](int64_t k, T e) {
      return SoftmaxPred<T, D>(s.b_scale * e, s.log_lambda + (s.z[k] - s.zmax));
    };
    s.e_x = x >= 0 ? e_at(x) : T(0);
    // BG sums up to V terms of either sign: accumulate in double (a float
    // running sum drifts by ~1e-5 relative at V = 3000, more than the CUDA
    // backend's tolerance, which sums per thread in double).
    double loss = 0.0, log_coef = 0.0, big_g = 0.0;
    if constexpr (kDense) {
      for (int64_t k = 0; k < v; ++k) {
        if (k == x) continue;
        const Pred<T> p = pred_at(k, e_at(k));
        const T a = r.dense[k];
        loss += DivergenceValue<T, D>(a, p);
        big_g += SoftmaxBg<T, D>(a, p);
        log_coef += a;
      }
    } else {
      // Baseline: every column k != x with a = 0.
      if constexpr (D == Divergence::kPoisson) {
        // sum_{k != x} b_k = lambda (sum - e_x) / sum.
        big_g = s.b_scale * (s.sum - s.e_x);
        loss = big_g;
      } else if constexpr (D == Divergence::kMse) {
        const T sq = ExpSquareSum<kStoreE>(s.z, s.zmax, s.g, v) - s.e_x * s.e_x;
        loss = s.b_scale * s.b_scale * sq;  // sum b^2
        big_g = static_cast<double>(T(2) * s.b_scale * s.b_scale * sq);
      } else if constexpr (D == Divergence::kBce) {
        for (int64_t k = 0; k < v; ++k) {
          if (k == x) continue;
          const Pred<T> p = pred_at(k, e_at(k));
          loss -= p.log_one_minus_b;
          big_g += p.bq_over_one_minus_b;
        }
      }
      // Target columns: swap the a = 0 term for the a term.
      for (int64_t t = 0; t < r.nnz; ++t) {
        const int32_t k = r.sp_cols[t];
        if (k == x) continue;
        const T a = r.sp_vals[t];
        const Pred<T> p = pred_at(k, e_at(k));
        loss += DivergenceDelta<T, D>(a, p);
        big_g += SoftmaxBgDelta<T, D>(a, p);
        log_coef += a;
      }
    }
    s.big_g = static_cast<T>(big_g);
    out[i].loss = loss;
    if constexpr (D != Divergence::kMse) {
      out[i].log_arg = s.sum;
      out[i].log_coef = log_coef;
    }
  }
  if constexpr (M == WriteMode::kNone) return;

  // Pass 4: the gradient, dL/dz_k = gw (bg_k - p_k BG), dL/dz_x = -gw p_x BG,
  // dL/dz_rate = gw BG q_lambda.
  for (int i = 0; i < n; ++i) {
    SoftmaxState<T>& s = st[i];
    if (!s.finite) continue;
    const RowInputs<T>& r = in[i];
    const int64_t v = r.v;
    const int32_t x = r.exclude;
    const T gw = r.gw, inv = s.inv, big_g = s.big_g, b_scale = s.b_scale;
    T* g = s.g;
    auto pred_at = [&](int64_t k, T e) {
      return SoftmaxPred<T, D>(b_scale * e, s.log_lambda + (s.z[k] - s.zmax));
    };
    if constexpr (kDense) {
      for (int64_t k = 0; k < v; ++k) {
        const T e = kStoreE ? g[k] : ExpFast(s.z[k] - s.zmax);
        const Pred<T> p = pred_at(k, e);
        g[k] = gw * (SoftmaxBg<T, D>(r.dense[k], p) - inv * e * big_g);
      }
    } else {
      // Bulk gradient, every column as if a = 0: gw (bg_0(b_k) - p_k BG).
      const T coef_p = -gw * inv * big_g;  // times e_k
      const T alpha = gw * T(2) * b_scale * b_scale;
      const T poisson_coef = gw * b_scale + coef_p;
      auto bulk = [&](T e) -> T {
        if constexpr (D == Divergence::kPoisson) {
          return e * poisson_coef;
        } else if constexpr (D == Divergence::kGeneralizedKl) {
          return e * coef_p;
        } else if constexpr (D == Divergence::kMse) {
          return e * (alpha * e + coef_p);
        } else {
          return gw * BceRatio(b_scale * e) + coef_p * e;
        }
      };
      for (int64_t k = 0; k < v; ++k) g[k] = bulk(g[k]);
      // Target columns (e recomputed: g was overwritten).
      for (int64_t t = 0; t < r.nnz; ++t) {
        const int32_t k = r.sp_cols[t];
        if (k == x) continue;
        const T e = ExpFast(s.z[k] - s.zmax);
        const Pred<T> p = pred_at(k, e);
        g[k] = gw * (SoftmaxBg<T, D>(r.sp_vals[t], p) - inv * e * big_g);
      }
    }
    if (x >= 0) g[x] = -gw * inv * s.e_x * big_g;
    T* row_start = M == WriteMode::kStream ? r.work : r.grad;
    if (has_rate) row_start[0] = gw * big_g * s.q_lambda;
    if constexpr (M == WriteMode::kStream) StreamRow(r.grad, r.work, RawColumns(param, v));
  }
}

// ElementwiseRow handles softplus, exp and sigmoid: one pass, sorted sparse
// targets merged in.
template <typename T, Parametrization P, Divergence D, bool kDense>
RowOutcome ElementwiseRow(const RowInputs<T>& in) {
  RowOutcome out;
  T unused;
  if (!RowMaxFinite(in.raw, in.v, &unused)) {
    out.finite = false;
    return out;
  }
  constexpr bool kBce = D == Divergence::kBce;
  double loss = 0.0;
  int64_t next = 0;  // next sparse entry
  for (int64_t k = 0; k < in.v; ++k) {
    T a = T(0);
    if constexpr (kDense) {
      a = in.dense[k];
    } else {
      if (next < in.nnz && in.sp_cols[next] == k) a = in.sp_vals[next++];
    }
    if (k == in.exclude) {
      if (in.grad != nullptr) in.grad[k] = T(0);
      continue;
    }
    const Pred<T> p = EvalElementwise<T, P, kBce>(in.raw[k], in.c, in.log_c);
    loss += DivergenceValue<T, D>(a, p);
    if (in.grad != nullptr) in.grad[k] = in.gw * ElementwiseGrad<T, D>(a, p);
  }
  out.loss = loss;
  return out;
}

// RowFn computes a batch of n <= kWidth rows; chosen once per call.
template <typename T>
using RowFn = void (*)(const RowInputs<T>*, int, Parametrization, RowOutcome*);

template <typename T, Parametrization P, Divergence D, bool kDense>
void ElementwiseAdapter(const RowInputs<T>* in, int n, Parametrization, RowOutcome* out) {
  for (int i = 0; i < n; ++i) out[i] = ElementwiseRow<T, P, D, kDense>(in[i]);
}

template <typename T, Divergence D, bool kDense>
RowFn<T> PickForDivergence(Parametrization p, WriteMode mode) {
  switch (p) {
    case Parametrization::kSoftmax:
    case Parametrization::kLogRateSoftmax:
    case Parametrization::kSoftplusRateSoftmax:
      switch (mode) {
        case WriteMode::kNone:
          return &SoftmaxBatch<T, D, kDense, WriteMode::kNone>;
        case WriteMode::kInPlace:
          return &SoftmaxBatch<T, D, kDense, WriteMode::kInPlace>;
        case WriteMode::kStream:
          return &SoftmaxBatch<T, D, kDense, WriteMode::kStream>;
      }
      return nullptr;
    case Parametrization::kSoftplus:
      return &ElementwiseAdapter<T, Parametrization::kSoftplus, D, kDense>;
    case Parametrization::kExp:
      return &ElementwiseAdapter<T, Parametrization::kExp, D, kDense>;
    case Parametrization::kSigmoid:
      return &ElementwiseAdapter<T, Parametrization::kSigmoid, D, kDense>;
  }
  return nullptr;
}

template <typename T, bool kDense>
RowFn<T> PickRowFn(Parametrization p, Divergence d, WriteMode mode) {
  switch (d) {
    case Divergence::kPoisson:
      return PickForDivergence<T, Divergence::kPoisson, kDense>(p, mode);
    case Divergence::kBce:
      return PickForDivergence<T, Divergence::kBce, kDense>(p, mode);
    case Divergence::kMse:
      return PickForDivergence<T, Divergence::kMse, kDense>(p, mode);
    case Divergence::kGeneralizedKl:
      return PickForDivergence<T, Divergence::kGeneralizedKl, kDense>(p, mode);
  }
  return nullptr;
}

// ThreadScratch returns this thread's scratch of at least n elements (grown
// once, reused by every later call: no allocation in steady state).
template <typename T>
T* ThreadScratch(size_t n) {
  thread_local std::vector<T> buffer;
  if (buffer.size() < n) buffer.resize(n);
  return buffer.data();
}

// Partial is the reduction state of a run of row blocks.
struct Partial {
  double sum = 0.0;
  int64_t first_nonfinite_row = -1;
};

#if defined(__AVX512F__)
// --- Short softmax rows (V <= 32, float): the DFM loss on a small vocabulary.
// A row is one or two vectors, so a row-at-a-time kernel spends most of its
// time on per-row work (horizontal reductions, scalar bookkeeping and
// scalar exponentials for the target columns): the generic SoftmaxBatch runs
// at ~30 ns a row at V = 32, where the exponentials alone take ~4. The path
// below does that work for 16 rows at once, one lane per row.

// kSmallRowMax is the longest row OneHotSoftmax16 takes (two vectors).
constexpr int64_t kSmallRowMax = 2 * kWidth;

// kSmallPrefetchBlocks: how many 16-row blocks ahead OneHotSoftmax16 prefetches.
constexpr int64_t kSmallPrefetchBlocks = 2;

// OneHotSoftmax16 is the loss and gradient of the 16 rows [r0, r0 + 16) for
// the DFM case at V <= 32: kSoftmax, Poisson or generalized KL, one sparse
// target per row, no row scales. Everything per row is 16-lane vector work:
// the row maxima and sums come from ReduceRows16, the target and excluded
// logits are gathered and their exponentials recomputed (ExpEv16 is ExpEvF
// lane by lane, so they equal the stored ones bit for bit), and the loss
// terms, gradient coefficients and fix-ups of the 16 rows are one vector
// each. Returns false, having written nothing, when the block does not
// qualify (a masked or zero-weight row, a row without exactly one target,
// a non-finite logit): the caller then runs the general path.
template <Divergence D, bool kStore, bool kFull>
bool OneHotSoftmax16(const LossArgs<float>& args, int64_t r0, float reduction_scale,
                     Partial* partial) {
  static_assert(D == Divergence::kPoisson || D == Divergence::kGeneralizedKl);
  const int v = static_cast<int>(args.targets_per_row);
  const int64_t* offsets = args.sparse_row_offsets + r0;
  if (offsets[kWidth] - offsets[0] != kWidth) return false;
  for (int i = 0; i < kWidth; ++i) {
    if (offsets[i + 1] - offsets[i] != 1) return false;
  }
  if (args.row_mask != nullptr) {
    for (int i = 0; i < kWidth; ++i) {
      if (args.row_mask[r0 + i] == 0) return false;
    }
  }
  const __m512 w =
      args.row_weights != nullptr ? _mm512_loadu_ps(args.row_weights + r0) : _mm512_set1_ps(1.0f);
  if (_mm512_cmp_ps_mask(w, _mm512_setzero_ps(), _CMP_NEQ_UQ) != 0xffff) return false;

  const __mmask16 m0 = static_cast<__mmask16>(v >= kWidth ? 0xffffu : (1u << v) - 1u);
  const __mmask16 m1 = static_cast<__mmask16>(v >= 2 * kWidth ? 0xffffu
                                              : v > kWidth    ? (1u << (v - kWidth)) - 1u
                                                              : 0u);
  const __m512 neg_inf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  auto load = [&](const float* p, __mmask16 m) {
    if (kFull) return std::bit_cast<F16>(_mm512_loadu_ps(p));
    return std::bit_cast<F16>(_mm512_mask_loadu_ps(neg_inf, m, p));
  };
  auto store = [&](float* p, __mmask16 m, __m512 val) {
    if (kFull) {
      _mm512_storeu_ps(p, val);
    } else {
      _mm512_mask_storeu_ps(p, m, val);
    }
  };
  const float* raw = args.raw + r0 * v;

  // Pass 1: maxima (-inf pad) and finiteness sums (z - z: 0, or NaN for inf
  // or NaN, over each row's own lanes).
  F16 part_max[kWidth], part_fin[kWidth];
  for (int i = 0; i < kWidth; ++i) {
    const float* z = raw + i * v;
    const F16 a = load(z, m0), b = load(z + kWidth, m1);
    part_max[i] = a > b ? a : b;
    part_fin[i] = std::bit_cast<F16>(
        _mm512_add_ps(_mm512_maskz_sub_ps(m0, std::bit_cast<__m512>(a), std::bit_cast<__m512>(a)),
                      _mm512_maskz_sub_ps(m1, std::bit_cast<__m512>(b), std::bit_cast<__m512>(b))));
  }
  const __m512 fin =
      std::bit_cast<__m512>(ReduceRows16(part_fin, [](F16 a, F16 b) { return a + b; }));
  if (_mm512_cmp_ps_mask(fin, fin, _CMP_UNORD_Q) != 0) return false;
  alignas(64) float zmax[kWidth];
  const F16 mx = ReduceRows16(part_max, [](F16 a, F16 b) { return a > b ? a : b; });
  Store16(zmax, mx);

  // Pass 2: e = exp(z - max), 0 on the pad, kept in a scratch block that
  // stays in L1 (the gradient is written once, in pass 3); row sums. The
  // same rows of the block after next are prefetched (their first read
  // comes from L2/L3 otherwise, a latency the hardware prefetcher leaves
  // exposed at this row length).
  alignas(64) float scratch[kWidth * kSmallRowMax];
  const int64_t ahead = kSmallPrefetchBlocks * kWidth * v;
  const bool prefetch = r0 + (kSmallPrefetchBlocks + 1) * kWidth <= args.rows;
  F16 part_sum[kWidth];
  for (int i = 0; i < kWidth; ++i) {
    const float* z = raw + i * v;
    float* e = scratch + i * kSmallRowMax;
    float* g = kStore ? args.grad + (r0 + i) * v : nullptr;
    if (prefetch) {
      __builtin_prefetch(z + ahead, 0, 3);
      __builtin_prefetch(z + ahead + v - 1, 0, 3);
      if constexpr (kStore) {
        __builtin_prefetch(g + ahead, 1, 3);
        __builtin_prefetch(g + ahead + v - 1, 1, 3);
      }
    }
    const F16 shift = F16{} + zmax[i];
    const __m512 e0 =
        _mm512_maskz_mov_ps(m0, std::bit_cast<__m512>(ExpFast16(load(z, m0) - shift)));
    const __m512 e1 =
        _mm512_maskz_mov_ps(m1, std::bit_cast<__m512>(ExpFast16(load(z + kWidth, m1) - shift)));
    _mm512_store_ps(e, e0);
    _mm512_store_ps(e + kWidth, e1);
    part_sum[i] = std::bit_cast<F16>(_mm512_add_ps(e0, e1));
  }
  const F16 s = ReduceRows16(part_sum, [](F16 a, F16 b) { return a + b; });

  // The 16 rows' scalars, one lane each. Target t and excluded x logits are
  // gathered at row * v + column.
  const __m512i row_base =
      _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                         _mm512_set1_epi32(v));
  const __m512i t = _mm512_loadu_si512(args.sparse_cols + offsets[0]);
  const __m512 a = _mm512_loadu_ps(args.sparse_values + offsets[0]);
  const __m512i x = args.excluded_cols != nullptr ? _mm512_loadu_si512(args.excluded_cols + r0)
                                                  : _mm512_set1_epi32(-1);
  const __mmask16 has_x = _mm512_cmpge_epi32_mask(x, _mm512_setzero_si512());
  const __mmask16 counted = _mm512_cmpneq_epi32_mask(t, x);  // target column not excluded
  // (Masked gathers with an explicit pass-through: GCC 12 warns about the
  // unmasked intrinsic's undefined one, PR 105593.)
  const F16 z_t = std::bit_cast<F16>(
      _mm512_mask_i32gather_ps(_mm512_setzero_ps(), 0xffff, _mm512_add_epi32(row_base, t), raw, 4));
  const F16 z_x = std::bit_cast<F16>(
      _mm512_mask_i32gather_ps(_mm512_setzero_ps(), has_x, _mm512_add_epi32(row_base, x), raw, 4));
  const F16 e_t = ExpFast16(z_t - mx);
  const F16 e_x =
      std::bit_cast<F16>(_mm512_maskz_mov_ps(has_x, std::bit_cast<__m512>(ExpFast16(z_x - mx))));
  const F16 inv = 1.0f / s;
  const F16 av = std::bit_cast<F16>(_mm512_maskz_mov_ps(counted, a));  // 0 where t == x
  // XLogX(a): 0 for a = 1 (the one-hot case) and a = 0, else a log a.
  alignas(64) float a_arr[kWidth], xlogx[kWidth];
  Store16(a_arr, av);
  for (int i = 0; i < kWidth; ++i) xlogx[i] = XLogX(a_arr[i]);
  // log b_t without the deferred -log(sum) (see SoftmaxBatch): z_t - max.
  const F16 log_bt = z_t - mx;
  F16 big_g = -av, loss = Load16(xlogx) - av * log_bt;
  if constexpr (D == Divergence::kPoisson) {
    const F16 base = inv * (s - e_x);  // sum_{k != x} b_k
    big_g += base;
    loss += base - av;
  }
  alignas(64) float log_s[kWidth], loss_arr[kWidth], w_arr[kWidth];
  Store16(log_s, LogOfSum16(s));
  Store16(loss_arr, loss);
  Store16(w_arr, std::bit_cast<F16>(w));
  for (int i = 0; i < kWidth; ++i) {
    const double row = static_cast<double>(w_arr[i]) *
                       (static_cast<double>(loss_arr[i]) +
                        static_cast<double>(a_arr[i]) * static_cast<double>(log_s[i]));
    partial->sum += row;
    if (args.row_loss != nullptr) args.row_loss[r0 + i] = static_cast<float>(row);
  }
  if constexpr (!kStore) return true;

  // Pass 3: dL/dz_k = gw (bg_k - p_k BG) = bulk * e_k for every k, then the
  // target (bg_t = b_t - a for Poisson, -a for KL) and excluded columns.
  const F16 gw = std::bit_cast<F16>(w) * reduction_scale;
  const F16 coef_p = -gw * inv * big_g;
  alignas(64) float bulk[kWidth], g_t[kWidth], g_x[kWidth];
  alignas(64) int32_t t_arr[kWidth], x_arr[kWidth];
  Store16(bulk, D == Divergence::kPoisson ? gw * inv + coef_p : coef_p);
  const F16 bg_t = D == Divergence::kPoisson ? inv * e_t - av : -av;
  Store16(g_t, gw * bg_t + coef_p * e_t);
  Store16(g_x, coef_p * e_x);
  _mm512_store_si512(t_arr, t);
  _mm512_store_si512(x_arr, x);
  for (int i = 0; i < kWidth; ++i) {
    float* g = args.grad + (r0 + i) * v;
    const float* e = scratch + i * kSmallRowMax;
    const F16 c = F16{} + bulk[i];
    store(g, m0, std::bit_cast<__m512>(Load16(e) * c));
    store(g + kWidth, m1, std::bit_cast<__m512>(Load16(e + kWidth) * c));
    if ((counted >> i) & 1u) g[t_arr[i]] = g_t[i];
    if (x_arr[i] >= 0) g[x_arr[i]] = g_x[i];
  }
  return true;
}

// OneHotFn is an instantiation of OneHotSoftmax16.
using OneHotFn = bool (*)(const LossArgs<float>&, int64_t, float, Partial*);

template <Divergence D>
OneHotFn PickOneHotFor(bool store, bool full) {
  if (store) return full ? &OneHotSoftmax16<D, true, true> : &OneHotSoftmax16<D, true, false>;
  return full ? &OneHotSoftmax16<D, false, true> : &OneHotSoftmax16<D, false, false>;
}

// PickOneHot chooses the OneHotSoftmax16 for generalized KL or Poisson,
// with or without a gradient, for rows of exactly two vectors or fewer.
OneHotFn PickOneHot(bool kl, bool store, bool full) {
  return kl ? PickOneHotFor<Divergence::kGeneralizedKl>(store, full)
            : PickOneHotFor<Divergence::kPoisson>(store, full);
}
#endif  // __AVX512F__

template <typename T>
LossResult Run(const LossArgs<T>& args) {
  LossResult result;
  const int64_t rows = args.rows, v = args.targets_per_row;
  const int64_t cols = RawColumns(args.parametrization, v);
  if (rows <= 0) return result;
  int64_t active = rows;
  if (args.row_mask != nullptr) {
    active = 0;
    for (int64_t r = 0; r < rows; ++r) active += args.row_mask[r] != 0 ? 1 : 0;
  }
  result.active_rows = active;
  const T reduction_scale =
      args.reduction == Reduction::kMean && active > 0 ? T(1) / static_cast<T>(active) : T(1);
  const bool dense = args.dense_targets != nullptr;
  const bool store = args.grad != nullptr;
  const bool stream = store && std::is_same_v<T, float> && IsSoftmaxFamily(args.parametrization) &&
                      rows * cols * static_cast<int64_t>(sizeof(T)) >= kStreamMinBytes &&
                      cols * static_cast<int64_t>(sizeof(T)) <= kStreamMaxRowBytes;
  const WriteMode mode = !store   ? WriteMode::kNone
                         : stream ? WriteMode::kStream
                                  : WriteMode::kInPlace;
  RowFn<T> fn = dense ? PickRowFn<T, true>(args.parametrization, args.divergence, mode)
                      : PickRowFn<T, false>(args.parametrization, args.divergence, mode);
#if defined(__AVX512F__)
  OneHotFn one_hot = nullptr;
  if constexpr (std::is_same_v<T, float>) {
    if (!dense && args.parametrization == Parametrization::kSoftmax && args.row_scales == nullptr &&
        v <= kSmallRowMax &&
        (args.divergence == Divergence::kPoisson ||
         args.divergence == Divergence::kGeneralizedKl)) {
      one_hot = PickOneHot(args.divergence == Divergence::kGeneralizedKl, store, v == kSmallRowMax);
    }
  }
#endif
  const int64_t grain = std::max<int64_t>(1, kBlockElements / std::max<int64_t>(cols, 1));

  // Rows per batch: up to kWidth, as many as keep ~kBatchBytes of logits in
  // cache between the passes of a softmax batch.
  const int batch = static_cast<int>(
      std::clamp<int64_t>(kBatchBytes / (cols * static_cast<int64_t>(sizeof(T))), 1, kWidth));
  auto body = [&](const tbb::blocked_range<int64_t>& range, Partial partial) {
    RowInputs<T> in[kWidth];
    RowOutcome outcome[kWidth];
    int64_t row_of[kWidth];
    double weight[kWidth], log_arg[kWidth], logs[kWidth];
    T* scratch = stream ? ThreadScratch<T>(static_cast<size_t>(batch * cols)) : nullptr;
    for (int64_t r0 = range.begin(); r0 < range.end(); r0 += batch) {
      const int64_t r1 = std::min<int64_t>(r0 + batch, range.end());
#if defined(__AVX512F__)
      if constexpr (std::is_same_v<T, float>) {
        if (one_hot != nullptr && r1 - r0 == kWidth &&
            one_hot(args, r0, reduction_scale, &partial)) {
          continue;
        }
      }
#endif
      int n = 0;
      for (int64_t r = r0; r < r1; ++r) {
        T* grad_row = store ? args.grad + r * cols : nullptr;
        const T w = args.row_weights != nullptr ? args.row_weights[r] : T(1);
        if ((args.row_mask != nullptr && args.row_mask[r] == 0) || w == T(0)) {
          if (store) std::memset(grad_row, 0, sizeof(T) * static_cast<size_t>(cols));
          if (args.row_loss != nullptr) args.row_loss[r] = T(0);
          continue;
        }
        RowInputs<T>& x = in[n];
        x.raw = args.raw + r * cols;
        x.dense = dense ? args.dense_targets + r * v : nullptr;
        if (!dense) {
          const int64_t begin = args.sparse_row_offsets[r];
          x.sp_cols = args.sparse_cols + begin;
          x.sp_vals = args.sparse_values + begin;
          x.nnz = args.sparse_row_offsets[r + 1] - begin;
        } else {
          x.sp_cols = nullptr;
          x.sp_vals = nullptr;
          x.nnz = 0;
        }
        x.v = v;
        x.exclude = args.excluded_cols != nullptr ? args.excluded_cols[r] : -1;
        x.c = args.row_scales != nullptr ? args.row_scales[r] : T(1);
        x.log_c = args.row_scales != nullptr ? std::log(x.c) : T(0);
        x.gw = w * reduction_scale;
        x.grad = grad_row;
        x.work = stream ? scratch + n * cols : nullptr;
        weight[n] = static_cast<double>(w);
        row_of[n] = r;
        ++n;
      }
      if (n == 0) continue;
      fn(in, n, args.parametrization, outcome);
      for (int i = 0; i < kWidth; ++i) {
        log_arg[i] = i < n && outcome[i].finite ? outcome[i].log_arg : 1.0;
      }
      // The deferred log(sum) terms of all rows of the batch at once.
      LogBatch(log_arg, T(0), logs);
      for (int i = 0; i < n; ++i) {
        const int64_t r = row_of[i];
        double row_loss = 0.0;
        if (outcome[i].finite) {
          row_loss = weight[i] * (outcome[i].loss + outcome[i].log_coef * logs[i]);
          partial.sum += row_loss;
        } else {
          if (store) std::memset(in[i].grad, 0, sizeof(T) * static_cast<size_t>(cols));
          if (partial.first_nonfinite_row < 0) partial.first_nonfinite_row = r;
        }
        if (args.row_loss != nullptr) args.row_loss[r] = static_cast<T>(row_loss);
      }
    }
    if (stream) StreamFence();
    return partial;
  };
  auto join = [](Partial a, const Partial& b) {
    a.sum += b.sum;
    if (a.first_nonfinite_row < 0) a.first_nonfinite_row = b.first_nonfinite_row;
    return a;
  };
  // Deterministic: leaves are fixed by (rows, grain) and joined in a fixed
  // left-to-right tree, whatever the number of threads.
  const Partial total = tbb::parallel_deterministic_reduce(
      tbb::blocked_range<int64_t>(0, rows, static_cast<size_t>(grain)), Partial{}, body, join);
  result.sum = total.sum;
  result.mean = active > 0 ? total.sum / static_cast<double>(active) : 0.0;
  result.first_nonfinite_row = total.first_nonfinite_row;
  return result;
}

}  // namespace

LossResult FusedLossCpu(const LossArgs<float>& args) { return Run(args); }
LossResult FusedLossCpu(const LossArgs<double>& args) { return Run(args); }

}  // namespace jumpflow::kernels
