// Tests of jumpflow/oracle.h: the exact multipliers against brute-force
// enumerations written independently of the implementation (explicit
// likelihood products, explicit enumeration of subsequence embeddings),
// fallbacks, overflow safety, monotonicity (the bound factor 1 claim), and
// the comparison statistics.
#include "jumpflow/oracle.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <numeric>

#include "tests/jumpflow/sampler_test_util.h"

namespace jumpflow {
namespace {

using testing::Sched;
using testing::SyntheticWords;
using testing::WordsDataset;

// Evaluates `model` on one sequence at time t.
RateOutputs EvalOne(OracleModel& model, const std::vector<Token>& x, double t) {
  SequenceBatch batch =
      *SequenceBatch::FromVectors({x}, model.vocab_size(), std::vector<double>{t});
  RateOutputs out;
  out.Reset(batch, model.process(), model.vocab_size());
  EXPECT_TRUE(model.Evaluate(batch, &out).ok());
  return out;
}

// Brute-force posterior of the DFM mixture path for one state, using the
// explicit per-position likelihood p(x_t^i | x_1^i).
std::vector<std::vector<double>> BruteDfm(const OracleModel& model, const std::vector<Token>& x,
                                          double kappa, bool mask, int alphabet) {
  const int64_t L = model.sequence_length();
  const int32_t V = model.vocab_size();
  std::vector<std::vector<double>> marg(static_cast<size_t>(L), std::vector<double>(V, 0.0));
  double z = 0.0;
  for (size_t i = 0; i < model.support().size(); ++i) {
    const auto& y = model.support()[i];
    double like = model.probabilities()[i];
    for (int64_t j = 0; j < L; ++j) {
      if (mask) {
        like *= x[j] == Vocabulary::kMask ? (1.0 - kappa) : (x[j] == y[j] ? kappa : 0.0);
      } else {
        like *= (x[j] == y[j] ? kappa : 0.0) + (1.0 - kappa) / alphabet;
      }
    }
    z += like;
    for (int64_t j = 0; j < L; ++j) marg[j][y[j]] += like;
  }
  for (auto& row : marg) {
    for (double& v : row) v /= z;
  }
  return marg;
}

TEST(OracleTest, DfmMaskMatchesBruteForcePosterior) {
  Dataset data = SyntheticWords(25, 4, "abc", 3);
  auto model = *OracleModel::Create(OracleKind::kDfmMask, data, Sched("linear"));
  ASSERT_EQ(model->sequence_length(), 4);
  const int32_t V = model->vocab_size();
  const Token a = 5, b = 6, pad = Vocabulary::kPad, m = Vocabulary::kMask;
  const std::vector<std::vector<Token>> states = {
      {m, m, m, m}, {a, m, m, m}, {m, b, m, pad}, {a, b, m, m}, {m, m, pad, pad}};
  for (const auto& x : states) {
    for (double t : {0.2, 0.7}) {
      RateOutputs out = EvalOne(*model, x, t);
      EXPECT_EQ(out.fallback[0], 0);
      const auto brute = BruteDfm(*model, x, t, /*mask=*/true, 0);
      for (int64_t j = 0; j < 4; ++j) {
        for (int32_t y = 0; y < V; ++y) {
          const double got = out.token_rate[j] * out.token_dist[j * V + y];
          const double want = x[j] == m ? brute[j][y] : 0.0;
          EXPECT_NEAR(got, want, 1e-12) << "position " << j << " token " << y << " t " << t;
        }
      }
    }
  }
  EXPECT_FALSE(model->TimeDependent());
}

TEST(OracleTest, DfmUniformMatchesBruteForcePosterior) {
  Dataset data = SyntheticWords(25, 4, "abc", 4);
  auto model = *OracleModel::Create(OracleKind::kDfmUniform, data, Sched("cosine"));
  const int32_t V = model->vocab_size();
  const Token a = 5, b = 6, c = 7, pad = Vocabulary::kPad;
  // Alphabet: the three letters and PAD (the items have different lengths).
  const int alphabet = 4;
  auto cos_kappa = [](double t) { return std::pow(std::sin(0.5 * M_PI * t), 2); };
  for (const auto& x :
       std::vector<std::vector<Token>>{{a, a, a, a}, {c, b, pad, a}, {pad, pad, b, c}}) {
    for (double t : {0.05, 0.5, 0.95}) {
      RateOutputs out = EvalOne(*model, x, t);
      const auto brute = BruteDfm(*model, x, cos_kappa(t), /*mask=*/false, alphabet);
      for (int64_t j = 0; j < 4; ++j) {
        for (int32_t y = 0; y < V; ++y) {
          if (y == x[j]) continue;  // the current token's entry is ignored
          EXPECT_NEAR(out.token_rate[j] * out.token_dist[j * V + y], brute[j][y], 1e-12)
              << "position " << j << " token " << y << " t " << t;
        }
      }
    }
  }
}

// Brute force for the insertion-only Edit Flows oracle: enumerate every
// subset S of positions of every item y with y[S] = x (each an embedding),
// weight w(y) kappa^n (1 - kappa)^(m - n), and count the unselected
// positions by (gap, token).
std::map<std::pair<int, Token>, double> BruteInsertion(const OracleModel& model,
                                                       const std::vector<Token>& x, double kappa) {
  std::map<std::pair<int, Token>, double> acc;
  double z = 0.0;
  const size_t n = x.size();
  for (size_t i = 0; i < model.support().size(); ++i) {
    const auto& y = model.support()[i];
    const size_t m = y.size();
    for (uint32_t mask = 0; mask < (1u << m); ++mask) {
      if (static_cast<size_t>(__builtin_popcount(mask)) != n) continue;
      std::vector<Token> sub;
      for (size_t p = 0; p < m; ++p) {
        if (mask >> p & 1u) sub.push_back(y[p]);
      }
      if (sub != x) continue;
      const double w = model.probabilities()[i] * std::pow(kappa, n) * std::pow(1.0 - kappa, m - n);
      z += w;
      int gap = 0;
      for (size_t p = 0; p < m; ++p) {
        if (mask >> p & 1u) {
          ++gap;
        } else {
          acc[{gap, y[p]}] += w;
        }
      }
    }
  }
  for (auto& [k, v] : acc) v /= z;
  return acc;
}

TEST(OracleTest, EditInsertionMatchesBruteForceEmbeddingCounts) {
  // Small alphabet: many items embed each state, several ways each.
  Dataset data = SyntheticWords(40, 7, "ab", 5);
  auto model = *OracleModel::Create(OracleKind::kEditInsertion, data, Sched("poly:3"));
  const int32_t V = model->vocab_size();
  const Token a = 5, b = 6;
  const std::vector<std::vector<Token>> states = {{}, {a}, {b, a}, {a, b, a}, {a, a, b, b}};
  for (const auto& x : states) {
    for (double t : {0.3, 0.8, 0.99}) {
      RateOutputs out = EvalOne(*model, x, t);
      ASSERT_EQ(out.fallback[0], 0);
      const auto brute = BruteInsertion(*model, x, t * t * t);
      const int64_t gaps = static_cast<int64_t>(x.size()) + 1;
      for (int64_t j = 0; j < gaps; ++j) {
        for (Token y = 0; y < V; ++y) {
          const auto it = brute.find({static_cast<int>(j), y});
          const double want = it == brute.end() ? 0.0 : it->second;
          EXPECT_NEAR(out.insert_rate[j] * out.insert_dist[j * V + y], want, 1e-10 * (1 + want))
              << "gap " << j << " token " << y << " t " << t << " |x| " << x.size();
        }
      }
      for (size_t r = 0; r < x.size(); ++r) {
        EXPECT_EQ(out.delete_rate[r], 0.0);
        EXPECT_EQ(out.token_rate[r], 0.0);
      }
    }
  }
}

TEST(OracleTest, EditInsertionConcentratesOnClosestItemsAtTimeOne) {
  Dataset data = WordsDataset({"ab", "abc", "abcd"}, "abcd");
  auto model = *OracleModel::Create(OracleKind::kEditInsertion, data, Sched("poly:3"));
  const int32_t V = model->vocab_size();
  // x_t = "a" at t = 1: only "ab" (one pending insertion) keeps weight.
  RateOutputs out = EvalOne(*model, {5}, 1.0);
  EXPECT_EQ(out.fallback[0], 0);
  EXPECT_NEAR(out.insert_rate[0], 0.0, 1e-12);
  EXPECT_NEAR(out.insert_rate[1] * out.insert_dist[1 * V + 6], 1.0, 1e-12);
  // x_t = "abc" (a data item) at t = 1: nothing is pending.
  out = EvalOne(*model, {5, 6, 7}, 1.0);
  double total = 0.0;
  for (double r : out.insert_rate) total += r;
  EXPECT_NEAR(total, 0.0, 1e-12);
}

TEST(OracleTest, EditInsertionCountsDoNotOverflow) {
  // N(a^600, a^1200) = C(1200, 600) ~ 1e359 overflows a double. By symmetry
  // the 600 pending insertions spread evenly: 600 / 601 expected per gap.
  Vocabulary vocab = *Vocabulary::FromCharacters("a");
  Dataset data = *Dataset::FromSequences(vocab, {std::vector<Token>(1200, 5)});
  auto model = *OracleModel::Create(OracleKind::kEditInsertion, data, Sched("linear"));
  RateOutputs out = EvalOne(*model, std::vector<Token>(600, 5), 0.5);
  ASSERT_EQ(out.insert_rate.size(), 601u);
  for (double r : out.insert_rate) {
    ASSERT_TRUE(std::isfinite(r));
    EXPECT_NEAR(r, 600.0 / 601.0, 1e-9);
  }
}

TEST(OracleTest, InconsistentStatesFallBackWithoutCrashing) {
  // 'd' is in the vocabulary but in no data item.
  Dataset data = WordsDataset({"ab", "abc", "cab", "b"}, "abcd");
  const Token a = 5, d = 8, m = Vocabulary::kMask;
  const int32_t V = data.vocab().size();
  {
    auto model = *OracleModel::Create(OracleKind::kDfmMask, data, Sched("linear"));
    RateOutputs out = EvalOne(*model, {d, m, m}, 0.5);
    EXPECT_EQ(out.fallback[0], 1);
    // Fallback = data marginal: position 1 is 'a' in "cab", 'b' in "ab"/"abc", PAD in "b".
    EXPECT_NEAR(out.token_dist[1 * V + 6], 0.5, 1e-12);
    EXPECT_NEAR(out.token_dist[1 * V + 5], 0.25, 1e-12);
    EXPECT_NEAR(out.token_dist[1 * V + Vocabulary::kPad], 0.25, 1e-12);
    EXPECT_EQ(out.token_rate[0], 0.0);
  }
  {
    auto model = *OracleModel::Create(OracleKind::kEditInsertion, data, Sched("linear"));
    RateOutputs out = EvalOne(*model, {a, d}, 0.5);
    EXPECT_EQ(out.fallback[0], 1);
    for (double r : out.insert_rate) EXPECT_EQ(r, 0.0);
  }
  {
    auto model = *OracleModel::Create(OracleKind::kDfmUniform, data, Sched("linear"));
    for (double t : {0.0, 0.5, 1.0}) {
      RateOutputs out = EvalOne(*model, {d, d, d}, t);
      EXPECT_EQ(out.fallback[0], 0);
      for (int64_t j = 0; j < 3; ++j) {
        double sum = 0.0;
        for (int32_t y = 0; y < V; ++y) {
          ASSERT_TRUE(std::isfinite(out.token_dist[j * V + y]));
          sum += out.token_dist[j * V + y];
        }
        EXPECT_NEAR(sum, 1.0, 1e-12);
      }
    }
  }
}

// Total multiplier of one state (current tokens excluded).
double TotalMultiplier(const RateOutputs& out, const std::vector<Token>& x) {
  const int32_t V = out.vocab_size;
  double total = 0.0;
  for (size_t r = 0; r < x.size(); ++r) {
    for (int32_t y = 0; y < V; ++y) {
      if (y != x[r]) total += out.token_rate[r] * out.token_dist[r * V + y];
    }
  }
  for (size_t g = 0; g < out.insert_rate.size(); ++g) {
    for (int32_t y = 0; y < V; ++y) total += out.insert_rate[g] * out.insert_dist[g * V + y];
  }
  return total;
}

TEST(OracleTest, TotalMultipliersNeverIncreaseInTime) {
  // BoundFactor() == 1 promises m(x, s) <= m(x, t) for s >= t.
  Dataset data = SyntheticWords(60, 5, "abc", 6);
  auto edit = *OracleModel::Create(OracleKind::kEditInsertion, data, Sched("poly:3"));
  auto uniform = *OracleModel::Create(OracleKind::kDfmUniform, data, Sched("linear"));
  EXPECT_EQ(edit->BoundFactor(), 1.0);
  const Token a = 5, b = 6, c = 7, pad = Vocabulary::kPad;
  for (const auto& x : std::vector<std::vector<Token>>{{}, {a}, {c, b}, {a, a, c}}) {
    double prev = INFINITY;
    for (int i = 0; i <= 50; ++i) {
      const double total = TotalMultiplier(EvalOne(*edit, x, i / 50.0), x);
      EXPECT_LE(total, prev * (1 + 1e-12)) << "edit, t = " << i / 50.0;
      prev = total;
    }
  }
  for (const auto& x : std::vector<std::vector<Token>>{{a, a, a, a, a}, {c, b, pad, a, pad}}) {
    double prev = INFINITY;
    for (int i = 0; i <= 50; ++i) {
      const double total = TotalMultiplier(EvalOne(*uniform, x, i / 50.0), x);
      EXPECT_LE(total, prev * (1 + 1e-12)) << "uniform, t = " << i / 50.0;
      prev = total;
    }
  }
}

TEST(OracleTest, SourceBatches) {
  Dataset data = WordsDataset({"ab", "abc", "b"}, "abc");
  auto mask = *OracleModel::Create(OracleKind::kDfmMask, data, Sched("linear"));
  SequenceBatch s = mask->SourceBatch(4, 1);
  ASSERT_EQ(s.num_sequences(), 4);
  for (Token t : s.tokens()) EXPECT_EQ(t, Vocabulary::kMask);
  EXPECT_EQ(s.length(3), 3);

  auto uniform = *OracleModel::Create(OracleKind::kDfmUniform, data, Sched("linear"));
  SequenceBatch u1 = uniform->SourceBatch(2000, 9), u2 = uniform->SourceBatch(2000, 9);
  EXPECT_EQ(u1, u2);
  std::map<Token, int> counts;
  for (Token t : u1.tokens()) ++counts[t];
  // Alphabet {a, b, c, PAD}, 6000 draws: each count within 5 sigma of 1500.
  ASSERT_EQ(counts.size(), 4u);
  for (const auto& [tok, c] : counts) {
    EXPECT_TRUE(tok == Vocabulary::kPad || tok >= Vocabulary::kNumSpecials);
    EXPECT_NEAR(c, 1500, 5 * std::sqrt(6000 * 0.25 * 0.75));
  }
  auto edit = *OracleModel::Create(OracleKind::kEditInsertion, data, Sched("linear"));
  EXPECT_EQ(edit->SourceBatch(3, 1).num_tokens(), 0);
  EXPECT_EQ(mask->Decode(std::vector<Token>{6, Vocabulary::kPad, Vocabulary::kPad}), "b");
}

TEST(OracleTest, CreateRejectsBadInput) {
  Vocabulary vocab = *Vocabulary::FromCharacters("ab");
  Dataset empty = *Dataset::FromSequences(vocab, {});
  EXPECT_FALSE(OracleModel::Create(OracleKind::kEditInsertion, empty, Sched("linear")).ok());
  Dataset special = *Dataset::FromSequences(vocab, {{5, Vocabulary::kMask}});
  auto s = OracleModel::Create(OracleKind::kDfmMask, special, Sched("linear"));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("special"), std::string::npos);
  EXPECT_FALSE(ParseOracleKind("dfm").ok());
  EXPECT_EQ(*ParseOracleKind("edit"), OracleKind::kEditInsertion);

