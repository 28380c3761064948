// @brief Tests of Vocabulary: specials, encode/decode, errors, serialization.
#include "sequences/vocabulary.h"

#include <cstdio>
#include <fstream>

#include "gtest/gtest.h"

namespace jumpflow {
namespace {

TEST(VocabularyTest, SpecialsHaveFixedIds) {
  auto v = Vocabulary::FromCharacters("cab");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->size(), Vocabulary::kNumSpecials + 3);
  EXPECT_EQ(*v->Id("<mask>"), Vocabulary::kMask);
  EXPECT_EQ(*v->Id("<bos>"), Vocabulary::kBos);
  EXPECT_EQ(*v->Id("<eos>"), Vocabulary::kEos);
  EXPECT_EQ(*v->Id("<pad>"), Vocabulary::kPad);
  EXPECT_EQ(*v->Id("<eps>"), Vocabulary::kEps);
  // Characters are sorted and follow the specials.
  EXPECT_EQ(*v->Id("a"), Vocabulary::kNumSpecials);
  EXPECT_EQ(*v->Id("c"), Vocabulary::kNumSpecials + 2);
}

TEST(VocabularyTest, EncodeDecodeRoundTrip) {
  auto v = Vocabulary::FromCharacters("abcdefghijklmnopqrstuvwxyz");
  ASSERT_TRUE(v.ok());
  auto ids = v->Encode("jumpflow");
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_EQ(ids->size(), 8u);
  EXPECT_EQ(v->Decode(*ids), "jumpflow");
}

TEST(VocabularyTest, Utf8CodePointsAreSymbols) {
  auto v = Vocabulary::FromCharacters("caf\xc3\xa9");  // "café"
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->size(), Vocabulary::kNumSpecials + 4);
  auto ids = v->Encode(
      "\xc3\xa9"
      "a");
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(ids->size(), 2u);
  EXPECT_EQ(v->Decode(*ids),
            "\xc3\xa9"
            "a");
  EXPECT_FALSE(Vocabulary::FromCharacters("a\xff").ok());
}

TEST(VocabularyTest, UnknownSymbolIsAnErrorNamingIt) {
  auto v = Vocabulary::FromCharacters("ab");
  auto ids = v->Encode("abz");
  ASSERT_FALSE(ids.ok());
  EXPECT_NE(ids.status().message().find("'z'"), absl::string_view::npos) << ids.status();
  EXPECT_NE(ids.status().message().find("offset 2"), absl::string_view::npos) << ids.status();
}

// Control characters and invalid UTF-8 reach error messages escaped, and
// long texts cut (on a code point boundary) with "..." after the quote.
TEST(VocabularyTest, QuoteTextEscapesAndCuts) {
  EXPECT_EQ(QuoteText("abc"), "'abc'");
  EXPECT_EQ(QuoteText("a\x1b[0m\n"), "'a\\x1b[0m\\n'");
  EXPECT_EQ(QuoteText("\xff\xfe"), "'\\xff\\xfe'");
  EXPECT_EQ(QuoteText("caf\xc3\xa9"), "'caf\xc3\xa9'");  // valid UTF-8 stays as it is
  EXPECT_EQ(QuoteText(std::string(50, 'x')), "'" + std::string(40, 'x') + "'...");
  std::string accents;
  for (int i = 0; i < 30; ++i) accents += "\xc3\xa9";  // 60 bytes
  std::string first20;
  for (int i = 0; i < 20; ++i) first20 += "\xc3\xa9";
  EXPECT_EQ(QuoteText(accents, 41), "'" + first20 + "'...");  // not cut inside a code point
  auto v = Vocabulary::FromCharacters("ab");
  auto ids = v->Encode("ab\x07");
  ASSERT_FALSE(ids.ok());
  EXPECT_NE(ids.status().message().find("'\\x07'"), absl::string_view::npos) << ids.status();
}

TEST(VocabularyTest, TokenVocabularySplitsOnWhitespace) {
  auto v = Vocabulary::FromSymbols({"the", "cat", "sat"}, Vocabulary::Kind::kToken);
  ASSERT_TRUE(v.ok());
  auto ids = v->Encode("  the cat\tsat ");
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(ids->size(), 3u);
  EXPECT_EQ(v->Decode(*ids), "the cat sat");
  EXPECT_FALSE(v->Encode("the dog").ok());
}

TEST(VocabularyTest, RejectsBadSymbolLists) {
  EXPECT_FALSE(Vocabulary::FromSymbols({}, Vocabulary::Kind::kToken).ok());
  EXPECT_FALSE(Vocabulary::FromSymbols({"a", "a"}, Vocabulary::Kind::kToken).ok());
  EXPECT_FALSE(Vocabulary::FromSymbols({"<mask>"}, Vocabulary::Kind::kToken).ok());
  EXPECT_FALSE(Vocabulary::FromSymbols({"ab"}, Vocabulary::Kind::kCharacter).ok());
  EXPECT_FALSE(Vocabulary::FromSymbols({"a b"}, Vocabulary::Kind::kToken).ok());
  EXPECT_FALSE(Vocabulary::FromSymbols({""}, Vocabulary::Kind::kToken).ok());
  EXPECT_FALSE(Vocabulary::FromCharacters("\n\n").ok());
}

TEST(VocabularyTest, SerializeParseRoundTrip) {
  for (auto v : {*Vocabulary::FromCharacters("xyz\xc3\xa9"),
                 *Vocabulary::FromSymbols({"A", "C", "G", "T"}, Vocabulary::Kind::kToken)}) {
    auto back = Vocabulary::Parse(v.Serialize());
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_TRUE(*back == v);
  }
  EXPECT_FALSE(Vocabulary::Parse("").ok());
  EXPECT_FALSE(Vocabulary::Parse("bogus\na\n").ok());
}

TEST(VocabularyTest, TokenFileErrorsNameTheLine) {
  const std::string path = testing::TempDir() + "/vocab_dup.txt";
  std::ofstream(path) << "a\nb\n\na\n";
  auto v = Vocabulary::FromTokenFile(path);
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.status().message().find(":4:"), absl::string_view::npos) << v.status();
  EXPECT_FALSE(Vocabulary::FromTokenFile(testing::TempDir() + "/missing_vocab.txt").ok());
  std::remove(path.c_str());
}

}  // namespace
}  // namespace jumpflow
