// @brief Private: parallel, thread-count-independent assembly of a
// TrainingBatch from per-sequence emitters.
//
// The batch is cut into contiguous chunks of sequences; each chunk runs on one
// task with its own arena and scratch, so the hot per-sequence code only
// appends to vectors that stop growing after the first few sequences (no
// allocation per token). Each sequence's output depends only on its own
// Philox streams, and the arenas are concatenated in sequence order, so the
// result is identical for any chunking and thread count.
//
// Example (inside a process .cc):
//   detail::TargetFields fields{.token = true};
//   auto emit = [&](int64_t b, detail::ChunkArena& out, MyScratch& scratch) -> absl::Status {
//     for (...) { out.BeginTokenRow(token); out.AddTokenEntry(col, 1.0f); }
//     return absl::OkStatus();
//   };
//   JUMPFLOW_ASSIGN_OR_RETURN(TrainingBatch tb,
//       detail::BuildBatch<MyScratch>(num_sequences, fields, emit));
#ifndef JUMPFLOW_PROCESSES_DETAIL_BATCH_BUILDER_H_
#define JUMPFLOW_PROCESSES_DETAIL_BATCH_BUILDER_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "jumpflow/training_batch.h"
#include "kernels/philox.h"
#include "sequences/vocabulary.h"

namespace jumpflow::detail {

// Uniform32 returns (k + 0.5) / 2^32 for the next 32 random bits k: a uniform
// in (0, 1) with 2^-32 resolution, twice as cheap as PhiloxStream::Uniform().
// Used for Bernoulli coins u < p, whose probability it gets right to 2^-32.
inline double Uniform32(PhiloxStream& rng) {
  return (static_cast<double>(rng.NextU32()) + 0.5) * 0x1.0p-32;
}

// TargetFields says which per-row arrays a process fills.
struct TargetFields {
  bool token = true;   // token_targets (CSR over token rows)
  bool del = false;    // delete_targets (one per token row)
  bool split = false;  // split_targets (one per token row)
  bool insert = false; // insert_targets (CSR over gap rows)
};

// ChunkArena collects the rows of the sequences of one chunk, in order.
// Per sequence: token rows via BeginTokenRow (+ AddTokenEntry), and, when
// insert targets are on, exactly length + 1 gap rows via BeginGapRow (+
// AddGapEntry). Entries of a row must have sorted, distinct columns.
class ChunkArena {
 public:
  void Clear() {
    tokens_.clear();
    token_row_start_.clear();
    token_cols_.clear();
    token_values_.clear();
    del_.clear();
    split_.clear();
    gap_row_start_.clear();
    gap_cols_.clear();
    gap_values_.clear();
  }
  // BeginTokenRow appends one x_t position with its scalar targets.
  void BeginTokenRow(Token x, float del = 0.0f, float split = 0.0f) {
    tokens_.push_back(x);
    token_row_start_.push_back(static_cast<int64_t>(token_cols_.size()));
    del_.push_back(del);
    split_.push_back(split);
  }
  // AddTokenEntry adds (col, value) to the last token row.
  void AddTokenEntry(int32_t col, float value) {
    token_cols_.push_back(col);
    token_values_.push_back(value);
  }
  // BeginGapRow appends one gap row.
  void BeginGapRow() { gap_row_start_.push_back(static_cast<int64_t>(gap_cols_.size())); }
  // AddGapEntry adds (col, value) to the last gap row.
  void AddGapEntry(int32_t col, float value) {
    gap_cols_.push_back(col);
    gap_values_.push_back(value);
  }
  int64_t num_tokens() const { return static_cast<int64_t>(tokens_.size()); }
  int64_t num_gap_rows() const { return static_cast<int64_t>(gap_row_start_.size()); }

 private:
  template <typename Scratch, typename Emit>
  friend absl::StatusOr<TrainingBatch> BuildBatch(int64_t, const TargetFields&, Emit&&);

