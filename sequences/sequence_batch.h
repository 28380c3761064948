// @brief SequenceBatch: a ragged batch of token sequences, each with its time.
//
// Layout (stated once for the whole library): a batch of B sequences stores
// all tokens back to back in `tokens` (int32, size offsets[B]); sequence b is
// tokens[offsets[b] .. offsets[b+1]), `offsets` has B+1 nondecreasing entries
// starting at 0. Token row r of any per-token array (logits, targets) is
// tokens[r]. Gap rows (insertion slots) number length(b) + 1 per sequence;
// gap j of sequence b is gap row offsets[b] + b + j. Each sequence carries its
// own time t in [0, 1].
//
// Example:
//   JUMPFLOW_ASSIGN_OR_RETURN(SequenceBatch batch,
//                             SequenceBatch::FromVectors({{5, 6}, {7}}, vocab.size()));
//   std::span<const Token> first = batch.sequence(0);  // {5, 6}
#ifndef JUMPFLOW_SEQUENCES_SEQUENCE_BATCH_H_
#define JUMPFLOW_SEQUENCES_SEQUENCE_BATCH_H_

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "sequences/vocabulary.h"

namespace jumpflow {

// SequenceBatch owns a ragged batch; see the file comment for the layout.
class SequenceBatch {
 public:
  // An empty batch (no sequences).
  SequenceBatch() : offsets_{0} {}

  // FromVectors copies `sequences` into one batch. `times` is empty (all 0)
  // or has one entry per sequence. Validates tokens against `vocab_size`.
  static absl::StatusOr<SequenceBatch> FromVectors(const std::vector<std::vector<Token>>& sequences,
                                                   int32_t vocab_size,
                                                   std::span<const double> times = {});

  // FromParts takes ownership of the raw arrays and validates them: offsets
  // start at 0, never decrease, end at tokens.size(); tokens in
  // [0, vocab_size); times has one entry per sequence, each in [0, 1].
  static absl::StatusOr<SequenceBatch> FromParts(std::vector<Token> tokens,
                                                 std::vector<int64_t> offsets,
                                                 std::vector<double> times, int32_t vocab_size);

  // Validate checks the invariants FromParts promises (used after in-place
  // mutation).
  absl::Status Validate(int32_t vocab_size) const;

  int64_t num_sequences() const { return static_cast<int64_t>(offsets_.size()) - 1; }
  int64_t num_tokens() const { return offsets_.back(); }
  // num_gaps is the number of insertion slots, num_tokens() + num_sequences().
  int64_t num_gaps() const { return num_tokens() + num_sequences(); }
  int64_t length(int64_t b) const { return offsets_[b + 1] - offsets_[b]; }
  int64_t max_length() const;

  // sequence returns a view of sequence `b` (valid until the batch changes).
  std::span<const Token> sequence(int64_t b) const {
    return {tokens_.data() + offsets_[b], static_cast<size_t>(length(b))};
  }
  std::span<Token> mutable_sequence(int64_t b) {
    return {tokens_.data() + offsets_[b], static_cast<size_t>(length(b))};
  }
  double time(int64_t b) const { return times_[static_cast<size_t>(b)]; }
  void set_time(int64_t b, double t) { times_[static_cast<size_t>(b)] = t; }

  std::span<const Token> tokens() const { return tokens_; }
  std::span<const int64_t> offsets() const { return offsets_; }
  std::span<const double> times() const { return times_; }
  std::span<double> mutable_times() { return times_; }

  // ToVectors copies the batch out as one vector per sequence.
  std::vector<std::vector<Token>> ToVectors() const;

  friend bool operator==(const SequenceBatch& a, const SequenceBatch& b) {
    return a.tokens_ == b.tokens_ && a.offsets_ == b.offsets_ && a.times_ == b.times_;
  }

 private:
  std::vector<Token> tokens_;
  std::vector<int64_t> offsets_;
  std::vector<double> times_;
};

}  // namespace jumpflow

#endif  // JUMPFLOW_SEQUENCES_SEQUENCE_BATCH_H_
