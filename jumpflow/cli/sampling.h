// @brief What `jumpflow sample` and `jumpflow bench` share: the data and
// model flags, loading the --data set, and the exact oracle of it.
//
// Example (inside a command):
//   AddModelFlags(&flags);                       // --data, --chars, ..., --scheduler
//   JUMPFLOW_ASSIGN_OR_RETURN(Dataset data, LoadSampleData(flags, DataUse::kOracle));
//   JUMPFLOW_ASSIGN_OR_RETURN(FlagOracle o, MakeFlagOracle(flags, data));
#ifndef JUMPFLOW_CLI_SAMPLING_H_
#define JUMPFLOW_CLI_SAMPLING_H_

#include <memory>

#include "absl/status/statusor.h"
#include "jumpflow/cli/flags.h"
#include "jumpflow/oracle.h"
#include "jumpflow/scheduler.h"
#include "sequences/dataset.h"

namespace jumpflow::cli {

// AddModelFlags declares --data, --chars, --max-length, --data-size, --model,
// --process and --scheduler with the documentation both commands share.
void AddModelFlags(FlagSet* flags);

// DataUse says what the loaded --data is for: the oracle's data set (the
// --data-size subset keeps the oracle fast) or the reference a checkpoint's
// samples are checked against (all of it unless --data-size is given).
enum class DataUse { kOracle, kReference };

// LoadSampleData loads --data with --chars, --max-length and --data-size (a
// fixed random subset, seed 1, so --seed changes the samples only).
absl::StatusOr<Dataset> LoadSampleData(const FlagSet& flags, DataUse use);

// FlagOracle is the exact oracle of --process and --scheduler ("auto":
// poly:3 for edit, linear for DFM) over `data`.
struct FlagOracle {
  std::unique_ptr<OracleModel> model;
  std::shared_ptr<const Scheduler> scheduler;
};
absl::StatusOr<FlagOracle> MakeFlagOracle(const FlagSet& flags, const Dataset& data);

}  // namespace jumpflow::cli

#endif  // JUMPFLOW_CLI_SAMPLING_H_
