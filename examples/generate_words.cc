// @brief Example: sample words from a trained Edit Flow (or any trainer
// checkpoint) with exact Gillespie and with tau-leaping, and compare them
// with the dictionary and with a character-bigram baseline.
//
// Prints, per sampler: the share of samples that are dictionary words, the
// share that are novel (not in the training split), the share that are new
// dictionary words, the total variation between the length distributions of
// the samples and of the training split, the share of distinct samples and
// the seconds taken. Writes the length histograms (LENGTH, data, one column
// per sampler, bigram) to --hist for plotting.
//
// The training split is recomputed exactly as the trainer made it (same
// data file, vocabulary, --max-length, and the checkpoint's eval fraction and
// seed); the data fingerprint stored in the checkpoint guards that.
//
//   build/bin/jumpflow train --data words.txt --chars abcdefghijklmnopqrstuvwxyz
//       --max-length 12 --out words.ckpt          (one command line)
//   build/examples/generate_words --model words.ckpt --data words.txt --max-length 12
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "jumpflow/cli/flags.h"
#include "jumpflow/generation_metrics.h"
#include "jumpflow/model/model_rate.h"
#include "jumpflow/samplers/sampler.h"
#include "jumpflow/status_macros.h"
#include "jumpflow/trainer.h"
#include "kernels/philox.h"
#include "sequences/file_util.h"

