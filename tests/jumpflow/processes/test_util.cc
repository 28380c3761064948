// @brief Shared helpers for the process tests.
#include "tests/jumpflow/processes/test_util.h"

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "kernels/philox.h"

namespace jumpflow::testing {

std::unique_ptr<Scheduler> Sched(const std::string& spec) {
  auto s = MakeScheduler(spec);
  EXPECT_TRUE(s.ok()) << s.status();
  return std::move(s).value();
}

std::vector<std::vector<Token>> RandomSequences(int64_t n, int64_t min_len, int64_t max_len,
                                                int32_t vocab_size, uint64_t seed) {
  PhiloxStream rng(seed, 0xABCDu, kPurposeUser);
  std::vector<std::vector<Token>> out(static_cast<size_t>(n));
  const uint32_t user = static_cast<uint32_t>(vocab_size - Vocabulary::kNumSpecials);
  for (auto& s : out) {
    const int64_t len = min_len + rng.UniformInt(static_cast<uint32_t>(max_len - min_len + 1));
    s.resize(static_cast<size_t>(len));
    for (Token& x : s) x = Vocabulary::kNumSpecials + static_cast<Token>(rng.UniformInt(user));
  }
  return out;
}

SequenceBatch RandomBatch(int64_t n, int64_t min_len, int64_t max_len, int32_t vocab_size,
                          uint64_t seed) {
  return Batch(RandomSequences(n, min_len, max_len, vocab_size, seed), vocab_size);
}

SequenceBatch Batch(const std::vector<std::vector<Token>>& seqs, int32_t vocab_size) {
  auto b = SequenceBatch::FromVectors(seqs, vocab_size);
  EXPECT_TRUE(b.ok()) << b.status();
  return b.ok() ? std::move(b).value() : SequenceBatch();
}

bool SameBatch(const TrainingBatch& a, const TrainingBatch& b) {
  auto same_rows = [](const SparseRows& p, const SparseRows& q) {
    return p.row_offsets == q.row_offsets && p.cols == q.cols && p.values == q.values;
  };
  return a.process == b.process && a.x_t == b.x_t && a.weights == b.weights &&
         same_rows(a.token_targets, b.token_targets) && a.delete_targets == b.delete_targets &&
         a.split_targets == b.split_targets && same_rows(a.insert_targets, b.insert_targets);
}

std::string CheckCsr(const SparseRows& rows, int64_t num_rows, int32_t vocab_size) {
  if (rows.num_rows() != num_rows) {
    return absl::StrCat("num_rows ", rows.num_rows(), " != ", num_rows);
  }
  if (rows.row_offsets.front() != 0 || rows.row_offsets.back() != rows.num_entries() ||
      rows.values.size() != rows.cols.size()) {
    return "offsets do not span the entries";
  }
  for (int64_t r = 0; r < num_rows; ++r) {
    if (rows.row_offsets[r + 1] < rows.row_offsets[r]) return absl::StrCat("row ", r, " negative");
    for (int64_t k = rows.row_offsets[r]; k < rows.row_offsets[r + 1]; ++k) {
      if (rows.cols[k] < 0 || rows.cols[k] >= vocab_size) {
        return absl::StrCat("row ", r, " col ", rows.cols[k], " outside vocab");
      }
      if (k > rows.row_offsets[r] && rows.cols[k] <= rows.cols[k - 1]) {
        return absl::StrCat("row ", r, " columns not sorted/distinct");
      }
    }
  }
  return "";
}

}  // namespace jumpflow::testing
