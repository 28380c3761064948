// @brief Alignments of two sequences over V u {eps}, and their edit lists.
//
// An alignment of x0 (length n) and x1 (length m) is a pair (z0, z1) of equal
// length over the vocabulary plus Vocabulary::kEps such that removing eps
// from z0 gives x0 and from z1 gives x1, and no column is eps in both. A
// column (a, eps) is a deletion, (eps, b) an insertion, (a, b) with a != b a
// substitution, (a, a) a match.
//
// Example:
//   JUMPFLOW_ASSIGN_OR_RETURN(Alignment al, MinEditAlignment(x0, x1, {}, /*seed=*/7));
//   std::vector<Edit> edits = AlignmentToEdits(al);
//   // ApplyEdits(x0, edits) == x1
#ifndef JUMPFLOW_SEQUENCES_ALIGNMENT_H_
#define JUMPFLOW_SEQUENCES_ALIGNMENT_H_

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "sequences/edits.h"
#include "sequences/vocabulary.h"

namespace jumpflow {

// Alignment holds the two aligned rows; z0.size() == z1.size().
struct Alignment {
  std::vector<Token> z0;
  std::vector<Token> z1;
};

// AlignmentCosts are the per-column costs of the minimum-edit alignment; a
// match costs 0. All must be finite and >= 0.
struct AlignmentCosts {
  double insert = 1.0;
  double del = 1.0;
  double substitute = 1.0;
};

// MinEditAlignment returns an alignment of minimum total cost (Levenshtein
// distance for unit costs), O(n m) time and O(n m) bytes. Among optimal
// alignments the choice is reproducible: each tie in the traceback is broken
// by a Philox draw keyed by (seed, cell). Errors: negative or non-finite
// costs, eps tokens in the inputs, or (n+1)(m+1) above 2^28 cells.
absl::StatusOr<Alignment> MinEditAlignment(std::span<const Token> x0, std::span<const Token> x1,
                                           const AlignmentCosts& costs, uint64_t seed);

// RandomAlignment returns a random valid alignment: a walk over the edit
// lattice from (0, 0) to (n, m) that takes each available move (diagonal,
// deletion, insertion) with equal probability. It is not uniform over all
// alignments; it is cheap (O(n + m)) and reproducible from `seed`.
absl::StatusOr<Alignment> RandomAlignment(std::span<const Token> x0, std::span<const Token> x1,
                                          uint64_t seed);

// AlignmentCost is the total cost of `alignment` under `costs`.
double AlignmentCost(const Alignment& alignment, const AlignmentCosts& costs);

// ValidateAlignment checks that `alignment` is a valid alignment of x0 and x1.
absl::Status ValidateAlignment(const Alignment& alignment, std::span<const Token> x0,
                               std::span<const Token> x1);

// AlignmentToEdits returns the edits that turn x0 (= z0 without eps) into x1
// (= z1 without eps) under ApplyEdits' simultaneous semantics: deletions for
// (a, eps), substitutions for (a, b != a), insertions into the gap that
// follows the x0 tokens seen so far, in column order.
std::vector<Edit> AlignmentToEdits(const Alignment& alignment);

// Strip returns z without eps tokens.
std::vector<Token> Strip(std::span<const Token> z);

}  // namespace jumpflow

#endif  // JUMPFLOW_SEQUENCES_ALIGNMENT_H_
