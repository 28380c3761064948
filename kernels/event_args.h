// @brief SampleStepArgs / GillespieArgs and their results: the inputs and
// outputs of the fused event kernels (semantics in kernels/sample_step.h and
// kernels/gillespie.h). Plain structs, usable from CUDA translation units
// (no abseil, no CUDA headers).
//
// Ragged layout (stated once for both kernels): a batch of B sequences has
// `rows` rows in total; sequence b owns rows [offsets[b], offsets[b + 1]),
// and row r = offsets[b] + i is position i of sequence b (a token row, or a
// gap row for insertion heads). Raw outputs are row-major, compact:
// component j of row r is raw[r * cols + j], cols = RawColumns(p, V); with a
// rate column, column 0 is the total rate and columns 1..V the token logits.
//
// Memory: every pointer is host memory for Backend::kCpu; for Backend::kCuda
// either every pointer is device memory (used in place, asynchronously on
// cuda_stream until the call returns) or every pointer is host memory
// (copied to the device and back).
//
// Example:
//   kernels::SampleStepArgs a;
//   a.rows = batch.num_tokens();  a.vocab = V;  a.num_sequences = B;
//   a.raw = logits;  a.offsets = offsets;  a.tokens = tokens;  a.fire = q;
//   a.seed = seed;  a.step = n;  a.jumped = jumped;  a.new_token = new_token;
#ifndef JUMPFLOW_KERNELS_EVENT_ARGS_H_
#define JUMPFLOW_KERNELS_EVENT_ARGS_H_

#include <cstdint>

#include "kernels/parametrization.h"
#include "kernels/philox.h"

namespace jumpflow::kernels {

// Default purposes (second Philox counter word) of the event kernels' draws
// (kernels/philox.h RandomPurpose).
constexpr uint32_t kStreamSampleStep = kPurposeSampleStep;
constexpr uint32_t kStreamGillespie = kPurposeGillespie;

// JumpProbability selects how a row's total multiplier M and its sequence's
// `fire` value f become a jump probability (kernels/sample_step.h).
enum class JumpProbability : uint8_t {
  // min(1, M f), f = q = 1 - S(t') / S(t): the samplers' exact-hazard form
  // (jumpflow/samplers/sampler.h).
  kLinear = 0,
  // 1 - exp(-M f), f = h(t) dt: DESIGN.md's first-order form.
  kExponential = 1,
};

// SampleStepArgs are the inputs and outputs of one fused Euler / tau-leap
// event draw (kernels/sample_step.h). V = vocab, cols = RawColumns(p, V).
struct SampleStepArgs {
  // kSoftmax, kLogRateSoftmax or kSoftplusRateSoftmax.
  Parametrization parametrization = Parametrization::kSoftmax;
  JumpProbability jump = JumpProbability::kLinear;
  int64_t rows = 0;
  int64_t vocab = 0;
  int64_t num_sequences = 0;
  // raw outputs, [rows x cols].
  const float* raw = nullptr;
  // row offsets of the sequences, [num_sequences + 1], offsets[0] = 0,
  // nondecreasing, offsets[num_sequences] = rows.
  const int64_t* offsets = nullptr;
  // optional current token of each row in [0, V), excluded from the target
  // draw, [rows] (null: nothing excluded, e.g. gap rows).
  const int32_t* tokens = nullptr;
  // optional row scale c >= 0 (m = c x parametrization; 0: the row never
  // jumps), [rows] (default 1).
  const float* row_scales = nullptr;
  // per-sequence jump scale f >= 0 (see JumpProbability), [num_sequences].
  const double* fire = nullptr;
  // optional random-stream id of each sequence, [num_sequences] (default
  // first_sequence_id + b).
  const uint32_t* sequence_ids = nullptr;
  uint32_t first_sequence_id = 0;
  // optional step index of each sequence, [num_sequences] (default `step`).
  const uint32_t* steps = nullptr;
  uint32_t step = 0;
  uint64_t seed = 0;
  // second Philox counter word, the draw's purpose (use different values for
  // different row spaces drawn at the same step, e.g. token rows and gap
  // rows).
  uint32_t stream = kStreamSampleStep;
  // output: 1 when the row jumps, [rows].
  uint8_t* jumped = nullptr;
  // output: the new token (!= tokens[r]) when the row jumps, else tokens[r]
  // (-1 without tokens), [rows].
  int32_t* new_token = nullptr;
  // optional output: the row's total multiplier M over a != tokens[r],
  // [rows]. Asking for it makes the kernel scan every row; without it, rows
  // that cannot jump are only checked for inf / NaN (kernels/sample_step.h).
  double* row_rate = nullptr;
  // CUDA only: cudaStream_t (null = legacy default stream).
  void* cuda_stream = nullptr;
};

// SampleStepResult summarises one SampleStep call.
struct SampleStepResult {
  // rows that jumped.
  int64_t jumps = 0;
  // smallest row whose raw outputs contain NaN or inf (such rows never jump
  // and get rate 0), or -1.
  int64_t first_nonfinite_row = -1;
};

// GillespieArgs are the inputs and outputs of one fused Gillespie event
// selection over a ragged batch (kernels/gillespie.h).
struct GillespieArgs {
  // kSoftmax, kLogRateSoftmax or kSoftplusRateSoftmax.
  Parametrization parametrization = Parametrization::kSoftmax;
  int64_t rows = 0;
  int64_t vocab = 0;
  int64_t num_sequences = 0;
  // raw outputs, [rows x cols].
  const float* raw = nullptr;
  // row offsets, [num_sequences + 1] (as in SampleStepArgs).
  const int64_t* offsets = nullptr;
  // optional current tokens, [rows] (as in SampleStepArgs).
  const int32_t* tokens = nullptr;
  // optional row scales c >= 0 (0: the row is never chosen), [rows].
  const float* row_scales = nullptr;
  // optional random-stream ids, [num_sequences] (default first_sequence_id + b).
  const uint32_t* sequence_ids = nullptr;
  uint32_t first_sequence_id = 0;
  // optional per-sequence step (proposal) index, [num_sequences] (default `step`).
  const uint32_t* steps = nullptr;
  uint32_t step = 0;
  uint64_t seed = 0;
  uint32_t stream = kStreamGillespie;
  // output (required; also the CUDA backend's scratch): each row's total
  // multiplier M_r over a != tokens[r], [rows].
  double* row_rate = nullptr;
  // output: each sequence's total sum_r M_r, [num_sequences].
  double* total = nullptr;
  // output: the chosen event's position within its sequence (row
  // offsets[b] + position), -1 when the total is 0, [num_sequences].
  int32_t* event_position = nullptr;
  // output: the chosen event's new token, -1 when the total is 0,
  // [num_sequences].
  int32_t* event_token = nullptr;
  // CUDA only: cudaStream_t (null = legacy default stream).
  void* cuda_stream = nullptr;
};

// GillespieResult summarises one Gillespie call.
struct GillespieResult {
  // sequences with a positive total (an event was chosen).
  int64_t events = 0;
  // smallest row whose raw outputs contain NaN or inf (rate 0, never
  // chosen), or -1.
  int64_t first_nonfinite_row = -1;
};

}  // namespace jumpflow::kernels

#endif  // JUMPFLOW_KERNELS_EVENT_ARGS_H_
