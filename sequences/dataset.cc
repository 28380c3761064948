// @brief Dataset loaders, shuffling, splitting and batching.
#include "sequences/dataset.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <numeric>
#include <optional>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "jumpflow/status_macros.h"
#include "kernels/philox.h"

namespace jumpflow {
namespace detail {

// DatasetBuilder applies the options' filters while a loader adds sequences.
class DatasetBuilder {
 public:
  DatasetBuilder(const std::string& path, const Vocabulary& vocab, const DatasetOptions& options)
      : path_(path), vocab_(vocab), options_(options) {}

  // Encode returns the ids of `text` found at `line_no`, or nullopt when it
  // is filtered out (unknown symbols with skip_unknown, or length).
  absl::StatusOr<std::optional<std::vector<Token>>> Encode(int64_t line_no,
                                                           absl::string_view text) {
    auto ids = vocab_.Encode(text);
    if (!ids.ok()) {
      if (options_.skip_unknown) {
        ++dropped_unknown_;
        return std::nullopt;
      }
      return absl::InvalidArgumentError(
          absl::StrCat(path_, ":", line_no, ": ", ids.status().message()));
    }
    const auto len = static_cast<int64_t>(ids->size());
    if (len < options_.min_length || len > options_.max_length) {
      ++dropped_by_length_;
      return std::nullopt;
    }
    return std::optional<std::vector<Token>>(*std::move(ids));
  }

  // Add encodes and keeps `text` if it passes the filters.
  absl::Status Add(int64_t line_no, absl::string_view text) {
    JUMPFLOW_ASSIGN_OR_RETURN(auto ids, Encode(line_no, text));
    if (!ids) return absl::OkStatus();
    if (options_.deduplicate && !seen_.insert(*ids).second) return absl::OkStatus();
    sequences_.push_back(*std::move(ids));
    return absl::OkStatus();
  }

  absl::Status CheckNonEmpty(int64_t kept) const {
    if (kept > 0) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": no sequences left after filters (", dropped_by_length_,
                     " dropped by length, ", dropped_unknown_, " with unknown symbols)"));
  }

  absl::StatusOr<Dataset> Finish() && {
    JUMPFLOW_RETURN_IF_ERROR(CheckNonEmpty(static_cast<int64_t>(sequences_.size())));
    JUMPFLOW_ASSIGN_OR_RETURN(Dataset d, Dataset::FromSequences(vocab_, std::move(sequences_)));
    d.dropped_by_length_ = dropped_by_length_;
    d.dropped_unknown_ = dropped_unknown_;
    return d;
  }

 private:
  const std::string& path_;
  const Vocabulary& vocab_;
  const DatasetOptions& options_;
  std::vector<std::vector<Token>> sequences_;
  absl::flat_hash_set<std::vector<Token>> seen_;
  int64_t dropped_by_length_ = 0;
  int64_t dropped_unknown_ = 0;
};

}  // namespace detail

namespace {

// ForEachLine calls fn(line_number, line) for every line of `path` (without
// the trailing newline or carriage return). Errors: missing file, empty file,
// a line over `max_line_bytes`.
absl::Status ForEachLine(const std::string& path, int64_t max_line_bytes,
                         const std::function<absl::Status(int64_t, absl::string_view)>& fn) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open file"));
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (static_cast<int64_t>(line.size()) > max_line_bytes) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":", line_no, ": line has ",
                                                     line.size(), " bytes, over the limit of ",
                                                     max_line_bytes));
    }
    JUMPFLOW_RETURN_IF_ERROR(fn(line_no, line));
  }
  if (in.bad()) return absl::DataLossError(absl::StrCat(path, ": read error"));
  if (line_no == 0) return absl::InvalidArgumentError(absl::StrCat(path, ": file is empty"));
  return absl::OkStatus();
}

