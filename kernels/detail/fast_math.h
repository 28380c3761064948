// @brief Deterministic float/double elementary functions for host and device
// code: the same operations in the same order on the CPU and the GPU, so
// kernels that must agree bit for bit across backends (event draws) can use
// them.
//
// Every function here is built from IEEE-754 +, -, *, / (correctly rounded on
// both sides), explicit FMAs (FmaF), comparisons and exact bit manipulation:
// no libm call whose last bit differs between glibc and CUDA. Bitwise
// agreement also needs that the compiler never contracts a * b + c into a
// fused multiply-add on its own (g++ does so by default under -march with
// FMA): every product that meets an addition goes through MulF / MulD, which
// are __fmul_rn / __dmul_rn on the device (never contracted) and an
// optimisation barrier on the host, so these functions give the same bits
// whatever flags the including translation unit uses. (The kernel sources
// are additionally compiled with -ffp-contract=off / --fmad=false for their
// own vector code; kernels/CMakeLists.txt.)
//
// Accuracy: ExpF ~2e-7 relative (Cephes expf), LogF ~1e-7 (Cephes logf),
// Log1pF and SoftplusF a few ulp, OneMinusExpNeg ~1e-15 relative.
//
// Example:
//   float e = detail::ExpF(z - zmax);
//   double p = detail::OneMinusExpNeg(rate * h_dt);  // 1 - exp(-x), x >= 0
#ifndef JUMPFLOW_KERNELS_DETAIL_FAST_MATH_H_
#define JUMPFLOW_KERNELS_DETAIL_FAST_MATH_H_

#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/philox.h"  // JUMPFLOW_HD

