// @brief TrainingBatch: the noisy states and sparse conditional targets that
// the processes (DFM, Edit Flows, Branching Flows) produce and the losses
// consume.
//
// Row spaces (see sequences/sequence_batch.h for the ragged layout): token
// rows r in [0, x_t.num_tokens()) are the positions of x_t; gap rows g in
// [0, x_t.num_gaps()) are the insertion slots (gap j of sequence b is row
// x_t.offsets()[b] + b + j). Targets are conditional rate multipliers
// m(x_t | x_1), never multiplied by the hazard: rate = h(t) * m.
//
// Which fields a process fills:
//   DFM:        token_targets (one-hot x_1^i where x_t^i != x_1^i, value 1).
//   Edit Flows: token_targets (substitution one-hots), delete_targets,
//               insert_targets (counts per (gap, token)).
//   Branching:  token_targets (anchor token where x_t^i != anchor),
//               delete_targets (del flag in [0, 1]), split_targets
//               (pending splits W - 1).
// Unused fields are empty.
//
// Example:
//   const TrainingBatch& tb = ...;
//   for (int64_t r = 0; r < tb.token_targets.num_rows(); ++r)
//     for (int64_t k = tb.token_targets.row_offsets[r]; k < tb.token_targets.row_offsets[r + 1];
//     ++k)
//       use(r, tb.token_targets.cols[k], tb.token_targets.values[k]);
#ifndef JUMPFLOW_TRAINING_BATCH_H_
#define JUMPFLOW_TRAINING_BATCH_H_

#include <cstdint>
#include <vector>

#include "sequences/sequence_batch.h"

namespace jumpflow {

// SparseRows is a CSR matrix: row r holds entries
// (cols[k], values[k]) for k in [row_offsets[r], row_offsets[r+1]); columns
// are vocabulary ids, sorted and distinct within a row.
struct SparseRows {
  std::vector<int64_t> row_offsets{0};
  std::vector<int32_t> cols;
  std::vector<float> values;

  int64_t num_rows() const { return static_cast<int64_t>(row_offsets.size()) - 1; }
  int64_t num_entries() const { return static_cast<int64_t>(cols.size()); }
};

// ProcessKind names the three jump processes.
enum class ProcessKind : uint8_t { kDfm = 0, kEdit = 1, kBranching = 2 };

// TrainingBatch is one batch ready for a model: x_t with per-sequence times
// and the sparse targets of its process (see the file comment).
struct TrainingBatch {
  ProcessKind process = ProcessKind::kDfm;
  // Noisy states; x_t.time(b) is the time t of sequence b.
  SequenceBatch x_t;
  // Per-sequence loss weight (w(t), times Z when the time was importance
  // sampled); one entry per sequence.
  std::vector<float> weights;
  // Per token row.
  SparseRows token_targets;
  std::vector<float> delete_targets;
  std::vector<float> split_targets;
  // Per gap row.
  SparseRows insert_targets;
  // Optional per gap row loss factor on top of `weights` (empty: 1). Edit
  // Flows' all-prefix batches (jumpflow/processes/edit_flow.h) put each
  // prefix's probability here.
  std::vector<float> gap_weights;
  // Optional per gap row time (empty: the sequence's time). Edit Flows'
  // all-prefix batches with per-gap times put each gap's own time here; the
  // model must take it (TransformerConfig::time_at_heads).
  std::vector<double> gap_times;
};

}  // namespace jumpflow

#endif  // JUMPFLOW_TRAINING_BATCH_H_