absl::Status CheckOptions(const DatasetOptions& o) {
  if (o.min_length < 0 || o.max_length < o.min_length || o.max_line_bytes <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("bad dataset options: min_length=",
                                                   o.min_length, " max_length=", o.max_length,
                                                   " max_line_bytes=", o.max_line_bytes));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Dataset> Dataset::FromSequences(Vocabulary vocab,
                                               std::vector<std::vector<Token>> sequences,
                                               std::vector<double> weights) {
  if (!weights.empty() && weights.size() != sequences.size()) {
    return absl::InvalidArgumentError(absl::StrCat("got ", weights.size(), " weights for ",
                                                   sequences.size(), " sequences"));
  }
  for (size_t i = 0; i < sequences.size(); ++i) {
    for (Token t : sequences[i]) {
      if (!vocab.Contains(t)) {
        return absl::InvalidArgumentError(
            absl::StrCat("sequence ", i, " has token ", t, " outside the vocabulary"));
      }
    }
  }
  for (size_t i = 0; i < weights.size(); ++i) {
    if (!std::isfinite(weights[i]) || weights[i] <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("weight ", i, " is ", weights[i], "; weights must be finite and > 0"));
    }
  }
  if (weights.empty()) weights.assign(sequences.size(), 1.0);
  Dataset d;
  d.vocab_ = std::move(vocab);
  d.sequences_ = std::move(sequences);
  d.weights_ = std::move(weights);
  return d;
}

absl::StatusOr<Dataset> Dataset::LoadLines(const std::string& path, const Vocabulary& vocab,
                                           const DatasetOptions& options) {
  JUMPFLOW_RETURN_IF_ERROR(CheckOptions(options));
  detail::DatasetBuilder builder(path, vocab, options);
  JUMPFLOW_RETURN_IF_ERROR(
      ForEachLine(path, options.max_line_bytes, [&](int64_t line_no, absl::string_view line) {
        line = absl::StripAsciiWhitespace(line);
        return line.empty() ? absl::OkStatus() : builder.Add(line_no, line);
      }));
  return std::move(builder).Finish();
}

absl::StatusOr<Dataset> Dataset::LoadTokens(const std::string& path, const Vocabulary& vocab,
                                            const DatasetOptions& options) {
  if (vocab.kind() != Vocabulary::Kind::kToken) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": token files need a token vocabulary (--vocab FILE)"));
  }
  return LoadLines(path, vocab, options);
}

absl::StatusOr<Dataset> Dataset::LoadFasta(const std::string& path, const Vocabulary& vocab,
                                           const DatasetOptions& options) {
  JUMPFLOW_RETURN_IF_ERROR(CheckOptions(options));
  detail::DatasetBuilder builder(path, vocab, options);
  std::string record;
  int64_t record_line = 0;
  bool in_record = false;
  auto flush = [&]() -> absl::Status {
    if (!in_record) return absl::OkStatus();
    if (record.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", record_line, ": FASTA record has no sequence"));
    }
    absl::Status s = builder.Add(record_line, record);
    record.clear();
    return s;
  };
  JUMPFLOW_RETURN_IF_ERROR(
      ForEachLine(path, options.max_line_bytes, [&](int64_t line_no, absl::string_view line) {
        line = absl::StripAsciiWhitespace(line);
        if (line.empty() || line[0] == ';') return absl::OkStatus();
        if (line[0] == '>') {
          JUMPFLOW_RETURN_IF_ERROR(flush());
          in_record = true;
          record_line = line_no;
          return absl::OkStatus();
        }
        if (!in_record) {
          return absl::InvalidArgumentError(
              absl::StrCat(path, ":", line_no, ": sequence data before the first '>' header"));
        }
        if (static_cast<int64_t>(record.size() + line.size()) > options.max_line_bytes) {
          return absl::InvalidArgumentError(absl::StrCat(
              path, ":", record_line, ": FASTA record over ", options.max_line_bytes, " bytes"));
        }
        record.append(line.data(), line.size());
        return absl::OkStatus();
      }));
  JUMPFLOW_RETURN_IF_ERROR(flush());
  return std::move(builder).Finish();
}

