// @brief AdamW implementation (see optimizer.h).
#include "jumpflow/model/optimizer.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <utility>

#include "absl/strings/str_cat.h"
#include "oneapi/tbb/blocked_range.h"
#include "oneapi/tbb/parallel_for.h"

namespace jumpflow {
namespace {

// Fixed block size for the norm reduction and the parallel update; the
// result never depends on the thread count.
constexpr int64_t kBlock = 1 << 14;

// UpdateConstants are the per-step scalars of the AdamW update.
struct UpdateConstants {
  float scale;  // gradient clip factor
  float beta1, beta2;
  float inv_sqrt_c2;  // 1 / sqrt(bias correction of the second moment)
  float eps;
  float decay;      // 1 - lr * weight_decay (decoupled decay)
  float step_size;  // lr / bias correction of the first moment
};

// UpdateBlock applies one AdamW update to n parameters. Written branch-free
// on restrict pointers, with the decay flag as a 0/1 factor, and compiled
// with -fno-math-errno (jumpflow/CMakeLists.txt), so that the compiler
// vectorises it (the plain loop stayed scalar: ~6% of a small model's
// training step).
void UpdateBlock(float* __restrict p, const float* __restrict g, float* __restrict m,
                 float* __restrict v, const uint8_t* __restrict decay_mask, int64_t n,
                 const UpdateConstants& c) {
  const float scale = c.scale, b1 = c.beta1, b2 = c.beta2, inv_sqrt_c2 = c.inv_sqrt_c2;
  const float eps = c.eps, decay_minus_1 = c.decay - 1.0f, step_size = c.step_size;
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i] * scale;
    const float mi = b1 * m[i] + (1.0f - b1) * gi;
    const float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    const float denom = std::sqrt(vi) * inv_sqrt_c2 + eps;
    const float theta = p[i] * (1.0f + decay_minus_1 * static_cast<float>(decay_mask[i]));
    p[i] = theta - step_size * mi / denom;
  }
}

}  // namespace

absl::StatusOr<LrSchedule> ParseLrSchedule(absl::string_view name) {
  if (name == "constant") return LrSchedule::kConstant;
  if (name == "cosine") return LrSchedule::kCosine;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown learning-rate schedule '", name, "' (expected constant or cosine)"));
}

absl::Status AdamWOptions::Validate() const {
  auto bad = [](const char* field, double value, const char* want) {
    return absl::InvalidArgumentError(
        absl::StrCat("AdamW: ", field, " = ", value, " (must be ", want, ")"));
  };
  if (!(learning_rate > 0.0) || !std::isfinite(learning_rate)) {
    return bad("learning_rate", learning_rate, "finite and > 0");
  }
  if (!(beta1 >= 0.0 && beta1 < 1.0)) return bad("beta1", beta1, "in [0, 1)");
  if (!(beta2 >= 0.0 && beta2 < 1.0)) return bad("beta2", beta2, "in [0, 1)");
  if (!(epsilon > 0.0) || !std::isfinite(epsilon)) return bad("epsilon", epsilon, "finite and > 0");
  if (!(weight_decay >= 0.0) || !std::isfinite(weight_decay)) {
    return bad("weight_decay", weight_decay, "finite and >= 0");
  }
  if (warmup_steps < 0) return bad("warmup_steps", static_cast<double>(warmup_steps), ">= 0");
  if (schedule == LrSchedule::kCosine && total_steps <= warmup_steps) {
    return absl::InvalidArgumentError(absl::StrCat("AdamW: cosine schedule needs total_steps (",
                                                   total_steps, ") > warmup_steps (", warmup_steps,
                                                   ")"));
  }
  if (!(min_learning_rate_fraction >= 0.0 && min_learning_rate_fraction <= 1.0)) {
    return bad("min_learning_rate_fraction", min_learning_rate_fraction, "in [0, 1]");
  }
  if (std::isnan(clip_norm) || std::isinf(clip_norm)) {
    return bad("clip_norm", clip_norm, "finite (<= 0 disables clipping)");
  }
  return absl::OkStatus();
}

absl::StatusOr<AdamW> AdamW::Create(const AdamWOptions& options, int64_t num_parameters,
                                    std::span<const ParameterGroup> groups) {
  if (absl::Status s = options.Validate(); !s.ok()) return s;
  if (num_parameters < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("AdamW: num_parameters = ", num_parameters, " (must be >= 0)"));
  }
  AdamW adam;
  adam.options_ = options;
  adam.m_.assign(static_cast<size_t>(num_parameters), 0.0f);
  adam.v_.assign(static_cast<size_t>(num_parameters), 0.0f);
  adam.decay_.assign(static_cast<size_t>(num_parameters), groups.empty() ? 1 : 0);
  for (const ParameterGroup& g : groups) {
    if (g.offset < 0 || g.size < 0 || g.offset + g.size > num_parameters) {
      return absl::InvalidArgumentError(absl::StrCat("AdamW: parameter group '", g.name, "' [",
                                                     g.offset, ", ", g.offset + g.size,
                                                     ") lies outside [0, ", num_parameters, ")"));
    }
    if (g.decay) {
      std::fill(adam.decay_.begin() + g.offset, adam.decay_.begin() + g.offset + g.size, 1);
    }
  }
  return adam;
}

