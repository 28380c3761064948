// @brief Tests of the Branching Flows training batches.
#include "jumpflow/processes/branching.h"

#include <algorithm>
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

// Wilson-Hilferty approximation of the chi-square quantile with k d.o.f. at
// significance 1e-4 (z = 3.719).
double ChiSquareCritical(double k) {
  const double z = 3.719;
  return k * std::pow(1 - 2 / (9 * k) + z * std::sqrt(2 / (9 * k)), 3);
}

// The invariant of the issue, per sequence: sum over alive elements of
// (pending splits + 1) = |x1| + (to-be-deleted leaves not yet removed); plus
// the structure behind it: alive nodes cover disjoint, increasing leaf
// ranges; the uncovered leaves are exactly the removed ones, all del leaves;
// the non-del leaves spell x1; targets agree with the tree.
TEST(BranchingTest, PendingSplitsCountLeaves) {
  testing::TestUniformTime uniform;
  auto sched = Sched("linear");
  auto split = Sched("beta:1,2");
  const SequenceBatch x1 = RandomBatch(3000, 1, 24, kVocab, 81);
  int64_t total_removed = 0, total_del_alive = 0, total_alive = 0;
  for (double c : {1.0, 0.6, 0.0}) {
    for (BranchingMerge merge : {BranchingMerge::kMask, BranchingMerge::kSelect}) {
      BranchingOptions opt{.vocab_size = kVocab, .deletion_probability = 0.3,
                           .coalescence_factor = c, .merge = merge,
                           .split_scheduler = split.get()};
      BranchingTrace trace;
      auto tb = MakeBranchingBatch(x1, BatchTimes::Sampled(uniform), *sched, opt, 13,
                                   BatchWeights::Ones(), &trace);
      ASSERT_TRUE(tb.ok()) << tb.status();
      ASSERT_EQ(testing::CheckCsr(tb->token_targets, tb->x_t.num_tokens(), kVocab), "");
      for (int64_t b = 0; b < x1.num_sequences(); ++b) {
        const BranchingTree& tree = trace.trees[b];
        const int64_t leaves = static_cast<int64_t>(tree.leaf_tokens.size());
        std::vector<Token> kept;
        int64_t del_leaves = 0;
        for (int64_t i = 0; i < leaves; ++i) {
          if (tree.leaf_deleted[i]) {
            ++del_leaves;
          } else {
            kept.push_back(tree.leaf_tokens[i]);
          }
        }
        ASSERT_EQ(kept, std::vector<Token>(x1.sequence(b).begin(), x1.sequence(b).end()));
        const int64_t row0 = tb->x_t.offsets()[b];
        ASSERT_EQ(static_cast<int64_t>(tree.alive.size()), tb->x_t.length(b));
        double lhs = 0;
        std::vector<int> covered(leaves, 0);
        int32_t prev_hi = 0;
        for (size_t i = 0; i < tree.alive.size(); ++i) {
          const int32_t v = tree.alive[i];
          const int64_t r = row0 + static_cast<int64_t>(i);
          lhs += tb->split_targets[r] + 1;
          ASSERT_GE(tree.lo[v], prev_hi);
          prev_hi = tree.hi[v];
          for (int32_t l = tree.lo[v]; l < tree.hi[v]; ++l) covered[l] = 1;
          ASSERT_EQ(tb->split_targets[r], tree.hi[v] - tree.lo[v] - 1);
          const bool is_del_leaf = v < leaves && tree.leaf_deleted[v];
          ASSERT_EQ(tb->delete_targets[r], is_del_leaf ? 1.0f : 0.0f);
          total_del_alive += is_del_leaf;
          const Token x = tb->x_t.tokens()[r];
          const int64_t n = tb->token_targets.row_offsets[r + 1] - tb->token_targets.row_offsets[r];
          ASSERT_EQ(n, x == tree.anchor[v] ? 0 : 1);
          if (n == 1) {
            ASSERT_EQ(tb->token_targets.cols[tb->token_targets.row_offsets[r]], tree.anchor[v]);
          }
          // The token came down the path from the root: it is the root's
          // token or the anchor of a node on the path (v included).
          int32_t u = -1;
          size_t root_index = 0;
          for (; root_index < tree.roots.size(); ++root_index) {
            const int32_t root = tree.roots[root_index];
            if (tree.lo[root] <= tree.lo[v] && tree.hi[v] <= tree.hi[root]) {
              u = root;
              break;
            }
          }
          ASSERT_GE(u, 0);
          bool reachable = x == tree.root_tokens[root_index];
          while (true) {
            reachable = reachable || x == tree.anchor[u];
            if (u == v) break;
            ASSERT_GE(tree.left[u], 0);
            u = tree.lo[v] < tree.hi[tree.left[u]] ? tree.left[u] : tree.right[u];
          }
          ASSERT_TRUE(reachable) << "token " << x << " of sequence " << b;
          // Alive means t in [birth, split).
          ASSERT_LE(tree.birth[v], tb->x_t.time(b));
          ASSERT_GT(tree.split_time[v], tb->x_t.time(b));
        }
        for (int32_t v : tree.removed) {
          ASSERT_LT(v, leaves);
          ASSERT_TRUE(tree.leaf_deleted[v]);
        }
        int64_t uncovered = 0;
        for (int64_t l = 0; l < leaves; ++l) {
          if (!covered[l]) {
            ++uncovered;
            ASSERT_TRUE(std::count(tree.removed.begin(), tree.removed.end(), l) == 1);
          }
        }
        ASSERT_EQ(uncovered, static_cast<int64_t>(tree.removed.size()));
        const int64_t del_not_removed = del_leaves - static_cast<int64_t>(tree.removed.size());
        ASSERT_EQ(lhs, static_cast<double>(x1.length(b) + del_not_removed)) << "sequence " << b;
        total_removed += static_cast<int64_t>(tree.removed.size());
        total_alive += tb->x_t.length(b);
      }
    }
  }
  // Not vacuous: deletions both happened and were pending.
  EXPECT_GT(total_removed, 500);
  EXPECT_GT(total_del_alive, 500);
  EXPECT_GT(total_alive, 10000);
}

