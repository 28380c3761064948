// @brief `jumpflow sample`: draw sequences from a rate model (the exact
// oracle of a data file, or a trained checkpoint; from the model's source or
// as edits of given sequences) with any sampler, write them one per line, and
// report their quality and cost.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "jumpflow/cli/commands.h"
#include "jumpflow/cli/flags.h"
#include "jumpflow/cli/sampling.h"
#include "jumpflow/generation_metrics.h"
#include "jumpflow/model/model_rate.h"
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

// PrintCost prints the sampler's work: events, steps, model evaluations,
// thinning and bounds, seconds.
void PrintCost(FILE* report, const SamplerStats& s, int64_t num) {
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
}

// WriteSamples writes one decoded sample per line to --out (atomically) or
// stdout, and returns the stream the summary goes to (stdout with --out,
// else stderr), after echoing --show samples there.
absl::StatusOr<FILE*> WriteSamples(const FlagSet& flags, const std::vector<std::string>& lines,
                                   int64_t show) {
  std::string text;
  for (const auto& line : lines) absl::StrAppend(&text, line, "\n");
  const bool to_file = !flags.Get("out").empty();
  if (!to_file) {
    std::fputs(text.c_str(), stdout);
    return stderr;
  }
  JUMPFLOW_RETURN_IF_ERROR(WriteFileAtomically(flags.Get("out"), text));
  for (int64_t b = 0; b < std::min<int64_t>(show, static_cast<int64_t>(lines.size())); ++b) {
    std::printf("  %s\n", lines[static_cast<size_t>(b)].c_str());
  }
  return stdout;
}

// StartTexts returns the --from text or the lines of --from-file, each
// repeated `num` times (empty when neither flag is given).
absl::StatusOr<std::vector<std::string>> StartTexts(const FlagSet& flags, int64_t num) {
  std::vector<std::string> texts;
  if (flags.Was("from") && flags.Was("from-file")) {
    return absl::InvalidArgumentError("give --from or --from-file, not both");
  }
  if (flags.Was("from")) texts.push_back(flags.Get("from"));
  if (flags.Was("from-file")) {
    JUMPFLOW_ASSIGN_OR_RETURN(std::string contents, ReadFile(flags.Get("from-file")));
    for (absl::string_view line : absl::StrSplit(contents, '\n')) {
      line = absl::StripAsciiWhitespace(line);
      if (!line.empty()) texts.emplace_back(line);
    }
    if (texts.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(flags.Get("from-file"), ": no start sequences in the file"));
    }
  }
  std::vector<std::string> repeated;
  for (const auto& t : texts) repeated.insert(repeated.end(), static_cast<size_t>(num), t);
  return repeated;
}

// SampleCheckpoint samples a trained model: from its own source (as in
// training), or as edits of --from / --from-file sequences. With --data given
// explicitly, also reports the share of samples found in it and the length TV.
absl::Status SampleCheckpoint(const FlagSet& flags, int64_t num, int64_t show, SamplerOptions opt) {
  JUMPFLOW_ASSIGN_OR_RETURN(TrainedModel tm, LoadTrainedModel(flags.Get("model")));
  JUMPFLOW_ASSIGN_OR_RETURN(const std::vector<std::string> texts, StartTexts(flags, num));
  SequenceBatch start;
  if (!texts.empty()) {
    JUMPFLOW_ASSIGN_OR_RETURN(start, tm.StartFromText(texts));
  } else {
    JUMPFLOW_ASSIGN_OR_RETURN(start, tm.SourceBatch(num, opt.seed));
  }
  opt.max_length = tm.max_length();
  JUMPFLOW_RETURN_IF_ERROR(CheckFusedDevice(opt.device, *tm.model, opt.kind, flags.Get("model")));
  JUMPFLOW_ASSIGN_OR_RETURN(SampleResult result, Sample(*tm.model, tm.schedulers(), start, opt));
  std::vector<std::string> lines;
  std::vector<std::vector<Token>> samples = result.final_batch.ToVectors();
  int64_t changed = 0;
  for (int64_t b = 0; b < result.final_batch.num_sequences(); ++b) {
    lines.push_back(tm.vocab.Decode(samples[static_cast<size_t>(b)]));
    if (!texts.empty()) changed += lines.back() != texts[static_cast<size_t>(b)];
  }
  JUMPFLOW_ASSIGN_OR_RETURN(FILE * report, WriteSamples(flags, lines, show));
  std::fprintf(report, "sampled %lld sequences: %s sampler, %s (%s)\n",
               static_cast<long long>(lines.size()), SamplerKindName(opt.kind).c_str(),
               tm.model->Name().c_str(), tm.process_name.c_str());
  if (!texts.empty()) {
    std::fprintf(report, "edited: %lld of %zu start sequences changed\n",
                 static_cast<long long>(changed), texts.size());
  }
  if (flags.Was("data")) {
    JUMPFLOW_ASSIGN_OR_RETURN(Dataset data, LoadSampleData(flags, DataUse::kReference));
    const GenerationReport r = EvaluateGeneration(samples, data, data);
    std::fprintf(report, "in --data: %.4f; length TV to --data: %.4f; distinct: %.4f\n",
                 r.in_reference_fraction, r.length_tv, r.unique_fraction);
  }
  PrintCost(report, result.stats, static_cast<int64_t>(lines.size()));
  return absl::OkStatus();
}

