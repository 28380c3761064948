// @brief Benchmarks of minimum-edit alignment and batched edit application
// for pairs of length 16, 256 and 4096, with a memory-copy reference of the
// same bytes in the same binary.
#include <cstring>
#include <random>
#include <vector>

#include "benchmark/benchmark.h"
#include "sequences/alignment.h"
#include "sequences/edits.h"

namespace jumpflow {
namespace {

constexpr int kAlphabet = 26;

// Pair (x0, x1) where x1 is x0 with ~10% random edits: the realistic case
// for editing tasks.
std::pair<std::vector<Token>, std::vector<Token>> MakePair(int64_t len, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<Token> x0(static_cast<size_t>(len));
  for (auto& t : x0) t = Vocabulary::kNumSpecials + static_cast<Token>(rng() % kAlphabet);
  std::vector<Token> x1;
  for (Token t : x0) {
    const auto r = rng() % 30;
    if (r == 0) continue;                                                  // delete
    if (r == 1) x1.push_back(Vocabulary::kNumSpecials + static_cast<Token>(rng() % kAlphabet));
    x1.push_back(r == 2 ? Vocabulary::kNumSpecials + static_cast<Token>(rng() % kAlphabet) : t);
  }
  return {x0, x1};
}

// Items: pairs. Bytes: the DP cells (one per (i, j)), the work that scales.
void BM_MinEditAlignment_Cpu(benchmark::State& state) {
  const int64_t len = state.range(0);
  auto [x0, x1] = MakePair(len, 1);
  for (auto _ : state) {
    auto al = MinEditAlignment(x0, x1, {}, 7);
    benchmark::DoNotOptimize(al);
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["cells/s"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * static_cast<double>((x0.size() + 1) * (x1.size() + 1)),
      benchmark::Counter::kIsRate);
}
BENCHMARK(BM_MinEditAlignment_Cpu)->Arg(16)->Arg(256)->Arg(4096)->Unit(benchmark::kMicrosecond);

// A batch of pairs with their edit lists, sized so each run moves ~4 MB.
struct EditBatch {
  SequenceBatch batch;
  std::vector<Edit> edits;
  std::vector<int64_t> offsets{0};
  int64_t out_tokens = 0;
};

EditBatch MakeEditBatch(int64_t len) {
  const int64_t num = std::max<int64_t>(1, (int64_t{1} << 20) / len);
  std::vector<std::vector<Token>> seqs;
  EditBatch eb;
  for (int64_t b = 0; b < num; ++b) {
    auto [x0, x1] = MakePair(len, static_cast<uint64_t>(b) + 100);
    auto al = MinEditAlignment(x0, x1, {}, 1);
    auto e = AlignmentToEdits(*al);
    eb.edits.insert(eb.edits.end(), e.begin(), e.end());
    eb.offsets.push_back(static_cast<int64_t>(eb.edits.size()));
    eb.out_tokens += static_cast<int64_t>(x1.size());
    seqs.push_back(std::move(x0));
  }
  eb.batch = *SequenceBatch::FromVectors(seqs, Vocabulary::kNumSpecials + kAlphabet);
  return eb;
}

// Bytes: tokens read + tokens written + edits read.
int64_t EditBytes(const EditBatch& eb) {
  return static_cast<int64_t>(sizeof(Token)) * (eb.batch.num_tokens() + eb.out_tokens) +
         static_cast<int64_t>(sizeof(Edit) * eb.edits.size());
}

void BM_ApplyEditsBatch_Cpu(benchmark::State& state) {
  const EditBatch eb = MakeEditBatch(state.range(0));
  for (auto _ : state) {
    auto out = ApplyEditsBatch(eb.batch, eb.edits, eb.offsets, Vocabulary::kNumSpecials + kAlphabet);
    benchmark::DoNotOptimize(out);
  }
  state.SetItemsProcessed(state.iterations() * eb.batch.num_sequences());
  state.SetBytesProcessed(state.iterations() * EditBytes(eb));
}
BENCHMARK(BM_ApplyEditsBatch_Cpu)->Arg(16)->Arg(256)->Arg(4096)->Unit(benchmark::kMicrosecond);

// Reference: a plain copy of the same number of bytes ApplyEditsBatch moves.
void BM_MemcpyReference(benchmark::State& state) {
  const EditBatch eb = MakeEditBatch(state.range(0));
  const auto bytes = static_cast<size_t>(EditBytes(eb));
  std::vector<char> src(bytes / 2 + 1, 1), dst(bytes / 2 + 1);
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), src.size());
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(2 * src.size()));
}
BENCHMARK(BM_MemcpyReference)->Arg(16)->Arg(256)->Arg(4096)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace jumpflow

BENCHMARK_MAIN();
