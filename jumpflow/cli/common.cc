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

}  // namespace jumpflow::cli
