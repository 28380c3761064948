// @brief Fused Euler / tau-leap event draw: raw logits -> multipliers
// (softmax, or total rate x softmax) -> per-row jump decision and target
// token, in one pass over the logits, on the CPU or the GPU with identical
// results.
//
// For row r (position i of sequence b; layout in kernels/event_args.h) with
// current token x = tokens[r] and logits z (columns 1..V after a rate
// column), the multipliers are m_a = lambda softmax(z)_a, lambda = c,
// c exp(min(z_rate, 80)) or c softplus(z_rate) (c = row_scales[r], default
// 1), and the row's total over the tokens a != x is
//
//     M = lambda (1 - softmax(z)_x).
//
// The row jumps with probability p = min(1, M f_b) (JumpProbability::kLinear,
// f_b = q_b = 1 - S(t') / S(t): the exact-hazard form of the samplers in
// jumpflow/samplers/sampler.h) or p = 1 - exp(-M f_b) (kExponential, f_b =
// h(t) dt: DESIGN.md's form); the new token is drawn prop. to m_a over
// a != x by inverse CDF. Rows without tokens (gap rows) exclude nothing.
//
// Randomness: row r draws one Philox block PhiloxDraw(seed, c0 = sequence
// id, c1 = stream, c2 = step of its sequence, c3 = position i) -- block
// (step << 32) + i of PhiloxStream(seed, sequence id, stream) -- and uses
// u_jump = Uniform01(w0, w1) (jumps iff u_jump < p) and u_target =
// Uniform01(w2, w3). So the events are a function of (seed, sequence,
// position, step) only: independent of batching, thread count and backend.
//
// Exactness across backends: the softmax is reduced by the canonical chunked
// online scan of kernels/detail/event_math.h (32 lane sums, fixed order,
// deterministic ExpF, no FMA contraction), so the CPU and CUDA backends
// produce bit-identical jumped flags, tokens and row rates.
//
// Rows with NaN or inf raw outputs never jump (rate 0) and are reported in
// SampleStepResult::first_nonfinite_row.
//
// Rows that cannot jump: M <= lambda, so a row whose u_jump is at least the
// jump probability at lambda (detail::JumpBoundOf, known before the scan)
// stays put whatever its softmax. Without the row_rate output both
// backends read such rows only to check that they are finite (memory speed
// instead of an exponential per logit; at fire 0.05 that is ~95% of the
// rows); the outputs are the same bits either way.
//
// Example (a DFM Euler step: every sequence b moves from t_b to t_b'):
//   std::vector<double> q(B);  // q[b] = 1 - S(t_b') / S(t_b)
//   kernels::SampleStepArgs a;
//   a.rows = batch.num_tokens();  a.vocab = V;  a.num_sequences = B;
//   a.raw = logits.data();  a.offsets = offsets.data();  a.tokens = tokens.data();
//   a.fire = q.data();  a.seed = seed;  a.step = n;
//   a.jumped = jumped.data();  a.new_token = new_token.data();
//   JUMPFLOW_ASSIGN_OR_RETURN(kernels::SampleStepResult res, kernels::SampleStep(a));
#ifndef JUMPFLOW_KERNELS_SAMPLE_STEP_H_
#define JUMPFLOW_KERNELS_SAMPLE_STEP_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernels/backend.h"
#include "kernels/event_args.h"

namespace jumpflow::kernels {

// SampleStepCpu runs the CPU backend (oneTBB over fixed row blocks,
// 16-lane vector loops) on host pointers. It trusts its inputs (see
// ValidateSampleStep). Results do not depend on the thread count.
SampleStepResult SampleStepCpu(const SampleStepArgs& args);

// ValidateSampleStep checks the shape fields and required pointers and, for
// host memory, the contents of offsets, tokens, row_scales and fire;
// InvalidArgument names the offending value.
absl::Status ValidateSampleStep(const SampleStepArgs& args);

// SampleStep validates `args` and runs `backend`: kCpu needs host pointers;
// kCuda takes all-device pointers (in place) or all-host pointers (copied);
// FailedPrecondition when CUDA is not compiled in or no GPU is present.
absl::StatusOr<SampleStepResult> SampleStep(Backend backend, const SampleStepArgs& args);

// SampleStep without a backend dispatches on where the data lives: CUDA when
// args.raw is device (or managed) memory, CPU when it is host memory.
absl::StatusOr<SampleStepResult> SampleStep(const SampleStepArgs& args);

}  // namespace jumpflow::kernels

#endif  // JUMPFLOW_KERNELS_SAMPLE_STEP_H_