namespace jumpflow {
namespace {

using absl::StrCat;

struct Row {
  std::string name;
  GenerationReport report;
  double seconds = 0.0;
  std::vector<std::vector<Token>> samples;
};

void PrintRow(const Row& r) {
  std::printf("%-28s %9.3f %9.3f %9.3f %9.3f %9.3f %9.2f\n", r.name.c_str(),
              r.report.in_reference_fraction, r.report.novel_fraction,
              r.report.novel_valid_fraction, r.report.length_tv, r.report.unique_fraction,
              r.seconds);
}

absl::Status Run(const cli::FlagSet& flags) {
  JUMPFLOW_ASSIGN_OR_RETURN(const int64_t num, flags.GetInt("num", 1));
  JUMPFLOW_ASSIGN_OR_RETURN(const int64_t seed, flags.GetInt("seed", 0));
  JUMPFLOW_ASSIGN_OR_RETURN(const int64_t steps, flags.GetInt("tau-steps", 1));
  JUMPFLOW_ASSIGN_OR_RETURN(const int64_t max_length, flags.GetInt("max-length", 0));
  JUMPFLOW_ASSIGN_OR_RETURN(const int64_t show, flags.GetInt("show", 0));
  JUMPFLOW_ASSIGN_OR_RETURN(const int64_t threads, flags.GetInt("threads", 0));
  if (!flags.Get("hist").empty()) JUMPFLOW_RETURN_IF_ERROR(CheckWritable(flags.Get("hist")));
  JUMPFLOW_ASSIGN_OR_RETURN(TrainedModel tm, LoadTrainedModel(flags.Get("model")));

  // Data exactly as the trainer loaded it, then its split.
  DatasetOptions options;
  if (max_length > 0) options.max_length = max_length;
  options.skip_unknown = true;
  JUMPFLOW_ASSIGN_OR_RETURN(Dataset data, Dataset::LoadLines(flags.Get("data"), tm.vocab, options));
  if (StrCat(DataFingerprint(data, {})) != tm.settings["data_fingerprint"]) {
    return absl::InvalidArgumentError(StrCat("--data '", flags.Get("data"), "' (with --max-length ",
                                             max_length,
                                             ") is not the data the checkpoint was trained on"));
  }
  double fraction = 0.0;
  int64_t split_seed = 0;
  if (!absl::SimpleAtod(tm.settings["eval_fraction"], &fraction) ||
      !absl::SimpleAtoi(tm.settings["seed"], &split_seed)) {
    return absl::InvalidArgumentError("checkpoint lacks eval_fraction / seed settings");
  }
  auto [train, held_out] = SplitData(data, fraction, static_cast<uint64_t>(split_seed));
  Dataset reference = data;
  if (!flags.Get("reference").empty()) {
    JUMPFLOW_ASSIGN_OR_RETURN(reference,
                              Dataset::LoadLines(flags.Get("reference"), tm.vocab, options));
  }
  const std::set<std::vector<Token>> reference_set(reference.sequences().begin(),
                                                   reference.sequences().end());
  std::printf("model: %s; %lld training words, %lld held out, reference %lld words\n",
              tm.model->Name().c_str(), static_cast<long long>(train.size()),
              static_cast<long long>(held_out.size()), static_cast<long long>(reference.size()));

  std::vector<Row> rows;
  for (absl::string_view name : absl::StrSplit(flags.Get("samplers"), ',', absl::SkipEmpty())) {
    JUMPFLOW_ASSIGN_OR_RETURN(const SamplerKind kind, ParseSamplerKind(name));
    SamplerOptions opt;
    opt.kind = kind;
    opt.steps = steps;
    opt.grid = flags.Get("grid") == "kappa" ? TimeGrid::kKappa : TimeGrid::kUniform;
    opt.seed = static_cast<uint64_t>(seed);
    opt.max_length = tm.max_length();
    opt.num_threads = static_cast<int>(threads);
    JUMPFLOW_ASSIGN_OR_RETURN(SequenceBatch start, tm.SourceBatch(num, opt.seed));
    JUMPFLOW_ASSIGN_OR_RETURN(SampleResult result, Sample(*tm.model, tm.schedulers(), start, opt));
    Row row;
    row.name = std::string(name);
    if (kind == SamplerKind::kEuler || kind == SamplerKind::kTauLeap) {
      absl::StrAppend(&row.name, " (", steps, " steps)");
    }
    row.samples = result.final_batch.ToVectors();
    row.report = EvaluateGeneration(row.samples, reference, train);
    row.seconds = result.stats.seconds;
    const SamplerStats& s = result.stats;
    std::printf(
        "  %s: %lld events, %lld model calls (%lld sequence evaluations), %lld thinning "
        "rejections, %lld bound violations, %lld truncated\n",
        row.name.c_str(), static_cast<long long>(s.events), static_cast<long long>(s.model_calls),
        static_cast<long long>(s.sequence_evaluations), static_cast<long long>(s.rejections),
        static_cast<long long>(s.bound_violations), static_cast<long long>(s.truncated));
    rows.push_back(std::move(row));
  }
  {
    Row row;
    row.name = "char bigram baseline";
    const CharBigramModel bigram = CharBigramModel::Fit(train);
    const auto t0 = std::chrono::steady_clock::now();
    row.samples = bigram.Sample(num, static_cast<uint64_t>(seed), tm.max_length());
    row.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    row.report = EvaluateGeneration(row.samples, reference, train);
    rows.push_back(std::move(row));

    // The same bigram conditioned on the training length distribution:
    // lengths are drawn from the training split's histogram and each slot is
    // filled with the next bigram word of that length (rejection sampling;
    // chains that run past the longest training word are discarded, not cut).
    Row matched;
    matched.name = "bigram, data lengths";
    const auto t1 = std::chrono::steady_clock::now();
    std::vector<int64_t> cumulative;
    for (const auto& w : train.sequences()) {
      if (cumulative.size() <= w.size()) cumulative.resize(w.size() + 1, 0);
      ++cumulative[w.size()];
    }
    for (size_t i = 1; i < cumulative.size(); ++i) cumulative[i] += cumulative[i - 1];
    std::map<size_t, std::vector<std::vector<Token>>> pool;
    PhiloxStream rng(static_cast<uint64_t>(seed), 1, kPurposeUser);
    uint64_t round = 0;
    for (int64_t k = 0; k < num; ++k) {
      const auto u = static_cast<int64_t>(rng.Uniform() * static_cast<double>(cumulative.back()));
      const size_t len = static_cast<size_t>(
          std::upper_bound(cumulative.begin(), cumulative.end(), u) - cumulative.begin());
      while (pool[len].empty() && round < 1000) {
        for (auto& w : bigram.Sample(10 * num, static_cast<uint64_t>(seed) + 1000 + round,
                                     tm.max_length() + 1)) {
          if (static_cast<int64_t>(w.size()) <= tm.max_length()) pool[w.size()].push_back(w);
        }
        ++round;
      }
      if (pool[len].empty()) continue;  // length never produced (reported by the count)
      matched.samples.push_back(std::move(pool[len].back()));
      pool[len].pop_back();
    }
    matched.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
    matched.report = EvaluateGeneration(matched.samples, reference, train);
    rows.push_back(std::move(matched));
  }

  const std::string header = StrCat(num, " samples each");
  std::printf("\n%-28s %9s %9s %9s %9s %9s %9s\n", header.c_str(), "dict", "novel", "new-dict",
              "len-TV", "distinct", "seconds");
  for (const Row& r : rows) PrintRow(r);
  // Dictionary share by length band: short words are easy to hit by chance.
  std::printf("\ndictionary share by length   %12s %12s %12s\n", "1-4", "5-8", "9-12");
  for (const Row& r : rows) {
    int64_t hit[3] = {0, 0, 0}, count[3] = {0, 0, 0};
    for (const auto& w : r.samples) {
      const int band = w.size() <= 4 ? 0 : (w.size() <= 8 ? 1 : 2);
      ++count[band];
      hit[band] += reference_set.contains(w);
    }
    std::printf("%-28s", r.name.c_str());
    for (int b = 0; b < 3; ++b) {
      std::printf(" %5.3f (%4lld)", count[b] ? static_cast<double>(hit[b]) / count[b] : 0.0,
                  static_cast<long long>(count[b]));
    }
    std::printf("\n");
  }
  for (const Row& r : rows) {
    std::string line;
    for (int64_t i = 0; i < std::min<int64_t>(show, static_cast<int64_t>(r.samples.size())); ++i) {
      absl::StrAppend(&line, " ", tm.vocab.Decode(r.samples[static_cast<size_t>(i)]));
    }
    if (show > 0) std::printf("  %s:%s\n", r.name.c_str(), line.c_str());
  }

  if (!flags.Get("hist").empty()) {
    std::map<size_t, std::vector<double>> hist;
    const size_t cols = rows.size() + 1;
    auto add = [&](const std::vector<std::vector<Token>>& seqs, size_t col) {
      for (const auto& s : seqs) {
        auto& h = hist[s.size()];
        h.resize(cols, 0.0);
        h[col] += 1.0 / static_cast<double>(seqs.size());
      }
    };
    add(train.sequences(), 0);
    for (size_t c = 0; c < rows.size(); ++c) add(rows[c].samples, c + 1);
    // Header: column names (spaces in sampler names become '_').
    std::string text = "length data";
    for (const Row& r : rows) {
      std::string name = r.name;
      std::replace(name.begin(), name.end(), ' ', '_');
      absl::StrAppend(&text, " ", name);
    }
    absl::StrAppend(&text, "\n");
    for (auto& [len, h] : hist) {
      h.resize(cols, 0.0);
      absl::StrAppend(&text, len);
      for (double p : h) absl::StrAppend(&text, absl::StrFormat(" %.5f", p));
      absl::StrAppend(&text, "\n");
    }
    JUMPFLOW_RETURN_IF_ERROR(WriteFileAtomically(flags.Get("hist"), text));
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace jumpflow

int main(int argc, char** argv) {
  jumpflow::cli::FlagSet flags(
      "generate_words",
      "Sample words from a trainer checkpoint with several samplers and compare them\n"
      "with the dictionary and a character-bigram baseline.");
  flags.Add("model", "", "trainer checkpoint (jumpflow train --out)");
  flags.Add("data", "", "the --data file the model was trained on");
  flags.Add("max-length", "0", "the --max-length used for training (0 = none)");
  flags.Add("reference", "", "dictionary for the validity check ('' = --data)");
  flags.Add("num", "1000", "samples per sampler");
  flags.Add("samplers", "gillespie,tau-leap", "comma-separated sampler names");
  flags.Add("tau-steps", "100", "grid steps of euler / tau-leap");
  flags.Add("grid", "kappa", "time grid of euler / tau-leap: uniform or kappa");
  flags.Add("seed", "1", "sampling seed");
  flags.Add("threads", "0", "sampler threads (0 = all)");
  flags.Add("show", "12", "print this many samples per sampler");
  flags.Add("hist", "", "write length histograms here (for gnuplot)");
  return jumpflow::cli::RunMain(flags, argc, argv, 1, "generate_words", jumpflow::Run);
}
