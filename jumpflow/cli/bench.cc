// @brief `jumpflow bench`: accuracy against cost of the jump samplers on one
// rate model (the exact oracle of a data file, or a trained checkpoint),
// over grid steps and adaptive tolerances, as a Markdown table (and CSV).
#include <algorithm>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "jumpflow/cli/commands.h"
#include "jumpflow/cli/flags.h"
#include "jumpflow/cli/sampling.h"
#include "jumpflow/generation_metrics.h"
#include "jumpflow/model/model_rate.h"
#include "jumpflow/samplers/sampler.h"
#include "jumpflow/status_macros.h"
#include "sequences/file_util.h"

namespace jumpflow::cli {
namespace {

// Setting is one row of the table: a sampler with its steps or tolerance,
// and whether its events come from the fused kernels.
struct Setting {
  SamplerKind kind;
  int64_t steps = 0;
  double tolerance = 0.0;
  std::string label;
  bool fused = true;
};

// ParseList splits a comma-separated flag value into its non-empty items.
std::vector<std::string> ParseList(const std::string& value) {
  std::vector<std::string> out;
  for (absl::string_view item : absl::StrSplit(value, ',', absl::SkipWhitespace())) {
    out.emplace_back(item);
  }
  return out;
}

// Settings expands --samplers over --steps (euler, tau-leap) and
// --tolerances (adaptive); the Gillespie samplers get one row each.
absl::StatusOr<std::vector<Setting>> Settings(const FlagSet& flags) {
  std::vector<int64_t> steps;
  for (const std::string& s : ParseList(flags.Get("steps"))) {
    int64_t n = 0;
    if (!absl::SimpleAtoi(s, &n) || n < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("--steps: '", s, "' is not a positive integer"));
    }
    steps.push_back(n);
  }
  std::vector<double> tolerances;
  for (const std::string& s : ParseList(flags.Get("tolerances"))) {
    double tol = 0.0;
    if (!absl::SimpleAtod(s, &tol) || !(tol > 0.0 && tol <= 1.0)) {
      return absl::InvalidArgumentError(absl::StrCat("--tolerances: '", s, "' is not in (0, 1]"));
    }
    tolerances.push_back(tol);
  }
  std::vector<Setting> out;
  for (const std::string& name : ParseList(flags.Get("samplers"))) {
    JUMPFLOW_ASSIGN_OR_RETURN(const SamplerKind kind, ParseSamplerKind(name));
    switch (kind) {
      case SamplerKind::kEuler:
      case SamplerKind::kTauLeap:
        if (steps.empty()) return absl::InvalidArgumentError("--steps is empty");
        for (int64_t n : steps) out.push_back({kind, n, 0.0, absl::StrCat(n, " steps")});
        break;
      case SamplerKind::kAdaptive:
        if (tolerances.empty()) return absl::InvalidArgumentError("--tolerances is empty");
        for (double tol : tolerances) out.push_back({kind, 0, tol, absl::StrCat("tol ", tol)});
        break;
      default:
        out.push_back({kind, 0, 0.0, kind == SamplerKind::kGillespie ? "exact" : "approx."});
        break;
    }
  }
  if (out.empty()) return absl::InvalidArgumentError("--samplers is empty");
  return out;
}

// EventPaths applies --events (fused | per-sequence | both) and --device to
// the settings on `model`: fused rows run SamplerOptions::fused_events
// where the sampler has that path (HasFusedEvents), on the --device;
// per-sequence rows always run on the CPU. With `both`, a sampler with a
// fused path gets one row each way (labelled); --device cuda needs every
// fused row to have the path.
absl::StatusOr<std::vector<Setting>> EventPaths(const FlagSet& flags, std::vector<Setting> settings,
                                                const RateModel& model, kernels::Backend device) {
  const std::string events = flags.Get("events");
  if (events != "fused" && events != "per-sequence" && events != "both") {
    return absl::InvalidArgumentError(
        absl::StrCat("--events must be fused, per-sequence or both, got '", events, "'"));
  }
  if (device != kernels::Backend::kCpu && events == "per-sequence") {
    return absl::InvalidArgumentError(
        "--device cuda runs the fused event kernels: use --events fused or both");
  }
  std::vector<Setting> out;
  for (Setting s : settings) {
    const bool has_fused = HasFusedEvents(model, s.kind);
    if (events != "per-sequence") {
      JUMPFLOW_RETURN_IF_ERROR(CheckFusedDevice(device, model, s.kind, flags.Get("model")));
    }
    if (events == "both" && has_fused) {
      Setting per_sequence = s;
      per_sequence.fused = false;
      per_sequence.label += ", per-sequence";
      s.label += ", fused";
      out.push_back(s);
      out.push_back(per_sequence);
      continue;
    }
    s.fused = events != "per-sequence" && has_fused;
    out.push_back(s);
  }
  return out;
}

// Row is one measured setting.
struct Row {
  Setting setting;
  SamplerStats stats;
  double in_data = 0.0;  // in-support (oracle) or in --data (checkpoint) fraction
  double tv = 0.0;       // TV to the data law (oracle) or of lengths (checkpoint)
};

absl::Status BenchCommand(const FlagSet& flags) {
  JUMPFLOW_ASSIGN_OR_RETURN(std::vector<Setting> settings, Settings(flags));
  JUMPFLOW_ASSIGN_OR_RETURN(const kernels::Backend device, ParseDevice(flags.Get("device")));
  JUMPFLOW_ASSIGN_OR_RETURN(const int64_t num, flags.GetInt("num", 1));
  JUMPFLOW_ASSIGN_OR_RETURN(const int64_t seed, flags.GetInt("seed", 0));
  JUMPFLOW_ASSIGN_OR_RETURN(const int64_t threads, flags.GetInt("threads", 0));
  JUMPFLOW_ASSIGN_OR_RETURN(const int64_t batch, flags.GetInt("batch", 1));
  const std::string grid = flags.Get("grid");
  if (grid != "uniform" && grid != "kappa") {
    return absl::InvalidArgumentError(
        absl::StrCat("--grid must be uniform or kappa, got '", grid, "'"));
  }
  if (flags.Was("csv")) JUMPFLOW_RETURN_IF_ERROR(CheckWritable(flags.Get("csv")));

  // The model, its schedulers, its start states and the quality measure.
  const bool oracle = flags.Get("model") == "oracle";
  std::optional<FlagOracle> flag_oracle;
  std::optional<TrainedModel> trained;
  std::optional<Dataset> data;
  RateModel* model = nullptr;
  KindSchedulers schedulers;
  SequenceBatch start;
  int64_t max_length = SamplerOptions{}.max_length;
  std::string description;
  if (oracle) {
    JUMPFLOW_ASSIGN_OR_RETURN(data, LoadSampleData(flags, DataUse::kOracle));
    JUMPFLOW_ASSIGN_OR_RETURN(flag_oracle, MakeFlagOracle(flags, *data));
    model = flag_oracle->model.get();
    schedulers = KindSchedulers::All(flag_oracle->scheduler.get());
    start = flag_oracle->model->SourceBatch(num, static_cast<uint64_t>(seed));
    description = absl::StrCat(model->Name(), ", scheduler ", flag_oracle->scheduler->Name(), ", ",
                               data->size(),
                               " data items; quality: share of samples in the "
                               "data and TV to the data law");
  } else {
    JUMPFLOW_ASSIGN_OR_RETURN(trained, LoadTrainedModel(flags.Get("model")));
    model = trained->model.get();
    schedulers = trained->schedulers();
    JUMPFLOW_ASSIGN_OR_RETURN(start, trained->SourceBatch(num, static_cast<uint64_t>(seed)));
    max_length = trained->max_length();
    description = absl::StrCat(model->Name(), " (", trained->process_name, ")");
    if (flags.Was("data")) {
      JUMPFLOW_ASSIGN_OR_RETURN(data, LoadSampleData(flags, DataUse::kReference));
      absl::StrAppend(&description, "; quality: share of samples in --data (", data->size(),
                      " items) and TV of the lengths");
    } else {
      absl::StrAppend(&description, "; quality columns need --data");
    }
  }

  JUMPFLOW_ASSIGN_OR_RETURN(settings, EventPaths(flags, std::move(settings), *model, device));

  std::printf("jumpflow bench: %s; %lld samples per row, seed %lld\n\n", description.c_str(),
              static_cast<long long>(num), static_cast<long long>(seed));
  std::printf(
      "| sampler | setting | model calls | evals / sample | events / sample | in data | TV | "
      "seconds | samples / s |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
  std::fflush(stdout);
  std::vector<Row> rows;
  for (const Setting& s : settings) {
    SamplerOptions opt;
    opt.kind = s.kind;
    opt.steps = std::max<int64_t>(1, s.steps);
    opt.tolerance = s.tolerance > 0.0 ? s.tolerance : opt.tolerance;
    opt.grid = grid == "kappa" ? TimeGrid::kKappa : TimeGrid::kUniform;
    opt.seed = static_cast<uint64_t>(seed);
    opt.num_threads = static_cast<int>(threads);
    opt.max_batch = batch;
    opt.max_length = max_length;
    opt.fused_events = s.fused;
    opt.device = s.fused ? device : kernels::Backend::kCpu;
    JUMPFLOW_ASSIGN_OR_RETURN(SampleResult result, Sample(*model, schedulers, start, opt));
    Row row{s, result.stats};
    if (oracle) {
      const SampleQuality q = flag_oracle->model->Compare(result.final_batch);
      row.in_data = q.in_support_fraction;
      row.tv = q.tv;
    } else if (data.has_value()) {
      const GenerationReport r = EvaluateGeneration(result.final_batch.ToVectors(), *data, *data);
      row.in_data = r.in_reference_fraction;
      row.tv = r.length_tv;
    }
    const bool quality = oracle || data.has_value();
    auto metric = [quality](double x) { return quality ? absl::StrFormat("%.4f", x) : "-"; };
    const double n = static_cast<double>(num);
    std::printf("| %s | %s | %lld | %.1f | %.2f | %s | %s | %.3f | %.0f |\n",
                SamplerKindName(s.kind).c_str(), s.label.c_str(),
                static_cast<long long>(row.stats.model_calls),
                static_cast<double>(row.stats.sequence_evaluations) / n,
                static_cast<double>(row.stats.events) / n, metric(row.in_data).c_str(),
                metric(row.tv).c_str(), row.stats.seconds, n / std::max(row.stats.seconds, 1e-9));
    std::fflush(stdout);
    rows.push_back(row);
  }

  if (flags.Was("csv")) {
    std::string csv =
        "sampler,setting,steps,tolerance,model_calls,sequence_evaluations,events,in_data,tv,"
        "seconds\n";
    for (const Row& r : rows) {
      absl::StrAppend(&csv, SamplerKindName(r.setting.kind), ",", r.setting.label, ",",
                      r.setting.steps, ",", r.setting.tolerance, ",", r.stats.model_calls, ",",
                      r.stats.sequence_evaluations, ",", r.stats.events, ",", r.in_data, ",", r.tv,
                      ",", r.stats.seconds, "\n");
    }
    JUMPFLOW_RETURN_IF_ERROR(WriteFileAtomically(flags.Get("csv"), csv));
    std::printf("\nwrote %s\n", flags.Get("csv").c_str());
  }
  return absl::OkStatus();
}

}  // namespace

int RunBench(int argc, char** argv) {
  FlagSet flags("bench",
                "Benchmark the jump samplers on one rate model: for every sampler (Euler and\n"
                "tau-leaping over --steps, adaptive tau-leaping over --tolerances, exact and\n"
                "frozen Gillespie) draw --num samples from the same start states and print the\n"
                "cost (model calls, evaluations and events per sample, seconds) next to the\n"
                "quality: with --model oracle the share of samples in the data and the TV to\n"
                "the data law (exact Gillespie is the reference); with a checkpoint and --data,\n"
                "the share of samples found in --data and the TV of the length distributions.\n"
                "On a DFM or insertion-only Edit Flow checkpoint, --events both compares the\n"
                "fused event kernels (on --device) with the per-sequence path.");
  AddModelFlags(&flags);
  flags.Add("samplers", "euler,tau-leap,adaptive,gillespie",
            "comma-separated: euler, tau-leap, adaptive, gillespie, gillespie-frozen");
  flags.Add("steps", "4,16,64,256", "comma-separated grid steps of euler and tau-leap");
  flags.Add("tolerances", "0.5,0.2,0.05", "comma-separated adaptive tolerances in (0, 1]");
  flags.Add("grid", "uniform", "time grid of euler and tau-leap: uniform or kappa");
  flags.Add("num", "2000", "samples per row");
  flags.Add("seed", "1", "random seed (the same start states and streams for every row)");
  flags.Add("threads", "0", "worker threads (0 = all cores)");
  flags.Add("batch", "1024", "most sequences per model evaluation");
  flags.Add("events", "fused",
            "fused (each round's events from one fused kernel call where the sampler has that "
            "path: DFM checkpoints with euler, tau-leap or gillespie, insertion-only Edit Flow "
            "checkpoints with euler or gillespie), per-sequence, or both "
            "(one row each way)");
  flags.Add("device", "cpu",
            "where the fused kernels run: cpu or cuda (an error unless this build has the CUDA "
            "backend and a GPU, and every fused row has the path)");
  flags.Add("csv", "", "also write the table as CSV here (atomically)");
  return RunMain(flags, argc, argv, 2, "jumpflow bench", BenchCommand);
}

}  // namespace jumpflow::cli
