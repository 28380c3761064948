// @brief Private: input checks shared by the process implementations.
//
// Example:
//   JUMPFLOW_RETURN_IF_ERROR(detail::CheckTokens(x1, "x1", vocab_size, /*allow_mask=*/false));
#ifndef JUMPFLOW_PROCESSES_DETAIL_CHECKS_H_
#define JUMPFLOW_PROCESSES_DETAIL_CHECKS_H_

#include <cstdint>

#include "absl/status/status.h"
#include "sequences/sequence_batch.h"

namespace jumpflow::detail {

// CheckVocabSize fails unless vocab_size > min_size (names both).
absl::Status CheckVocabSize(int32_t vocab_size, int32_t min_size, const char* why);

// CheckTokens fails on the first token of `batch` outside [0, vocab_size),
// equal to Vocabulary::kEps, or (unless allow_mask) equal to kMask; the
// message names `name`, the sequence, the position and the id. Also fails
// when the batch has 2^32 or more sequences (Philox stream ids are 32-bit).
absl::Status CheckTokens(const SequenceBatch& batch, const char* name, int32_t vocab_size,
                         bool allow_mask);

}  // namespace jumpflow::detail

#endif  // JUMPFLOW_PROCESSES_DETAIL_CHECKS_H_
