// @brief `jumpflow sample`: draw sequences from a rate model (the exact
// oracle of a data file today; trained checkpoints through
// LoadRateModelCheckpoint once the trainer exists) with any sampler, write
// them one per line, and report their quality and cost.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "jumpflow/cli/commands.h"
#include "jumpflow/cli/flags.h"
#include "jumpflow/oracle.h"
#include "jumpflow/rate_model.h"
#include "jumpflow/samplers/sampler.h"
#include "jumpflow/scheduler.h"
#include "jumpflow/status_macros.h"
#include "kernels/backend.h"
#include "sequences/file_util.h"

namespace jumpflow::cli {
namespace {

// ProgressBar draws "[#####.....]  52%  10400/20000" on stderr, redrawing
// only when the shown percentage changes.
class ProgressBar {
 public:
  void Update(int64_t done, int64_t total) {
    const int percent = total > 0 ? static_cast<int>(100 * done / total) : 100;
    if (percent == last_) return;
    last_ = percent;
    constexpr int kWidth = 30;
    const int filled = percent * kWidth / 100;
    std::fprintf(stderr, "\r[%s%s] %3d%%  %lld/%lld", std::string(filled, '#').c_str(),
                 std::string(kWidth - filled, '.').c_str(), percent, static_cast<long long>(done),
                 static_cast<long long>(total));
    if (done >= total) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  }

