// @brief Helpers shared by the subcommands.

#include "absl/strings/str_cat.h"
#include "jumpflow/cli/commands.h"
#include "jumpflow/status_macros.h"

namespace jumpflow::cli {

absl::StatusOr<Dataset> LoadTextData(const std::string& path, const std::string& chars,
                                     const std::string& vocab_path,
                                     const DatasetOptions& options) {
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

}  // namespace jumpflow::cli
