// @brief Tests of BatchTimes, BatchWeights and DeriveSeed.
#include "jumpflow/processes/process_common.h"

#include <cmath>
#include <limits>
#include <set>

#include <gtest/gtest.h>

#include "tests/jumpflow/processes/test_util.h"

namespace jumpflow {
namespace {

using testing::TestUniformTime;

TEST(BatchTimesTest, ExplicitAndConstant) {
  const std::vector<double> t = {0.0, 0.25, 1.0};
  auto r = BatchTimes::Explicit(t).Resolve(3, 1);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, t);
  auto c = BatchTimes::Constant(0.5).Resolve(4, 1);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(*c, std::vector<double>(4, 0.5));
}

TEST(BatchTimesTest, RejectsBadTimes) {
  const std::vector<double> bad = {0.5, 1.5};
  auto r = BatchTimes::Explicit(bad).Resolve(2, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("1.5"), std::string::npos) << r.status();
  EXPECT_NE(r.status().message().find("sequence 1"), std::string::npos) << r.status();
  const std::vector<double> nan = {std::numeric_limits<double>::quiet_NaN()};
  EXPECT_FALSE(BatchTimes::Explicit(nan).Resolve(1, 1).ok());
  EXPECT_FALSE(BatchTimes::Explicit(bad).Resolve(3, 1).ok());  // count mismatch
  EXPECT_FALSE(BatchTimes::Constant(-0.1).Resolve(2, 1).ok());
}

// A distribution that misbehaves: draws outside [0, 1].
class BrokenTime : public TimeDistribution {
 public:
  std::string Name() const override { return "broken"; }
  double Sample(PhiloxStream&) const override { return 2.0; }
  double Density(double) const override { return 1.0; }
};

TEST(BatchTimesTest, SampledIsReproducibleAndUniform) {
  TestUniformTime uniform;
  const int64_t n = 20000;
  auto a = BatchTimes::Sampled(uniform).Resolve(n, 7);
  auto b = BatchTimes::Sampled(uniform).Resolve(n, 7);
  auto c = BatchTimes::Sampled(uniform).Resolve(n, 8);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(*a, *b);
  EXPECT_NE(*a, *c);
  double mean = 0;
  for (double t : *a) mean += t;
  mean /= n;
  // U(0,1) mean 1/2, sd 1/sqrt(12 n); 4 sigma.
  EXPECT_NEAR(mean, 0.5, 4.0 / std::sqrt(12.0 * n));
  BrokenTime broken;
  auto bad = BatchTimes::Sampled(broken).Resolve(2, 1);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("broken"), std::string::npos);
}

TEST(BatchWeightsTest, OnesExplicitFunction) {
  const std::vector<double> t = {0.1, 0.5};
  auto ones = BatchWeights::Ones().Resolve(t);
  ASSERT_TRUE(ones.ok());
  EXPECT_EQ(*ones, std::vector<float>({1.0f, 1.0f}));
  const std::vector<double> w = {2.0, 0.0};
  auto ex = BatchWeights::Explicit(w).Resolve(t);
  ASSERT_TRUE(ex.ok());
  EXPECT_EQ(*ex, std::vector<float>({2.0f, 0.0f}));
  auto fn = BatchWeights::OfTime([](double s) { return 1.0 / s; }).Resolve(t);
  ASSERT_TRUE(fn.ok());
  EXPECT_FLOAT_EQ((*fn)[0], 10.0f);
  EXPECT_FLOAT_EQ((*fn)[1], 2.0f);
}

TEST(BatchWeightsTest, RejectsBadWeights) {
  const std::vector<double> t = {0.0, 0.5};
  const std::vector<double> negative = {1.0, -1.0};
  EXPECT_FALSE(BatchWeights::Explicit(negative).Resolve(t).ok());
  const std::vector<double> one = {1.0};
  EXPECT_FALSE(BatchWeights::Explicit(one).Resolve(t).ok());
  // 1/t is infinite at t = 0: an error, never an inf weight.
  auto inf = BatchWeights::OfTime([](double s) { return 1.0 / s; }).Resolve(t);
  ASSERT_FALSE(inf.ok());
  EXPECT_NE(inf.status().message().find("sequence 0"), std::string::npos) << inf.status();
  EXPECT_FALSE(BatchWeights::OfTime(nullptr).Resolve(t).ok());
}

TEST(DeriveSeedTest, DistinctAcrossSequencesAndPurposes) {
  std::set<uint64_t> seen;
  for (int64_t b = 0; b < 1000; ++b) {
    seen.insert(DeriveSeed(3, b, kPurposeAlignment));
    seen.insert(DeriveSeed(3, b, kPurposeSplit));
    seen.insert(DeriveSeed(4, b, kPurposeAlignment));
  }
  EXPECT_EQ(seen.size(), 3000u);
  EXPECT_EQ(DeriveSeed(3, 5, kPurposeAlignment), DeriveSeed(3, 5, kPurposeAlignment));
}

}  // namespace
}  // namespace jumpflow
