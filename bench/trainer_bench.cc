// @brief Trainer and trained-model throughput: training tokens/s of a full
// step (batch construction + forward + loss + backward + AdamW) and sampling
// sequences/s of the reference model with exact Gillespie and tau-leaping,
// for 1 and 2 threads, with a memory-copy reference of the batch's tokens.
//
// Data: /usr/share/dict/words (lower-case a-z, length 1..12) when present,
// otherwise a fixed synthetic set with the same length range. Process: the
// demo's insertion-only Edit Flow (kappa = t^3, t ~ Beta(3, 1)); model dim
// 64, 2 layers, 4 heads (the demo's shape) unless the benchmark says
// otherwise; batch 64 words. tokens/s counts x_1 tokens (the data). The
// sampling benchmarks use a model trained for 300 steps in the fixture (so
// the words it grows have realistic lengths) and 256 samples per iteration.
#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "jumpflow/model/model_rate.h"
#include "jumpflow/samplers/sampler.h"
#include "jumpflow/trainer.h"
#include "kernels/philox.h"
#include "oneapi/tbb/global_control.h"
#include "sequences/dataset.h"

namespace jumpflow {
namespace {

const Dataset& Words() {
  static const Dataset data = [] {
    const Vocabulary vocab = *Vocabulary::FromCharacters("abcdefghijklmnopqrstuvwxyz");
    std::vector<std::vector<Token>> out;
    std::ifstream in("/usr/share/dict/words");
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty() || line.size() > 12) continue;
      if (!std::all_of(line.begin(), line.end(), [](char c) { return c >= 'a' && c <= 'z'; })) {
        continue;
      }
      out.push_back(*vocab.Encode(line));
    }
    if (out.size() < 1000) {  // synthetic fallback
      PhiloxStream rng(1, 0, kPurposeUser);
      out.clear();
      for (int i = 0; i < 5000; ++i) {
        std::vector<Token> w(1 + rng.UniformInt(12));
        for (Token& t : w) t = Vocabulary::kNumSpecials + static_cast<Token>(rng.UniformInt(26));
        out.push_back(std::move(w));
      }
    }
    return *Dataset::FromSequences(vocab, std::move(out));
  }();
  return data;
}

// `order`: 0 = independent insertion times, 1 = left to right with one
// time per word, 2 = left to right with per-gap times (the demo's trainer).
TrainerOptions BenchOptions(int threads, int dim, int layers, int order = 0) {
  TrainerOptions o;
  o.insertion_order = order == 0 ? InsertionOrder::kIndependent : InsertionOrder::kLeftToRight;
  o.per_gap_times = order == 2;
  o.process = TrainProcess::kEdit;
  o.time_distribution = "beta:3,1";
  o.model.dim = dim;
  o.model.layers = layers;
  o.batch_size = 64;
  o.steps = 1 << 30;
  o.eval_fraction = 0.0;
  o.threads = threads;
  return o;
}

