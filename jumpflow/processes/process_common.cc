// @brief BatchTimes, BatchWeights and DeriveSeed.
#include "jumpflow/processes/process_common.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "kernels/philox.h"

namespace jumpflow {
namespace {

absl::Status CheckTime(double t, int64_t b, const char* what) {
  if (!(t >= 0.0 && t <= 1.0)) {  // also rejects NaN
    return absl::InvalidArgumentError(
        absl::StrCat(what, " time of sequence ", b, " is ", t, ", outside [0, 1]"));
  }
  return absl::OkStatus();
}

}  // namespace

BatchTimes BatchTimes::Explicit(std::span<const double> times) {
  BatchTimes bt;
  bt.kind_ = Kind::kExplicit;
  bt.explicit_ = times;
  return bt;
}

BatchTimes BatchTimes::Constant(double t) {
  BatchTimes bt;
  bt.kind_ = Kind::kConstant;
  bt.constant_ = t;
  return bt;
}

BatchTimes BatchTimes::Sampled(const TimeDistribution& distribution) {
  BatchTimes bt;
  bt.kind_ = Kind::kSampled;
  bt.distribution_ = &distribution;
  return bt;
}

absl::StatusOr<std::vector<double>> BatchTimes::Resolve(int64_t num_sequences,
                                                        uint64_t seed) const {
  std::vector<double> out(static_cast<size_t>(num_sequences));
  switch (kind_) {
    case Kind::kExplicit:
      if (static_cast<int64_t>(explicit_.size()) != num_sequences) {
        return absl::InvalidArgumentError(absl::StrCat("got ", explicit_.size(), " times for ",
                                                       num_sequences, " sequences"));
      }
      for (int64_t b = 0; b < num_sequences; ++b) {
        if (auto s = CheckTime(explicit_[b], b, "explicit"); !s.ok()) return s;
        out[b] = explicit_[b];
      }
      break;
    case Kind::kConstant:
      if (num_sequences > 0) {
        if (auto s = CheckTime(constant_, 0, "constant"); !s.ok()) return s;
      }
      for (double& t : out) t = constant_;
      break;
    case Kind::kSampled:
      for (int64_t b = 0; b < num_sequences; ++b) {
        PhiloxStream rng(seed, static_cast<uint32_t>(b), kPurposeTime);
        const double t = distribution_->Sample(rng);
        if (!(t >= 0.0 && t <= 1.0)) {
          return absl::InvalidArgumentError(absl::StrCat("time distribution '",
                                                         distribution_->Name(), "' drew ", t,
                                                         " for sequence ", b, ", outside [0, 1]"));
        }
        out[b] = t;
      }
      break;
  }
  return out;
}

BatchWeights BatchWeights::Ones() { return BatchWeights(); }

BatchWeights BatchWeights::Explicit(std::span<const double> weights) {
  BatchWeights bw;
  bw.kind_ = Kind::kExplicit;
  bw.explicit_ = weights;
  return bw;
}

BatchWeights BatchWeights::OfTime(std::function<double(double)> w) {
  BatchWeights bw;
  bw.kind_ = Kind::kOfTime;
  bw.function_ = std::move(w);
  return bw;
}

absl::StatusOr<std::vector<float>> BatchWeights::Resolve(std::span<const double> times) const {
  const int64_t n = static_cast<int64_t>(times.size());
  std::vector<float> out(times.size(), 1.0f);
  if (kind_ == Kind::kOnes) return out;
  if (kind_ == Kind::kExplicit && static_cast<int64_t>(explicit_.size()) != n) {
    return absl::InvalidArgumentError(
        absl::StrCat("got ", explicit_.size(), " weights for ", n, " sequences"));
  }
  if (kind_ == Kind::kOfTime && !function_) {
    return absl::InvalidArgumentError("BatchWeights::OfTime was given an empty function");
  }
  for (int64_t b = 0; b < n; ++b) {
    const double w = kind_ == Kind::kExplicit ? explicit_[b] : function_(times[b]);
    if (!std::isfinite(w) || w < 0.0 || !std::isfinite(static_cast<float>(w))) {
      return absl::InvalidArgumentError(absl::StrCat("weight of sequence ", b, " (t = ", times[b],
                                                     ") is ", w,
                                                     "; weights must be finite and >= 0"));
    }
    out[b] = static_cast<float>(w);
  }
  return out;
}

uint64_t DeriveSeed(uint64_t seed, int64_t b, uint32_t purpose) {
  // The counter words (~0, ~0) are the last block of the (b, purpose)
  // stream, which no PhiloxStream reaches in practice.
  const Philox4x32 r = PhiloxDraw(seed, static_cast<uint32_t>(b), purpose, ~0u, ~0u);
  return (static_cast<uint64_t>(r.v[0]) << 32) | r.v[1];
}

}  // namespace jumpflow