TEST(BranchingTest, StateAtOneIsX1AndAtZeroIsOneRoot) {
  auto sched = Sched("cosine");
  const SequenceBatch x1 = RandomBatch(500, 1, 30, kVocab, 82);
  for (BranchingMerge merge : {BranchingMerge::kMask, BranchingMerge::kSelect}) {
    BranchingOptions opt{.vocab_size = kVocab, .deletion_probability = 0.5, .merge = merge};
    auto at1 = MakeBranchingBatch(x1, BatchTimes::Constant(1.0), *sched, opt, 3);
    ASSERT_TRUE(at1.ok()) << at1.status();
    EXPECT_EQ(at1->x_t.ToVectors(), x1.ToVectors());
    EXPECT_EQ(at1->token_targets.num_entries(), 0);
    for (float s : at1->split_targets) ASSERT_EQ(s, 0.0f);
    for (float d : at1->delete_targets) ASSERT_EQ(d, 0.0f);
    BranchingTrace trace;
    auto at0 = MakeBranchingBatch(x1, BatchTimes::Constant(0.0), *sched, opt, 3,
                                  BatchWeights::Ones(), &trace);
    ASSERT_TRUE(at0.ok());
    for (int64_t b = 0; b < x1.num_sequences(); ++b) {
      ASSERT_EQ(at0->x_t.length(b), 1);
      ASSERT_EQ(at0->x_t.sequence(b)[0], Vocabulary::kMask);
      ASSERT_EQ(at0->split_targets[b],
                static_cast<float>(trace.trees[b].leaf_tokens.size() - 1));
    }
  }
}

// A root of weight W born at 0 is still unsplit at t with probability
// S_F(t)^(W - 1) (first event of hazard (W - 1) h_F). Checked on |x_t| = 1
// within 4 sigma.
TEST(BranchingTest, RootSurvivesWithProbabilityWithin4Sigma) {
  auto sched = Sched("linear");
  const int64_t n = 20000;
  for (const char* spec : {"linear", "poly:2"}) {
    auto split = Sched(spec);
    for (int w : {2, 4}) {
      std::vector<std::vector<Token>> seqs(n, std::vector<Token>(w, 6));
      const SequenceBatch x1 = Batch(seqs);
      const double t = 0.3;
      BranchingOptions opt{.vocab_size = kVocab, .split_scheduler = split.get()};
      auto tb = MakeBranchingBatch(x1, BatchTimes::Constant(t), *sched, opt, 21);
      ASSERT_TRUE(tb.ok());
      int64_t single = 0;
      for (int64_t b = 0; b < n; ++b) single += tb->x_t.length(b) == 1;
      const double p = std::pow(split->Survival(t), w - 1);
      EXPECT_NEAR(static_cast<double>(single) / n, p, 4 * std::sqrt(p * (1 - p) / n))
          << spec << " W=" << w;
    }
  }
}

