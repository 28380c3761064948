// @brief Counter-based Philox 4x32-10 random numbers for host and device code.
//
// Every random draw in jumpflow is a pure function of (seed, counter): the
// 64-bit seed is the Philox key, the 128-bit counter names the draw, e.g.
// (sequence id, position, step, draw index). Draws therefore do not depend on
// thread count, scheduling or backend: CPU and CUDA produce identical bits.
//
// Reference: Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as
// 1, 2, 3", SC'11 (Random123); multipliers and Weyl constants from Table 2.
//
// Example:
//   PhiloxStream rng(seed, /*stream_hi=*/sequence_id, /*stream_lo=*/kPurposeShuffle);
//   double u = rng.Uniform();        // in (0, 1)
//   uint32_t k = rng.UniformInt(n);  // in [0, n)
#ifndef JUMPFLOW_KERNELS_PHILOX_H_
#define JUMPFLOW_KERNELS_PHILOX_H_

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define JUMPFLOW_HD __host__ __device__ __forceinline__
#else
#define JUMPFLOW_HD inline
#endif

namespace jumpflow {

// Philox4x32 is the four 32-bit words of one Philox block.
struct Philox4x32 {
  uint32_t v[4];
};

namespace detail {
JUMPFLOW_HD void MulHiLo32(uint32_t a, uint32_t b, uint32_t* hi, uint32_t* lo) {
  const uint64_t p = static_cast<uint64_t>(a) * static_cast<uint64_t>(b);
  *hi = static_cast<uint32_t>(p >> 32);
  *lo = static_cast<uint32_t>(p);
}
}  // namespace detail

// PhiloxBlock returns Philox4x32-10(counter, key): 10 rounds, the key bumped
// by the Weyl constants between rounds.
JUMPFLOW_HD Philox4x32 PhiloxBlock(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3,
                                   uint32_t k0, uint32_t k1) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += kW0;
      k1 += kW1;
    }
    uint32_t hi0, lo0, hi1, lo1;
    detail::MulHiLo32(kM0, c0, &hi0, &lo0);
    detail::MulHiLo32(kM1, c2, &hi1, &lo1);
    const uint32_t n0 = hi1 ^ c1 ^ k0;
    const uint32_t n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
  }
  return {{c0, c1, c2, c3}};
}

// PhiloxDraw keys the block with a 64-bit seed.
JUMPFLOW_HD Philox4x32 PhiloxDraw(uint64_t seed, uint32_t c0, uint32_t c1, uint32_t c2,
                                  uint32_t c3) {
  return PhiloxBlock(c0, c1, c2, c3, static_cast<uint32_t>(seed),
                     static_cast<uint32_t>(seed >> 32));
}

// Uniform01 maps two 32-bit words to a double strictly inside (0, 1) with 52
// random bits: (k + 0.5) / 2^52, exactly representable, so never 0 or 1.
JUMPFLOW_HD double Uniform01(uint32_t hi, uint32_t lo) {
  const uint64_t bits = ((static_cast<uint64_t>(hi) << 32) | lo) >> 12;
  return (static_cast<double>(bits) + 0.5) * 0x1.0p-52;
}

// Uniform01f maps one 32-bit word to a float strictly inside (0, 1) with 23
// random bits: (k + 0.5) / 2^23, exactly representable, so never 0 or 1.
JUMPFLOW_HD float Uniform01f(uint32_t x) {
  return (static_cast<float>(x >> 9) + 0.5f) * 0x1.0p-23f;
}

// PhiloxStream is a sequential generator over one Philox stream: the seed is
// the key, (stream_hi, stream_lo) fix two counter words, and an internal
// 64-bit counter fills the other two. Each block yields two doubles or four
// 32-bit words; a stream never repeats within 2^64 blocks.
class PhiloxStream {
 public:
  JUMPFLOW_HD PhiloxStream(uint64_t seed, uint32_t stream_hi, uint32_t stream_lo,
                           uint64_t start = 0)
      : seed_(seed), hi_(stream_hi), lo_(stream_lo), counter_(start) {}

  // NextU32 returns the next 32 random bits.
  JUMPFLOW_HD uint32_t NextU32() {
    if (used_ == 4) Refill();
    return block_.v[used_++];
  }
  // NextU64 returns the next 64 random bits.
  JUMPFLOW_HD uint64_t NextU64() {
    const uint64_t a = NextU32();
    return (a << 32) | NextU32();
  }
  // Uniform returns a double strictly inside (0, 1).
  JUMPFLOW_HD double Uniform() {
    const uint32_t a = NextU32();
    return Uniform01(a, NextU32());
  }
  // Exponential returns an Exp(1) draw, -log(U), finite and > 0.
  JUMPFLOW_HD double Exponential() { return -log(Uniform()); }
  // UniformInt returns an integer in [0, n) without modulo bias (Lemire's
  // multiply-shift with rejection). n must be > 0.
  JUMPFLOW_HD uint32_t UniformInt(uint32_t n) {
    uint64_t m = static_cast<uint64_t>(NextU32()) * n;
    uint32_t low = static_cast<uint32_t>(m);
    if (low < n) {
      const uint32_t threshold = static_cast<uint32_t>(-n) % n;
      while (low < threshold) {
        m = static_cast<uint64_t>(NextU32()) * n;
        low = static_cast<uint32_t>(m);
      }
    }
    return static_cast<uint32_t>(m >> 32);
  }
  // Normal returns a standard normal draw (Box-Muller, one value per pair).
  JUMPFLOW_HD double Normal() {
    const double u1 = Uniform();
    const double u2 = Uniform();
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586476925 * u2);
  }

 private:
  JUMPFLOW_HD void Refill() {
    block_ = PhiloxDraw(seed_, hi_, lo_, static_cast<uint32_t>(counter_ >> 32),
                        static_cast<uint32_t>(counter_));
    ++counter_;
    used_ = 0;
  }

  uint64_t seed_;
  uint32_t hi_, lo_;
  uint64_t counter_;
  Philox4x32 block_{};
  int used_ = 4;
};

// Stream purposes: the low counter word of a PhiloxStream, so draws made for
// different purposes with the same seed and sequence never collide.
enum RandomPurpose : uint32_t {
  kPurposeShuffle = 1,
  kPurposeAlignment = 2,
  kPurposeSplit = 3,
  kPurposeTime = 4,
  kPurposePath = 5,
  kPurposeSource = 6,
  kPurposeSampler = 7,
  kPurposeInit = 8,
  kPurposeSampleStep = 9,  // fused event kernels (kernels/sample_step.h)
  kPurposeGillespie = 10,  // fused Gillespie selection (kernels/gillespie.h)
  kPurposeGapTime = 11,    // per-gap times of Edit Flows all-prefix batches
  kPurposeUser = 1000,
};

}  // namespace jumpflow

#endif  // JUMPFLOW_KERNELS_PHILOX_H_
