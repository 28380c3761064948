// @brief Philox 4x32-10 known-answer tests and stream properties.
#include "kernels/philox.h"

#include <cmath>
#include <vector>

#include "gtest/gtest.h"

namespace jumpflow {
namespace {

// Known-answer vectors from Random123's kat_vectors (philox4x32, 10 rounds).
TEST(PhiloxTest, KnownAnswers) {
  Philox4x32 zero = PhiloxBlock(0, 0, 0, 0, 0, 0);
  EXPECT_EQ(zero.v[0], 0x6627e8d5u);
  EXPECT_EQ(zero.v[1], 0xe169c58du);
  EXPECT_EQ(zero.v[2], 0xbc57ac4cu);
  EXPECT_EQ(zero.v[3], 0x9b00dbd8u);
  Philox4x32 ones = PhiloxBlock(~0u, ~0u, ~0u, ~0u, ~0u, ~0u);
  EXPECT_EQ(ones.v[0], 0x408f276du);
  EXPECT_EQ(ones.v[1], 0x41c83b0eu);
  EXPECT_EQ(ones.v[2], 0xa20bc7c6u);
  EXPECT_EQ(ones.v[3], 0x6d5451fdu);
  Philox4x32 pi = PhiloxBlock(0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u,
                              0x299f31d0u);
  EXPECT_EQ(pi.v[0], 0xd16cfe09u);
  EXPECT_EQ(pi.v[1], 0x94fdccebu);
  EXPECT_EQ(pi.v[2], 0x5001e420u);
  EXPECT_EQ(pi.v[3], 0x24126ea1u);
}

TEST(PhiloxTest, UniformsAreInsideTheOpenIntervalWithRightMoments) {
  EXPECT_GT(Uniform01(0, 0), 0.0);
  EXPECT_LT(Uniform01(~0u, ~0u), 1.0);
  EXPECT_GT(Uniform01f(0), 0.0f);
  EXPECT_LT(Uniform01f(~0u), 1.0f);
  PhiloxStream rng(123, 4, 5);
  const int n = 200000;
  double sum = 0, sum_sq = 0;
  for (int i = 0; i < n; ++i) {
    const double u = rng.Uniform();
    sum += u;
    sum_sq += u * u;
  }
  // Mean 1/2 with sd sqrt(1/12 / n); 5 sigma.
  EXPECT_NEAR(sum / n, 0.5, 5 * std::sqrt(1.0 / 12.0 / n));
  EXPECT_NEAR(sum_sq / n, 1.0 / 3.0, 5 * std::sqrt(4.0 / 45.0 / n));
}

TEST(PhiloxTest, UniformIntIsUnbiasedAcrossBuckets) {
  PhiloxStream rng(7, 0, 0);
  const uint32_t k = 7;
  const int n = 70000;
  std::vector<int> counts(k, 0);
  for (int i = 0; i < n; ++i) ++counts[rng.UniformInt(k)];
  double chi2 = 0;
  for (int c : counts) chi2 += (c - n / 7.0) * (c - n / 7.0) / (n / 7.0);
  // chi-square with 6 d.o.f.: 22.46 is the 0.999 quantile.
  EXPECT_LT(chi2, 22.46);
}

TEST(PhiloxTest, StreamsAreReproducibleAndDistinct) {
  PhiloxStream a(1, 2, 3), b(1, 2, 3), c(1, 2, 4), d(2, 2, 3);
  for (int i = 0; i < 10; ++i) {
    const uint64_t va = a.NextU64();
    EXPECT_EQ(va, b.NextU64());
    EXPECT_NE(va, c.NextU64());
    EXPECT_NE(va, d.NextU64());
  }
  // Starting a stream at block k reproduces the tail of a stream from 0.
  PhiloxStream from0(9, 1, 1), from2(9, 1, 1, 2);
  for (int i = 0; i < 8; ++i) from0.NextU32();
  for (int i = 0; i < 8; ++i) EXPECT_EQ(from0.NextU32(), from2.NextU32());
}

}  // namespace
}  // namespace jumpflow
