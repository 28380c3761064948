// @brief Edits (insert / delete / substitute) and their simultaneous application.
//
// Semantics: every edit of a list refers to the pre-edit sequence x of length
// n. Insert(j, a) puts token a into gap j (gap j lies before position j, gap n
// after the last token); several insertions into one gap keep their list
// order. Delete(i) removes position i; Substitute(i, a) replaces it. At most
// one Delete or Substitute per position: Delete and Substitute of the same
// position, or two of either, is an error.
//
// Example:
//   std::vector<Edit> edits = {Edit::Insert(0, a), Edit::Delete(2), Edit::Substitute(1, b)};
//   JUMPFLOW_ASSIGN_OR_RETURN(std::vector<Token> y, ApplyEdits(x, edits));
#ifndef JUMPFLOW_SEQUENCES_EDITS_H_
#define JUMPFLOW_SEQUENCES_EDITS_H_

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/philox.h"
#include "sequences/sequence_batch.h"
#include "sequences/vocabulary.h"

namespace jumpflow {

// EditKind names the three edit operations.
enum class EditKind : uint8_t { kInsert = 0, kDelete = 1, kSubstitute = 2 };

// Edit is one operation on a sequence; `index` is a gap for kInsert and a
// position otherwise; `token` is unused (0) for kDelete.
struct Edit {
  EditKind kind = EditKind::kInsert;
  int32_t index = 0;
  Token token = 0;

  static constexpr Edit Insert(int32_t gap, Token token) { return {EditKind::kInsert, gap, token}; }
  static constexpr Edit Delete(int32_t position) { return {EditKind::kDelete, position, 0}; }
  static constexpr Edit Substitute(int32_t position, Token token) {
    return {EditKind::kSubstitute, position, token};
  }
  friend bool operator==(const Edit&, const Edit&) = default;
};

// ToString renders an edit as "ins(j,a)", "del(i)" or "sub(i,a)" with ids,
// or with symbols when `vocab` is given.
std::string ToString(const Edit& edit, const Vocabulary* vocab = nullptr);

// ApplyEdits applies `edits` to `x` simultaneously (see the file comment) and
// returns the edited sequence. Errors: an index out of range, two
// deletions/substitutions of one position.
absl::StatusOr<std::vector<Token>> ApplyEdits(std::span<const Token> x,
                                              std::span<const Edit> edits);

// ApplyEditsBatch applies per-sequence edit lists to a batch in parallel
// (oneTBB over sequences). The edits of sequence b are
// edits[edit_offsets[b] .. edit_offsets[b+1]); `edit_offsets` has
// batch.num_sequences() + 1 nondecreasing entries; inserted and substituted
// tokens must lie in [0, vocab_size). Times are kept. The first
// failing sequence (lowest index) determines the error, which names it.
absl::StatusOr<SequenceBatch> ApplyEditsBatch(const SequenceBatch& batch,
                                              std::span<const Edit> edits,
                                              std::span<const int64_t> edit_offsets,
                                              int32_t vocab_size);

// CorruptSequence applies `count` random single edits to x, one after the
// other: insert, delete or substitute with equal probability (insertion only
// while the sequence has at most one token), positions uniform, new tokens
// uniform over the user tokens [kNumSpecials, vocab_size). The result is at
// edit distance <= count from x; draws come from `rng` only.
std::vector<Token> CorruptSequence(std::span<const Token> x, int count, int32_t vocab_size,
                                   PhiloxStream& rng);

}  // namespace jumpflow

#endif  // JUMPFLOW_SEQUENCES_EDITS_H_
