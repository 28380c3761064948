// @brief Benchmarks of the training-batch processes (DFM, Edit Flows,
// Branching Flows) on English words (length <= 24, /usr/share/dict/words, or
// synthetic words when the file is missing) and on length-1024 sequences,
// with a memory-copy reference of the same bytes in the same binary.
//
// Items = x_1 tokens, so items_per_second is tokens/s; the "batches/s"
// counter is batches per second. Bytes = the int32 tokens of x_1 read plus
// x_t written. Each benchmark runs under a task_arena of range(1) threads.
// Words: batches of 256 words; long: batches of 16 sequences of 1024 tokens.
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <tbb/task_arena.h>

#include "benchmark/benchmark.h"
#include "jumpflow/processes/branching.h"
#include "jumpflow/processes/dfm.h"
#include "jumpflow/processes/edit_flow.h"
#include "jumpflow/scheduler.h"
#include "kernels/philox.h"
#include "sequences/dataset.h"

namespace jumpflow {
namespace {

constexpr int kWordsPerBatch = 256;
constexpr int kLongPerBatch = 16;
constexpr int kLongLength = 1024;

// A local U(0, 1) so the benchmark depends only on the interface.
class BenchUniformTime : public TimeDistribution {
 public:
  std::string Name() const override { return "uniform"; }
  double Sample(PhiloxStream& rng) const override { return rng.Uniform(); }
  double Density(double t) const override { return 1.0; }
};

struct Data {
  int32_t vocab_size = 0;
  SequenceBatch words, words_x0;  // x0: misspelled words
  SequenceBatch longs, longs_x0;  // x0: ~10% edits
};

// Applies ~`rate` random edits per token (delete / substitute / insert).
std::vector<Token> Corrupt(std::span<const Token> x, PhiloxStream& rng, uint32_t one_in,
                           int32_t vocab_size) {
  const uint32_t user = static_cast<uint32_t>(vocab_size - Vocabulary::kNumSpecials);
  std::vector<Token> out;
  for (Token y : x) {
    const uint32_t r = rng.UniformInt(3 * one_in);
    if (r == 0) continue;
    if (r == 1) {
      out.push_back(Vocabulary::kNumSpecials + static_cast<Token>(rng.UniformInt(user)));
      continue;
    }
    if (r == 2) out.push_back(Vocabulary::kNumSpecials + static_cast<Token>(rng.UniformInt(user)));
    out.push_back(y);
  }
  return out;
}

const Data& GetData() {
  static const Data* data = [] {
    auto* d = new Data;
    Vocabulary vocab = Vocabulary::FromCharacters("abcdefghijklmnopqrstuvwxyz").value();
    d->vocab_size = vocab.size();
    std::vector<std::vector<Token>> words;
    DatasetOptions opt;
    opt.max_length = 24;
    opt.skip_unknown = true;
    auto ds = Dataset::LoadLines("/usr/share/dict/words", vocab, opt);
    PhiloxStream rng(1, 2, kPurposeUser);
    if (ds.ok() && ds->size() >= kWordsPerBatch) {
      // A fixed pseudo-random sample of the dictionary.
      for (int i = 0; i < kWordsPerBatch; ++i) {
        const auto s = ds->sequence(rng.UniformInt(static_cast<uint32_t>(ds->size())));
        words.emplace_back(s.begin(), s.end());
      }
    } else {
      for (int i = 0; i < kWordsPerBatch; ++i) {
        std::vector<Token> w(3 + rng.UniformInt(10));
        for (Token& x : w) x = Vocabulary::kNumSpecials + static_cast<Token>(rng.UniformInt(26));
        words.push_back(std::move(w));
      }
    }
    std::vector<std::vector<Token>> words_x0, longs, longs_x0;
    for (const auto& w : words) words_x0.push_back(Corrupt(w, rng, 4, d->vocab_size));
    for (int i = 0; i < kLongPerBatch; ++i) {
      std::vector<Token> s(kLongLength);
      for (Token& x : s) x = Vocabulary::kNumSpecials + static_cast<Token>(rng.UniformInt(26));
      longs_x0.push_back(Corrupt(s, rng, 10, d->vocab_size));
      longs.push_back(std::move(s));
    }
    d->words = SequenceBatch::FromVectors(words, d->vocab_size).value();
    d->words_x0 = SequenceBatch::FromVectors(words_x0, d->vocab_size).value();
    d->longs = SequenceBatch::FromVectors(longs, d->vocab_size).value();
    d->longs_x0 = SequenceBatch::FromVectors(longs_x0, d->vocab_size).value();
    return d;
  }();
  return *data;
}

// Runs make(seed) -> StatusOr<TrainingBatch> once per iteration (fresh seed)
// and sets the counters.
template <typename Make>
void RunProcess(benchmark::State& state, const SequenceBatch& x1, Make&& make) {
  tbb::task_arena arena(static_cast<int>(state.range(1)));
  uint64_t seed = 0;
  int64_t out_tokens = 0;
  for (auto _ : state) {
    arena.execute([&] {
      auto tb = make(++seed);
      if (!tb.ok()) {
        state.SkipWithError(std::string(tb.status().message()).c_str());
        return;
      }
      out_tokens += tb->x_t.num_tokens();
      benchmark::DoNotOptimize(tb->x_t.tokens().data());
    });
  }
  const double iters = static_cast<double>(state.iterations());
  state.SetItemsProcessed(static_cast<int64_t>(iters) * x1.num_tokens());
  state.SetBytesProcessed(static_cast<int64_t>(sizeof(Token)) *
                          (static_cast<int64_t>(iters) * x1.num_tokens() + out_tokens));
  state.counters["batches/s"] = benchmark::Counter(iters, benchmark::Counter::kIsRate);
  state.counters["seqs"] = static_cast<double>(x1.num_sequences());
}

const SequenceBatch& X1(int64_t which) { return which == 0 ? GetData().words : GetData().longs; }
const SequenceBatch& X0(int64_t which) {
  return which == 0 ? GetData().words_x0 : GetData().longs_x0;
}

// range(0): 0 = words (256 x len <= 24), 1 = long (16 x 1024); range(1): threads.
void BM_DfmBatch_Cpu(benchmark::State& state) {
  const SequenceBatch& x1 = X1(state.range(0));
  auto sched = MakeScheduler("linear").value();
  BenchUniformTime uniform;
  DfmOptions opt{.vocab_size = GetData().vocab_size, .source = DfmSource::kMask};
  RunProcess(state, x1, [&](uint64_t seed) {
    return MakeDfmBatch(x1, BatchTimes::Sampled(uniform), *sched, opt, seed);
  });
}

void BM_DfmUniformBatch_Cpu(benchmark::State& state) {
  const SequenceBatch& x1 = X1(state.range(0));
  auto sched = MakeScheduler("linear").value();
  BenchUniformTime uniform;
  DfmOptions opt{.vocab_size = GetData().vocab_size, .source = DfmSource::kUniform};
  RunProcess(state, x1, [&](uint64_t seed) {
    return MakeDfmBatch(x1, BatchTimes::Sampled(uniform), *sched, opt, seed);
  });
}

// Insertion-only Edit Flows (x0 empty, no alignment needed).
void BM_EditFlowInsertBatch_Cpu(benchmark::State& state) {
  const SequenceBatch& x1 = X1(state.range(0));
  auto sched = MakeScheduler("poly:3").value();
  BenchUniformTime uniform;
  EditFlowOptions opt{.vocab_size = GetData().vocab_size, .source = EditSource::kEmpty};
  RunProcess(state, x1, [&](uint64_t seed) {
    return MakeEditFlowBatch(x1, BatchTimes::Sampled(uniform), *sched, opt, seed);
  });
}

// Edit Flows on (corrupted, clean) pairs with a minimum-edit alignment per
// pair (O(n m) per pair: dominates for long sequences).
void BM_EditFlowPairsMinEditBatch_Cpu(benchmark::State& state) {
  const SequenceBatch& x1 = X1(state.range(0));
  const SequenceBatch& x0 = X0(state.range(0));
  auto sched = MakeScheduler("poly:3").value();
  BenchUniformTime uniform;
  EditFlowOptions opt{.vocab_size = GetData().vocab_size, .source = EditSource::kPairs,
                      .x0 = &x0};
  RunProcess(state, x1, [&](uint64_t seed) {
    return MakeEditFlowBatch(x1, BatchTimes::Sampled(uniform), *sched, opt, seed);
  });
}

// Edit Flows on pairs with the O(n + m) random alignment.
void BM_EditFlowPairsRandomBatch_Cpu(benchmark::State& state) {
  const SequenceBatch& x1 = X1(state.range(0));
  const SequenceBatch& x0 = X0(state.range(0));
  auto sched = MakeScheduler("poly:3").value();
  BenchUniformTime uniform;
  EditFlowOptions opt{.vocab_size = GetData().vocab_size, .source = EditSource::kPairs,
                      .x0 = &x0, .alignment = EditAlignment::kRandom};
  RunProcess(state, x1, [&](uint64_t seed) {
    return MakeEditFlowBatch(x1, BatchTimes::Sampled(uniform), *sched, opt, seed);
  });
}

// Branching Flows: one root per sequence, 20% deletion duplicates.
void BM_BranchingBatch_Cpu(benchmark::State& state) {
  const SequenceBatch& x1 = X1(state.range(0));
  auto sched = MakeScheduler("linear").value();
  BenchUniformTime uniform;
  BranchingOptions opt{.vocab_size = GetData().vocab_size, .deletion_probability = 0.2};
  RunProcess(state, x1, [&](uint64_t seed) {
    return MakeBranchingBatch(x1, BatchTimes::Sampled(uniform), *sched, opt, seed);
  });
}

// Reference: memcpy of the x_1 tokens twice (read x_1, write x_t: the bytes a
// process must at least move).
void BM_MemcpyReference_Cpu(benchmark::State& state) {
  const SequenceBatch& x1 = X1(state.range(0));
  std::vector<Token> a(x1.tokens().begin(), x1.tokens().end()), b(a.size());
  for (auto _ : state) {
    std::memcpy(b.data(), a.data(), a.size() * sizeof(Token));
    benchmark::DoNotOptimize(b.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * x1.num_tokens());
  state.SetBytesProcessed(state.iterations() * 2 * x1.num_tokens() *
                          static_cast<int64_t>(sizeof(Token)));
  state.counters["batches/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

#define JUMPFLOW_PROCESS_BENCH(fn) \
  BENCHMARK(fn)->ArgNames({"long", "threads"})->ArgsProduct({{0, 1}, {1, 2}})->UseRealTime()

JUMPFLOW_PROCESS_BENCH(BM_DfmBatch_Cpu);
JUMPFLOW_PROCESS_BENCH(BM_DfmUniformBatch_Cpu);
JUMPFLOW_PROCESS_BENCH(BM_EditFlowInsertBatch_Cpu);
JUMPFLOW_PROCESS_BENCH(BM_EditFlowPairsMinEditBatch_Cpu);
JUMPFLOW_PROCESS_BENCH(BM_EditFlowPairsRandomBatch_Cpu);
JUMPFLOW_PROCESS_BENCH(BM_BranchingBatch_Cpu);
BENCHMARK(BM_MemcpyReference_Cpu)->ArgNames({"long"})->Arg(0)->Arg(1);

}  // namespace
}  // namespace jumpflow

BENCHMARK_MAIN();
