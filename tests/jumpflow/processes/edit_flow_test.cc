// @brief Tests of the Edit Flows training batches.
#include "jumpflow/processes/edit_flow.h"

#include <gtest/gtest.h>

#include <cmath>

#include "tests/jumpflow/processes/test_util.h"

namespace jumpflow {
namespace {

using testing::Batch;
using testing::kVocab;
using testing::RandomBatch;
using testing::RandomSequences;
using testing::Sched;
using testing::WithThreads;

// Misspells each word: random deletions, substitutions and insertions.
SequenceBatch Misspell(const SequenceBatch& x1, uint64_t seed) {
  PhiloxStream rng(seed, 1, kPurposeUser);
  std::vector<std::vector<Token>> out;
  const uint32_t user = kVocab - Vocabulary::kNumSpecials;
  for (int64_t b = 0; b < x1.num_sequences(); ++b) {
    std::vector<Token> s;
    for (Token y : x1.sequence(b)) {
      const uint32_t r = rng.UniformInt(10);
      if (r == 0) continue;  // delete
      if (r == 1) {
        s.push_back(Vocabulary::kNumSpecials + static_cast<Token>(rng.UniformInt(user)));
        continue;
      }
      if (r == 2) s.push_back(Vocabulary::kNumSpecials + static_cast<Token>(rng.UniformInt(user)));
      s.push_back(y);
    }
    out.push_back(std::move(s));
  }
  return Batch(out);
}

// Structural checks: CSR shapes, delete flags in {0,1}, substitution rows
// are not deleted rows, and each x_t token row of z_t matches.
void CheckEditShapes(const TrainingBatch& tb) {
  ASSERT_EQ(tb.process, ProcessKind::kEdit);
  ASSERT_EQ(testing::CheckCsr(tb.token_targets, tb.x_t.num_tokens(), kVocab), "");
  ASSERT_EQ(testing::CheckCsr(tb.insert_targets, tb.x_t.num_gaps(), kVocab), "");
  ASSERT_EQ(static_cast<int64_t>(tb.delete_targets.size()), tb.x_t.num_tokens());
  EXPECT_TRUE(tb.split_targets.empty());
  for (int64_t r = 0; r < tb.x_t.num_tokens(); ++r) {
    const float d = tb.delete_targets[r];
    ASSERT_TRUE(d == 0.0f || d == 1.0f);
    const int64_t n = tb.token_targets.row_offsets[r + 1] - tb.token_targets.row_offsets[r];
    ASSERT_LE(n, 1);
    if (n == 1) {
      ASSERT_EQ(d, 0.0f);
      ASSERT_NE(tb.token_targets.cols[tb.token_targets.row_offsets[r]], tb.x_t.tokens()[r]);
    }
  }
  for (float v : tb.insert_targets.values) ASSERT_TRUE(v >= 1.0f && v == std::floor(v));
}

// Applying every target edit (insertions with multiplicity, in trace order
// within a gap) to x_t gives x_1 exactly, for thousands of random pairs.
TEST(EditFlowTest, ApplyingAllTargetEditsYieldsX1) {
  testing::TestUniformTime uniform;
  auto sched = Sched("poly:3");
  const SequenceBatch x1 = RandomBatch(3000, 0, 16, kVocab, 31);
  const SequenceBatch x1_nonempty = RandomBatch(3000, 1, 16, kVocab, 32);
  const SequenceBatch random_x0 = RandomBatch(3000, 0, 16, kVocab, 33);
  const SequenceBatch misspelled = Misspell(x1, 34);
  struct Case {
    const char* name;
    const SequenceBatch* x1;
    EditFlowOptions opt;
  };
  std::vector<Case> cases = {
      {"empty", &x1_nonempty, {.vocab_size = kVocab, .source = EditSource::kEmpty}},
      {"noise",
       &x1,
       {.vocab_size = kVocab,
        .source = EditSource::kNoise,
        .noise_min_length = 0,
        .noise_max_length = 20}},
      {"pairs-minedit",
       &x1,
       {.vocab_size = kVocab, .source = EditSource::kPairs, .x0 = &misspelled}},
      {"pairs-random-x0",
       &x1,
       {.vocab_size = kVocab, .source = EditSource::kPairs, .x0 = &random_x0}},
      {"pairs-random-alignment",
       &x1,
       {.vocab_size = kVocab,
        .source = EditSource::kPairs,
        .x0 = &random_x0,
        .alignment = EditAlignment::kRandom}},
  };
  for (const Case& c : cases) {
    EditFlowTrace trace;
    auto tb = MakeEditFlowBatch(*c.x1, BatchTimes::Sampled(uniform), *sched, c.opt, 17,
                                BatchWeights::Ones(), &trace);
    ASSERT_TRUE(tb.ok()) << c.name << ": " << tb.status();
    CheckEditShapes(*tb);
    for (int64_t b = 0; b < c.x1->num_sequences(); ++b) {
      ASSERT_EQ(Strip(trace.alignments[b].z1),
                std::vector<Token>(c.x1->sequence(b).begin(), c.x1->sequence(b).end()));
      ASSERT_EQ(Strip(trace.z_t[b]),
                std::vector<Token>(tb->x_t.sequence(b).begin(), tb->x_t.sequence(b).end()));
    }
    auto applied = ApplyEditTargets(*tb, &trace);
    ASSERT_TRUE(applied.ok()) << c.name << ": " << applied.status();
    int64_t edits = 0;
    for (int64_t b = 0; b < c.x1->num_sequences(); ++b) {
      ASSERT_EQ((*applied)[b],
                std::vector<Token>(c.x1->sequence(b).begin(), c.x1->sequence(b).end()))
          << c.name << " sequence " << b;
    }
    edits = tb->token_targets.num_entries() + tb->insert_targets.num_entries();
    EXPECT_GT(edits, 1000) << c.name;  // the check is not vacuous
  }
}

// Without a trace, insertions go in increasing token order: x0 empty at t = 0
// with a sorted x1 gives x1 back.
TEST(EditFlowTest, ApplyWithoutTraceUsesSortedOrder) {
  auto sched = Sched("linear");
  const SequenceBatch x1 = Batch({{5, 6, 6, 9}});
  auto tb = MakeEditFlowBatch(x1, BatchTimes::Constant(0.0), *sched,
                              {.vocab_size = kVocab, .source = EditSource::kEmpty}, 3);
  ASSERT_TRUE(tb.ok());
  EXPECT_EQ(tb->x_t.length(0), 0);
  ASSERT_EQ(tb->insert_targets.num_rows(), 1);
  EXPECT_EQ(tb->insert_targets.cols, std::vector<int32_t>({5, 6, 9}));
  EXPECT_EQ(tb->insert_targets.values, std::vector<float>({1, 2, 1}));
  auto applied = ApplyEditTargets(*tb);
  ASSERT_TRUE(applied.ok());
  EXPECT_EQ((*applied)[0], std::vector<Token>({5, 6, 6, 9}));
}

// E|x_t| = #match + #sub + kappa_ins #ins + (1 - kappa_del) #del with a
// different scheduler per kind; checked within 4 sigma, sigma^2 = sum of the
// Bernoulli variances. Also checks each kind's switch fraction.
TEST(EditFlowTest, ExpectedLengthInterpolatesWithin4Sigma) {
  auto ins = Sched("poly:2");
  auto del = Sched("cosine");
  auto sub = Sched("beta:2,3");
  auto main_sched = Sched("linear");
  const SequenceBatch x1 = RandomBatch(4000, 0, 20, kVocab, 41);
  const SequenceBatch x0 = RandomBatch(4000, 0, 20, kVocab, 42);
  EditFlowOptions opt{.vocab_size = kVocab,
                      .source = EditSource::kPairs,
                      .x0 = &x0,
                      .insert_scheduler = ins.get(),
                      .delete_scheduler = del.get(),
                      .substitute_scheduler = sub.get()};
  for (double t : {0.25, 0.6}) {
    EditFlowTrace trace;
    auto tb = MakeEditFlowBatch(x1, BatchTimes::Constant(t), *main_sched, opt, 5,
                                BatchWeights::Ones(), &trace);
    ASSERT_TRUE(tb.ok()) << tb.status();
    const double ki = ins->Kappa(t), kd = del->Kappa(t), ks = sub->Kappa(t);
    double n_fixed = 0, n_ins = 0, n_del = 0, n_sub = 0, ins_done = 0, del_done = 0, sub_done = 0;
    for (int64_t b = 0; b < x1.num_sequences(); ++b) {
      const Alignment& al = trace.alignments[b];
      for (size_t k = 0; k < al.z0.size(); ++k) {
        const Token a = al.z0[k], c = al.z1[k], z = trace.z_t[b][k];
        ASSERT_TRUE(z == a || z == c);
        if (a == Vocabulary::kEps) {
          ++n_ins;
          ins_done += z == c;
        } else if (c == Vocabulary::kEps) {
          ++n_del;
          del_done += z == c;
        } else {
          ++n_fixed;
          if (a != c) {
            ++n_sub;
            sub_done += z == c;
          }
        }
      }
    }
    const double expected = n_fixed + ki * n_ins + (1 - kd) * n_del;
    const double sigma = std::sqrt(ki * (1 - ki) * n_ins + kd * (1 - kd) * n_del);
    EXPECT_NEAR(static_cast<double>(tb->x_t.num_tokens()), expected, 4 * sigma) << "t=" << t;
    EXPECT_NEAR(ins_done / n_ins, ki, 4 * std::sqrt(ki * (1 - ki) / n_ins));
    EXPECT_NEAR(del_done / n_del, kd, 4 * std::sqrt(kd * (1 - kd) / n_del));
    EXPECT_NEAR(sub_done / n_sub, ks, 4 * std::sqrt(ks * (1 - ks) / n_sub));
    // The schedulers differ enough here for the test to tell them apart.
    EXPECT_GT(std::abs(ki - kd), 8 * std::sqrt(0.25 / std::min(n_ins, n_del)));
  }
}

TEST(EditFlowTest, EndpointsAndInsertionOnlyShape) {
  auto sched = Sched("poly:3");
  const SequenceBatch x1 = RandomBatch(300, 1, 12, kVocab, 51);
  const SequenceBatch x0 = RandomBatch(300, 0, 12, kVocab, 52);
  EditFlowOptions pairs{.vocab_size = kVocab, .source = EditSource::kPairs, .x0 = &x0};
  auto at1 = MakeEditFlowBatch(x1, BatchTimes::Constant(1.0), *sched, pairs, 1);
  ASSERT_TRUE(at1.ok());
  EXPECT_EQ(at1->x_t.ToVectors(), x1.ToVectors());
  EXPECT_EQ(at1->token_targets.num_entries() + at1->insert_targets.num_entries(), 0);
  for (float d : at1->delete_targets) EXPECT_EQ(d, 0.0f);
  auto at0 = MakeEditFlowBatch(x1, BatchTimes::Constant(0.0), *sched, pairs, 1);
  ASSERT_TRUE(at0.ok());
  EXPECT_EQ(at0->x_t.ToVectors(), x0.ToVectors());

  // Insertion only: x_t is a subsequence of x1, nothing to delete or
  // substitute, and |x_t| + total insertion count = |x1|.
  auto ins = MakeEditFlowBatch(x1, BatchTimes::Constant(0.7), *sched,
                               {.vocab_size = kVocab, .source = EditSource::kEmpty}, 2);
  ASSERT_TRUE(ins.ok());
  EXPECT_EQ(ins->token_targets.num_entries(), 0);
  for (float d : ins->delete_targets) EXPECT_EQ(d, 0.0f);
  for (int64_t b = 0; b < x1.num_sequences(); ++b) {
    double pending = 0;
    const int64_t g0 = ins->x_t.offsets()[b] + b;
    for (int64_t g = g0; g <= g0 + ins->x_t.length(b); ++g) {
      for (int64_t k = ins->insert_targets.row_offsets[g];
           k < ins->insert_targets.row_offsets[g + 1]; ++k) {
        pending += ins->insert_targets.values[k];
      }
    }
    EXPECT_EQ(ins->x_t.length(b) + static_cast<int64_t>(pending), x1.length(b));
    const auto xt = ins->x_t.sequence(b);
    const auto y = x1.sequence(b);
    size_t j = 0;
    for (size_t i = 0; i < y.size() && j < xt.size(); ++i) j += y[i] == xt[j];
    EXPECT_EQ(j, xt.size()) << "x_t is not a subsequence of x1 in sequence " << b;
  }
}

TEST(EditFlowTest, NoiseSourceLengthsAndTokens) {
  auto sched = Sched("linear");
  const SequenceBatch x1 = RandomBatch(2000, 1, 5, kVocab, 61);
  EditFlowTrace trace;
  EditFlowOptions opt{.vocab_size = kVocab,
                      .source = EditSource::kNoise,
                      .noise_min_length = 3,
                      .noise_max_length = 7};
  auto tb = MakeEditFlowBatch(x1, BatchTimes::Constant(0.0), *sched, opt, 8, BatchWeights::Ones(),
                              &trace);
  ASSERT_TRUE(tb.ok()) << tb.status();
  double mean = 0;
  for (int64_t b = 0; b < x1.num_sequences(); ++b) {
    const int64_t len = tb->x_t.length(b);  // t = 0: x_t = x0
    ASSERT_GE(len, 3);
    ASSERT_LE(len, 7);
    mean += static_cast<double>(len);
    for (Token x : tb->x_t.sequence(b)) ASSERT_GE(x, Vocabulary::kNumSpecials);
    EXPECT_EQ(Strip(trace.alignments[b].z0),
              std::vector<Token>(tb->x_t.sequence(b).begin(), tb->x_t.sequence(b).end()));
  }
  mean /= x1.num_sequences();
  // Uniform on {3..7}: mean 5, variance 2.
  EXPECT_NEAR(mean, 5.0, 4 * std::sqrt(2.0 / x1.num_sequences()));
}

TEST(EditFlowTest, UserAlignmentIsUsed) {
  auto sched = Sched("linear");
  const SequenceBatch x0 = Batch({{5, 6}});
  const SequenceBatch x1 = Batch({{6, 7}});
  // A non-minimal alignment: delete both, insert both.
  std::vector<Alignment> als = {
      {{5, 6, Vocabulary::kEps, Vocabulary::kEps}, {Vocabulary::kEps, Vocabulary::kEps, 6, 7}}};
  EditFlowOptions opt{.vocab_size = kVocab,
                      .source = EditSource::kPairs,
                      .x0 = &x0,
                      .alignment = EditAlignment::kUser,
                      .alignments = &als};
  EditFlowTrace trace;
  auto tb = MakeEditFlowBatch(x1, BatchTimes::Constant(0.0), *sched, opt, 1, BatchWeights::Ones(),
                              &trace);
  ASSERT_TRUE(tb.ok()) << tb.status();
  EXPECT_EQ(trace.alignments[0].z0, als[0].z0);
  EXPECT_EQ(tb->delete_targets, std::vector<float>({1.0f, 1.0f}));
  // Both insertions go into the last gap (gap 2).
  EXPECT_EQ(tb->insert_targets.row_offsets, std::vector<int64_t>({0, 0, 0, 2}));
  std::vector<Alignment> bad = {{{5, Vocabulary::kEps}, {Vocabulary::kEps, 7}}};  // drops x0's 6
  opt.alignments = &bad;
  EXPECT_FALSE(MakeEditFlowBatch(x1, BatchTimes::Constant(0.5), *sched, opt, 1).ok());
}

TEST(EditFlowTest, ReproducibleForAnyThreadCount) {
  testing::TestUniformTime uniform;
  auto sched = Sched("poly:3");
  const SequenceBatch x1 = RandomBatch(600, 0, 40, kVocab, 71);
  const SequenceBatch x0 = Misspell(x1, 72);
  for (EditAlignment alignment : {EditAlignment::kMinEdit, EditAlignment::kRandom}) {
    EditFlowOptions opt{
        .vocab_size = kVocab, .source = EditSource::kPairs, .x0 = &x0, .alignment = alignment};
    auto run = [&](int threads, uint64_t seed) {
      return WithThreads(threads, [&] {
        return MakeEditFlowBatch(x1, BatchTimes::Sampled(uniform), *sched, opt, seed);
      });
    };
    auto one = run(1, 5), two = run(2, 5), four = run(4, 5), other = run(2, 6);
    ASSERT_TRUE(one.ok() && two.ok() && four.ok() && other.ok());
    EXPECT_TRUE(testing::SameBatch(*one, *two));
    EXPECT_TRUE(testing::SameBatch(*one, *four));
    EXPECT_FALSE(testing::SameBatch(*one, *other));
  }
}

// Left-to-right insertions: x_t is the prefix x_1[0, K), K ~ Binomial(n,
// kappa(t)) (total over 4,000 sequences within 4 sigma), and the only
// insertion target is the next token x_1[K] in the last gap with count n - K.
TEST(EditFlowTest, LeftToRightInsertionsArePrefixes) {
  auto sched = Sched("poly:2");
  const SequenceBatch x1 = RandomBatch(4000, 1, 20, kVocab, 61);
  const EditFlowOptions opt{.vocab_size = kVocab,
                            .source = EditSource::kEmpty,
                            .insertion_order = InsertionOrder::kLeftToRight};
  for (double t : {0.3, 0.8}) {
    EditFlowTrace trace;
    auto tb = MakeEditFlowBatch(x1, BatchTimes::Constant(t), *sched, opt, 7, BatchWeights::Ones(),
                                &trace);
    ASSERT_TRUE(tb.ok()) << tb.status();
    CheckEditShapes(*tb);
    EXPECT_EQ(tb->token_targets.num_entries(), 0);
    for (float d : tb->delete_targets) EXPECT_EQ(d, 0.0f);
    const auto& ins = tb->insert_targets;
    double inserted = 0, total = 0;
    for (int64_t b = 0; b < x1.num_sequences(); ++b) {
      const auto y = x1.sequence(b);
      const auto xt = tb->x_t.sequence(b);
      const int64_t n = x1.length(b), k = tb->x_t.length(b);
      ASSERT_LE(k, n);
      for (int64_t i = 0; i < k; ++i) ASSERT_EQ(xt[i], y[i]) << "sequence " << b;
      const int64_t g0 = tb->x_t.offsets()[b] + b;
      for (int64_t g = g0; g < g0 + k; ++g) {
        ASSERT_EQ(ins.row_offsets[g + 1], ins.row_offsets[g]) << "sequence " << b;
      }
      const int64_t last = g0 + k;
      if (k == n) {
        EXPECT_EQ(ins.row_offsets[last + 1], ins.row_offsets[last]);
      } else {
        ASSERT_EQ(ins.row_offsets[last + 1] - ins.row_offsets[last], 1) << "sequence " << b;
        EXPECT_EQ(ins.cols[ins.row_offsets[last]], y[k]);
        EXPECT_EQ(ins.values[ins.row_offsets[last]], static_cast<float>(n - k));
      }
      EXPECT_EQ(trace.z_t[b].size(), static_cast<size_t>(n));
      inserted += static_cast<double>(k);
      total += static_cast<double>(n);
    }
    const double kappa = sched->Kappa(t);
    EXPECT_NEAR(inserted, kappa * total, 4 * std::sqrt(kappa * (1 - kappa) * total)) << "t=" << t;
  }
  // Only an empty x_0 has an insertion order.
  const SequenceBatch x0 = RandomBatch(4000, 0, 5, kVocab, 62);
  EditFlowOptions pairs = opt;
  pairs.source = EditSource::kPairs;
  pairs.x0 = &x0;
  auto bad = MakeEditFlowBatch(x1, BatchTimes::Constant(0.5), *sched, pairs, 1);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("kLeftToRight"), std::string::npos) << bad.status();
}

// All prefixes at once: x_t = x_1, gap K carries the prefix state's target
// (x_1[K], n - K) (none for K = n) and the factor P(K) = Binomial(K; n,
// kappa(t)), computed here independently by the product formula; the
// factors of a sequence sum to 1; t = 0 and 1 put all weight on K = 0 / n.
TEST(EditFlowTest, AllPrefixesCarryEveryPrefixWithItsProbability) {
  auto sched = Sched("poly:2");
  const SequenceBatch x1 = RandomBatch(50, 1, 12, kVocab, 71);
  const EditFlowOptions opt{.vocab_size = kVocab,
                            .source = EditSource::kEmpty,
                            .insertion_order = InsertionOrder::kLeftToRight,
                            .all_prefixes = true};
  for (double t : {0.0, 0.35, 0.8, 1.0}) {
    auto tb = MakeEditFlowBatch(x1, BatchTimes::Constant(t), *sched, opt, 3);
    ASSERT_TRUE(tb.ok()) << tb.status();
    CheckEditShapes(*tb);
    EXPECT_EQ(tb->x_t.ToVectors(), x1.ToVectors());
    ASSERT_EQ(static_cast<int64_t>(tb->gap_weights.size()), tb->x_t.num_gaps());
    const double kappa = sched->Kappa(t);
    const auto& ins = tb->insert_targets;
    for (int64_t b = 0; b < x1.num_sequences(); ++b) {
      const auto y = x1.sequence(b);
      const int64_t n = x1.length(b), g0 = tb->x_t.offsets()[b] + b;
      double sum = 0.0;
      for (int64_t k = 0; k <= n; ++k) {
        const int64_t g = g0 + k;
        double binom = 1.0;  // C(n, k) kappa^k (1 - kappa)^(n - k)
        for (int64_t i = 0; i < k; ++i) binom *= static_cast<double>(n - i) / (i + 1) * kappa;
        for (int64_t i = 0; i < n - k; ++i) binom *= 1.0 - kappa;
        EXPECT_NEAR(tb->gap_weights[g], binom, 1e-6 * std::max(1.0, binom))
            << "sequence " << b << " K " << k << " t " << t;
        sum += tb->gap_weights[g];
        if (k == n) {
          EXPECT_EQ(ins.row_offsets[g + 1], ins.row_offsets[g]);
        } else {
          ASSERT_EQ(ins.row_offsets[g + 1] - ins.row_offsets[g], 1);
          EXPECT_EQ(ins.cols[ins.row_offsets[g]], y[k]);
          EXPECT_EQ(ins.values[ins.row_offsets[g]], static_cast<float>(n - k));
        }
      }
      EXPECT_NEAR(sum, 1.0, 1e-5) << "sequence " << b;
    }
  }
  EditFlowOptions bad = opt;
  bad.insertion_order = InsertionOrder::kIndependent;
  EXPECT_FALSE(MakeEditFlowBatch(x1, BatchTimes::Constant(0.5), *sched, bad, 1).ok());
}

// Per-gap times: sum_g gap_weights[g] f(K_g, t_g) estimates
// E_{t~p}[w(t) sum_K P(K | t) f(K, t)] without bias. Checked by Monte Carlo
// (4,000 batches, fixed seeds) against a quadrature of the right side, to 4
// standard errors (two-sided significance ~6e-5 per case), for a
// non-uniform q (linear kappa, t ~ Beta(2, 2), w(t) = 1 + t) and for the
// demo's kappa = t^3 with t ~ Beta(3, 1), where every gap weighs 1 / (n + 1).
TEST(EditFlowTest, PerGapTimesKeepTheExpectedLoss) {
  const SequenceBatch x1 = Batch({{5}, {5, 6, 7, 8}, {5, 6, 7, 8, 9, 10, 11, 12, 13}});
  auto f = [](int64_t k, double t) { return (1.0 + k) * (0.3 + t * t) + std::sin(5.0 * t); };
  struct Case {
    const char* scheduler;
    const char* time;
    bool weighted;
  };
  for (const Case& c : {Case{"linear", "beta:2,2", true}, Case{"poly:3", "beta:3,1", false}}) {
    SCOPED_TRACE(c.scheduler);
    auto sched = Sched(c.scheduler);
    auto p = MakeTimeDistribution(c.time);
    ASSERT_TRUE(p.ok()) << p.status();
    auto w = UserTimeWeight([](double t) { return 1.0 + t; });
    const EditFlowOptions opt{.vocab_size = kVocab,
                              .source = EditSource::kEmpty,
                              .insertion_order = InsertionOrder::kLeftToRight,
                              .all_prefixes = true,
                              .gap_time_distribution = p->get(),
                              .gap_time_weight = c.weighted ? w.get() : nullptr};
    constexpr int kRuns = 4000;
    std::vector<double> sum(3, 0.0), sum2(3, 0.0);
    for (int r = 0; r < kRuns; ++r) {
      auto tb = MakeEditFlowBatch(x1, BatchTimes::Constant(0.5), *sched, opt, 1000 + r);
      ASSERT_TRUE(tb.ok()) << tb.status();
      ASSERT_EQ(static_cast<int64_t>(tb->gap_times.size()), tb->x_t.num_gaps());
      ASSERT_EQ(static_cast<int64_t>(tb->gap_weights.size()), tb->x_t.num_gaps());
      for (int64_t b = 0; b < 3; ++b) {
        const int64_t n = x1.length(b), g0 = tb->x_t.offsets()[b] + b;
        double est = 0.0;
        for (int64_t k = 0; k <= n; ++k) {
          const double t = tb->gap_times[g0 + k], gw = tb->gap_weights[g0 + k];
          ASSERT_TRUE(t > 0.0 && t < 1.0) << t;
          if (!c.weighted) {
            EXPECT_NEAR(gw, 1.0 / (n + 1), 1e-6 / (n + 1));
          }
          est += gw * f(k, t);
        }
        sum[b] += est;
        sum2[b] += est * est;
      }
    }
    for (int64_t b = 0; b < 3; ++b) {
      const int64_t n = x1.length(b);
      // Simpson's rule over t (smooth integrands; 2,000 intervals).
      auto integrand = [&](double t) {
        const double kappa = sched->Kappa(t);
        double total = 0.0;
        for (int64_t k = 0; k <= n; ++k) {
          double binom = 1.0;
          for (int64_t i = 0; i < k; ++i) binom *= static_cast<double>(n - i) / (i + 1) * kappa;
          for (int64_t i = 0; i < n - k; ++i) binom *= 1.0 - kappa;
          total += binom * f(k, t);
        }
        return (*p)->Density(t) * (c.weighted ? 1.0 + t : 1.0) * total;
      };
      constexpr int kIntervals = 2000;
      double exact = integrand(0.0) + integrand(1.0);
      for (int i = 1; i < kIntervals; ++i) {
        exact += (i % 2 == 1 ? 4.0 : 2.0) * integrand(static_cast<double>(i) / kIntervals);
      }
      exact /= 3.0 * kIntervals;
      const double mean = sum[b] / kRuns;
      const double se = std::sqrt((sum2[b] / kRuns - mean * mean) / kRuns);
      EXPECT_NEAR(mean, exact, 4.0 * se) << "n = " << n << ", se " << se;
      EXPECT_GT(se, 0.0);
    }
  }
  // Gap times need all_prefixes; a flat kappa under the density is an error.
  auto uniform = MakeTimeDistribution("uniform");
  ASSERT_TRUE(uniform.ok());
  EditFlowOptions bad{.vocab_size = kVocab,
                      .source = EditSource::kEmpty,
                      .insertion_order = InsertionOrder::kLeftToRight,
                      .gap_time_distribution = uniform->get()};
  auto e = MakeEditFlowBatch(x1, BatchTimes::Constant(0.5), *Sched("linear"), bad, 1);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("all_prefixes"), std::string::npos) << e.status();
  bad.all_prefixes = true;
  auto flat = CustomScheduler([](double t) { return t; }, [](double) { return 0.0; });
  e = MakeEditFlowBatch(x1, BatchTimes::Constant(0.5), *flat, bad, 1);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("per-gap time weight"), std::string::npos) << e.status();
}

