// @brief Tests of the DFM mixture-path training batches.
#include "jumpflow/processes/dfm.h"

#include <cmath>

#include <gtest/gtest.h>

#include "tests/jumpflow/processes/test_util.h"

namespace jumpflow {
namespace {

using testing::Batch;
using testing::kVocab;
using testing::RandomBatch;
using testing::Sched;
using testing::WithThreads;

constexpr int32_t kUser = kVocab - Vocabulary::kNumSpecials;

// Structural contract: x_t in the vocabulary and in {x0, x1} per position;
// exactly one target (x1, 1) where x_t != x1, none elsewhere.
void CheckDfmTargets(const TrainingBatch& tb, const SequenceBatch& x1) {
  ASSERT_EQ(tb.process, ProcessKind::kDfm);
  ASSERT_EQ(tb.x_t.offsets().size(), x1.offsets().size());
  ASSERT_TRUE(std::equal(tb.x_t.offsets().begin(), tb.x_t.offsets().end(), x1.offsets().begin()));
  ASSERT_EQ(testing::CheckCsr(tb.token_targets, x1.num_tokens(), kVocab), "");
  EXPECT_TRUE(tb.delete_targets.empty());
  EXPECT_TRUE(tb.split_targets.empty());
  EXPECT_EQ(tb.insert_targets.num_rows(), 0);
  for (int64_t r = 0; r < x1.num_tokens(); ++r) {
    const int64_t n = tb.token_targets.row_offsets[r + 1] - tb.token_targets.row_offsets[r];
    if (tb.x_t.tokens()[r] == x1.tokens()[r]) {
      ASSERT_EQ(n, 0) << "row " << r;
    } else {
      ASSERT_EQ(n, 1) << "row " << r;
      const int64_t k = tb.token_targets.row_offsets[r];
      ASSERT_EQ(tb.token_targets.cols[k], x1.tokens()[r]);
      ASSERT_EQ(tb.token_targets.values[k], 1.0f);
    }
  }
}

// Fraction of positions with x_t == x1.
double MatchFraction(const TrainingBatch& tb, const SequenceBatch& x1) {
  int64_t same = 0;
  for (int64_t r = 0; r < x1.num_tokens(); ++r) same += tb.x_t.tokens()[r] == x1.tokens()[r];
  return static_cast<double>(same) / static_cast<double>(x1.num_tokens());
}

TEST(DfmTest, MaskSourceMatchesKappaWithin4Sigma) {
  const SequenceBatch x1 = RandomBatch(4000, 1, 40, kVocab, 11);  // ~82k positions
  const double m = static_cast<double>(x1.num_tokens());
  for (const char* spec : {"linear", "poly:3", "cosine"}) {
    auto sched = Sched(spec);
    for (double t : {0.1, 0.5, 0.8}) {
      DfmOptions opt{.vocab_size = kVocab};
      auto tb = MakeDfmBatch(x1, BatchTimes::Constant(t), *sched, opt, /*seed=*/42);
      ASSERT_TRUE(tb.ok()) << tb.status();
      CheckDfmTargets(*tb, x1);
      for (Token x : tb->x_t.tokens()) ASSERT_TRUE(x == Vocabulary::kMask || x >= 5);
      const double kappa = sched->Kappa(t);
      const double sigma = std::sqrt(kappa * (1 - kappa) / m);
      EXPECT_NEAR(MatchFraction(*tb, x1), kappa, 4 * sigma) << spec << " t=" << t;
      for (int64_t b = 0; b < x1.num_sequences(); ++b) ASSERT_EQ(tb->x_t.time(b), t);
    }
  }
}

TEST(DfmTest, EndpointsAreExact) {
  const SequenceBatch x1 = RandomBatch(200, 1, 30, kVocab, 3);
  auto sched = Sched("poly:2");
  auto at1 = MakeDfmBatch(x1, BatchTimes::Constant(1.0), *sched, {.vocab_size = kVocab}, 5);
  ASSERT_TRUE(at1.ok());
  EXPECT_TRUE(std::equal(at1->x_t.tokens().begin(), at1->x_t.tokens().end(),
                         x1.tokens().begin()));
  EXPECT_EQ(at1->token_targets.num_entries(), 0);
  auto at0 = MakeDfmBatch(x1, BatchTimes::Constant(0.0), *sched, {.vocab_size = kVocab}, 5);
  ASSERT_TRUE(at0.ok());
  for (Token x : at0->x_t.tokens()) ASSERT_EQ(x, Vocabulary::kMask);
  EXPECT_EQ(at0->token_targets.num_entries(), x1.num_tokens());
}

TEST(DfmTest, UniformSourceMatchProbabilityAndNoiseIsUniform) {
  // x1 = all token 7: P(x_t == x1) = kappa + (1 - kappa) / K, and the other
  // positions are uniform over the remaining K - 1 user tokens.
  const int64_t n = 2000, len = 50;
  std::vector<std::vector<Token>> seqs(n, std::vector<Token>(len, 7));
  const SequenceBatch x1 = Batch(seqs);
  auto sched = Sched("linear");
  const double t = 0.3;
  DfmOptions opt{.vocab_size = kVocab, .source = DfmSource::kUniform};
  auto tb = MakeDfmBatch(x1, BatchTimes::Constant(t), *sched, opt, 9);
  ASSERT_TRUE(tb.ok()) << tb.status();
  CheckDfmTargets(*tb, x1);
  const double p = t + (1 - t) / kUser;
  const double m = static_cast<double>(x1.num_tokens());
  EXPECT_NEAR(MatchFraction(*tb, x1), p, 4 * std::sqrt(p * (1 - p) / m));
  std::vector<double> counts(kVocab, 0);
  double others = 0;
  for (Token x : tb->x_t.tokens()) {
    ASSERT_GE(x, Vocabulary::kNumSpecials);
    ASSERT_LT(x, kVocab);
    if (x != 7) {
      counts[x] += 1;
      others += 1;
    }
  }
  // Pearson chi-square over the K - 1 = 25 other tokens (24 d.o.f.); critical
  // value at significance 1e-4 from the Wilson-Hilferty approximation.
  double chi2 = 0;
  const double expected = others / (kUser - 1);
  for (Token y = Vocabulary::kNumSpecials; y < kVocab; ++y) {
    if (y == 7) continue;
    chi2 += (counts[y] - expected) * (counts[y] - expected) / expected;
  }
  const double k = kUser - 2, z = 3.719;  // z_{1 - 1e-4}
  const double critical = k * std::pow(1 - 2 / (9 * k) + z * std::sqrt(2 / (9 * k)), 3);
  EXPECT_LT(chi2, critical);
}

TEST(DfmTest, CouplingKeepsX0OrX1) {
  const SequenceBatch x1 = RandomBatch(3000, 5, 25, kVocab, 21);
  // x0: same lengths, independent tokens, some masks.
  std::vector<std::vector<Token>> src = x1.ToVectors();
  PhiloxStream rng(77, 0, kPurposeUser);
  for (auto& s : src) {
    for (Token& x : s) {
      x = rng.UniformInt(4) == 0 ? Vocabulary::kMask
                                 : Vocabulary::kNumSpecials + static_cast<Token>(rng.UniformInt(kUser));
    }
  }
  const SequenceBatch x0 = Batch(src);
  auto sched = Sched("cosine");
  const double t = 0.6;
  DfmOptions opt{.vocab_size = kVocab, .source = DfmSource::kCoupling, .x0 = &x0};
  auto tb = MakeDfmBatch(x1, BatchTimes::Constant(t), *sched, opt, 4);
  ASSERT_TRUE(tb.ok()) << tb.status();
  CheckDfmTargets(*tb, x1);
  int64_t differ = 0, took_x1 = 0;
  for (int64_t r = 0; r < x1.num_tokens(); ++r) {
    const Token a = x0.tokens()[r], y = x1.tokens()[r], x = tb->x_t.tokens()[r];
    ASSERT_TRUE(x == a || x == y) << r;
    if (a != y) {
      ++differ;
      took_x1 += x == y;
    }
  }
  const double kappa = sched->Kappa(t);
  EXPECT_NEAR(static_cast<double>(took_x1) / differ, kappa,
              4 * std::sqrt(kappa * (1 - kappa) / differ));
}

TEST(DfmTest, ReproducibleForAnyThreadCount) {
  const SequenceBatch x1 = RandomBatch(700, 1, 60, kVocab, 5);
  auto sched = Sched("linear");
  testing::TestUniformTime uniform;
  DfmOptions opt{.vocab_size = kVocab, .source = DfmSource::kUniform};
  auto run = [&](int threads, uint64_t seed) {
    return WithThreads(threads, [&] {
      return MakeDfmBatch(x1, BatchTimes::Sampled(uniform), *sched, opt, seed,
                          BatchWeights::OfTime([](double t) { return 1 + t; }));
    });
  };
  auto one = run(1, 99), two = run(2, 99), four = run(4, 99), other = run(2, 100);
  ASSERT_TRUE(one.ok() && two.ok() && four.ok() && other.ok());
  EXPECT_TRUE(testing::SameBatch(*one, *two));
  EXPECT_TRUE(testing::SameBatch(*one, *four));
  EXPECT_FALSE(testing::SameBatch(*one, *other));
  for (int64_t b = 0; b < x1.num_sequences(); ++b) {
    EXPECT_FLOAT_EQ(one->weights[b], static_cast<float>(1 + one->x_t.time(b)));
  }
}

TEST(DfmTest, BadInputIsAnError) {
  auto sched = Sched("linear");
  const SequenceBatch x1 = Batch({{5, 6}, {7}});
  const auto t = BatchTimes::Constant(0.5);
  EXPECT_FALSE(MakeDfmBatch(x1, t, *sched, {.vocab_size = 0}, 1).ok());
  // Token 9 outside a vocabulary of 8.
  auto out = MakeDfmBatch(Batch({{5, 9}}), t, *sched, {.vocab_size = 8}, 1);
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("id 9"), std::string::npos) << out.status();
  EXPECT_FALSE(MakeDfmBatch(Batch({{5, Vocabulary::kMask}}), t, *sched, {.vocab_size = kVocab}, 1).ok());
  EXPECT_FALSE(MakeDfmBatch(Batch({{Vocabulary::kEps}}), t, *sched, {.vocab_size = kVocab}, 1).ok());
  EXPECT_FALSE(MakeDfmBatch(x1, BatchTimes::Constant(1.01), *sched, {.vocab_size = kVocab}, 1).ok());
  EXPECT_FALSE(MakeDfmBatch(x1, BatchTimes::Constant(-1e-9), *sched, {.vocab_size = kVocab}, 1).ok());
  // Uniform source with no user tokens.
  EXPECT_FALSE(MakeDfmBatch(Batch({{1, 2}}), t, *sched,
                            {.vocab_size = Vocabulary::kNumSpecials, .source = DfmSource::kUniform},
                            1).ok());
  // Coupling: missing x0, wrong count, wrong length, eps in x0.
  EXPECT_FALSE(MakeDfmBatch(x1, t, *sched, {.vocab_size = kVocab, .source = DfmSource::kCoupling}, 1).ok());
  const SequenceBatch one = Batch({{5, 6}});
  EXPECT_FALSE(MakeDfmBatch(x1, t, *sched,
                            {.vocab_size = kVocab, .source = DfmSource::kCoupling, .x0 = &one}, 1).ok());
  const SequenceBatch short_x0 = Batch({{5, 6}, {}});
  auto len = MakeDfmBatch(x1, t, *sched,
                          {.vocab_size = kVocab, .source = DfmSource::kCoupling, .x0 = &short_x0}, 1);
  ASSERT_FALSE(len.ok());
  EXPECT_NE(len.status().message().find("length 0"), std::string::npos) << len.status();
  const SequenceBatch eps_x0 = Batch({{5, Vocabulary::kEps}, {7}});
  EXPECT_FALSE(MakeDfmBatch(x1, t, *sched,
                            {.vocab_size = kVocab, .source = DfmSource::kCoupling, .x0 = &eps_x0}, 1).ok());
  // Bad weights.
  const std::vector<double> w = {1.0, std::nan("")};
  EXPECT_FALSE(MakeDfmBatch(x1, t, *sched, {.vocab_size = kVocab}, 1, BatchWeights::Explicit(w)).ok());
}

TEST(DfmTest, EmptyBatchAndEmptySequences) {
  auto sched = Sched("linear");
  auto empty = MakeDfmBatch(SequenceBatch(), BatchTimes::Constant(0.5), *sched,
                            {.vocab_size = kVocab}, 1);
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(empty->x_t.num_sequences(), 0);
  auto with_empty = MakeDfmBatch(Batch({{}, {5}}), BatchTimes::Constant(0.5), *sched,
                                 {.vocab_size = kVocab}, 1);
  ASSERT_TRUE(with_empty.ok()) << with_empty.status();
  EXPECT_EQ(with_empty->x_t.length(0), 0);
  EXPECT_EQ(with_empty->x_t.length(1), 1);
}

}  // namespace
}  // namespace jumpflow
