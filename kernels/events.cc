// @brief Validation and backend dispatch of the fused event kernels
// (kernels/sample_step.h, kernels/gillespie.h).
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string>

#include "absl/strings/str_cat.h"
#include "kernels/cuda/cuda_api.h"
#include "kernels/detail/dispatch.h"
#include "kernels/gillespie.h"
#include "kernels/sample_step.h"

namespace jumpflow::kernels {
namespace {

// CommonShape checks what both kernels share: parametrization, sizes and the
// required input pointers; `host` adds the content checks of host memory.
absl::Status CheckCommon(const char* kernel, Parametrization p, int64_t rows, int64_t vocab,
                         int64_t num_sequences, const float* raw, const int64_t* offsets,
                         const int32_t* tokens, const float* row_scales, bool host) {
  if (!IsSoftmaxFamily(p)) {
    return absl::InvalidArgumentError(
        absl::StrCat(kernel, ": parametrization ", static_cast<int>(p),
                     " is not a softmax family (softmax, lograte_softmax, softplusrate_softmax)"));
  }
  if (rows < 0 || num_sequences < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        kernel, ": rows = ", rows, " and num_sequences = ", num_sequences, " must be >= 0"));
  }
  if (vocab < 1 || vocab > std::numeric_limits<int32_t>::max() - 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(kernel, ": vocab = ", vocab, " must be in [1, 2^31 - 1)"));
  }
  if (rows > 0 && num_sequences == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(kernel, ": ", rows, " rows but no sequence (num_sequences = 0)"));
  }
  if (num_sequences > 0 && offsets == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(kernel, ": offsets is required"));
  }
  if (rows > 0 && raw == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(kernel, ": raw is required"));
  }
  if (!host) return absl::OkStatus();
  if (num_sequences > 0) {
    if (offsets[0] != 0 || offsets[num_sequences] != rows) {
      return absl::InvalidArgumentError(
          absl::StrCat(kernel, ": offsets[0] = ", offsets[0], " and offsets[", num_sequences,
                       "] = ", offsets[num_sequences], " must be 0 and ", rows));
    }
    for (int64_t b = 0; b < num_sequences; ++b) {
      if (offsets[b + 1] < offsets[b]) {
        return absl::InvalidArgumentError(absl::StrCat(kernel, ": offsets[", b + 1,
                                                       "] = ", offsets[b + 1], " < offsets[", b,
                                                       "] = ", offsets[b]));
      }
    }
  }
  for (int64_t r = 0; tokens != nullptr && r < rows; ++r) {
    if (tokens[r] < 0 || tokens[r] >= vocab) {
      return absl::InvalidArgumentError(
          absl::StrCat(kernel, ": tokens[", r, "] = ", tokens[r], " is outside [0, ", vocab, ")"));
    }
  }
  for (int64_t r = 0; row_scales != nullptr && r < rows; ++r) {
    if (!(std::isfinite(row_scales[r]) && row_scales[r] >= 0.0f)) {
      return absl::InvalidArgumentError(absl::StrCat(
          kernel, ": row_scales[", r, "] = ", row_scales[r], " must be finite and >= 0"));
    }
  }
  return absl::OkStatus();
}

absl::Status InternalOrOk(const std::string& message) {
  if (message.empty()) return absl::OkStatus();
  return absl::InternalError(message);
}

absl::Status ValidateSampleStepMemory(const SampleStepArgs& a, bool host);
absl::Status ValidateGillespieMemory(const GillespieArgs& a, bool host);

// Run resolves where the argument pointers live, validates the arguments
// (contents only for host memory), then runs the CPU or the CUDA backend.
template <typename Args, typename Result>
absl::StatusOr<Result> Run(Backend backend, const Args& a,
                           std::initializer_list<detail::NamedPointer> pointers,
                           absl::Status (*validate)(const Args&, bool), Result (*cpu)(const Args&),
                           std::string (*cuda)(const Args&, bool, Result*)) {
  bool host = true;
  absl::Status s = detail::ResolveMemory(backend, pointers, &host);
  if (!s.ok()) return s;
  s = validate(a, host);
  if (!s.ok()) return s;
  if (backend == Backend::kCpu) return cpu(a);
  Result result;
  s = InternalOrOk(cuda(a, host, &result));
  if (!s.ok()) return s;
  return result;
}

}  // namespace