namespace jumpflow::kernels::detail {

// FloatBits / BitsFloat reinterpret a float as its 32 bits and back.
JUMPFLOW_HD int32_t FloatBits(float x) {
#if defined(__CUDA_ARCH__)
  return __float_as_int(x);
#else
  int32_t i;
  std::memcpy(&i, &x, sizeof(i));
  return i;
#endif
}
JUMPFLOW_HD float BitsFloat(int32_t i) {
#if defined(__CUDA_ARCH__)
  return __int_as_float(i);
#else
  float x;
  std::memcpy(&x, &i, sizeof(x));
  return x;
#endif
}
JUMPFLOW_HD double BitsDouble(int64_t i) {
#if defined(__CUDA_ARCH__)
  return __longlong_as_double(static_cast<long long>(i));
#else
  double x;
  std::memcpy(&x, &i, sizeof(x));
  return x;
#endif
}

// MulF / MulD are a * b rounded on its own: never fused with a following
// addition (see the file comment).
JUMPFLOW_HD float MulF(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  float p = a * b;
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  __asm__("" : "+x"(p));
#elif defined(__GNUC__) && defined(__aarch64__)
  __asm__("" : "+w"(p));
#endif
  return p;
#endif
}
JUMPFLOW_HD double MulD(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  double p = a * b;
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  __asm__("" : "+x"(p));
#elif defined(__GNUC__) && defined(__aarch64__)
  __asm__("" : "+w"(p));
#endif
  return p;
#endif
}

// NegInfF is -infinity.
JUMPFLOW_HD float NegInfF() { return BitsFloat(static_cast<int32_t>(0xff800000u)); }

// MaxF / MinF are x > y ? x : y and x < y ? x : y (no NaN handling: callers
// check finiteness separately).
JUMPFLOW_HD float MaxF(float x, float y) { return x > y ? x : y; }
JUMPFLOW_HD float MinF(float x, float y) { return x < y ? x : y; }

// ExpF is exp(x) for float, Cephes expf (S. Moshier, Cephes Math Library
// 2.2): x = n ln2 + r, |r| <= ln2 / 2, ln2 split 0.693359375 - 2.12194440e-4
// so n ln2 is exact, degree-6 polynomial; n from the 1.5 * 2^23 shifter.
// Inputs are clamped to [-87.3, 88.3] (2^n stays normal): exp of anything
// below -87.3 (including -inf) is ~1.2e-38, never 0. The same operations as
// kernels/cpu/loss_cpu.cc ExpFast and its 16-lane twin.
JUMPFLOW_HD float ExpF(float x) {
  x = MinF(MaxF(x, -87.3f), 88.3f);
  constexpr float kShifter = 0x1.8p23f;
  const float shifted = MulF(x, 1.44269504088896341f) + kShifter;
  const float n = shifted - kShifter;
  const int32_t ni = FloatBits(shifted) - FloatBits(kShifter);
  float r = x - MulF(n, 0.693359375f);
  r = r - MulF(n, -2.12194440e-4f);
  float p = 1.9875691500e-4f;
  p = MulF(p, r) + 1.3981999507e-3f;
  p = MulF(p, r) + 8.3334519073e-3f;
  p = MulF(p, r) + 4.1665795894e-2f;
  p = MulF(p, r) + 1.6666665459e-1f;
  p = MulF(p, r) + 5.0000001201e-1f;
  p = MulF(p, MulF(r, r)) + r + 1.0f;
  return MulF(p, BitsFloat((ni + 127) << 23));
}

// FmaF is the fused multiply-add a * b + c with one rounding (IEEE fmaf):
// identical on every backend, unlike a contracted a * b + c.
JUMPFLOW_HD float FmaF(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
  return __fmaf_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}

// kExpEvCoeffs are the minimax coefficients of exp(r) ~ 1 + r (c1 + r (c2 +
// r (c3 + r (c4 + r c5)))) on |r| <= ln2 / 2 (relative error 9.1e-8 in
// exact arithmetic; fitted for jumpflow by Lawson-weighted least squares).
constexpr float kExpEvC1 = 9.9999970718e-01f;
constexpr float kExpEvC2 = 4.9999149525e-01f;
constexpr float kExpEvC3 = 1.6667636213e-01f;
constexpr float kExpEvC4 = 4.1897929860e-02f;
constexpr float kExpEvC5 = 8.2903135603e-03f;
constexpr float kExpEvLn2Hi = 0.693359375f;  // 9 significant bits: n * hi is exact
constexpr float kExpEvLn2Lo = -2.12194440e-4f;
constexpr float kExpEvMin = -87.0f;

// ExpEvF is exp(x) for x <= 0 in the event kernels: x clamped to >= -87
// (so 2^n stays normal: exp(-87) ~ 1.6e-38 is the smallest value, never 0),
// n = round-to-nearest-even(x log2 e) (the 1.5 * 2^23 shifter), r = x - n ln2
// with two FMAs (ln2 split hi + lo), exp(r) by the degree-5 polynomial above
// in FMA-Horner form, times 2^n. Relative error ~1.5e-7. Five of its nine
// floating-point operations are FMAs, so vectorised CPU code (16 lanes,
// kernels/cpu/events_cpu.cc) and CUDA code produce the same bits.
JUMPFLOW_HD float ExpEvF(float x) {
  x = MaxF(x, kExpEvMin);
  constexpr float kShifter = 0x1.8p23f;
  const float shifted = MulF(x, 1.44269504088896341f) + kShifter;
  const float n = shifted - kShifter;
  const int32_t ni = FloatBits(shifted) - FloatBits(kShifter);
  float r = FmaF(n, -kExpEvLn2Hi, x);
  r = FmaF(n, -kExpEvLn2Lo, r);
  float p = kExpEvC5;
  p = FmaF(p, r, kExpEvC4);
  p = FmaF(p, r, kExpEvC3);
  p = FmaF(p, r, kExpEvC2);
  p = FmaF(p, r, kExpEvC1);
  p = FmaF(p, r, 1.0f);
  return MulF(p, BitsFloat((ni + 127) << 23));
}

// LogF is log(x) for finite x > 0 (normal), Cephes logf: x = m 2^e with m in
// [sqrt(1/2), sqrt(2)), degree-8 polynomial in m - 1.
JUMPFLOW_HD float LogF(float x) {
  const int32_t bits = FloatBits(x);
  float m = BitsFloat((bits & 0x007fffff) | 0x3f000000);  // [0.5, 1)
  int32_t e = ((bits >> 23) & 0xff) - 126;
  if (m < 0.707106781186547524f) {
    e -= 1;
    m = (m + m) - 1.0f;  // exact
  } else {
    m = m - 1.0f;
  }
  const float z = MulF(m, m);
  float y = 7.0376836292e-2f;
  y = MulF(y, m) - 1.1514610310e-1f;
  y = MulF(y, m) + 1.1676998740e-1f;
  y = MulF(y, m) - 1.2420140846e-1f;
  y = MulF(y, m) + 1.4249322787e-1f;
  y = MulF(y, m) - 1.6668057665e-1f;
  y = MulF(y, m) + 2.0000714765e-1f;
  y = MulF(y, m) - 2.4999993993e-1f;
  y = MulF(y, m) + 3.3333331174e-1f;
  y = MulF(MulF(y, m), z);
  const float fe = static_cast<float>(e);
  y += MulF(-2.12194440e-4f, fe);
  y += MulF(-0.5f, z);
  return m + y + MulF(0.693359375f, fe);
}

// Log1pF is log(1 + y) for y >= 0, accurate for tiny y: with u = 1 + y
// rounded, log1p(y) = log(u) * y / (u - 1) (W. Kahan's trick; u - 1 is
// exact), and y itself where u rounds to 1.
JUMPFLOW_HD float Log1pF(float y) {
  const float u = 1.0f + y;
  if (u == 1.0f) return y;
  return MulF(LogF(u), y / (u - 1.0f));
}

// SoftplusF is log(1 + exp(z)) = max(z, 0) + log1p(exp(-|z|)), > 0 for every
// finite z (above ~88 it is z; below -87.3 ExpF's clamp gives ~1.2e-38).
JUMPFLOW_HD float SoftplusF(float z) {
  const float a = z < 0.0f ? -z : z;
  return MaxF(z, 0.0f) + Log1pF(ExpF(-a));
}

// OneMinusExpNeg is 1 - exp(-x) for x >= 0 in double, without cancellation
// for small x: below ln2 / 2 the Taylor series of -expm1(-x) to x^14
// (truncation < 1e-17 relative); above, 1 - exp(-x) with exp(-x) = 2^-n
// exp(-r), x = n ln2 + r, |r| <= ln2 / 2 (ln2 split in two so n ln2 is exact
// for n < 2^20), exp(-r) by its Taylor series to r^14. Returns 1 for
// x > 745 (exp(-x) below the smallest subnormal).
JUMPFLOW_HD double OneMinusExpNeg(double x) {
  if (!(x > 0.0)) return 0.0;
  if (x > 745.0) return 1.0;
  // 1/k! for k = 2..14 (literals: no array, so the code is the same in
  // host and device compilation).
  constexpr double k2 = 1.0 / 2.0, k3 = 1.0 / 6.0, k4 = 1.0 / 24.0, k5 = 1.0 / 120.0;
  constexpr double k6 = 1.0 / 720.0, k7 = 1.0 / 5040.0, k8 = 1.0 / 40320.0;
  constexpr double k9 = 1.0 / 362880.0, k10 = 1.0 / 3628800.0, k11 = 1.0 / 39916800.0;
  constexpr double k12 = 1.0 / 479001600.0, k13 = 1.0 / 6227020800.0;
  constexpr double k14 = 1.0 / 87178291200.0;
  constexpr double kHalfLn2 = 0.34657359027997264;
  // Alternating Horner: returns 1 - y/2! + y^2/3! - ... or, with first = 1,
  // 1 - y + y^2/2! - ... (the series of exp(-y)).
  auto series = [](double y, double first) {
    double p = k14;
    p = k13 - MulD(y, p);
    p = k12 - MulD(y, p);
    p = k11 - MulD(y, p);
    p = k10 - MulD(y, p);
    p = k9 - MulD(y, p);
    p = k8 - MulD(y, p);
    p = k7 - MulD(y, p);
    p = k6 - MulD(y, p);
    p = k5 - MulD(y, p);
    p = k4 - MulD(y, p);
    p = k3 - MulD(y, p);
    p = k2 - MulD(y, p);
    p = 1.0 - MulD(y, p);
    return first == 0.0 ? p : first - MulD(y, p);
  };
  if (x < kHalfLn2) {
    // -expm1(-x) = x (1 - x/2! + x^2/3! - ... - x^13/14!).
    return MulD(x, series(x, 0.0));
  }
  constexpr double kLn2Hi = 6.93147180369123816490e-01;  // 21 low bits zero
  constexpr double kLn2Lo = 1.90821492927058770002e-10;
  constexpr double kInvLn2 = 1.44269504088896338700e+00;
  const double nf = static_cast<double>(static_cast<int64_t>(MulD(x, kInvLn2) + 0.5));
  const double r = (x - MulD(nf, kLn2Hi)) - MulD(nf, kLn2Lo);  // x - n ln2, |r| <~ ln2 / 2
  const double e = series(r, 1.0);                             // exp(-r)
  // Scale by 2^-n in two exact steps (n <= 1075 keeps both factors normal).
  const int64_t n = static_cast<int64_t>(nf);
  const int64_t n1 = n / 2, n2 = n - n1;
  const double s1 = BitsDouble((1023 - n1) << 52), s2 = BitsDouble((1023 - n2) << 52);
  return 1.0 - MulD(MulD(e, s1), s2);
}

}  // namespace jumpflow::kernels::detail

#endif  // JUMPFLOW_KERNELS_DETAIL_FAST_MATH_H_