TEST(EditFlowTest, BadInputIsAnError) {
  auto sched = Sched("linear");
  const auto t = BatchTimes::Constant(0.5);
  const SequenceBatch x1 = Batch({{5, 6}, {7}});
  EditFlowOptions empty{.vocab_size = kVocab, .source = EditSource::kEmpty};
  auto e = MakeEditFlowBatch(Batch({{5}, {}}), t, *sched, empty, 1);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("sequence 1"), std::string::npos) << e.status();
  EXPECT_FALSE(MakeEditFlowBatch(Batch({{5, 40}}, 60), t, *sched, empty, 1).ok());  // 40 >= kVocab
  EXPECT_FALSE(MakeEditFlowBatch(Batch({{Vocabulary::kEps}}), t, *sched, empty, 1).ok());
  EXPECT_FALSE(MakeEditFlowBatch(x1, BatchTimes::Constant(2.0), *sched, empty, 1).ok());
  EXPECT_FALSE(MakeEditFlowBatch(x1, t, *sched, {.vocab_size = 0}, 1).ok());
  EditFlowOptions pairs{.vocab_size = kVocab, .source = EditSource::kPairs};
  EXPECT_FALSE(MakeEditFlowBatch(x1, t, *sched, pairs, 1).ok());  // no x0
  const SequenceBatch one = Batch({{5}});
  pairs.x0 = &one;
  EXPECT_FALSE(MakeEditFlowBatch(x1, t, *sched, pairs, 1).ok());  // count mismatch
  EditFlowOptions noise{.vocab_size = kVocab,
                        .source = EditSource::kNoise,
                        .noise_min_length = 5,
                        .noise_max_length = 2};
  EXPECT_FALSE(MakeEditFlowBatch(x1, t, *sched, noise, 1).ok());
  noise.noise_max_length = 6;
  noise.vocab_size = Vocabulary::kNumSpecials;
  EXPECT_FALSE(MakeEditFlowBatch(Batch({{1}}, Vocabulary::kNumSpecials), t, *sched, noise, 1).ok());
  EditFlowOptions user{
      .vocab_size = kVocab, .source = EditSource::kEmpty, .alignment = EditAlignment::kUser};
  EXPECT_FALSE(MakeEditFlowBatch(x1, t, *sched, user, 1).ok());
  EditFlowOptions costs{.vocab_size = kVocab, .source = EditSource::kPairs, .x0 = &x1};
  costs.costs.insert = -1;
  EXPECT_FALSE(MakeEditFlowBatch(x1, t, *sched, costs, 1).ok());
}

}  // namespace
}  // namespace jumpflow
