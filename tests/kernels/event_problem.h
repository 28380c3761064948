// @brief Random ragged event-kernel problems (kernels/sample_step.h,
// kernels/gillespie.h) and their output buffers, shared by the CPU tests and
// the CUDA vs CPU comparisons.
//
// Example:
//   Batch bt = MakeBatch(Parametrization::kSoftmax, /*b=*/23, /*max_len=*/40, /*v=*/300, 1);
//   StepOut out;
//   out.result = SampleStepCpu(StepArgs(bt, &out, /*seed=*/7));
#ifndef JUMPFLOW_TESTS_KERNELS_EVENT_PROBLEM_H_
#define JUMPFLOW_TESTS_KERNELS_EVENT_PROBLEM_H_

#include <cstdint>
#include <random>
#include <vector>

#include "kernels/event_args.h"

namespace jumpflow::kernels::testing {

// Batch is one ragged batch with owned buffers.
struct Batch {
  Parametrization param = Parametrization::kSoftmax;
  int64_t v = 0, cols = 0;
  std::vector<int64_t> offsets;
  std::vector<float> raw, scales;
  std::vector<int32_t> tokens;
  std::vector<double> fire;
  std::vector<uint32_t> ids, steps;
  int64_t rows() const { return offsets.back(); }
  int64_t sequences() const { return static_cast<int64_t>(offsets.size()) - 1; }
};

// MakeBatch draws B sequences of lengths in [0, max_len] (some empty),
// logits N(0, sd) with a dominant token in some rows, optional rate column,
// scales, tokens and per-sequence fire in [0, fire_max].
inline Batch MakeBatch(Parametrization p, int64_t b, int64_t max_len, int64_t v, uint64_t seed,
                       double fire_max = 0.02, float sd = 2.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, sd);
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  Batch bt;
  bt.param = p;
  bt.v = v;
  bt.cols = RawColumns(p, v);
  bt.offsets.push_back(0);
  for (int64_t s = 0; s < b; ++s) {
    const int64_t len = s % 7 == 3 ? 0 : static_cast<int64_t>(rng() % (max_len + 1));
    bt.offsets.push_back(bt.offsets.back() + len);
    bt.fire.push_back(fire_max * u01(rng));
    bt.ids.push_back(static_cast<uint32_t>(1000 + 17 * s));
    bt.steps.push_back(static_cast<uint32_t>(rng() % 50));
  }
  const int64_t rows = bt.offsets.back();
  bt.raw.resize(static_cast<size_t>(rows * bt.cols));
  for (int64_t r = 0; r < rows; ++r) {
    float* row = bt.raw.data() + r * bt.cols;
    for (int64_t k = 0; k < bt.cols; ++k) row[k] = normal(rng);
    if (HasRateColumn(p)) row[0] = -1.0f + 2.0f * static_cast<float>(u01(rng));
    const int32_t tok = static_cast<int32_t>(rng() % static_cast<uint64_t>(v));
    bt.tokens.push_back(tok);
    const int64_t off = HasRateColumn(p) ? 1 : 0;
    if (r % 4 == 0) row[off + tok] += 8.0f;  // the current token dominates: few jumps
    if (r % 9 == 1) row[off + static_cast<int64_t>(rng() % v)] += 6.0f;
    bt.scales.push_back(0.5f + static_cast<float>(u01(rng)));
  }
  return bt;
}

// Output buffers of one SampleStep call.
struct StepOut {
  std::vector<uint8_t> jumped;
  std::vector<int32_t> token;
  std::vector<double> rate;
  SampleStepResult result;
};

inline SampleStepArgs StepArgs(const Batch& bt, StepOut* out, uint64_t seed, bool use_tokens = true,
                               bool use_scales = true,
                               JumpProbability jump = JumpProbability::kLinear) {
  const size_t rows = static_cast<size_t>(bt.rows());
  out->jumped.assign(rows, 7);
  out->token.assign(rows, -7);
  out->rate.assign(rows, -1.0);
  SampleStepArgs a;
  a.parametrization = bt.param;
  a.jump = jump;
  a.rows = bt.rows();
  a.vocab = bt.v;
  a.num_sequences = bt.sequences();
  a.raw = bt.raw.data();
  a.offsets = bt.offsets.data();
  a.tokens = use_tokens ? bt.tokens.data() : nullptr;
  a.row_scales = use_scales ? bt.scales.data() : nullptr;
  a.fire = bt.fire.data();
  a.sequence_ids = bt.ids.data();
  a.steps = bt.steps.data();
  a.seed = seed;
  a.jumped = out->jumped.data();
  a.new_token = out->token.data();
  a.row_rate = out->rate.data();
  return a;
}

struct GillespieOut {
  std::vector<double> row_rate, total;
  std::vector<int32_t> position, token;
  GillespieResult result;
};

inline GillespieArgs GArgs(const Batch& bt, GillespieOut* out, uint64_t seed) {
  out->row_rate.assign(static_cast<size_t>(bt.rows()), -1.0);
  out->total.assign(static_cast<size_t>(bt.sequences()), -1.0);
  out->position.assign(static_cast<size_t>(bt.sequences()), -7);
  out->token.assign(static_cast<size_t>(bt.sequences()), -7);
  GillespieArgs g;
  g.parametrization = bt.param;
  g.rows = bt.rows();
  g.vocab = bt.v;
  g.num_sequences = bt.sequences();
  g.raw = bt.raw.data();
  g.offsets = bt.offsets.data();
  g.tokens = bt.tokens.data();
  g.row_scales = bt.scales.data();
  g.sequence_ids = bt.ids.data();
  g.steps = bt.steps.data();
  g.seed = seed;
  g.row_rate = out->row_rate.data();
  g.total = out->total.data();
  g.event_position = out->position.data();
  g.event_token = out->token.data();
  return g;
}

}  // namespace jumpflow::kernels::testing

#endif  // JUMPFLOW_TESTS_KERNELS_EVENT_PROBLEM_H_