absl::Status ValidateSampleStep(const SampleStepArgs& a) {
  return ValidateSampleStepMemory(a, !cuda_internal::IsDevicePointer(a.raw));
}

namespace {
// ValidateSampleStepMemory is ValidateSampleStep for pointers known to be
// host (`host`: contents checked) or device memory.
absl::Status ValidateSampleStepMemory(const SampleStepArgs& a, bool host) {
  absl::Status s = CheckCommon("SampleStep", a.parametrization, a.rows, a.vocab, a.num_sequences,
                               a.raw, a.offsets, a.tokens, a.row_scales, host);
  if (!s.ok()) return s;
  if (a.num_sequences > 0 && a.fire == nullptr) {
    return absl::InvalidArgumentError("SampleStep: fire is required");
  }
  if (a.rows > 0 && (a.jumped == nullptr || a.new_token == nullptr)) {
    return absl::InvalidArgumentError("SampleStep: jumped and new_token are required outputs");
  }
  if (a.jump != JumpProbability::kLinear && a.jump != JumpProbability::kExponential) {
    return absl::InvalidArgumentError("SampleStep: unknown JumpProbability");
  }
  for (int64_t b = 0; host && b < a.num_sequences; ++b) {
    if (!(std::isfinite(a.fire[b]) && a.fire[b] >= 0.0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("SampleStep: fire[", b, "] = ", a.fire[b], " must be finite and >= 0"));
    }
  }
  return absl::OkStatus();
}
}  // namespace

absl::StatusOr<SampleStepResult> SampleStep(Backend backend, const SampleStepArgs& a) {
  return Run(backend, a,
             {{"raw", a.raw},
              {"offsets", a.offsets},
              {"tokens", a.tokens},
              {"row_scales", a.row_scales},
              {"fire", a.fire},
              {"sequence_ids", a.sequence_ids},
              {"steps", a.steps},
              {"jumped", a.jumped},
              {"new_token", a.new_token},
              {"row_rate", a.row_rate}},
             &ValidateSampleStepMemory, &SampleStepCpu, &cuda_internal::SampleStepCuda);
}

absl::StatusOr<SampleStepResult> SampleStep(const SampleStepArgs& a) {
  return SampleStep(PointerBackend(a.raw), a);
}

absl::Status ValidateGillespie(const GillespieArgs& a) {
  return ValidateGillespieMemory(a, !cuda_internal::IsDevicePointer(a.raw));
}

namespace {
// ValidateGillespieMemory is ValidateGillespie for host or device pointers.
absl::Status ValidateGillespieMemory(const GillespieArgs& a, bool host) {
  absl::Status s = CheckCommon("Gillespie", a.parametrization, a.rows, a.vocab, a.num_sequences,
                               a.raw, a.offsets, a.tokens, a.row_scales, host);
  if (!s.ok()) return s;
  if (a.num_sequences > 0 &&
      (a.total == nullptr || a.event_position == nullptr || a.event_token == nullptr)) {
    return absl::InvalidArgumentError(
        "Gillespie: total, event_position and event_token are required outputs");
  }
  if (a.rows > 0 && a.row_rate == nullptr) {
    return absl::InvalidArgumentError("Gillespie: row_rate is a required output");
  }
  if (host) {
    for (int64_t b = 0; b < a.num_sequences; ++b) {
      if (a.offsets[b + 1] - a.offsets[b] > std::numeric_limits<int32_t>::max()) {
        return absl::InvalidArgumentError(
            absl::StrCat("Gillespie: sequence ", b, " has more than 2^31 - 1 rows"));
      }
    }
  }
  return absl::OkStatus();
}
}  // namespace

absl::StatusOr<GillespieResult> Gillespie(Backend backend, const GillespieArgs& a) {
  return Run(backend, a,
             {{"raw", a.raw},
              {"offsets", a.offsets},
              {"tokens", a.tokens},
              {"row_scales", a.row_scales},
              {"sequence_ids", a.sequence_ids},
              {"steps", a.steps},
              {"row_rate", a.row_rate},
              {"total", a.total},
              {"event_position", a.event_position},
              {"event_token", a.event_token}},
             &ValidateGillespieMemory, &GillespieCpu, &cuda_internal::GillespieCuda);
}

absl::StatusOr<GillespieResult> Gillespie(const GillespieArgs& a) {
  return Gillespie(PointerBackend(a.raw), a);
}

}  // namespace jumpflow::kernels
