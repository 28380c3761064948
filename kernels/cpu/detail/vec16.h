// @brief 16-lane float vectors for the CPU kernels (GCC/Clang generic
// vectors: one AVX-512 register, two AVX2 or four SSE registers) and the
// vector twin of detail::ExpEvF. CPU-only, private to kernels/cpu/.
//
// Example:
//   F16 e = ExpEv16(Load16(z + k) - (F16{} + zmax));  // == ExpEvF lane by lane
#ifndef JUMPFLOW_KERNELS_CPU_DETAIL_VEC16_H_
#define JUMPFLOW_KERNELS_CPU_DETAIL_VEC16_H_

#include <bit>
#include <cstdint>
#include <cstring>

#include "kernels/detail/fast_math.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace jumpflow::kernels::detail {

using F16 = float __attribute__((vector_size(64)));
using I16 = int32_t __attribute__((vector_size(64)));
constexpr int kWidth = 16;

inline F16 Load16(const float* p) {
  F16 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// LoadPartial16 loads p[0..n) (n < 16) and zeros the other lanes.
inline F16 LoadPartial16(const float* p, int n) {
#if defined(__AVX512F__)
  const __mmask16 mask = static_cast<__mmask16>((1u << n) - 1u);
  return std::bit_cast<F16>(_mm512_maskz_loadu_ps(mask, p));
#else
  F16 v = F16{};
  float buf[kWidth] = {};
  std::memcpy(buf, p, sizeof(float) * static_cast<size_t>(n));
  std::memcpy(&v, buf, sizeof(v));
  return v;
#endif
}

// GCC 12 warns about the undefined pass-through operand inside the AVX-512
// intrinsic headers (a known false positive, GCC PR 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// ExpEv16 is detail::ExpEvF on 16 lanes, bit for bit: AVX-512 round-to-
// nearest-even (= the shifter trick), explicit FMAs, scalef (= the exponent
// bits, the result being normal or correctly rounded subnormal either way).
// Without AVX-512 it calls the scalar function per lane (correct, slower).
//
// kClamp = false leaves out ExpEvF's first step, x = max(x, kExpEvMin): the
// caller guarantees x >= kExpEvMin in every lane that counts (then the clamp
// is the identity and the bits are ExpEvF's), and a NaN lane stays NaN (the
// clamp would turn it into exp(kExpEvMin)), which callers use to detect
// non-finite inputs. One vector operation fewer out of twelve.
template <bool kClamp = true>
inline F16 ExpEv16(F16 x) {
#if defined(__AVX512F__)
  __m512 xv = std::bit_cast<__m512>(x);
  if constexpr (kClamp) xv = _mm512_max_ps(xv, _mm512_set1_ps(detail::kExpEvMin));
  const __m512 t = _mm512_mul_ps(xv, _mm512_set1_ps(1.44269504088896341f));
  const __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(-detail::kExpEvLn2Hi), xv);
  r = _mm512_fmadd_ps(n, _mm512_set1_ps(-detail::kExpEvLn2Lo), r);
  __m512 p = _mm512_set1_ps(detail::kExpEvC5);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(detail::kExpEvC4));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(detail::kExpEvC3));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(detail::kExpEvC2));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(detail::kExpEvC1));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return std::bit_cast<F16>(_mm512_scalef_ps(p, n));
#else
  F16 out;
  for (int l = 0; l < kWidth; ++l) {
    out[l] = !kClamp && x[l] != x[l] ? x[l] : detail::ExpEvF(x[l]);
  }
  return out;
#endif
}

#pragma GCC diagnostic pop

// AllAtLeast is true when every lane of v is >= bound (false for NaN lanes).
inline bool AllAtLeast(F16 v, float bound) {
#if defined(__AVX512F__)
  return _mm512_cmp_ps_mask(std::bit_cast<__m512>(v), _mm512_set1_ps(bound), _CMP_GE_OQ) ==
         static_cast<__mmask16>(0xffff);
#else
  for (int l = 0; l < kWidth; ++l) {
    if (!(v[l] >= bound)) return false;
  }
  return true;
#endif
}

