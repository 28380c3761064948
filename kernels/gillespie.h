// @brief Fused Gillespie event selection over a ragged batch: raw logits ->
// per-row total multipliers -> per-sequence totals (segmented reduction) ->
// one event (row, token) per sequence, on the CPU or the GPU with identical
// results.
//
// Row r (position i of sequence b; layout in kernels/event_args.h) has total
// multiplier M_r = lambda_r (1 - softmax(z_r)_x) over the tokens a != x =
// tokens[r] (parametrizations as in kernels/sample_step.h). Sequence b gets
//
//     total_b = sum_{r in b} M_r            (in double, rows in order)
//
// and, when total_b > 0, one event: the row by inverse CDF of u_row total_b
// over the rows in order, then the new token of that row by the inverse CDF
// of kernels/detail/event_math.h with u_token. (The caller turns total_b
// into a next-event time with its hazard: exact SSA with rate h(t) total_b,
// jumpflow/samplers/sampler.h.) One edit kind per call; a caller with
// several kinds calls once per row space (different `stream` values) and
// picks the kind by the totals.
//
// Randomness: sequence b draws PhiloxDraw(seed, c0 = sequence id, c1 =
// stream, c2 = step of b, c3 = 0): u_row = Uniform01(w0, w1), u_token =
// Uniform01(w2, w3). Row rates, totals and events are bit-identical on the
// CPU and CUDA backends and for every thread count (canonical arithmetic of
// kernels/detail/event_math.h; the segmented sum is sequential per sequence).
//
// Rows with NaN or inf raw outputs get rate 0 (never chosen) and are
// reported in GillespieResult::first_nonfinite_row.
//
// Example:
//   kernels::GillespieArgs g;
//   g.rows = n_rows;  g.vocab = V;  g.num_sequences = B;
//   g.raw = logits;  g.offsets = offsets;  g.tokens = tokens;
//   g.seed = seed;  g.steps = proposal_index;
//   g.row_rate = row_rate;  g.total = total;
//   g.event_position = pos;  g.event_token = tok;
//   JUMPFLOW_ASSIGN_OR_RETURN(kernels::GillespieResult res, kernels::Gillespie(g));
#ifndef JUMPFLOW_KERNELS_GILLESPIE_H_
#define JUMPFLOW_KERNELS_GILLESPIE_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernels/backend.h"
#include "kernels/event_args.h"

namespace jumpflow::kernels {

// GillespieCpu runs the CPU backend (oneTBB over rows, then over sequences)
// on host pointers. It trusts its inputs (see ValidateGillespie).
GillespieResult GillespieCpu(const GillespieArgs& args);

// ValidateGillespie checks shapes, required pointers and (host memory) the
// contents of offsets, tokens and row_scales.
absl::Status ValidateGillespie(const GillespieArgs& args);

// Gillespie validates `args` and runs `backend` (memory rules as in
// SampleStep).
absl::StatusOr<GillespieResult> Gillespie(Backend backend, const GillespieArgs& args);

// Gillespie without a backend dispatches on where args.raw lives.
absl::StatusOr<GillespieResult> Gillespie(const GillespieArgs& args);

}  // namespace jumpflow::kernels

#endif  // JUMPFLOW_KERNELS_GILLESPIE_H_
