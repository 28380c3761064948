// @brief Tests of SequenceBatch: construction, views, validation invariants.
#include "sequences/sequence_batch.h"

#include <random>

#include "gtest/gtest.h"

namespace jumpflow {
namespace {

TEST(SequenceBatchTest, FromVectorsRoundTripsAndKeepsInvariants) {
  std::mt19937_64 rng(3);
  for (int trial = 0; trial < 500; ++trial) {
    const int batch = static_cast<int>(rng() % 20);
    std::vector<std::vector<Token>> seqs(static_cast<size_t>(batch));
    std::vector<double> times;
    for (auto& s : seqs) {
      s.resize(rng() % 30);
      for (auto& t : s) t = static_cast<Token>(rng() % 40);
      times.push_back(static_cast<double>(rng() % 1001) / 1000.0);
    }
    auto b = SequenceBatch::FromVectors(seqs, 40, times);
    ASSERT_TRUE(b.ok()) << b.status();
    ASSERT_EQ(b->num_sequences(), batch);
    int64_t total = 0;
    for (int i = 0; i < batch; ++i) {
      EXPECT_EQ(b->length(i), static_cast<int64_t>(seqs[static_cast<size_t>(i)].size()));
      EXPECT_EQ(b->offsets()[static_cast<size_t>(i)], total);
      total += b->length(i);
      auto view = b->sequence(i);
      EXPECT_TRUE(std::equal(view.begin(), view.end(), seqs[static_cast<size_t>(i)].begin(),
                             seqs[static_cast<size_t>(i)].end()));
      EXPECT_EQ(b->time(i), times[static_cast<size_t>(i)]);
    }
    EXPECT_EQ(b->num_tokens(), total);
    EXPECT_EQ(b->num_gaps(), total + batch);
    EXPECT_EQ(b->ToVectors(), seqs);
    EXPECT_TRUE(b->Validate(40).ok());
    // Offsets are monotone by construction; validation catches a bad vocab.
    if (total > 0) {
      EXPECT_FALSE(b->Validate(1).ok());
    }
  }
}

TEST(SequenceBatchTest, FromPartsRejectsBrokenLayouts) {
  EXPECT_FALSE(SequenceBatch::FromParts({5, 6}, {1, 2}, {0.0}, 10).ok());        // first != 0
  EXPECT_FALSE(SequenceBatch::FromParts({5, 6}, {0, 2, 1}, {0, 0}, 10).ok());    // decreasing
  EXPECT_FALSE(SequenceBatch::FromParts({5, 6}, {0, 1}, {0.0}, 10).ok());        // end != size
  EXPECT_FALSE(SequenceBatch::FromParts({5, 6}, {0, 2}, {}, 10).ok());           // times size
  EXPECT_FALSE(SequenceBatch::FromParts({5, 6}, {0, 2}, {1.5}, 10).ok());        // t > 1
  EXPECT_FALSE(SequenceBatch::FromParts({5, 60}, {0, 2}, {0.5}, 10).ok());       // token >= V
  EXPECT_FALSE(SequenceBatch::FromParts({5, -1}, {0, 2}, {0.5}, 10).ok());       // token < 0
  EXPECT_TRUE(SequenceBatch::FromParts({5, 6}, {0, 0, 2}, {0.0, 1.0}, 10).ok());  // empty seq
}

TEST(SequenceBatchTest, MutableViewsEditInPlace) {
  auto b = SequenceBatch::FromVectors({{5, 6}, {7}}, 10);
  ASSERT_TRUE(b.ok());
  b->mutable_sequence(1)[0] = 9;
  b->set_time(0, 0.25);
  EXPECT_EQ(b->sequence(1)[0], 9);
  EXPECT_EQ(b->time(0), 0.25);
  EXPECT_EQ(b->max_length(), 2);
}

}  // namespace
}  // namespace jumpflow
