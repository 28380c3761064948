// @brief Helpers shared by the subcommands.

#include "absl/strings/str_cat.h"
#include "jumpflow/cli/commands.h"
#include "jumpflow/status_macros.h"

namespace jumpflow::cli {

absl::StatusOr<Dataset> LoadTextData(const std::string& path, const std::string& chars,
                                     const std::string& vocab_path, const DatasetOptions& options) {
  if (!vocab_path.empty()) {
    JUMPFLOW_ASSIGN_OR_RETURN(Vocabulary vocab, Vocabulary::FromTokenFile(vocab_path));
    return Dataset::LoadTokens(path, vocab, options);
  }
  if (!chars.empty()) {
    JUMPFLOW_ASSIGN_OR_RETURN(Vocabulary vocab, Vocabulary::FromCharacters(chars));
    return Dataset::LoadLines(path, vocab, options);
  }
  JUMPFLOW_ASSIGN_OR_RETURN(Vocabulary vocab, Vocabulary::FromTextFile(path));
  return Dataset::LoadLines(path, vocab, options);
}

absl::StatusOr<kernels::Backend> ParseDevice(const std::string& value) {
  absl::StatusOr<kernels::Backend> device = kernels::ParseBackend(value);
  if (!device.ok()) {
    return absl::Status(device.status().code(),
                        absl::StrCat("--device: ", device.status().message()));
  }
  const absl::Status available = kernels::CheckBackendAvailable(*device);
  if (!available.ok()) {
    return absl::Status(available.code(),
                        absl::StrCat("--device ", value, ": ", available.message()));
  }
  return device;
}

absl::Status CheckFusedDevice(kernels::Backend device, const RateModel& model, SamplerKind kind,
                              const std::string& model_flag) {
  if (device == kernels::Backend::kCpu || HasFusedEvents(model, kind)) return absl::OkStatus();
  const char* process = model.process() == ProcessKind::kDfm    ? "DFM"
                        : model.process() == ProcessKind::kEdit ? "Edit Flow"
                                                                : "Branching Flow";
  return absl::InvalidArgumentError(absl::StrCat(
      "--device cuda: only DFM checkpoints with --sampler euler, tau-leap or gillespie and "
      "insertion-only Edit Flow checkpoints with --sampler euler or gillespie run on the GPU (the "
      "fused event kernels), not --model ",
      model_flag, " (", process, ", ", model.Name(), ") with --sampler ", SamplerKindName(kind),
      "; use --device cpu"));
}

}  // namespace jumpflow::cli
