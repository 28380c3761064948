// @brief SequenceBatch implementation.
#include "sequences/sequence_batch.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "jumpflow/status_macros.h"

namespace jumpflow {

absl::StatusOr<SequenceBatch> SequenceBatch::FromVectors(
    const std::vector<std::vector<Token>>& sequences, int32_t vocab_size,
    std::span<const double> times) {
  if (!times.empty() && times.size() != sequences.size()) {
    return absl::InvalidArgumentError(absl::StrCat("got ", times.size(), " times for ",
                                                   sequences.size(), " sequences"));
  }
  std::vector<int64_t> offsets(sequences.size() + 1, 0);
  for (size_t b = 0; b < sequences.size(); ++b) {
    offsets[b + 1] = offsets[b] + static_cast<int64_t>(sequences[b].size());
  }
  std::vector<Token> tokens;
  tokens.reserve(static_cast<size_t>(offsets.back()));
  for (const auto& s : sequences) tokens.insert(tokens.end(), s.begin(), s.end());
  std::vector<double> t(times.begin(), times.end());
  if (t.empty()) t.assign(sequences.size(), 0.0);
  return FromParts(std::move(tokens), std::move(offsets), std::move(t), vocab_size);
}

absl::StatusOr<SequenceBatch> SequenceBatch::FromParts(std::vector<Token> tokens,
                                                       std::vector<int64_t> offsets,
                                                       std::vector<double> times,
                                                       int32_t vocab_size) {
  SequenceBatch batch;
  batch.tokens_ = std::move(tokens);
  batch.offsets_ = std::move(offsets);
  batch.times_ = std::move(times);
  JUMPFLOW_RETURN_IF_ERROR(batch.Validate(vocab_size));
  return batch;
}

absl::Status SequenceBatch::Validate(int32_t vocab_size) const {
  if (offsets_.empty() || offsets_[0] != 0) {
    return absl::InvalidArgumentError("offsets must start with 0");
  }
  for (size_t b = 1; b < offsets_.size(); ++b) {
    if (offsets_[b] < offsets_[b - 1]) {
      return absl::InvalidArgumentError(absl::StrCat("offsets decrease at sequence ", b - 1, ": ",
                                                     offsets_[b - 1], " > ", offsets_[b]));
    }
  }
  if (offsets_.back() != static_cast<int64_t>(tokens_.size())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "last offset ", offsets_.back(), " differs from the token count ", tokens_.size()));
  }
  if (times_.size() + 1 != offsets_.size()) {
    return absl::InvalidArgumentError(absl::StrCat("got ", times_.size(), " times for ",
                                                   offsets_.size() - 1, " sequences"));
  }
  for (size_t b = 0; b < times_.size(); ++b) {
    if (!(times_[b] >= 0.0 && times_[b] <= 1.0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("time of sequence ", b, " is ", times_[b], ", outside [0, 1]"));
    }
  }
  for (size_t r = 0; r < tokens_.size(); ++r) {
    if (tokens_[r] < 0 || tokens_[r] >= vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("token ", r, " has id ", tokens_[r],
                                                     ", outside the vocabulary [0, ", vocab_size,
                                                     ")"));
    }
  }
  return absl::OkStatus();
}

int64_t SequenceBatch::max_length() const {
  int64_t m = 0;
  for (int64_t b = 0; b < num_sequences(); ++b) m = std::max(m, length(b));
  return m;
}

std::vector<std::vector<Token>> SequenceBatch::ToVectors() const {
  std::vector<std::vector<Token>> out(static_cast<size_t>(num_sequences()));
  for (int64_t b = 0; b < num_sequences(); ++b) {
    auto s = sequence(b);
    out[static_cast<size_t>(b)].assign(s.begin(), s.end());
  }
  return out;
}

}  // namespace jumpflow
