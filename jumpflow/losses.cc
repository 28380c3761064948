// @brief Validation and dispatch of the fused losses (jumpflow/losses.h).
#include "jumpflow/losses.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "jumpflow/status_macros.h"

namespace jumpflow {
namespace {

using absl::InvalidArgumentError;
using absl::StrCat;

constexpr std::pair<const char*, Parametrization> kParametrizations[] = {
    {"softmax", Parametrization::kSoftmax},
    {"softplus", Parametrization::kSoftplus},
    {"exp", Parametrization::kExp},
    {"sigmoid", Parametrization::kSigmoid},
    {"lograte_softmax", Parametrization::kLogRateSoftmax},
    {"softplusrate_softmax", Parametrization::kSoftplusRateSoftmax},
};
constexpr std::pair<const char*, Divergence> kDivergences[] = {
    {"poisson", Divergence::kPoisson},
    {"bce", Divergence::kBce},
    {"mse", Divergence::kMse},
    {"kl", Divergence::kGeneralizedKl},
};

// CheckTarget validates one target value for divergence `d`.
absl::Status CheckTarget(Divergence d, int64_t row, int64_t col, float a) {
  if (!std::isfinite(a)) {
    return InvalidArgumentError(StrCat("target [", row, ", ", col, "] = ", a, " is not finite"));
  }
  if ((d == Divergence::kPoisson || d == Divergence::kGeneralizedKl) && a < 0.0f) {
    return InvalidArgumentError(StrCat("target [", row, ", ", col, "] = ", a, " is negative (",
                                       DivergenceName(d), " needs targets >= 0)"));
  }
  if (d == Divergence::kBce && !(a >= 0.0f && a <= 1.0f)) {
    return InvalidArgumentError(
        StrCat("target [", row, ", ", col, "] = ", a, " is outside [0, 1] (bce)"));
  }
  return absl::OkStatus();
}

absl::Status CheckSize(absl::string_view what, size_t size, int64_t expected) {
  if (static_cast<int64_t>(size) != expected) {
    return InvalidArgumentError(StrCat(what, " has ", size, " entries, expected ", expected));
  }
  return absl::OkStatus();
}

absl::Status ValidateTargets(const LossSpec& spec, const LossInputs& in) {
  const int64_t v = in.targets_per_row;
  const bool dense = !in.dense_targets.empty();
  if (in.rows == 0 && in.sparse_targets == nullptr) return absl::OkStatus();
  if (dense == (in.sparse_targets != nullptr)) {
    return InvalidArgumentError("exactly one of dense_targets and sparse_targets must be given");
  }
  if (dense) {
    JUMPFLOW_RETURN_IF_ERROR(CheckSize("dense_targets", in.dense_targets.size(), in.rows * v));
    for (int64_t r = 0; r < in.rows; ++r) {
      for (int64_t k = 0; k < v; ++k) {
        JUMPFLOW_RETURN_IF_ERROR(
            CheckTarget(spec.divergence, r, k, in.dense_targets[static_cast<size_t>(r * v + k)]));
      }
    }
    return absl::OkStatus();
  }
  const SparseRows& s = *in.sparse_targets;
  if (s.num_rows() != in.rows) {
    return InvalidArgumentError(
        StrCat("sparse_targets has ", s.num_rows(), " rows, expected ", in.rows));
  }
  if (s.row_offsets.front() != 0 || s.row_offsets.back() != s.num_entries() ||
      s.cols.size() != s.values.size()) {
    return InvalidArgumentError(StrCat("sparse_targets is inconsistent: row_offsets run from ",
                                       s.row_offsets.front(), " to ", s.row_offsets.back(),
                                       " with ", s.cols.size(), " columns and ", s.values.size(),
                                       " values"));
  }
  for (int64_t r = 0; r < in.rows; ++r) {
    const int64_t begin = s.row_offsets[static_cast<size_t>(r)];
    const int64_t end = s.row_offsets[static_cast<size_t>(r) + 1];
    if (end < begin) {
      return InvalidArgumentError(StrCat("sparse_targets row_offsets decrease at row ", r));
    }
    int32_t previous = -1;
    for (int64_t k = begin; k < end; ++k) {
      const int32_t col = s.cols[static_cast<size_t>(k)];
      if (col < 0 || col >= v) {
        return InvalidArgumentError(
            StrCat("sparse target column ", col, " of row ", r, " is outside [0, ", v, ")"));
      }
      if (col <= previous) {
        return InvalidArgumentError(StrCat("sparse target columns of row ", r,
                                           " are not strictly increasing (", previous, ", ", col,
                                           ")"));
      }
      previous = col;
      JUMPFLOW_RETURN_IF_ERROR(
          CheckTarget(spec.divergence, r, col, s.values[static_cast<size_t>(k)]));
    }
  }
  return absl::OkStatus();
}

absl::Status Validate(const LossSpec& spec, const LossInputs& in, std::span<float> grad,
                      std::span<float> row_loss) {
  if (in.rows < 0) return InvalidArgumentError(StrCat("rows = ", in.rows, " is negative"));
  if (in.targets_per_row < 1) {
    return InvalidArgumentError(
        StrCat("targets_per_row = ", in.targets_per_row, " (must be >= 1)"));
  }
  if (in.targets_per_row > (int64_t{1} << 31) - 1) {
    return InvalidArgumentError(
        StrCat("targets_per_row = ", in.targets_per_row, " does not fit int32 columns"));
  }
  const int64_t cols = kernels::RawColumns(spec.parametrization, in.targets_per_row);
  JUMPFLOW_RETURN_IF_ERROR(CheckSize(
      StrCat("raw (", ParametrizationName(spec.parametrization), ", ", cols, " columns per row)"),
      in.raw.size(), in.rows * cols));
  if (!grad.empty()) JUMPFLOW_RETURN_IF_ERROR(CheckSize("grad", grad.size(), in.rows * cols));
  if (!row_loss.empty()) JUMPFLOW_RETURN_IF_ERROR(CheckSize("row_loss", row_loss.size(), in.rows));
  JUMPFLOW_RETURN_IF_ERROR(ValidateTargets(spec, in));
  if (!in.row_weights.empty()) {
    JUMPFLOW_RETURN_IF_ERROR(CheckSize("row_weights", in.row_weights.size(), in.rows));
    for (int64_t r = 0; r < in.rows; ++r) {
      const float w = in.row_weights[static_cast<size_t>(r)];
      if (!(std::isfinite(w) && w >= 0.0f)) {
        return InvalidArgumentError(
            StrCat("row weight ", r, " = ", w, " (must be >= 0 and finite)"));
      }
    }
  }
  if (!in.row_scales.empty()) {
    JUMPFLOW_RETURN_IF_ERROR(CheckSize("row_scales", in.row_scales.size(), in.rows));
    for (int64_t r = 0; r < in.rows; ++r) {
      const float c = in.row_scales[static_cast<size_t>(r)];
      if (!(std::isfinite(c) && c > 0.0f)) {
        return InvalidArgumentError(StrCat("row scale ", r, " = ", c, " (must be > 0 and finite)"));
      }
    }
  }
  if (!in.row_mask.empty()) {
    JUMPFLOW_RETURN_IF_ERROR(CheckSize("row_mask", in.row_mask.size(), in.rows));
  }
  if (!in.excluded_cols.empty()) {
    JUMPFLOW_RETURN_IF_ERROR(CheckSize("excluded_cols", in.excluded_cols.size(), in.rows));
    for (int64_t r = 0; r < in.rows; ++r) {
      const int32_t x = in.excluded_cols[static_cast<size_t>(r)];
      if (x < -1 || x >= in.targets_per_row) {
        return InvalidArgumentError(StrCat("excluded column ", x, " of row ", r,
                                           " is outside [-1, ", in.targets_per_row, ")"));
      }
    }
  }
  const bool needs_times = in.time_weight != nullptr || static_cast<bool>(in.time_scale);
  if (needs_times && in.row_times.empty()) {
    return InvalidArgumentError("time_weight / time_scale need row_times");
  }
  if (!in.row_times.empty()) {
    JUMPFLOW_RETURN_IF_ERROR(CheckSize("row_times", in.row_times.size(), in.rows));
    for (int64_t r = 0; r < in.rows; ++r) {
      const double t = in.row_times[static_cast<size_t>(r)];
      if (!(t >= 0.0 && t <= 1.0)) {
        return InvalidArgumentError(StrCat("time of row ", r, " = ", t, " is outside [0, 1]"));
      }
    }
  }
  return kernels::CheckBackendAvailable(spec.backend);
}

// FindNonfinite names the first NaN/inf raw output of row r.
absl::Status NonfiniteRawError(const LossInputs& in, int64_t cols, int64_t r) {
  for (int64_t k = 0; k < cols; ++k) {
    const float z = in.raw[static_cast<size_t>(r * cols + k)];
    if (!std::isfinite(z)) {
      return InvalidArgumentError(StrCat("raw output [", r, ", ", k, "] = ", z, " is not finite"));
    }
  }
  return InvalidArgumentError(StrCat("raw outputs of row ", r, " are not finite"));
}

}  // namespace

absl::StatusOr<Parametrization> ParseParametrization(absl::string_view name) {
  for (const auto& [n, p] : kParametrizations) {
    if (name == n) return p;
  }
  return InvalidArgumentError(StrCat(
      "unknown parametrization '", name,
      "' (expected softmax, softplus, exp, sigmoid, lograte_softmax or softplusrate_softmax)"));
}

std::string ParametrizationName(Parametrization p) {
  for (const auto& [n, q] : kParametrizations) {
    if (p == q) return n;
  }
  return "unknown";
}

absl::StatusOr<Divergence> ParseDivergence(absl::string_view name) {
  for (const auto& [n, d] : kDivergences) {
    if (name == n) return d;
  }
  return InvalidArgumentError(
      StrCat("unknown divergence '", name, "' (expected poisson, bce, mse or kl)"));
}

std::string DivergenceName(Divergence d) {
  for (const auto& [n, e] : kDivergences) {
    if (d == e) return n;
  }
  return "unknown";
}

absl::StatusOr<LossResult> ComputeLoss(const LossSpec& spec, const LossInputs& in,
                                       std::span<float> grad, std::span<float> row_loss) {
  JUMPFLOW_RETURN_IF_ERROR(Validate(spec, in, grad, row_loss));
  if (in.rows == 0) return LossResult{};
  const int64_t cols = kernels::RawColumns(spec.parametrization, in.targets_per_row);

  // Time-dependent weights and scales become per-row arrays (one allocation
  // per call, outside the kernel).
  std::vector<float> weights, scales;
  if (in.time_weight != nullptr) {
    weights.resize(static_cast<size_t>(in.rows));
    for (int64_t r = 0; r < in.rows; ++r) {
      const double w = in.time_weight->Weight(in.row_times[static_cast<size_t>(r)]);
      const double base = in.row_weights.empty() ? 1.0 : in.row_weights[static_cast<size_t>(r)];
      if (!(std::isfinite(w) && w >= 0.0)) {
        return InvalidArgumentError(StrCat("time weight ", in.time_weight->Name(), " at t = ",
                                           in.row_times[static_cast<size_t>(r)], " is ", w));
      }
      weights[static_cast<size_t>(r)] = static_cast<float>(base * w);
    }
  }
  if (in.time_scale) {
    scales.resize(static_cast<size_t>(in.rows));
    for (int64_t r = 0; r < in.rows; ++r) {
      const double t = in.row_times[static_cast<size_t>(r)];
      const double c = in.time_scale(t);
      const double base = in.row_scales.empty() ? 1.0 : in.row_scales[static_cast<size_t>(r)];
      const float scale = static_cast<float>(base * c);
      if (!(std::isfinite(scale) && scale > 0.0f)) {
        return InvalidArgumentError(
            StrCat("time scale c(t) at t = ", t, " is ", c, " (must be > 0 and finite)"));
      }
      scales[static_cast<size_t>(r)] = scale;
    }
  }

  kernels::LossArgs<float> args;
  args.parametrization = spec.parametrization;
  args.divergence = spec.divergence;
  args.reduction = spec.reduction;
  args.rows = in.rows;
  args.targets_per_row = in.targets_per_row;
  args.raw = in.raw.data();
  if (!in.dense_targets.empty()) {
    args.dense_targets = in.dense_targets.data();
  } else {
    args.sparse_row_offsets = in.sparse_targets->row_offsets.data();
    args.sparse_cols = in.sparse_targets->cols.data();
    args.sparse_values = in.sparse_targets->values.data();
  }
  args.row_weights = !weights.empty()         ? weights.data()
                     : in.row_weights.empty() ? nullptr
                                              : in.row_weights.data();
  args.row_scales = !scales.empty()         ? scales.data()
                    : in.row_scales.empty() ? nullptr
                                            : in.row_scales.data();
  args.row_mask = in.row_mask.empty() ? nullptr : in.row_mask.data();
  args.excluded_cols = in.excluded_cols.empty() ? nullptr : in.excluded_cols.data();
  args.grad = grad.empty() ? nullptr : grad.data();
  args.row_loss = row_loss.empty() ? nullptr : row_loss.data();

  JUMPFLOW_ASSIGN_OR_RETURN(LossResult result, kernels::FusedLoss(spec.backend, args));
  if (result.first_nonfinite_row >= 0) {
    return NonfiniteRawError(in, cols, result.first_nonfinite_row);
  }
  if (!std::isfinite(result.sum)) {
    return InvalidArgumentError(StrCat("loss overflowed (sum = ", result.sum, ") for ",
                                       ParametrizationName(spec.parametrization), " / ",
                                       DivergenceName(spec.divergence), ": raw outputs too large"));
  }
  return result;
}

absl::StatusOr<LossResult> ScalarRowLoss(const LossSpec& spec, std::span<const float> raw,
                                         std::span<const float> targets, LossInputs in,
                                         std::span<float> grad) {
  if (kernels::IsSoftmaxFamily(spec.parametrization)) {
    return InvalidArgumentError(StrCat("ScalarRowLoss needs an elementwise parametrization, got ",
                                       ParametrizationName(spec.parametrization)));
  }
  JUMPFLOW_RETURN_IF_ERROR(CheckSize("targets", targets.size(), static_cast<int64_t>(raw.size())));
  in.rows = static_cast<int64_t>(raw.size());
  in.targets_per_row = 1;
  in.raw = raw;
  in.dense_targets = targets;
  in.sparse_targets = nullptr;
  in.excluded_cols = {};
  return ComputeLoss(spec, in, grad);
}

absl::StatusOr<double> SeparableLoss(std::span<const LossTerm> terms,
                                     std::vector<LossResult>* per_term) {
  double total = 0.0;
  if (per_term != nullptr) per_term->clear();
  for (size_t i = 0; i < terms.size(); ++i) {
    absl::StatusOr<LossResult> r = ComputeLoss(terms[i].spec, terms[i].inputs, terms[i].grad);
    if (!r.ok()) {
      return absl::Status(r.status().code(), StrCat("loss term ", i, ": ", r.status().message()));
    }
    total += terms[i].spec.reduction == Reduction::kMean ? r->mean : r->sum;
    if (per_term != nullptr) per_term->push_back(*r);
  }
  return total;
}

absl::StatusOr<std::vector<float>> ExpandPerSequence(const SequenceBatch& batch,
                                                     std::span<const float> per_sequence,
                                                     RowSpace space) {
  JUMPFLOW_RETURN_IF_ERROR(
      CheckSize("per_sequence values", per_sequence.size(), batch.num_sequences()));
  std::vector<float> out;
  out.reserve(
      static_cast<size_t>(space == RowSpace::kTokens ? batch.num_tokens() : batch.num_gaps()));
  for (int64_t b = 0; b < batch.num_sequences(); ++b) {
    const int64_t n = batch.length(b) + (space == RowSpace::kGaps ? 1 : 0);
    out.insert(out.end(), static_cast<size_t>(n), per_sequence[static_cast<size_t>(b)]);
  }
  return out;
}

std::vector<double> RowTimes(const SequenceBatch& batch, RowSpace space) {
  std::vector<double> out;
  out.reserve(
      static_cast<size_t>(space == RowSpace::kTokens ? batch.num_tokens() : batch.num_gaps()));
  for (int64_t b = 0; b < batch.num_sequences(); ++b) {
    const int64_t n = batch.length(b) + (space == RowSpace::kGaps ? 1 : 0);
    out.insert(out.end(), static_cast<size_t>(n), batch.time(b));
  }
  return out;
}

}  // namespace jumpflow
