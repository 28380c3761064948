// @brief Tests of simultaneous edit application, single and batched.
#include "sequences/edits.h"

#include <random>

#include "gtest/gtest.h"
#include "tbb/global_control.h"

namespace jumpflow {
namespace {

TEST(EditsTest, SimultaneousSemanticsAgainstThePreEditSequence) {
  const std::vector<Token> x = {10, 11, 12, 13};
  // Insert before position 0 and at the end, delete 1, substitute 2.
  const std::vector<Edit> edits = {Edit::Insert(0, 20), Edit::Delete(1), Edit::Substitute(2, 22),
                                   Edit::Insert(4, 24)};
  auto y = ApplyEdits(x, edits);
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_EQ(*y, (std::vector<Token>{20, 10, 22, 13, 24}));
}

TEST(EditsTest, InsertionsIntoOneGapKeepTheirOrder) {
  const std::vector<Token> x = {1, 2};
  auto y = ApplyEdits(x, std::vector<Edit>{Edit::Insert(1, 7), Edit::Delete(0), Edit::Insert(1, 8),
                                           Edit::Insert(1, 9)});
  ASSERT_TRUE(y.ok());
  EXPECT_EQ(*y, (std::vector<Token>{7, 8, 9, 2}));
}

TEST(EditsTest, InsertBeforeDeletedOrSubstitutedPosition) {
  const std::vector<Token> x = {1, 2, 3};
  auto y = ApplyEdits(x, std::vector<Edit>{Edit::Substitute(1, 5), Edit::Insert(1, 4),
                                           Edit::Delete(2), Edit::Insert(2, 6)});
  ASSERT_TRUE(y.ok());
  EXPECT_EQ(*y, (std::vector<Token>{1, 4, 5, 6}));
}

TEST(EditsTest, ConflictsAndRangesAreErrors) {
  const std::vector<Token> x = {1, 2, 3};
  EXPECT_FALSE(ApplyEdits(x, std::vector<Edit>{Edit::Delete(1), Edit::Substitute(1, 4)}).ok());
  EXPECT_FALSE(ApplyEdits(x, std::vector<Edit>{Edit::Delete(1), Edit::Delete(1)}).ok());
  EXPECT_FALSE(
      ApplyEdits(x, std::vector<Edit>{Edit::Substitute(0, 4), Edit::Substitute(0, 5)}).ok());
  EXPECT_FALSE(ApplyEdits(x, std::vector<Edit>{Edit::Delete(3)}).ok());
  EXPECT_FALSE(ApplyEdits(x, std::vector<Edit>{Edit::Insert(4, 1)}).ok());
  EXPECT_FALSE(ApplyEdits(x, std::vector<Edit>{Edit::Insert(-1, 1)}).ok());
  EXPECT_TRUE(ApplyEdits(x, std::vector<Edit>{Edit::Insert(3, 1)}).ok());
  EXPECT_TRUE(ApplyEdits({}, std::vector<Edit>{Edit::Insert(0, 1)}).ok());
}

// Reference: applies edits one at a time from the back, which is equivalent
// to the simultaneous semantics when the edits are sorted by position.
std::vector<Token> SequentialReference(std::vector<Token> x, const std::vector<Edit>& sorted) {
  // Walk from the highest key down so earlier indices stay valid.
  for (auto it = sorted.rbegin(); it != sorted.rend(); ++it) {
    switch (it->kind) {
      case EditKind::kInsert: {
        // Insertions into one gap are applied in reverse so they end in list order.
        x.insert(x.begin() + it->index, it->token);
        break;
      }
      case EditKind::kDelete:
        x.erase(x.begin() + it->index);
        break;
      case EditKind::kSubstitute:
        x[static_cast<size_t>(it->index)] = it->token;
        break;
    }
  }
  return x;
}

// Random valid edit list for x, sorted by (gap/position) key.
std::vector<Edit> RandomEdits(size_t n, std::mt19937_64& rng) {
  std::vector<Edit> edits;
  for (size_t j = 0; j <= n; ++j) {
    const int inserts = static_cast<int>(rng() % 3 == 0 ? rng() % 3 : 0);
    for (int k = 0; k < inserts; ++k) {
      edits.push_back(Edit::Insert(static_cast<int32_t>(j), static_cast<Token>(rng() % 50)));
    }
    if (j == n) break;
    switch (rng() % 4) {
      case 0:
        edits.push_back(Edit::Delete(static_cast<int32_t>(j)));
        break;
      case 1:
        edits.push_back(Edit::Substitute(static_cast<int32_t>(j), static_cast<Token>(rng() % 50)));
        break;
      default:
        break;
    }
  }
  return edits;
}

TEST(EditsTest, MatchesSequentialReferenceAndIgnoresListOrder) {
  std::mt19937_64 rng(11);
  for (int trial = 0; trial < 3000; ++trial) {
    std::vector<Token> x(rng() % 20);
    for (auto& t : x) t = static_cast<Token>(rng() % 50);
    const std::vector<Edit> edits = RandomEdits(x.size(), rng);
    auto y = ApplyEdits(x, edits);
    ASSERT_TRUE(y.ok()) << y.status();
    EXPECT_EQ(*y, SequentialReference(x, edits));
    // Any permutation that keeps same-gap insertions in order gives the same
    // result: deletions and substitutions reversed, then the insertions.
    std::vector<Edit> permuted;
    for (auto it = edits.rbegin(); it != edits.rend(); ++it) {
      if (it->kind != EditKind::kInsert) permuted.push_back(*it);
    }
    for (const Edit& e : edits) {
      if (e.kind == EditKind::kInsert) permuted.push_back(e);
    }
    auto z = ApplyEdits(x, permuted);
    ASSERT_TRUE(z.ok());
    EXPECT_EQ(*z, *y);
  }
}

TEST(EditsTest, BatchMatchesPerSequenceForAnyThreadCount) {
  std::mt19937_64 rng(5);
  std::vector<std::vector<Token>> seqs(3000);
  std::vector<Edit> edits;
  std::vector<int64_t> edit_offsets{0};
  for (auto& s : seqs) {
    s.resize(rng() % 25);
    for (auto& t : s) t = static_cast<Token>(rng() % 50);
    auto e = RandomEdits(s.size(), rng);
    edits.insert(edits.end(), e.begin(), e.end());
    edit_offsets.push_back(static_cast<int64_t>(edits.size()));
  }
  auto batch = SequenceBatch::FromVectors(seqs, 50);
  ASSERT_TRUE(batch.ok());
  SequenceBatch results[2];
  for (int threads : {1, 2}) {
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
    auto out = ApplyEditsBatch(*batch, edits, edit_offsets, 50);
    ASSERT_TRUE(out.ok()) << out.status();
    results[threads - 1] = *std::move(out);
  }
  EXPECT_TRUE(results[0] == results[1]);
  for (size_t b = 0; b < seqs.size(); ++b) {
    auto expected = ApplyEdits(seqs[b], std::span<const Edit>(edits).subspan(
                                            static_cast<size_t>(edit_offsets[b]),
                                            static_cast<size_t>(edit_offsets[b + 1] -
                                                                edit_offsets[b])));
    ASSERT_TRUE(expected.ok());
    auto got = results[0].sequence(static_cast<int64_t>(b));
    ASSERT_TRUE(std::equal(got.begin(), got.end(), expected->begin(), expected->end()));
  }
}

TEST(EditsTest, BatchErrorNamesTheLowestFailingSequence) {
  auto batch = SequenceBatch::FromVectors({{5, 6}, {7}, {8, 9}}, 10);
  ASSERT_TRUE(batch.ok());
  const std::vector<Edit> edits = {Edit::Delete(0), Edit::Delete(5), Edit::Delete(7)};
  auto out = ApplyEditsBatch(*batch, edits, std::vector<int64_t>{0, 1, 2, 3}, 10);
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("sequence 1"), absl::string_view::npos) << out.status();
  // Token outside the vocabulary, bad offsets.
  EXPECT_FALSE(ApplyEditsBatch(*batch, std::vector<Edit>{Edit::Insert(0, 10)},
                               std::vector<int64_t>{0, 1, 1, 1}, 10)
                   .ok());
  EXPECT_FALSE(ApplyEditsBatch(*batch, edits, std::vector<int64_t>{0, 3}, 10).ok());
}

}  // namespace
}  // namespace jumpflow