 private:
  int last_ = -1;
};

// BuildModel turns the --model value into a RateModel: "oracle" builds the
// exact model of `data` for `process`; anything else is a checkpoint path
// handed to LoadRateModelCheckpoint (issue 8 fills that hook in).
absl::StatusOr<std::unique_ptr<RateModel>> BuildModel(const std::string& spec, OracleKind process,
                                                      const Dataset& data,
                                                      std::shared_ptr<const Scheduler> sched,
                                                      OracleModel** oracle) {
  if (spec == "oracle") {
    JUMPFLOW_ASSIGN_OR_RETURN(std::unique_ptr<OracleModel> model,
                              OracleModel::Create(process, data, std::move(sched)));
    *oracle = model.get();
    return std::unique_ptr<RateModel>(std::move(model));
  }
  *oracle = nullptr;
  return LoadRateModelCheckpoint(spec);
}

// CheckDevice handles --device: cpu runs everything on the host; cuda is an
// error (one line, naming the reason) when this build has no CUDA backend or
// no GPU is present, and otherwise too: the samplers here move host
// RateOutputs of host rate models, and the CUDA event kernels
// (kernels/sample_step.h, kernels/gillespie.h) take device-resident logits,
// which no model of `jumpflow sample` produces yet. Never a silent fallback.
absl::Status CheckDevice(const std::string& value) {
  JUMPFLOW_ASSIGN_OR_RETURN(const kernels::Backend device, kernels::ParseBackend(value));
  if (device == kernels::Backend::kCpu) return absl::OkStatus();
  const absl::Status available = kernels::CheckBackendAvailable(device);
  if (!available.ok()) {
    return absl::Status(available.code(), absl::StrCat("--device cuda: ", available.message()));
  }
  return absl::UnimplementedError(
      "--device cuda: the rate models of jumpflow sample (the oracle, CPU checkpoints) produce "
      "host multipliers; the CUDA event kernels need device-resident logits (use --device cpu)");
}

absl::Status SampleCommand(const FlagSet& flags) {
  JUMPFLOW_RETURN_IF_ERROR(CheckDevice(flags.Get("device")));
  JUMPFLOW_ASSIGN_OR_RETURN(const int64_t num, flags.GetInt("num", 1));
  JUMPFLOW_ASSIGN_OR_RETURN(const int64_t steps, flags.GetInt("steps", 1));
  JUMPFLOW_ASSIGN_OR_RETURN(const int64_t seed, flags.GetInt("seed", 0));
  JUMPFLOW_ASSIGN_OR_RETURN(const int64_t threads, flags.GetInt("threads", 0));
  JUMPFLOW_ASSIGN_OR_RETURN(const int64_t batch, flags.GetInt("batch", 1));
  JUMPFLOW_ASSIGN_OR_RETURN(const int64_t max_length, flags.GetInt("max-length", 1));
  JUMPFLOW_ASSIGN_OR_RETURN(const int64_t data_size, flags.GetInt("data-size", 0));
  JUMPFLOW_ASSIGN_OR_RETURN(const int64_t show, flags.GetInt("show", 0));
  JUMPFLOW_ASSIGN_OR_RETURN(const double tolerance, flags.GetDouble("tolerance"));
  JUMPFLOW_ASSIGN_OR_RETURN(const SamplerKind sampler, ParseSamplerKind(flags.Get("sampler")));
  JUMPFLOW_ASSIGN_OR_RETURN(const OracleKind process, ParseOracleKind(flags.Get("process")));
  if (!(tolerance > 0.0 && tolerance <= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tolerance must be in (0, 1], got ", flags.Get("tolerance")));
  }
  const std::string grid = flags.Get("grid");
  if (grid != "uniform" && grid != "kappa") {
    return absl::InvalidArgumentError(
        absl::StrCat("--grid must be uniform or kappa, got '", grid, "'"));
  }
  std::string sched_spec = flags.Get("scheduler");
  if (sched_spec == "auto")
    sched_spec = process == OracleKind::kEditInsertion ? "poly:3" : "linear";
  JUMPFLOW_ASSIGN_OR_RETURN(std::shared_ptr<const Scheduler> sched, MakeScheduler(sched_spec));

  DatasetOptions options;
  options.max_length = max_length;
  options.skip_unknown = !flags.Get("chars").empty();
  JUMPFLOW_ASSIGN_OR_RETURN(Dataset data,
                            LoadTextData(flags.Get("data"), flags.Get("chars"), "", options));
  if (data.size() == 0) {
    return absl::InvalidArgumentError(absl::StrCat("no usable sequence in '", flags.Get("data"),
                                                   "' (check --chars and --max-length)"));
  }
  if (data_size > 0 && data.size() > data_size) {
    // A fixed random subset (seed 1), so --seed changes the samples only.
    std::vector<int64_t> order = ShuffledIndices(data.size(), 1, 2);
    order.resize(static_cast<size_t>(data_size));
    std::sort(order.begin(), order.end());
    data = data.Subset(order);
  }

  OracleModel* oracle = nullptr;
  JUMPFLOW_ASSIGN_OR_RETURN(std::unique_ptr<RateModel> model,
                            BuildModel(flags.Get("model"), process, data, sched, &oracle));

  if (oracle == nullptr) {
    // Issue 8: checkpoint models need their own source batch and report.
    return absl::UnimplementedError("only --model oracle can be sampled so far");
  }

  SamplerOptions opt;
  opt.kind = sampler;
  opt.steps = steps;
  opt.grid = grid == "kappa" ? TimeGrid::kKappa : TimeGrid::kUniform;
  opt.tolerance = tolerance;
  opt.seed = static_cast<uint64_t>(seed);
  opt.num_threads = static_cast<int>(threads);
  opt.max_batch = batch;
  ProgressBar bar;
  if (isatty(fileno(stderr))) {
    opt.progress = [&bar](int64_t done, int64_t total) { bar.Update(done, total); };
  }
  const SequenceBatch start = oracle->SourceBatch(num, opt.seed);
  JUMPFLOW_ASSIGN_OR_RETURN(SampleResult result,
                            Sample(*model, KindSchedulers::All(sched.get()), start, opt));

  std::string text;
  for (int64_t b = 0; b < result.final_batch.num_sequences(); ++b) {
    absl::StrAppend(&text, oracle->Decode(result.final_batch.sequence(b)), "\n");
  }
  const bool to_file = !flags.Get("out").empty();
  if (to_file) {
    JUMPFLOW_RETURN_IF_ERROR(WriteFileAtomically(flags.Get("out"), text));
  } else {
    std::fputs(text.c_str(), stdout);
  }
  // The summary goes to stdout with --out, else to stderr (stdout holds samples).
  FILE* report = to_file ? stdout : stderr;
  for (int64_t b = 0; to_file && b < std::min(show, result.final_batch.num_sequences()); ++b) {
    std::fprintf(report, "  %s\n", oracle->Decode(result.final_batch.sequence(b)).c_str());
  }
  const SampleQuality q = oracle->Compare(result.final_batch);
  const SamplerStats& s = result.stats;
  std::fprintf(report, "sampled %lld sequences: %s sampler, %s, scheduler %s, %lld data items\n",
               static_cast<long long>(num), SamplerKindName(sampler).c_str(), model->Name().c_str(),
               sched->Name().c_str(), static_cast<long long>(oracle->support().size()));
  std::fprintf(report, "in-support fraction: %.4f (%lld / %lld)\n", q.in_support_fraction,
               static_cast<long long>(q.in_support), static_cast<long long>(q.num_samples));
  if (q.dof > 0) {
    std::fprintf(report,
                 "TV to the data: %.4f; chi-square of in-support samples: %.1f on %lld "
                 "dof, p = %.3g\n",
                 q.tv, q.chi_square, static_cast<long long>(q.dof), q.p_value);
  } else {
    std::fprintf(report,
                 "TV to the data: %.4f; chi-square: n/a (fewer than 5 expected samples "
                 "per data item)\n",
                 q.tv);
  }
  std::fprintf(report, "events: %lld; steps: %lld; model evaluations: %lld calls, %lld sequences\n",
               static_cast<long long>(s.events), static_cast<long long>(s.steps),
               static_cast<long long>(s.model_calls),
               static_cast<long long>(s.sequence_evaluations));
  if (s.rejections + s.bound_violations + s.fallbacks + s.truncated > 0) {
    std::fprintf(report,
                 "thinning rejections: %lld; bound violations: %lld; oracle fallbacks: %lld; "
                 "truncated: %lld\n",
                 static_cast<long long>(s.rejections), static_cast<long long>(s.bound_violations),
                 static_cast<long long>(s.fallbacks), static_cast<long long>(s.truncated));
  }
  std::fprintf(report, "seconds: %.3f (%.0f sequences/s, %.0f events/s)\n", s.seconds,
               static_cast<double>(num) / std::max(s.seconds, 1e-9),
               static_cast<double>(s.events) / std::max(s.seconds, 1e-9));
  return absl::OkStatus();
}

}  // namespace

int RunSample(int argc, char** argv) {
  FlagSet flags(
      "sample",
      "Sample sequences from a rate model with a jump sampler. --model oracle uses the\n"
      "exact marginal rates of the --data set, so the samples can be checked against it.\n"
      "Samples go to --out (one per line, written atomically) or to stdout.");
  flags.Add("data", "/usr/share/dict/words", "one sequence per line (the oracle's data set)");
  flags.Add("chars", "abcdefghijklmnopqrstuvwxyz",
            "character vocabulary; lines with other characters are skipped ('' = from file)");
  flags.Add("max-length", "12", "longest data sequence kept");
  flags.Add("data-size", "1000", "use a fixed random subset of this many sequences (0 = all)");
  flags.Add("model", "oracle", "'oracle', or a checkpoint path (trained models: not yet)");
  flags.Add("process", "edit", "dfm-mask, dfm-uniform or edit (insertion-only Edit Flows)");
  flags.Add("scheduler", "auto",
            "linear, poly:N, cosine, beta:A,B (auto: poly:3 for edit, "
            "linear for DFM)");
  flags.Add("sampler", "gillespie",
            "euler, tau-leap, adaptive, gillespie (exact) or gillespie-frozen (approximate)");
  flags.Add("steps", "100", "grid steps of euler and tau-leap");
  flags.Add("grid", "uniform", "time grid of euler and tau-leap: uniform or kappa");
  flags.Add("tolerance", "0.05", "adaptive tau-leaping tolerance in (0, 1]");
  flags.Add("num", "1000", "number of samples");
  flags.Add("seed", "1", "random seed (samples are reproducible for any --threads)");
  flags.Add("threads", "0", "worker threads (0 = all cores)");
  flags.Add("batch", "1024", "most sequences per model evaluation");
  flags.Add("device", "cpu",
            "where the kernels run: cpu, or cuda (an error unless this build has the CUDA "
            "backend and a GPU is present)");
  flags.Add("out", "", "write the samples here, one per line");
  flags.Add("show", "10", "with --out, also print this many samples");
  if (auto s = flags.Parse(argc, argv); !s.ok()) return ReportError("sample", s);
  if (flags.help_requested()) {
    std::printf("%s", flags.Help().c_str());
    return 0;
  }
  if (auto s = SampleCommand(flags); !s.ok()) return ReportError("sample", s);
  return 0;
}

}  // namespace jumpflow::cli