absl::StatusOr<std::vector<SequencePair>> LoadPairs(const std::string& path,
                                                    const Vocabulary& vocab,
                                                    const DatasetOptions& options) {
  JUMPFLOW_RETURN_IF_ERROR(CheckOptions(options));
  detail::DatasetBuilder builder(path, vocab, options);
  std::vector<SequencePair> pairs;
  JUMPFLOW_RETURN_IF_ERROR(
      ForEachLine(path, options.max_line_bytes, [&](int64_t line_no, absl::string_view line) {
        if (absl::StripAsciiWhitespace(line).empty()) return absl::OkStatus();
        const size_t tab = line.find('\t');
        if (tab == absl::string_view::npos || line.find('\t', tab + 1) != absl::string_view::npos) {
          return absl::InvalidArgumentError(absl::StrCat(
              path, ":", line_no, ": expected exactly one TAB between source and target"));
        }
        JUMPFLOW_ASSIGN_OR_RETURN(
            auto x0, builder.Encode(line_no, absl::StripAsciiWhitespace(line.substr(0, tab))));
        JUMPFLOW_ASSIGN_OR_RETURN(
            auto x1, builder.Encode(line_no, absl::StripAsciiWhitespace(line.substr(tab + 1))));
        if (x0 && x1) pairs.push_back({*std::move(x0), *std::move(x1)});
        return absl::OkStatus();
      }));
  JUMPFLOW_RETURN_IF_ERROR(builder.CheckNonEmpty(static_cast<int64_t>(pairs.size())));
  return pairs;
}

std::vector<int64_t> ShuffledIndices(int64_t n, uint64_t seed, uint32_t stream) {
  std::vector<int64_t> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), int64_t{0});
  PhiloxStream rng(seed, stream, kPurposeShuffle);
  for (int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(rng.NextU64() % static_cast<uint64_t>(i + 1));
    std::swap(idx[static_cast<size_t>(i)], idx[static_cast<size_t>(j)]);
  }
  return idx;
}

int64_t Dataset::max_length() const {
  size_t m = 0;
  for (const auto& s : sequences_) m = std::max(m, s.size());
  return static_cast<int64_t>(m);
}

Dataset Dataset::Subset(std::span<const int64_t> indices) const {
  Dataset d;
  d.vocab_ = vocab_;
  d.sequences_.reserve(indices.size());
  d.weights_.reserve(indices.size());
  for (int64_t i : indices) {
    d.sequences_.push_back(sequences_[static_cast<size_t>(i)]);
    d.weights_.push_back(weights_[static_cast<size_t>(i)]);
  }
  return d;
}

Dataset Dataset::Shuffled(uint64_t seed) const { return Subset(ShuffledIndices(size(), seed)); }

std::pair<Dataset, Dataset> Dataset::Split(double fraction, uint64_t seed) const {
  const double f = std::clamp(fraction, 0.0, 1.0);
  const auto num_second = static_cast<int64_t>(std::llround(f * static_cast<double>(size())));
  std::vector<int64_t> perm = ShuffledIndices(size(), seed, 0x5EED);
  std::vector<bool> in_second(static_cast<size_t>(size()), false);
  for (int64_t k = 0; k < num_second; ++k) in_second[static_cast<size_t>(perm[k])] = true;
  std::vector<int64_t> first, second;
  for (int64_t i = 0; i < size(); ++i) {
    (in_second[static_cast<size_t>(i)] ? second : first).push_back(i);
  }
  return {Subset(first), Subset(second)};
}

std::vector<SequenceBatch> Dataset::Batches(int64_t batch_size, uint64_t seed,
                                            uint64_t epoch) const {
  std::vector<SequenceBatch> batches;
  if (batch_size <= 0) return batches;
  const std::vector<int64_t> perm =
      ShuffledIndices(size(), seed, static_cast<uint32_t>(epoch) ^ 0xBA7C0000u);
  for (int64_t start = 0; start < size(); start += batch_size) {
    const int64_t end = std::min(size(), start + batch_size);
    std::vector<std::vector<Token>> seqs;
    seqs.reserve(static_cast<size_t>(end - start));
    for (int64_t k = start; k < end; ++k) seqs.push_back(sequences_[static_cast<size_t>(perm[k])]);
    batches.push_back(*SequenceBatch::FromVectors(seqs, vocab_.size()));
  }
  return batches;
}

}  // namespace jumpflow