// Every internal node's split time satisfies U = (S_F(split) / S_F(birth))^(W-1)
// ~ U(0, 1) given everything drawn before it, so the U's of all nodes are
// i.i.d. uniform: Kolmogorov-Smirnov at significance 1e-3 (critical value
// 1.949 / sqrt(N)).
TEST(BranchingTest, SplitTimesFollowTheHazardKs) {
  auto sched = Sched("linear");
  auto split = Sched("poly:2");
  const SequenceBatch x1 = RandomBatch(800, 2, 24, kVocab, 91);
  BranchingTrace trace;
  auto tb = MakeBranchingBatch(x1, BatchTimes::Constant(0.5), *sched,
                               {.vocab_size = kVocab, .deletion_probability = 0.2,
                                .coalescence_factor = 0.8, .split_scheduler = split.get()},
                               4, BatchWeights::Ones(), &trace);
  ASSERT_TRUE(tb.ok());
  std::vector<double> u;
  for (const BranchingTree& tree : trace.trees) {
    for (int32_t v : tree.preorder) {
      const int w = tree.hi[v] - tree.lo[v];
      ASSERT_GE(w, 2);
      ASSERT_GE(tree.split_time[v], tree.birth[v]);
      ASSERT_LE(tree.split_time[v], 1.0);
      u.push_back(std::pow(split->Survival(tree.split_time[v]) / split->Survival(tree.birth[v]),
                           w - 1));
    }
  }
  ASSERT_GT(u.size(), 5000u);
  std::sort(u.begin(), u.end());
  double d = 0;
  const double n = static_cast<double>(u.size());
  for (size_t i = 0; i < u.size(); ++i) {
    d = std::max({d, (i + 1) / n - u[i], u[i] - i / n});
  }
  EXPECT_LT(d, 1.949 / std::sqrt(n));
}

// Merges in uniform random order: with one root, the root's boundary is the
// last merged one, uniform over the L - 1 boundaries, so its left weight is
// uniform on {1, ..., L-1}. Chi-square at significance 1e-4. With kSelect
// the root anchor is a uniformly chosen leaf.
TEST(BranchingTest, MergeOrderAndSelectedAnchorsAreUniform) {
  auto sched = Sched("linear");
  const int64_t n = 20000, len = 8;
  std::vector<std::vector<Token>> seqs(n);
  for (auto& s : seqs) {
    for (int i = 0; i < len; ++i) s.push_back(Vocabulary::kNumSpecials + i);
  }
  const SequenceBatch x1 = Batch(seqs);
  BranchingTrace trace;
  auto tb = MakeBranchingBatch(x1, BatchTimes::Constant(0.0), *sched,
                               {.vocab_size = kVocab, .merge = BranchingMerge::kSelect}, 6,
                               BatchWeights::Ones(), &trace);
  ASSERT_TRUE(tb.ok());
  std::vector<double> left(len, 0), anchor(len, 0);
  for (const BranchingTree& tree : trace.trees) {
    ASSERT_EQ(tree.roots.size(), 1u);
    const int32_t root = tree.roots[0];
    left[tree.hi[tree.left[root]] - tree.lo[tree.left[root]]] += 1;
    anchor[tree.anchor[root] - Vocabulary::kNumSpecials] += 1;
  }
  double chi_left = 0, chi_anchor = 0;
  for (int k = 1; k < len; ++k) {
    const double e = static_cast<double>(n) / (len - 1);
    chi_left += (left[k] - e) * (left[k] - e) / e;
  }
  for (int k = 0; k < len; ++k) {
    const double e = static_cast<double>(n) / len;
    chi_anchor += (anchor[k] - e) * (anchor[k] - e) / e;
  }
  EXPECT_LT(chi_left, ChiSquareCritical(len - 2));
  EXPECT_LT(chi_anchor, ChiSquareCritical(len - 1));
}

