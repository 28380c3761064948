// @brief Tests of sequences/file_util.h: atomic writes, the up-front
// writability check, and their errors.
#include "sequences/file_util.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

namespace jumpflow {
namespace {

// FreshDir returns an empty directory under the test's temporary directory.
std::filesystem::path FreshDir(const std::string& name) {
  const std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

size_t EntriesIn(const std::filesystem::path& dir) {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) ++n;
  return n;
}

TEST(FileUtilTest, WriteFileAtomicallyReplacesTheFileAndLeavesNothingElse) {
  const std::filesystem::path dir = FreshDir("atomic");
  const std::string path = (dir / "a.txt").string();
  ASSERT_TRUE(WriteFileAtomically(path, "first").ok());
  ASSERT_TRUE(WriteFileAtomically(path, "second\n").ok());
  EXPECT_EQ(*ReadFile(path), "second\n");
  EXPECT_EQ(EntriesIn(dir), 1u);
}

TEST(FileUtilTest, CheckWritableLeavesNoTraceAndKeepsAnExistingFile) {
  const std::filesystem::path dir = FreshDir("writable");
  const std::string path = (dir / "out.txt").string();
  ASSERT_TRUE(CheckWritable(path).ok());
  EXPECT_EQ(EntriesIn(dir), 0u);
  ASSERT_TRUE(WriteFileAtomically(path, "keep").ok());
  ASSERT_TRUE(CheckWritable(path).ok());
  EXPECT_EQ(*ReadFile(path), "keep");
  EXPECT_EQ(EntriesIn(dir), 1u);
}

TEST(FileUtilTest, UnwritablePathsAreErrorsNamingThem) {
  const std::filesystem::path dir = FreshDir("unwritable");
  const std::string missing = (dir / "missing" / "out.txt").string();
  for (const absl::Status& s : {CheckWritable(missing), WriteFileAtomically(missing, "x")}) {
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message().find(missing + ": cannot create temporary file"), absl::string_view::npos)
        << s;
  }
  for (const absl::Status& s :
       {CheckWritable(dir.string()), WriteFileAtomically(dir.string(), "x")}) {
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
    EXPECT_NE(s.message().find(dir.string() + ": is a directory"), absl::string_view::npos) << s;
  }
  EXPECT_EQ(CheckWritable("").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EntriesIn(dir), 0u);
  EXPECT_FALSE(ReadFile(missing).ok());
}

}  // namespace
}  // namespace jumpflow