absl::Status SampleCommand(const FlagSet& flags) {
  JUMPFLOW_ASSIGN_OR_RETURN(const int64_t num, flags.GetInt("num", 1));
  JUMPFLOW_ASSIGN_OR_RETURN(const int64_t steps, flags.GetInt("steps", 1));
  JUMPFLOW_ASSIGN_OR_RETURN(const int64_t seed, flags.GetInt("seed", 0));
  JUMPFLOW_ASSIGN_OR_RETURN(const int64_t threads, flags.GetInt("threads", 0));
  JUMPFLOW_ASSIGN_OR_RETURN(const int64_t batch, flags.GetInt("batch", 1));
  JUMPFLOW_ASSIGN_OR_RETURN(const int64_t show, flags.GetInt("show", 0));
  JUMPFLOW_ASSIGN_OR_RETURN(const double tolerance, flags.GetDouble("tolerance"));
  JUMPFLOW_ASSIGN_OR_RETURN(const SamplerKind sampler, ParseSamplerKind(flags.Get("sampler")));
  JUMPFLOW_ASSIGN_OR_RETURN(const kernels::Backend device, ParseDevice(flags.Get("device")));
  if (!(tolerance > 0.0 && tolerance <= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tolerance must be in (0, 1], got ", flags.Get("tolerance")));
  }
  const std::string grid = flags.Get("grid");
  if (grid != "uniform" && grid != "kappa") {
    return absl::InvalidArgumentError(
        absl::StrCat("--grid must be uniform or kappa, got '", grid, "'"));
  }
  if (!flags.Get("out").empty()) JUMPFLOW_RETURN_IF_ERROR(CheckWritable(flags.Get("out")));

  SamplerOptions opt;
  opt.kind = sampler;
  opt.steps = steps;
  opt.grid = grid == "kappa" ? TimeGrid::kKappa : TimeGrid::kUniform;
  opt.tolerance = tolerance;
  opt.seed = static_cast<uint64_t>(seed);
  opt.num_threads = static_cast<int>(threads);
  opt.max_batch = batch;
  opt.device = device;
  ProgressBar bar;
  if (isatty(fileno(stderr))) {
    opt.progress = [&bar](int64_t done, int64_t total) { bar.Update(done, total); };
  }
  if (flags.Get("model") != "oracle") return SampleCheckpoint(flags, num, show, std::move(opt));
  if (flags.Was("from") || flags.Was("from-file")) {
    return absl::InvalidArgumentError(
        "--from / --from-file need a trained Edit Flow (--model CHECKPOINT), not the oracle");
  }
  JUMPFLOW_ASSIGN_OR_RETURN(Dataset data, LoadSampleData(flags, DataUse::kOracle));
  JUMPFLOW_ASSIGN_OR_RETURN(FlagOracle flag_oracle, MakeFlagOracle(flags, data));
  OracleModel* oracle = flag_oracle.model.get();
  const Scheduler* sched = flag_oracle.scheduler.get();
  const RateModel* model = oracle;
  JUMPFLOW_RETURN_IF_ERROR(CheckFusedDevice(opt.device, *oracle, opt.kind, "oracle"));
  const SequenceBatch start = oracle->SourceBatch(num, opt.seed);
  JUMPFLOW_ASSIGN_OR_RETURN(SampleResult result,
                            Sample(*oracle, KindSchedulers::All(sched), start, opt));

  std::vector<std::string> lines;
  for (int64_t b = 0; b < result.final_batch.num_sequences(); ++b) {
    lines.push_back(oracle->Decode(result.final_batch.sequence(b)));
  }
  JUMPFLOW_ASSIGN_OR_RETURN(FILE * report, WriteSamples(flags, lines, show));
  const SampleQuality q = oracle->Compare(result.final_batch);
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
  PrintCost(report, result.stats, num);
  return absl::OkStatus();
}

}  // namespace

int RunSample(int argc, char** argv) {
  FlagSet flags(
      "sample",
      "Sample sequences from a rate model with a jump sampler. --model oracle uses the\n"
      "exact marginal rates of the --data set, so the samples can be checked against it;\n"
      "--model CHECKPOINT samples a trained model from its source, or as edits of\n"
      "--from / --from-file sequences. Samples go to --out (one per line, written\n"
      "atomically) or to stdout.");
  AddModelFlags(&flags);
  flags.Add("from", "",
            "edit this sequence (--num samples of it) with a trained Edit Flow checkpoint");
  flags.Add("from-file", "", "edit each line of this file (--num samples of each)");
  flags.Add("sampler", "gillespie",
            "euler, tau-leap, adaptive, gillespie (exact) or gillespie-frozen (approximate)");
  flags.Add("steps", "100", "grid steps of euler and tau-leap");
  flags.Add("grid", "uniform", "time grid of euler and tau-leap: uniform or kappa");
  flags.Add("tolerance", "0.05", "adaptive tau-leaping tolerance in (0, 1]");
  flags.Add("num", "1000", "number of samples");
  flags.Add("seed", "1", "random seed (samples are reproducible for any --threads)");
  flags.Add("threads", "0", "worker threads (0 = all cores)");
  flags.Add("batch", "1024", "most sequences per model evaluation");
  flags.Add(
      "device", "cpu",
      "where the fused event kernels run: cpu, or cuda (DFM checkpoints with --sampler "
      "euler, tau-leap or gillespie, insertion-only Edit Flow checkpoints with euler or gillespie; "
      "an error unless this build has the CUDA backend and a GPU)");
  flags.Add("out", "", "write the samples here, one per line");
  flags.Add("show", "10", "with --out, also print this many samples");
  return RunMain(flags, argc, argv, 2, "jumpflow sample", SampleCommand);
}

}  // namespace jumpflow::cli