// LaneMaxMin4 sets *mx and *mn to the lane-wise max and min of the 4 * n4
// vectors at z (n4 >= 1), as four independent chains of each (exact in any
// order; one chain over the vectors is a critical path of dependent ops).
inline void LaneMaxMin4(const float* z, int64_t n4, F16* mx, F16* mn) {
  F16 m[4], l[4];
  for (int j = 0; j < 4; ++j) m[j] = l[j] = Load16(z + kWidth * j);
  for (int64_t k = 4 * kWidth; k < n4 * 4 * kWidth; k += 4 * kWidth) {
    for (int j = 0; j < 4; ++j) {
      const F16 v = Load16(z + k + kWidth * j);
      m[j] = v > m[j] ? v : m[j];
      l[j] = v < l[j] ? v : l[j];
    }
  }
  const F16 m01 = m[1] > m[0] ? m[1] : m[0], m23 = m[3] > m[2] ? m[3] : m[2];
  const F16 l01 = l[1] < l[0] ? l[1] : l[0], l23 = l[3] < l[2] ? l[3] : l[2];
  *mx = m23 > m01 ? m23 : m01;
  *mn = l23 < l01 ? l23 : l01;
}

// HMax is the max of the 16 lanes (exact in any order): a shuffle tree.
inline float HMax(F16 v) {
  using F8 = float __attribute__((vector_size(32)));
  using F4 = float __attribute__((vector_size(16)));
  const F8 lo = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7);
  const F8 hi = __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
  const F8 a = hi > lo ? hi : lo;
  const F4 a_lo = __builtin_shufflevector(a, a, 0, 1, 2, 3);
  const F4 a_hi = __builtin_shufflevector(a, a, 4, 5, 6, 7);
  const F4 b = a_hi > a_lo ? a_hi : a_lo;
  const float c0 = b[2] > b[0] ? b[2] : b[0], c1 = b[3] > b[1] ? b[3] : b[1];
  return c1 > c0 ? c1 : c0;
}

// ReduceRows16 returns the vector whose lane i is op-reduce over the 16 lanes
// of v[i] (one row's partial maxima or sums), in a fixed order. Four
// stages of two-source shuffles halve the lanes per row while doubling the
// rows per vector: 8 + 4 + 2 + 1 combinations, 45 operations for 16 rows
// instead of 16 separate shuffle trees ending in scalar code.
template <typename Op>
[[gnu::always_inline]] inline F16 ReduceRows16(const F16* v, Op op) {
  F16 w[8], x[4], y[2];
  // Stage 1: rows 2j, 2j+1 -> lanes 0-7 (row 2j), 8-15 (row 2j+1).
  for (int j = 0; j < 8; ++j) {
    const F16 a = v[2 * j], b = v[2 * j + 1];
    w[j] = op(__builtin_shufflevector(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23),
              __builtin_shufflevector(a, b, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29,
                                      30, 31));
  }
  // Stage 2: 4 rows x 4 lanes, in row order.
  for (int j = 0; j < 4; ++j) {
    const F16 a = w[2 * j], b = w[2 * j + 1];
    x[j] = op(
        __builtin_shufflevector(a, b, 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27),
        __builtin_shufflevector(a, b, 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31));
  }
  // Stage 3: 8 rows x 2 lanes.
  for (int j = 0; j < 2; ++j) {
    const F16 a = x[2 * j], b = x[2 * j + 1];
    y[j] = op(
        __builtin_shufflevector(a, b, 0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29),
        __builtin_shufflevector(a, b, 2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31));
  }
  // Stage 4: 16 rows x 1 lane.
  return op(__builtin_shufflevector(y[0], y[1], 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26,
                                    28, 30),
            __builtin_shufflevector(y[0], y[1], 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27,
                                    29, 31));
}

}  // namespace jumpflow::kernels::detail

#endif  // JUMPFLOW_KERNELS_CPU_DETAIL_VEC16_H_
