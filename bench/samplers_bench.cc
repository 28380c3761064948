// @brief Sampler benchmarks (events/s and sequences/s of every sampler with
// the exact oracle models, 1 and 2 threads) and an accuracy-vs-cost harness.
//
//   build/bench/samplers_bench                      # Google Benchmark timings
//   build/bench/samplers_bench --accuracy [--num N] # the accuracy-vs-cost table
//
// The data set is 300 words of length <= 6 drawn (seed 1) from
// /usr/share/dict/words (lowercase a-z only) when that file exists, else 300
// synthetic words over 8 letters; the first line of each output says which.
// The reference BM_MemoryCopy_Cpu copies the bytes one sampler call writes
// (final tokens + offsets), the roofline a sampler can never beat.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "jumpflow/oracle.h"
#include "jumpflow/samplers/sampler.h"
#include "jumpflow/scheduler.h"
#include "kernels/philox.h"
#include "sequences/dataset.h"

namespace jumpflow {
namespace {

constexpr int kWords = 300;

// BenchData returns the benchmark data set and a description of it.
const Dataset& BenchData(std::string* description = nullptr) {
  static std::string desc;
  static const Dataset* data = [] {
    Vocabulary vocab = *Vocabulary::FromCharacters("abcdefghijklmnopqrstuvwxyz");
    DatasetOptions opt;
    opt.max_length = 6;
    opt.skip_unknown = true;
    opt.deduplicate = true;
    auto words = Dataset::LoadLines("/usr/share/dict/words", vocab, opt);
    if (words.ok() && words->size() >= kWords) {
      std::vector<int64_t> order = ShuffledIndices(words->size(), 1, 0);
      order.resize(kWords);
      desc = "300 words (length <= 6, a-z) from /usr/share/dict/words, seed 1";
      return new Dataset(words->Subset(order));
    }
    Vocabulary v8 = *Vocabulary::FromCharacters("abcdefgh");
    PhiloxStream rng(1, 0, kPurposeUser);
    std::set<std::vector<Token>> seen;
    std::vector<std::vector<Token>> seqs;
    while (static_cast<int>(seqs.size()) < kWords) {
      std::vector<Token> w(1 + rng.UniformInt(6));
      for (Token& t : w) t = Vocabulary::kNumSpecials + static_cast<Token>(rng.UniformInt(8));
      if (seen.insert(w).second) seqs.push_back(w);
    }
    desc = "300 synthetic words (length 1-6 over a-h), seed 1";
    return new Dataset(*Dataset::FromSequences(v8, seqs));
  }();
  if (description != nullptr) *description = desc;
  return *data;
}

std::shared_ptr<const Scheduler> SchedulerFor(OracleKind kind) {
  return std::shared_ptr<const Scheduler>(
      *MakeScheduler(kind == OracleKind::kEditInsertion ? "poly:3" : "linear"));
}

// One sampler run of `num` sequences.
SampleResult RunOnce(OracleModel& oracle, const Scheduler& sched, SamplerKind kind, int64_t steps,
                     double tolerance, int threads, int64_t num, uint64_t seed) {
  SamplerOptions opt;
  opt.kind = kind;
  opt.steps = steps;
  opt.tolerance = tolerance;
  opt.num_threads = threads;
  opt.seed = seed;
  auto r = Sample(oracle, KindSchedulers::All(&sched), oracle.SourceBatch(num, seed), opt);
  if (!r.ok()) {
    std::fprintf(stderr, "sampler failed: %s\n", std::string(r.status().message()).c_str());
    std::abort();
  }
  return *std::move(r);
}

void BM_Sample(benchmark::State& state, SamplerKind kind, OracleKind process) {
  const int threads = static_cast<int>(state.range(0));
  auto sched = SchedulerFor(process);
  auto oracle = *OracleModel::Create(process, BenchData(), sched);
  constexpr int64_t kNum = 1000;
  int64_t events = 0, evals = 0, sequences = 0;
  uint64_t seed = 1;
  for (auto _ : state) {
    SampleResult r = RunOnce(*oracle, *sched, kind, 64, 0.05, threads, kNum, seed++);
    events += r.stats.events;
    evals += r.stats.sequence_evaluations;
    sequences += kNum;
    benchmark::DoNotOptimize(r.final_batch.tokens().data());
  }
  state.SetItemsProcessed(sequences);  // items/s = sequences/s
  state.counters["events/s"] =
      benchmark::Counter(static_cast<double>(events), benchmark::Counter::kIsRate);
  state.counters["evals/seq"] = static_cast<double>(evals) / static_cast<double>(sequences);
}

void BM_MemoryCopy_Cpu(benchmark::State& state) {
  // The bytes of one 1000-sequence result: ~6 tokens + 1 offset each.
  std::vector<char> src(1000 * (6 * sizeof(Token) + sizeof(int64_t)), 1), dst(src.size());
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), src.size());
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(src.size()));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * 1000);
}
BENCHMARK(BM_MemoryCopy_Cpu);

