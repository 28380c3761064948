// @brief Input checks shared by the processes.
#include "jumpflow/processes/detail/checks.h"

#include "absl/strings/str_cat.h"

namespace jumpflow::detail {

absl::Status CheckVocabSize(int32_t vocab_size, int32_t min_size, const char* why) {
  if (vocab_size <= min_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("vocab_size is ", vocab_size, " but must exceed ", min_size, " ", why));
  }
  return absl::OkStatus();
}

absl::Status CheckTokens(const SequenceBatch& batch, const char* name, int32_t vocab_size,
                         bool allow_mask) {
  if (batch.num_sequences() >= (int64_t{1} << 32)) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " has ", batch.num_sequences(), " sequences; at most 2^32 - 1"));
  }
  for (int64_t b = 0; b < batch.num_sequences(); ++b) {
    const auto seq = batch.sequence(b);
    for (size_t i = 0; i < seq.size(); ++i) {
      const Token x = seq[i];
      const char* problem = nullptr;
      if (x < 0 || x >= vocab_size) {
        problem = "outside the vocabulary";
      } else if (x == Vocabulary::kEps) {
        problem = "the eps token, which sequences may not contain";
      } else if (x == Vocabulary::kMask && !allow_mask) {
        problem = "the mask token, which this input may not contain";
      }
      if (problem != nullptr) {
        return absl::InvalidArgumentError(absl::StrCat(name, " sequence ", b, " position ", i,
                                                       " has token id ", x, ": ", problem,
                                                       " (vocab_size ", vocab_size, ")"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace jumpflow::detail