// No merges: every leaf is a root born at 0. A del leaf is still there with
// probability S_D(t); a kept leaf has unmasked with probability kappa(t).
TEST(BranchingTest, DeletionAndUnmaskingRatesWithin4Sigma) {
  auto sched = Sched("poly:2");
  auto del = Sched("cosine");
  const SequenceBatch x1 = RandomBatch(5000, 1, 20, kVocab, 101);
  const double t = 0.45;
  BranchingTrace trace;
  auto tb = MakeBranchingBatch(x1, BatchTimes::Constant(t), *sched,
                               {.vocab_size = kVocab, .deletion_probability = 0.5,
                                .coalescence_factor = 0.0, .deletion_scheduler = del.get()},
                               8, BatchWeights::Ones(), &trace);
  ASSERT_TRUE(tb.ok());
  double del_total = 0, del_alive = 0, kept = 0, unmasked = 0;
  for (int64_t b = 0; b < x1.num_sequences(); ++b) {
    const BranchingTree& tree = trace.trees[b];
    for (uint8_t d : tree.leaf_deleted) del_total += d;
    for (size_t i = 0; i < tree.alive.size(); ++i) {
      const int32_t v = tree.alive[i];
      ASSERT_LT(v, static_cast<int32_t>(tree.leaf_tokens.size()));
      const Token x = tb->x_t.sequence(b)[i];
      ASSERT_TRUE(x == Vocabulary::kMask || x == tree.anchor[v]);
      if (tree.leaf_deleted[v]) {
        del_alive += 1;
      } else {
        kept += 1;
        unmasked += x != Vocabulary::kMask;
      }
    }
  }
  const double s = del->Survival(t), k = sched->Kappa(t);
  EXPECT_NEAR(del_alive / del_total, s, 4 * std::sqrt(s * (1 - s) / del_total));
  EXPECT_NEAR(unmasked / kept, k, 4 * std::sqrt(k * (1 - k) / kept));
}

TEST(BranchingTest, ReproducibleForAnyThreadCount) {
  testing::TestUniformTime uniform;
  auto sched = Sched("linear");
  const SequenceBatch x1 = RandomBatch(500, 1, 80, kVocab, 111);
  BranchingOptions opt{.vocab_size = kVocab, .deletion_probability = 0.2,
                       .coalescence_factor = 0.9, .merge = BranchingMerge::kSelect,
                       .root = BranchingRoot::kUniform};
  auto run = [&](int threads, uint64_t seed) {
    return WithThreads(threads, [&] {
      return MakeBranchingBatch(x1, BatchTimes::Sampled(uniform), *sched, opt, seed);
    });
  };
  auto one = run(1, 3), two = run(2, 3), four = run(4, 3), other = run(2, 4);
  ASSERT_TRUE(one.ok() && two.ok() && four.ok() && other.ok());
  EXPECT_TRUE(testing::SameBatch(*one, *two));
  EXPECT_TRUE(testing::SameBatch(*one, *four));
  EXPECT_FALSE(testing::SameBatch(*one, *other));
}

TEST(BranchingTest, BadInputIsAnError) {
  auto sched = Sched("linear");
  const auto t = BatchTimes::Constant(0.5);
  const SequenceBatch x1 = Batch({{5, 6}, {7}});
  auto empty = MakeBranchingBatch(Batch({{5}, {}}), t, *sched, {.vocab_size = kVocab}, 1);
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find("sequence 1"), std::string::npos) << empty.status();
  EXPECT_FALSE(MakeBranchingBatch(Batch({{5, 50}}, 60), t, *sched, {.vocab_size = kVocab}, 1).ok());
  EXPECT_FALSE(MakeBranchingBatch(Batch({{Vocabulary::kMask}}), t, *sched, {.vocab_size = kVocab}, 1).ok());
  EXPECT_FALSE(MakeBranchingBatch(x1, BatchTimes::Constant(1.5), *sched, {.vocab_size = kVocab}, 1).ok());
  EXPECT_FALSE(MakeBranchingBatch(x1, t, *sched, {.vocab_size = 0}, 1).ok());
  EXPECT_FALSE(MakeBranchingBatch(x1, t, *sched,
                                  {.vocab_size = kVocab, .deletion_probability = 1.5}, 1).ok());
  EXPECT_FALSE(MakeBranchingBatch(x1, t, *sched,
                                  {.vocab_size = kVocab, .coalescence_factor = -0.1}, 1).ok());
  EXPECT_FALSE(MakeBranchingBatch(Batch({{1}}, Vocabulary::kNumSpecials), t, *sched,
                                  {.vocab_size = Vocabulary::kNumSpecials,
                                   .root = BranchingRoot::kUniform}, 1).ok());
}

}  // namespace
}  // namespace jumpflow