void RegisterSamplerBenchmarks() {
  const struct {
    SamplerKind kind;
    const char* name;
  } samplers[] = {{SamplerKind::kEuler, "Euler"},
                  {SamplerKind::kTauLeap, "TauLeap"},
                  {SamplerKind::kAdaptive, "Adaptive"},
                  {SamplerKind::kGillespie, "Gillespie"}};
  for (const auto& s : samplers) {
    for (OracleKind process :
         {OracleKind::kEditInsertion, OracleKind::kDfmMask, OracleKind::kDfmUniform}) {
      const std::string name =
          std::string("BM_Sample") + s.name + "_Cpu/" + OracleKindName(process);
      benchmark::RegisterBenchmark(name.c_str(), BM_Sample, s.kind, process)
          ->ArgName("threads")
          ->Arg(1)
          ->Arg(2)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
    }
  }
}

// PrintAccuracyTable prints (process, sampler, setting, model calls,
// sequence evaluations per sample, out-of-support fraction, TV, seconds).
void PrintAccuracyTable(int64_t num) {
  std::string desc;
  BenchData(&desc);
  std::printf("data: %s; %lld samples per row, seed 7, 2 threads\n", desc.c_str(),
              static_cast<long long>(num));
  std::printf("TV noise floor ~ 0.5 sqrt(items / samples) = %.3f (Gillespie rows are exact)\n\n",
              0.5 * std::sqrt(static_cast<double>(kWords) / static_cast<double>(num)));
  std::printf(
      "| process | sampler | steps / tol | model calls | evals / sample | out-of-support | TV | "
      "seconds |\n");
  std::printf("|---|---|---|---:|---:|---:|---:|---:|\n");
  for (OracleKind process :
       {OracleKind::kEditInsertion, OracleKind::kDfmMask, OracleKind::kDfmUniform}) {
    auto sched = SchedulerFor(process);
    auto oracle = *OracleModel::Create(process, BenchData(), sched);
    auto row = [&](SamplerKind kind, int64_t steps, double tol, const std::string& setting) {
      SampleResult r = RunOnce(*oracle, *sched, kind, steps, tol, 2, num, 7);
      const SampleQuality q = oracle->Compare(r.final_batch);
      std::printf("| %s (%s) | %s | %s | %lld | %.1f | %.4f | %.4f | %.2f |\n",
                  OracleKindName(process).c_str(), sched->Name().c_str(),
                  SamplerKindName(kind).c_str(), setting.c_str(),
                  static_cast<long long>(r.stats.model_calls),
                  static_cast<double>(r.stats.sequence_evaluations) / static_cast<double>(num),
                  1.0 - q.in_support_fraction, q.tv, r.stats.seconds);
      std::fflush(stdout);
    };
    const bool dfm = process != OracleKind::kEditInsertion;
    for (int64_t steps : {4, 16, 64, 256}) {
      row(SamplerKind::kEuler, steps, 0, std::to_string(steps));
    }
    if (!dfm) {  // for DFM tau-leaping is the Euler sampler
      for (int64_t steps : {4, 16, 64, 256}) {
        row(SamplerKind::kTauLeap, steps, 0, std::to_string(steps));
      }
    }
    for (double tol : {0.5, 0.2, 0.05, 0.02}) {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "tol %.2f", tol);
      row(SamplerKind::kAdaptive, 0, tol, buf);
    }
    row(SamplerKind::kGillespie, 0, 0, "exact");
    row(SamplerKind::kGillespieFrozen, 0, 0, "approx.");
  }
}

}  // namespace
}  // namespace jumpflow

int main(int argc, char** argv) {
  bool accuracy = false;
  int64_t num = 10000;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--accuracy") == 0) accuracy = true;
    if (std::strcmp(argv[i], "--num") == 0 && i + 1 < argc) {
      num = std::max<int64_t>(1, std::atoll(argv[i + 1]));
    }
  }
  if (accuracy) {
    jumpflow::PrintAccuracyTable(num);
    return 0;
  }
  std::string desc;
  jumpflow::BenchData(&desc);
  std::printf("data: %s\n", desc.c_str());
  jumpflow::RegisterSamplerBenchmarks();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