  // A DFM oracle refuses states of the wrong length.
  auto mask =
      *OracleModel::Create(OracleKind::kDfmMask, WordsDataset({"ab"}, "ab"), Sched("linear"));
  SequenceBatch batch = *SequenceBatch::FromVectors({{5}}, mask->vocab_size());
  RateOutputs out;
  out.Reset(batch, mask->process(), mask->vocab_size());
  EXPECT_FALSE(mask->Evaluate(batch, &out).ok());
}

TEST(OracleTest, ChiSquareSurvivalMatchesTables) {
  // Critical values at 5% from standard tables; dof 2 is exp(-x / 2).
  EXPECT_NEAR(ChiSquareSurvival(3.841458820694124, 1), 0.05, 1e-9);
  EXPECT_NEAR(ChiSquareSurvival(18.307038053275146, 10), 0.05, 1e-9);
  EXPECT_NEAR(ChiSquareSurvival(1.0, 2), std::exp(-0.5), 1e-12);
  EXPECT_NEAR(ChiSquareSurvival(40.0, 2), std::exp(-20.0), 1e-20);
  // 0.1% critical values from standard tables (e.g. NIST/SEMATECH e-Handbook
  // of Statistical Methods, table 1.3.6.7.4), printed to 3 decimals.
  EXPECT_NEAR(ChiSquareSurvival(10.828, 1), 0.001, 1e-6);
  EXPECT_NEAR(ChiSquareSurvival(29.588, 10), 0.001, 1e-6);
  EXPECT_NEAR(ChiSquareSurvival(149.449, 100), 0.001, 1e-6);
}

TEST(OracleTest, CompareCountsSupportAndTotalVariation) {
  const std::vector<std::vector<Token>> support = {{5}, {5, 6}, {6}};
  const std::vector<double> probs = {0.5, 0.25, 0.25};
  // Samples: 2 x {5}, 1 x {6}, 1 x {7} (out of support).
  SequenceBatch samples = *SequenceBatch::FromVectors({{5}, {6}, {5}, {7}}, 8);
  SampleQuality q = CompareToDistribution(support, probs, samples);
  EXPECT_EQ(q.num_samples, 4);
  EXPECT_EQ(q.in_support, 3);
  EXPECT_DOUBLE_EQ(q.in_support_fraction, 0.75);
  // |0.5 - 0.5| + |0 - 0.25| + |0.25 - 0.25| + 0.25 (out of support), halved.
  EXPECT_DOUBLE_EQ(q.tv, 0.25);
}

}  // namespace
}  // namespace jumpflow