// Args: threads, dim, layers, order (BenchOptions). One iteration = one
// Trainer::Step().
void BM_TrainerStep_Cpu(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  absl::StatusOr<Trainer> trainer = Trainer::Create(
      BenchOptions(threads, static_cast<int>(state.range(1)), static_cast<int>(state.range(2)),
                   static_cast<int>(state.range(3))),
      Words());
  if (!trainer.ok()) {
    state.SkipWithError(std::string(trainer.status().message()).c_str());
    return;
  }
  int64_t tokens = 0, model_tokens = 0;
  for (auto _ : state) {
    absl::StatusOr<StepStats> st = trainer->Step();
    if (!st.ok()) {
      state.SkipWithError(std::string(st.status().message()).c_str());
      return;
    }
    tokens += st->tokens;
    model_tokens += st->model_tokens;
  }
  state.SetItemsProcessed(tokens);
  state.counters["tokens/s"] =
      benchmark::Counter(static_cast<double>(tokens), benchmark::Counter::kIsRate);
  state.counters["model_tokens/s"] =
      benchmark::Counter(static_cast<double>(model_tokens), benchmark::Counter::kIsRate);
  state.counters["params"] = static_cast<double>(trainer->model().NumParameters());
}
BENCHMARK(BM_TrainerStep_Cpu)
    ->ArgNames({"threads", "dim", "layers", "order"})
    ->Args({1, 64, 2, 0})
    ->Args({2, 64, 2, 0})
    ->Args({1, 128, 2, 0})
    ->Args({2, 128, 2, 0})
    ->Args({1, 64, 2, 1})
    ->Args({2, 64, 2, 1})
    ->Args({1, 64, 2, 2})
    ->Args({2, 64, 2, 2})
    ->Args({1, 64, 4, 2})
    ->Args({2, 64, 4, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// SamplingModel is a model of `process` trained for 300 steps (dim 64, 2
// layers), shared by the sampling benchmarks of that process.
TrainedModel& SamplingModel(TrainProcess process) {
  static std::map<TrainProcess, TrainedModel*> models;
  TrainedModel*& tm = models[process];
  if (tm == nullptr) {
    TrainerOptions o = BenchOptions(0, 64, 2);
    o.process = process;
    if (process != TrainProcess::kEdit) o.time_distribution = "uniform";
    o.steps = 300;
    Trainer trainer = *Trainer::Create(o, Words());
    (void)trainer.Train();
    tm = new TrainedModel(*TrainedModelFromCheckpoint(*trainer.MakeCheckpoint()));
  }
  return *tm;
}

// TimeSampling samples 256 sequences from the model's source per iteration
// with `opt` (threads from the benchmark's first argument) and reports
// sequences/s, model evaluations and events per sequence.
void TimeSampling(benchmark::State& state, TrainedModel& tm, SamplerOptions opt) {
  tbb::global_control control(tbb::global_control::max_allowed_parallelism,
                              static_cast<size_t>(state.range(0)));
  opt.max_length = tm.max_length();
  opt.num_threads = static_cast<int>(state.range(0));
  constexpr int64_t kNum = 256;
  int64_t sequences = 0, evaluations = 0, events = 0;
  uint64_t seed = 1;
  for (auto _ : state) {
    opt.seed = seed++;
    const SequenceBatch start = *tm.SourceBatch(kNum, opt.seed);
    absl::StatusOr<SampleResult> r = Sample(*tm.model, tm.schedulers(), start, opt);
    if (!r.ok()) {
      state.SkipWithError(std::string(r.status().message()).c_str());
      return;
    }
    sequences += kNum;
    evaluations += r->stats.sequence_evaluations;
    events += r->stats.events;
  }
  state.SetItemsProcessed(sequences);
  state.counters["seqs/s"] =
      benchmark::Counter(static_cast<double>(sequences), benchmark::Counter::kIsRate);
  state.counters["evals/seq"] = static_cast<double>(evaluations) / static_cast<double>(sequences);
  state.counters["events/seq"] = static_cast<double>(events) / static_cast<double>(sequences);
}

// Args: threads, sampler (0 = Gillespie, 1 = tau-leap with 100 kappa steps),
// fused (SamplerOptions::fused_events; Gillespie here: 1 = each round's
// insertion totals and events from one kernels::Gillespie call over the gap
// rows, 0 = the per-sequence path on double multipliers). One iteration =
// 256 words grown from empty by the (insertion-only) Edit Flow model.
void BM_TrainedModelSample_Cpu(benchmark::State& state) {
  SamplerOptions opt;
  opt.kind = state.range(1) == 0 ? SamplerKind::kGillespie : SamplerKind::kTauLeap;
  opt.steps = 100;
  opt.grid = TimeGrid::kKappa;
  opt.fused_events = state.range(2) == 1;
  TimeSampling(state, SamplingModel(TrainProcess::kEdit), opt);
}
BENCHMARK(BM_TrainedModelSample_Cpu)
    ->ArgNames({"threads", "tau_leap", "fused"})
    ->Args({1, 0, 1})
    ->Args({2, 0, 1})
    ->Args({1, 0, 0})
    ->Args({2, 0, 0})
    ->Args({1, 1, 1})
    ->Args({2, 1, 1})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// DfmSampling is the DFM benchmarks' sampler: exact Gillespie, or
// tau-leaping in 100 steps.
SamplerOptions DfmSampling(bool gillespie) {
  SamplerOptions opt;
  opt.kind = gillespie ? SamplerKind::kGillespie : SamplerKind::kTauLeap;
  opt.steps = 100;
  return opt;
}

// Args: threads, fused (SamplerOptions::fused_events: 1 = each round's
// events drawn by one fused kernel call from the raw logits, 0 = the
// per-sequence path on double multipliers), gillespie (0 = tau-leaping in
// 100 steps, one kernels::SampleStep call a round; 1 = exact Gillespie, one
// kernels::Gillespie call a round). One iteration = 256 words unmasked by a
// dfm-mask model; every round evaluates the model, so fused and
// per-sequence differ in the event drawing alone.
void BM_DfmModelSample_Cpu(benchmark::State& state) {
  SamplerOptions opt = DfmSampling(state.range(2) == 1);
  opt.fused_events = state.range(1) == 1;
  TimeSampling(state, SamplingModel(TrainProcess::kDfmMask), opt);
}
BENCHMARK(BM_DfmModelSample_Cpu)
    ->ArgNames({"threads", "fused", "gillespie"})
    ->ArgsProduct({{1, 2}, {0, 1}, {0, 1}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The same with the fused kernels on the GPU (SamplerOptions::device; the
// model stays on the CPU, its logits go to the GPU every round). Args:
// threads, gillespie. Skipped without a usable GPU.
void BM_DfmModelSample_Cuda(benchmark::State& state) {
  SamplerOptions opt = DfmSampling(state.range(1) == 1);
  opt.device = kernels::Backend::kCuda;
  TimeSampling(state, SamplingModel(TrainProcess::kDfmMask), opt);
}
BENCHMARK(BM_DfmModelSample_Cuda)
    ->ArgNames({"threads", "gillespie"})
    ->ArgsProduct({{1, 2}, {0, 1}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Reference: copying the x_1 tokens of one batch of 64 words.
void BM_MemcpyReference(benchmark::State& state) {
  std::vector<Token> src;
  for (int64_t i = 0; i < 64; ++i) {
    const auto s = Words().sequence(i);
    src.insert(src.end(), s.begin(), s.end());
  }
  std::vector<Token> dst(src.size());
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), src.size() * sizeof(Token));
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(src.size()));
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(src.size() * sizeof(Token)));
}
BENCHMARK(BM_MemcpyReference);

}  // namespace
}  // namespace jumpflow

BENCHMARK_MAIN();
