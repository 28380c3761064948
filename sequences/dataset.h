// @brief Datasets of token sequences: text lines, FASTA, token files, pairs.
//
// A Dataset owns sequences encoded with one Vocabulary plus an optional weight
// per sequence (1 by default). Loaders report bad input as an absl::Status
// naming the file and line: a missing or empty file, a line over the byte
// limit, an unknown symbol (unless `skip_unknown`). Length filters drop
// sequences silently and count them.
//
// Example:
//   JUMPFLOW_ASSIGN_OR_RETURN(Vocabulary vocab,
//                             Vocabulary::FromCharacters("abcdefghijklmnopqrstuvwxyz"));
//   DatasetOptions opt;
//   opt.max_length = 12;
//   opt.skip_unknown = true;  // keep only words spelled in a-z
//   JUMPFLOW_ASSIGN_OR_RETURN(Dataset words,
//                             Dataset::LoadLines("/usr/share/dict/words", vocab, opt));
//   auto [train, held_out] = words.Split(0.05, /*seed=*/1);
//   for (const SequenceBatch& batch : train.Batches(64, /*seed=*/1, /*epoch=*/0)) { ... }
#ifndef JUMPFLOW_SEQUENCES_DATASET_H_
#define JUMPFLOW_SEQUENCES_DATASET_H_

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "sequences/sequence_batch.h"
#include "sequences/vocabulary.h"

namespace jumpflow {
namespace detail {
class DatasetBuilder;
}  // namespace detail

// DatasetOptions control the loaders.
struct DatasetOptions {
  // Sequences shorter than min_length or longer than max_length (in tokens)
  // are dropped and counted in Dataset::dropped_by_length().
  int64_t min_length = 1;
  int64_t max_length = 1 << 20;
  // A line (or FASTA record) longer than this many bytes is an error.
  int64_t max_line_bytes = 1 << 20;
  // When true, lines with symbols outside the vocabulary are dropped and
  // counted; when false (default) they are an error naming file and line.
  bool skip_unknown = false;
  // When true, keeps only the first occurrence of each distinct sequence.
  bool deduplicate = false;
};

// Dataset is an immutable list of encoded sequences with weights.
class Dataset {
 public:
  Dataset() = default;

  // FromSequences wraps already encoded sequences (weights empty = all 1).
  // Fails when a token is outside the vocabulary or a weight is not finite
  // and > 0.
  static absl::StatusOr<Dataset> FromSequences(Vocabulary vocab,
                                               std::vector<std::vector<Token>> sequences,
                                               std::vector<double> weights = {});

  // LoadLines reads one sequence per line (text encoded with `vocab`;
  // surrounding whitespace and blank lines are skipped).
  static absl::StatusOr<Dataset> LoadLines(const std::string& path, const Vocabulary& vocab,
                                           const DatasetOptions& options = {});

  // LoadFasta reads a FASTA file: records start with '>' and their sequence
  // lines are concatenated. Empty records are an error.
  static absl::StatusOr<Dataset> LoadFasta(const std::string& path, const Vocabulary& vocab,
                                           const DatasetOptions& options = {});

  // LoadTokens reads one sequence per line of whitespace-separated tokens
  // (requires a kToken vocabulary).
  static absl::StatusOr<Dataset> LoadTokens(const std::string& path, const Vocabulary& vocab,
                                            const DatasetOptions& options = {});

  const Vocabulary& vocab() const { return vocab_; }
  int64_t size() const { return static_cast<int64_t>(sequences_.size()); }
  std::span<const Token> sequence(int64_t i) const { return sequences_[static_cast<size_t>(i)]; }
  double weight(int64_t i) const { return weights_[static_cast<size_t>(i)]; }
  const std::vector<std::vector<Token>>& sequences() const { return sequences_; }
  const std::vector<double>& weights() const { return weights_; }
  int64_t dropped_by_length() const { return dropped_by_length_; }
  int64_t dropped_unknown() const { return dropped_unknown_; }
  int64_t max_length() const;

  // Shuffled returns a copy in a random order that depends only on `seed`.
  Dataset Shuffled(uint64_t seed) const;

  // Split returns (first, second) where `second` holds round(fraction *
  // size()) sequences chosen at random from `seed`; order is preserved.
  std::pair<Dataset, Dataset> Split(double fraction, uint64_t seed) const;

  // Batches returns the dataset shuffled for (seed, epoch) and cut into
  // batches of `batch_size` sequences (the last may be smaller), times 0.
  std::vector<SequenceBatch> Batches(int64_t batch_size, uint64_t seed, uint64_t epoch) const;

  // Subset returns the sequences at `indices`, in that order.
  Dataset Subset(std::span<const int64_t> indices) const;

 private:
  friend class detail::DatasetBuilder;

  Vocabulary vocab_ = *Vocabulary::FromSymbols({"?"}, Vocabulary::Kind::kCharacter);
  std::vector<std::vector<Token>> sequences_;
  std::vector<double> weights_;
  int64_t dropped_by_length_ = 0;
  int64_t dropped_unknown_ = 0;
};

// SequencePair is a source / target pair for editing tasks.
struct SequencePair {
  std::vector<Token> x0;
  std::vector<Token> x1;
};

// LoadPairs reads "source<TAB>target" lines (character or token text). Each
// side is subject to the length limits (an empty source is allowed when
// min_length is 0). Errors name file and line.
absl::StatusOr<std::vector<SequencePair>> LoadPairs(const std::string& path,
                                                    const Vocabulary& vocab,
                                                    const DatasetOptions& options = {});

// ShuffledIndices returns a permutation of [0, n) that depends only on
// (seed, stream) (Fisher-Yates over a Philox stream).
std::vector<int64_t> ShuffledIndices(int64_t n, uint64_t seed, uint32_t stream = 0);

}  // namespace jumpflow

#endif  // JUMPFLOW_SEQUENCES_DATASET_H_
