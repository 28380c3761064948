// @brief Flags and data shared by `jumpflow sample` and `jumpflow bench`.
#include "jumpflow/cli/sampling.h"

#include <algorithm>
#include <string>
#include <vector>

#include "jumpflow/cli/commands.h"
#include "jumpflow/status_macros.h"

namespace jumpflow::cli {

void AddModelFlags(FlagSet* flags) {
  flags->Add("data", "/usr/share/dict/words", "one sequence per line (the oracle's data set)");
  flags->Add("chars", "abcdefghijklmnopqrstuvwxyz",
             "character vocabulary; lines with other characters are skipped ('' = from file)");
  flags->Add("max-length", "12", "longest data sequence kept");
  flags->Add("data-size", "1000",
             "use a fixed random subset of this many sequences (0 = all); with a checkpoint "
             "--data is the reference for the quality numbers and all of it is used unless "
             "this is given");
  flags->Add("model", "oracle",
             "'oracle' (exact rates of --data), or a checkpoint written by jumpflow train");
  flags->Add("process", "edit",
             "oracle process: dfm-mask, dfm-uniform or edit (insertion-only Edit Flows); a "
             "checkpoint knows its own");
  flags->Add("scheduler", "auto",
             "oracle scheduler: linear, poly:N, cosine, beta:A,B (auto: poly:3 for edit, "
             "linear for DFM); a checkpoint knows its own");
}

absl::StatusOr<Dataset> LoadSampleData(const FlagSet& flags, DataUse use) {
  JUMPFLOW_ASSIGN_OR_RETURN(const int64_t max_length, flags.GetInt("max-length", 1));
  int64_t data_size = 0;
  if (use == DataUse::kOracle || flags.Was("data-size")) {
    JUMPFLOW_ASSIGN_OR_RETURN(data_size, flags.GetInt("data-size", 0));
  }
  DatasetOptions options;
  options.max_length = max_length;
  options.skip_unknown = !flags.Get("chars").empty();
  JUMPFLOW_ASSIGN_OR_RETURN(Dataset data,
                            LoadTextData(flags.Get("data"), flags.Get("chars"), "", options));
  if (data_size > 0 && data.size() > data_size) {
    std::vector<int64_t> order = ShuffledIndices(data.size(), 1, 2);
    order.resize(static_cast<size_t>(data_size));
    std::sort(order.begin(), order.end());
    data = data.Subset(order);
  }
  return data;
}

absl::StatusOr<FlagOracle> MakeFlagOracle(const FlagSet& flags, const Dataset& data) {
  JUMPFLOW_ASSIGN_OR_RETURN(const OracleKind process, ParseOracleKind(flags.Get("process")));
  std::string spec = flags.Get("scheduler");
  if (spec == "auto") spec = process == OracleKind::kEditInsertion ? "poly:3" : "linear";
  FlagOracle o;
  JUMPFLOW_ASSIGN_OR_RETURN(o.scheduler, MakeScheduler(spec));
  JUMPFLOW_ASSIGN_OR_RETURN(o.model, OracleModel::Create(process, data, o.scheduler));
  return o;
}

}  // namespace jumpflow::cli
