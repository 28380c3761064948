// @brief Property tests of alignments: edits reproduce x1, min-edit cost
// equals an independent Levenshtein distance, ties are reproducible.
#include "sequences/alignment.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <set>

#include "gtest/gtest.h"

namespace jumpflow {
namespace {

// Independent reference: weighted edit distance by the textbook full-matrix
// recurrence, computed column by column (the library goes row by row and
// keeps only two rows).
double ReferenceDistance(const std::vector<Token>& a, const std::vector<Token>& b,
                         const AlignmentCosts& c) {
  std::vector<std::vector<double>> d(a.size() + 1, std::vector<double>(b.size() + 1, 0.0));
  for (size_t j = 0; j <= b.size(); ++j) {
    for (size_t i = 0; i <= a.size(); ++i) {
      if (i == 0 && j == 0) continue;
      double best = 1e300;
      if (i > 0) best = std::min(best, d[i - 1][j] + c.del);
      if (j > 0) best = std::min(best, d[i][j - 1] + c.insert);
      if (i > 0 && j > 0) best = std::min(best, d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : c.substitute));
      d[i][j] = best;
    }
  }
  return d[a.size()][b.size()];
}

std::vector<Token> RandomSequence(std::mt19937_64& rng, size_t max_len, int alphabet) {
  std::vector<Token> x(rng() % (max_len + 1));
  for (auto& t : x) t = Vocabulary::kNumSpecials + static_cast<Token>(rng() % alphabet);
  return x;
}

TEST(AlignmentTest, MinEditEditsReproduceTargetAndCostIsLevenshtein) {
  std::mt19937_64 rng(42);
  for (int trial = 0; trial < 5000; ++trial) {
    const int alphabet = 2 + static_cast<int>(rng() % 6);
    const auto x0 = RandomSequence(rng, 16, alphabet);
    const auto x1 = RandomSequence(rng, 16, alphabet);
    auto al = MinEditAlignment(x0, x1, {}, static_cast<uint64_t>(trial));
    ASSERT_TRUE(al.ok()) << al.status();
    ASSERT_TRUE(ValidateAlignment(*al, x0, x1).ok());
    EXPECT_DOUBLE_EQ(AlignmentCost(*al, {}), ReferenceDistance(x0, x1, {}));
    const auto edits = AlignmentToEdits(*al);
    auto y = ApplyEdits(x0, edits);
    ASSERT_TRUE(y.ok()) << y.status();
    ASSERT_EQ(*y, x1);
    // Each non-match column is exactly one edit.
    EXPECT_EQ(static_cast<double>(edits.size()), AlignmentCost(*al, {}));
  }
}

TEST(AlignmentTest, WeightedCostsMatchReference) {
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 2000; ++trial) {
    AlignmentCosts costs;
    costs.insert = 0.25 + static_cast<double>(rng() % 8) * 0.25;
    costs.del = 0.25 + static_cast<double>(rng() % 8) * 0.25;
    costs.substitute = static_cast<double>(rng() % 12) * 0.25;
    const auto x0 = RandomSequence(rng, 12, 4);
    const auto x1 = RandomSequence(rng, 12, 4);
    auto al = MinEditAlignment(x0, x1, costs, 1);
    ASSERT_TRUE(al.ok());
    ASSERT_TRUE(ValidateAlignment(*al, x0, x1).ok());
    EXPECT_NEAR(AlignmentCost(*al, costs), ReferenceDistance(x0, x1, costs), 1e-9);
    auto y = ApplyEdits(x0, AlignmentToEdits(*al));
    ASSERT_TRUE(y.ok());
    EXPECT_EQ(*y, x1);
  }
}

TEST(AlignmentTest, RandomAlignmentsAreValidAndReproduceTarget) {
  std::mt19937_64 rng(9);
  for (int trial = 0; trial < 5000; ++trial) {
    const auto x0 = RandomSequence(rng, 20, 5);
    const auto x1 = RandomSequence(rng, 20, 5);
    auto al = RandomAlignment(x0, x1, static_cast<uint64_t>(trial));
    ASSERT_TRUE(al.ok());
    ASSERT_TRUE(ValidateAlignment(*al, x0, x1).ok());
    EXPECT_GE(AlignmentCost(*al, {}), ReferenceDistance(x0, x1, {}));
    auto y = ApplyEdits(x0, AlignmentToEdits(*al));
    ASSERT_TRUE(y.ok());
    EXPECT_EQ(*y, x1);
    auto again = RandomAlignment(x0, x1, static_cast<uint64_t>(trial));
    EXPECT_EQ(again->z0, al->z0);
    EXPECT_EQ(again->z1, al->z1);
  }
}

TEST(AlignmentTest, TiesAreBrokenReproduciblyFromTheSeed) {
  // "ab" -> "ba" has several optimal alignments of cost 2.
  const std::vector<Token> x0 = {5, 6, 5, 6, 5, 6}, x1 = {6, 5, 6, 5, 6, 5};
  std::set<std::vector<Token>> distinct;
  for (uint64_t seed = 0; seed < 64; ++seed) {
    auto a = MinEditAlignment(x0, x1, {}, seed);
    auto b = MinEditAlignment(x0, x1, {}, seed);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(a->z0, b->z0);
    EXPECT_EQ(a->z1, b->z1);
    EXPECT_EQ(AlignmentCost(*a, {}), 2.0);
    std::vector<Token> key = a->z0;
    key.insert(key.end(), a->z1.begin(), a->z1.end());
    distinct.insert(key);
  }
  EXPECT_GT(distinct.size(), 1u) << "different seeds should reach different optimal alignments";
}

TEST(AlignmentTest, LongSequencesAndBadInput) {
  std::mt19937_64 rng(1);
  std::vector<Token> x0(1000), x1(900);
  for (auto& t : x0) t = 5 + static_cast<Token>(rng() % 4);
  for (auto& t : x1) t = 5 + static_cast<Token>(rng() % 4);
  auto al = MinEditAlignment(x0, x1, {}, 3);
  ASSERT_TRUE(al.ok());
  auto y = ApplyEdits(x0, AlignmentToEdits(*al));
  ASSERT_TRUE(y.ok());
  EXPECT_EQ(*y, x1);
  EXPECT_FALSE(MinEditAlignment(std::vector<Token>{5, Vocabulary::kEps}, x1, {}, 0).ok());
  EXPECT_FALSE(MinEditAlignment(x0, x1, {-1.0, 1.0, 1.0}, 0).ok());
  EXPECT_FALSE(MinEditAlignment(x0, x1, {1.0, std::nan(""), 1.0}, 0).ok());
  Alignment broken{{5, Vocabulary::kEps}, {Vocabulary::kEps, Vocabulary::kEps}};
  EXPECT_FALSE(ValidateAlignment(broken, std::vector<Token>{5}, {}).ok());
}

TEST(AlignmentTest, CorruptSequenceStaysWithinItsEditCount) {
  std::mt19937_64 rng(13);
  PhiloxStream philox(21, 0, kPurposeUser);
  int changed = 0;
  for (int trial = 0; trial < 2000; ++trial) {
    const auto x = RandomSequence(rng, 12, 26);
    const int count = static_cast<int>(rng() % 4);
    const auto y = CorruptSequence(x, count, Vocabulary::kNumSpecials + 26, philox);
    for (Token t : y) ASSERT_GE(t, Vocabulary::kNumSpecials);
    EXPECT_LE(ReferenceDistance(x, y, {}), count);
    changed += y != x;
  }
  EXPECT_GT(changed, 1000);  // ~3/4 of the trials edit at least once
}

}  // namespace
}  // namespace jumpflow
