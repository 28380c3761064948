// @brief Tests of dataset loaders (errors name file and line), filters,
// shuffling, splitting and batching.
#include "sequences/dataset.h"

#include <cstdio>
#include <fstream>
#include <set>

#include "gtest/gtest.h"

namespace jumpflow {
namespace {

class DatasetTest : public testing::Test {
 protected:
  std::string Write(const std::string& name, const std::string& contents) {
    const std::string path = testing::TempDir() + "/jumpflow_dataset_" + name;
    std::ofstream(path, std::ios::binary) << contents;
    paths_.push_back(path);
    return path;
  }
  void TearDown() override {
    for (const auto& p : paths_) std::remove(p.c_str());
  }
  Vocabulary Letters() const { return *Vocabulary::FromCharacters("abcdefghijklmnopqrstuvwxyz"); }

  std::vector<std::string> paths_;
};

TEST_F(DatasetTest, LoadsLinesWithLengthFilterAndSkipUnknown) {
  const std::string path = Write("lines.txt", "cat\n\n  dog \r\nelephant\nAbc\nox\n");
  DatasetOptions opt;
  opt.max_length = 4;
  opt.min_length = 3;
  opt.skip_unknown = true;
  auto d = Dataset::LoadLines(path, Letters(), opt);
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_EQ(d->size(), 2);
  EXPECT_EQ(d->vocab().Decode(d->sequence(0)), "cat");
  EXPECT_EQ(d->vocab().Decode(d->sequence(1)), "dog");
  EXPECT_EQ(d->dropped_by_length(), 2);  // elephant, ox
  EXPECT_EQ(d->dropped_unknown(), 1);    // Abc
  EXPECT_EQ(d->weight(0), 1.0);
}

TEST_F(DatasetTest, ErrorsNameFileAndLine) {
  const std::string path = Write("bad.txt", "cat\ndog\nc4t\n");
  auto d = Dataset::LoadLines(path, Letters());
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find(path + ":3:"), absl::string_view::npos) << d.status();

  auto missing = Dataset::LoadLines(testing::TempDir() + "/no_such_file.txt", Letters());
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("no_such_file.txt"), absl::string_view::npos);

  auto empty = Dataset::LoadLines(Write("empty.txt", ""), Letters());
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find("empty"), absl::string_view::npos);

  DatasetOptions opt;
  opt.max_line_bytes = 5;
  auto long_line = Dataset::LoadLines(Write("long.txt", "ab\nabcdefgh\n"), Letters(), opt);
  ASSERT_FALSE(long_line.ok());
  EXPECT_NE(long_line.status().message().find(":2:"), absl::string_view::npos);

  opt.max_line_bytes = 100;
  opt.min_length = 10;
  auto none_left = Dataset::LoadLines(Write("short.txt", "ab\n"), Letters(), opt);
  ASSERT_FALSE(none_left.ok());
  opt.min_length = 5;
  opt.max_length = 2;
  EXPECT_FALSE(Dataset::LoadLines(Write("opts.txt", "ab\n"), Letters(), opt).ok());
}

TEST_F(DatasetTest, LoadsFastaRecords) {
  auto acgt = *Vocabulary::FromCharacters("ACGT");
  const std::string path = Write("seqs.fa", ">one\nACG\nTA\n; comment\n>two desc\nGG\n");
  auto d = Dataset::LoadFasta(path, acgt);
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_EQ(d->size(), 2);
  EXPECT_EQ(acgt.Decode(d->sequence(0)), "ACGTA");
  EXPECT_EQ(acgt.Decode(d->sequence(1)), "GG");
  EXPECT_FALSE(Dataset::LoadFasta(Write("nohdr.fa", "ACGT\n"), acgt).ok());
  auto empty_record = Dataset::LoadFasta(Write("emptyrec.fa", ">a\n>b\nAC\n"), acgt);
  ASSERT_FALSE(empty_record.ok());
  EXPECT_NE(empty_record.status().message().find(":1:"), absl::string_view::npos);
  auto bad = Dataset::LoadFasta(Write("badsym.fa", ">a\nACXT\n"), acgt);
  EXPECT_FALSE(bad.ok());
}

TEST_F(DatasetTest, LoadsTokenFilesAndPairs) {
  auto words = *Vocabulary::FromSymbols({"the", "cat", "sat"}, Vocabulary::Kind::kToken);
  auto d = Dataset::LoadTokens(Write("tok.txt", "the cat\ncat sat the\n"), words);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->size(), 2);
  EXPECT_EQ(d->sequence(1).size(), 3u);
  EXPECT_FALSE(Dataset::LoadTokens(Write("tok2.txt", "the cat\n"), Letters()).ok());

  DatasetOptions opt;
  opt.min_length = 0;
  auto pairs = LoadPairs(Write("pairs.tsv", "helo\thello\n\tab\n"), Letters(), opt);
  ASSERT_TRUE(pairs.ok()) << pairs.status();
  ASSERT_EQ(pairs->size(), 2u);
  EXPECT_EQ((*pairs)[0].x0.size(), 4u);
  EXPECT_EQ((*pairs)[0].x1.size(), 5u);
  EXPECT_TRUE((*pairs)[1].x0.empty());
  auto no_tab = LoadPairs(Write("pairs2.tsv", "a\tb\nab\n"), Letters(), opt);
  ASSERT_FALSE(no_tab.ok());
  EXPECT_NE(no_tab.status().message().find(":2:"), absl::string_view::npos);
}

TEST_F(DatasetTest, ShuffleSplitAndBatchesAreDeterministicPartitions) {
  std::vector<std::vector<Token>> seqs;
  for (Token i = 0; i < 1000; ++i) seqs.push_back({static_cast<Token>(5 + i % 26), i % 7 + 5});
  auto d = Dataset::FromSequences(Letters(), seqs);
  ASSERT_TRUE(d.ok());
  auto s1 = d->Shuffled(3), s2 = d->Shuffled(3), s3 = d->Shuffled(4);
  EXPECT_EQ(s1.sequences(), s2.sequences());
  EXPECT_NE(s1.sequences(), s3.sequences());
  auto [train, held] = d->Split(0.1, 9);
  EXPECT_EQ(held.size(), 100);
  EXPECT_EQ(train.size(), 900);
  auto [train2, held2] = d->Split(0.1, 9);
  EXPECT_EQ(held.sequences(), held2.sequences());

  const auto batches = d->Batches(64, 1, 0);
  ASSERT_EQ(batches.size(), 16u);  // ceil(1000 / 64)
  std::multiset<std::vector<Token>> seen;
  for (const auto& b : batches) {
    EXPECT_LE(b.num_sequences(), 64);
    for (const auto& s : b.ToVectors()) seen.insert(s);
  }
  EXPECT_EQ(seen, std::multiset<std::vector<Token>>(seqs.begin(), seqs.end()));
  EXPECT_NE(d->Batches(64, 1, 1)[0].ToVectors(), batches[0].ToVectors());

  EXPECT_FALSE(Dataset::FromSequences(Letters(), {{100}}).ok());
  EXPECT_FALSE(Dataset::FromSequences(Letters(), {{5}}, {-1.0}).ok());
  EXPECT_FALSE(Dataset::FromSequences(Letters(), {{5}}, {1.0, 2.0}).ok());
}

TEST_F(DatasetTest, DeduplicateKeepsFirstOccurrence) {
  DatasetOptions opt;
  opt.deduplicate = true;
  auto d = Dataset::LoadLines(Write("dup.txt", "ab\ncd\nab\n"), Letters(), opt);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->size(), 2);
}

}  // namespace
}  // namespace jumpflow