double AdamW::LearningRate(int64_t step) const {
  const AdamWOptions& o = options_;
  if (step < o.warmup_steps) {
    return o.learning_rate * static_cast<double>(step + 1) / static_cast<double>(o.warmup_steps);
  }
  if (o.schedule == LrSchedule::kConstant) return o.learning_rate;
  const double span = static_cast<double>(o.total_steps - o.warmup_steps);
  const double progress = std::clamp(static_cast<double>(step - o.warmup_steps) / span, 0.0, 1.0);
  const double low = o.learning_rate * o.min_learning_rate_fraction;
  return low + (o.learning_rate - low) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
}

absl::StatusOr<AdamWStepStats> AdamW::Step(std::span<float> parameters,
                                           std::span<const float> gradients) {
  const int64_t n = num_parameters();
  if (static_cast<int64_t>(parameters.size()) != n || static_cast<int64_t>(gradients.size()) != n) {
    return absl::InvalidArgumentError(absl::StrCat("AdamW::Step: ", parameters.size(),
                                                   " parameters and ", gradients.size(),
                                                   " gradients for an optimizer of ", n));
  }
  // Global norm: fixed blocks, summed in block order.
  const int64_t num_blocks = (n + kBlock - 1) / kBlock;
  std::vector<double> partial(static_cast<size_t>(num_blocks), 0.0);
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, num_blocks, 1),
                    [&](const tbb::blocked_range<int64_t>& r) {
                      for (int64_t b = r.begin(); b < r.end(); ++b) {
                        const int64_t end = std::min(n, (b + 1) * kBlock);
                        double s = 0.0;
                        for (int64_t i = b * kBlock; i < end; ++i) {
                          const double g = gradients[static_cast<size_t>(i)];
                          s += g * g;
                        }
                        partial[static_cast<size_t>(b)] = s;
                      }
                    });
  double sum = 0.0;
  for (double p : partial) sum += p;
  AdamWStepStats stats;
  stats.grad_norm = std::sqrt(sum);
  if (!std::isfinite(stats.grad_norm)) {
    return absl::InvalidArgumentError(absl::StrCat("AdamW::Step: gradient norm is ",
                                                   stats.grad_norm, " at update ", step_,
                                                   "; parameters left unchanged"));
  }
  if (options_.clip_norm > 0.0 && stats.grad_norm > options_.clip_norm) {
    stats.clip_scale = options_.clip_norm / stats.grad_norm;
  }
  stats.learning_rate = LearningRate(step_);
  const int64_t k = step_ + 1;
  const double b1 = options_.beta1, b2 = options_.beta2;
  const double correction1 = 1.0 - std::pow(b1, static_cast<double>(k));
  const double correction2 = 1.0 - std::pow(b2, static_cast<double>(k));
  const UpdateConstants c{
      .scale = static_cast<float>(stats.clip_scale),
      .beta1 = static_cast<float>(b1),
      .beta2 = static_cast<float>(b2),
      .inv_sqrt_c2 = static_cast<float>(1.0 / std::sqrt(correction2)),
      .eps = static_cast<float>(options_.epsilon),
      .decay = static_cast<float>(1.0 - stats.learning_rate * options_.weight_decay),
      .step_size = static_cast<float>(stats.learning_rate / correction1)};
  float* p = parameters.data();
  const float* g = gradients.data();
  float* m = m_.data();
  float* v = v_.data();
  const uint8_t* dm = decay_.data();
  tbb::parallel_for(
      tbb::blocked_range<int64_t>(0, num_blocks, 1), [&](const tbb::blocked_range<int64_t>& r) {
        for (int64_t b = r.begin(); b < r.end(); ++b) {
          const int64_t begin = b * kBlock, end = std::min(n, (b + 1) * kBlock);
          UpdateBlock(p + begin, g + begin, m + begin, v + begin, dm + begin, end - begin, c);
        }
      });
  ++step_;
  return stats;
}

absl::Status AdamW::RestoreState(int64_t step, std::vector<float> first_moment,
                                 std::vector<float> second_moment) {
  const int64_t n = num_parameters();
  if (step < 0) {
    return absl::InvalidArgumentError(absl::StrCat("AdamW state: negative step ", step));
  }
  if (static_cast<int64_t>(first_moment.size()) != n ||
      static_cast<int64_t>(second_moment.size()) != n) {
    return absl::InvalidArgumentError(
        absl::StrCat("AdamW state: moments have ", first_moment.size(), " and ",
                     second_moment.size(), " entries, the optimizer has ", n, " parameters"));
  }
  for (int64_t i = 0; i < n; ++i) {
    const float a = first_moment[static_cast<size_t>(i)];
    const float b = second_moment[static_cast<size_t>(i)];
    if (!std::isfinite(a) || !std::isfinite(b) || b < 0.0f) {
      return absl::InvalidArgumentError(
          absl::StrCat("AdamW state: entry ", i, " is invalid (m = ", a, ", v = ", b, ")"));
    }
  }
  step_ = step;
  m_ = std::move(first_moment);
  v_ = std::move(second_moment);
  return absl::OkStatus();
}

}  // namespace jumpflow