  std::vector<Token> tokens_;
  std::vector<int64_t> token_row_start_;
  std::vector<int32_t> token_cols_;
  std::vector<float> token_values_;
  std::vector<float> del_, split_;
  std::vector<int64_t> gap_row_start_;
  std::vector<int32_t> gap_cols_;
  std::vector<float> gap_values_;
};

// BuildBatch runs emit(b, arena, scratch) -> absl::Status for every sequence
// b in [0, num_sequences) (in parallel over chunks, in order within a chunk)
// and concatenates the arenas into a TrainingBatch whose x_t has offsets and
// targets filled (times, weights, vocabulary validation and `process` are the
// caller's). The error of the lowest failing sequence is returned.
template <typename Scratch, typename Emit>
absl::StatusOr<TrainingBatch> BuildBatch(int64_t num_sequences, const TargetFields& fields,
                                         Emit&& emit) {
  const int64_t concurrency = std::max(1, tbb::this_task_arena::max_concurrency());
  const int64_t num_chunks = std::max<int64_t>(1, std::min(num_sequences, 4 * concurrency));
  const int64_t per_chunk = (num_sequences + num_chunks - 1) / std::max<int64_t>(num_chunks, 1);
  std::vector<ChunkArena> arenas(static_cast<size_t>(num_chunks));
  std::vector<absl::Status> errors(static_cast<size_t>(num_chunks));
  std::vector<int64_t> seq_len(static_cast<size_t>(num_sequences), 0);

  tbb::parallel_for(tbb::blocked_range<int64_t>(0, num_chunks, 1),
                    [&](const tbb::blocked_range<int64_t>& range) {
    for (int64_t c = range.begin(); c != range.end(); ++c) {
      Scratch scratch;
      ChunkArena& arena = arenas[c];
      const int64_t lo = c * per_chunk, hi = std::min(num_sequences, lo + per_chunk);
      for (int64_t b = lo; b < hi; ++b) {
        const int64_t before_tokens = arena.num_tokens();
        const int64_t before_gaps = arena.num_gap_rows();
        absl::Status s = emit(b, arena, scratch);
        if (!s.ok()) {
          errors[c] = std::move(s);
          break;
        }
        seq_len[b] = arena.num_tokens() - before_tokens;
        if (fields.insert && arena.num_gap_rows() - before_gaps != seq_len[b] + 1) {
          errors[c] = absl::InternalError("process emitted a wrong number of gap rows");
          break;
        }
      }
    }
  });
  for (const absl::Status& s : errors) {
    if (!s.ok()) return s;
  }

  // Chunk bases: token rows, token entries, gap entries (gap rows = token
  // rows + sequences before the chunk).
  std::vector<int64_t> row_base(num_chunks + 1, 0), tok_entry_base(num_chunks + 1, 0),
      gap_entry_base(num_chunks + 1, 0);
  for (int64_t c = 0; c < num_chunks; ++c) {
    row_base[c + 1] = row_base[c] + arenas[c].num_tokens();
    tok_entry_base[c + 1] = tok_entry_base[c] + static_cast<int64_t>(arenas[c].token_cols_.size());
    gap_entry_base[c + 1] = gap_entry_base[c] + static_cast<int64_t>(arenas[c].gap_cols_.size());
  }
  const int64_t total_tokens = row_base[num_chunks];
  std::vector<int64_t> offsets(static_cast<size_t>(num_sequences) + 1, 0);
  for (int64_t b = 0; b < num_sequences; ++b) offsets[b + 1] = offsets[b] + seq_len[b];

  std::vector<Token> tokens(static_cast<size_t>(total_tokens));
  TrainingBatch tb;
  if (fields.token) {
    tb.token_targets.row_offsets.assign(static_cast<size_t>(total_tokens) + 1, 0);
    tb.token_targets.cols.resize(static_cast<size_t>(tok_entry_base[num_chunks]));
    tb.token_targets.values.resize(static_cast<size_t>(tok_entry_base[num_chunks]));
    tb.token_targets.row_offsets[total_tokens] = tok_entry_base[num_chunks];
  }
  if (fields.del) tb.delete_targets.resize(static_cast<size_t>(total_tokens));
  if (fields.split) tb.split_targets.resize(static_cast<size_t>(total_tokens));
  const int64_t total_gaps = total_tokens + num_sequences;
  if (fields.insert) {
    tb.insert_targets.row_offsets.assign(static_cast<size_t>(total_gaps) + 1, 0);
    tb.insert_targets.cols.resize(static_cast<size_t>(gap_entry_base[num_chunks]));
    tb.insert_targets.values.resize(static_cast<size_t>(gap_entry_base[num_chunks]));
    tb.insert_targets.row_offsets[total_gaps] = gap_entry_base[num_chunks];
  }

  tbb::parallel_for(tbb::blocked_range<int64_t>(0, num_chunks, 1),
                    [&](const tbb::blocked_range<int64_t>& range) {
    for (int64_t c = range.begin(); c != range.end(); ++c) {
      const ChunkArena& a = arenas[c];
      const int64_t r0 = row_base[c];
      const int64_t n = a.num_tokens();
      std::copy(a.tokens_.begin(), a.tokens_.end(), tokens.begin() + r0);
      if (fields.token) {
        const int64_t e0 = tok_entry_base[c];
        for (int64_t i = 0; i < n; ++i) {
          tb.token_targets.row_offsets[r0 + i] = e0 + a.token_row_start_[i];
        }
        std::copy(a.token_cols_.begin(), a.token_cols_.end(), tb.token_targets.cols.begin() + e0);
        std::copy(a.token_values_.begin(), a.token_values_.end(),
                  tb.token_targets.values.begin() + e0);
      }
      if (fields.del) std::copy(a.del_.begin(), a.del_.end(), tb.delete_targets.begin() + r0);
      if (fields.split) {
        std::copy(a.split_.begin(), a.split_.end(), tb.split_targets.begin() + r0);
      }
      if (fields.insert) {
        // Gap rows of this chunk start at (token rows before) + (sequences before).
        const int64_t g0 = r0 + std::min(num_sequences, c * per_chunk);
        const int64_t e0 = gap_entry_base[c];
        for (int64_t i = 0; i < a.num_gap_rows(); ++i) {
          tb.insert_targets.row_offsets[g0 + i] = e0 + a.gap_row_start_[i];
        }
        std::copy(a.gap_cols_.begin(), a.gap_cols_.end(), tb.insert_targets.cols.begin() + e0);
        std::copy(a.gap_values_.begin(), a.gap_values_.end(),
                  tb.insert_targets.values.begin() + e0);
      }
    }
  });

  // x_t without validation here: the caller sets times and validates.
  std::vector<double> zero_times(static_cast<size_t>(num_sequences), 0.0);
  auto x_t = SequenceBatch::FromParts(std::move(tokens), std::move(offsets),
                                      std::move(zero_times), /*vocab_size=*/INT32_MAX);
  if (!x_t.ok()) return x_t.status();
  tb.x_t = std::move(x_t).value();
  return tb;
}

}  // namespace jumpflow::detail

#endif  // JUMPFLOW_PROCESSES_DETAIL_BATCH_BUILDER_H_
